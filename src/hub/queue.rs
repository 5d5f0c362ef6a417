//! The push queue: turns on the trunk for pushers that agree to wait.
//!
//! Without it, every pusher whose parent went stale is refused at once and
//! races again; with N pushers on one tip, N−1 pushes and rebases are wasted
//! per landed check-in, and the waste grows with the herd. A pusher that
//! sends `pragma herd-queue` (see `xfer::fastpath`) is instead held
//! unanswered while another pusher has the turn. Turns go out in arrival
//! order: the writer answers the first waiting push with its refusal and a
//! turn token that reserves the trunk for a short lease; that pusher
//! rebases and pushes again with the token and lands. So a waiting
//! check-in costs one refusal, not one per rival.
//!
//! Only the writer thread touches the queue. A held push is a request the
//! async front end keeps open (a pending future, no thread), up to the
//! queue's capacity; beyond that, pushes get an immediate refusal. Pushers
//! that do not take part (a real `fossil`) are never held; if one lands
//! while a turn is out, the turn's push is refused and waits again.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::writer::Job;
use crate::xfer::QueueAsk;

/// Queue settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Most pushes held at once; 0 turns the queue off.
    pub capacity: usize,
    /// How long a turn reserves the trunk for its holder's next push.
    pub lease: Duration,
}

/// A turn's lease unless configured otherwise: a leaf needs a rebase and
/// one round trip, a few milliseconds; the lease only matters when a
/// holder died or stalled.
pub const DEFAULT_LEASE: Duration = Duration::from_millis(200);

/// What happens to a push the writer has looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Answer it now.
    Reply,
    /// Hold it (unanswered) until its turn.
    Hold,
}

#[derive(Debug, Clone, Copy)]
struct Turn {
    token: u64,
    until: Instant,
}

/// The waiting pushes and the current turn.
pub(crate) struct PushQueue {
    config: QueueConfig,
    waiting: VecDeque<Job>,
    /// Pushes of the batch being written that will be held after it commits.
    pending: usize,
    turn: Option<Turn>,
    next_token: u64,
    /// Turns handed out and turns that ran out unused.
    pub(crate) granted: u64,
    pub(crate) expired: u64,
}

impl PushQueue {
    pub(crate) fn new(config: QueueConfig) -> PushQueue {
        PushQueue {
            config,
            waiting: VecDeque::new(),
            pending: 0,
            turn: None,
            next_token: 1,
            granted: 0,
            expired: 0,
        }
    }

    /// Pushes held now.
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    fn has_room(&self) -> bool {
        self.waiting.len() + self.pending < self.config.capacity
    }

    /// When the current turn runs out, if one is out.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.turn.map(|t| t.until)
    }

    /// Ends the current turn if its lease has run out.
    pub(crate) fn expire(&mut self, now: Instant) {
        if self.turn.is_some_and(|t| t.until <= now) {
            self.turn = None;
            self.expired += 1;
        }
    }

    /// The first waiting push, granted the next turn, when no turn is out.
    pub(crate) fn next_turn(&mut self) -> Option<Job> {
        if self.turn.is_some() {
            return None;
        }
        let mut job = self.waiting.pop_front()?;
        let token = self.next_token;
        self.next_token += 1;
        self.granted += 1;
        job.decoded.grant_turn(token);
        self.turn = Some(Turn {
            token,
            until: Instant::now() + self.config.lease,
        });
        Some(job)
    }

    /// Whether a push must wait without being looked at: it takes part,
    /// someone else holds the turn, and there is room.
    pub(crate) fn must_wait(&mut self, ask: Option<QueueAsk>, granted: Option<u64>) -> bool {
        let Some(turn) = self.turn else { return false };
        let holder = granted == Some(turn.token) || ask == Some(QueueAsk::Turn(turn.token));
        let wait = ask.is_some() && !holder && self.has_room();
        if wait {
            self.pending += 1;
        }
        wait
    }

    /// Settles a push the writer handled: ends or starts the lease of the
    /// turn it held or was granted, and says whether a refused push waits.
    pub(crate) fn settle(
        &mut self,
        ask: Option<QueueAsk>,
        granted: Option<u64>,
        refused: bool,
    ) -> Verdict {
        let token = granted.or(match ask {
            Some(QueueAsk::Turn(t)) => Some(t),
            _ => None,
        });
        let holds_turn = token.is_some() && self.turn.map(|t| t.token) == token;
        if holds_turn {
            if granted.is_some() && refused {
                // The grant goes out with this refusal; the lease starts now.
                self.turn = Some(Turn {
                    token: token.unwrap_or_default(),
                    until: Instant::now() + self.config.lease,
                });
                return Verdict::Reply;
            }
            self.turn = None;
        }
        if refused && ask.is_some() && granted.is_none() && self.has_room() {
            self.pending += 1;
            return Verdict::Hold;
        }
        Verdict::Reply
    }

    /// Holds `job` after its batch committed.
    pub(crate) fn hold(&mut self, job: Job) {
        self.pending = self.pending.saturating_sub(1);
        self.waiting.push_back(job);
    }

    /// Forgets the holds a failed batch had planned.
    pub(crate) fn cancel_pending(&mut self) {
        self.pending = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(capacity: usize) -> PushQueue {
        PushQueue::new(QueueConfig {
            capacity,
            lease: Duration::from_millis(50),
        })
    }

    #[test]
    fn without_a_turn_nobody_waits_unlooked_and_a_refused_waiter_is_held() {
        let mut q = queue(2);
        assert!(!q.must_wait(Some(QueueAsk::Wait), None));
        assert_eq!(q.settle(Some(QueueAsk::Wait), None, true), Verdict::Hold);
        assert_eq!(
            q.settle(None, None, true),
            Verdict::Reply,
            "outsiders are answered"
        );
        assert_eq!(q.settle(Some(QueueAsk::Wait), None, false), Verdict::Reply);
    }

    #[test]
    fn a_granted_refusal_starts_the_lease_and_the_holder_ends_it() {
        let mut q = queue(4);
        q.turn = Some(Turn {
            token: 7,
            until: Instant::now() + Duration::from_secs(1),
        });
        // Others wait while the turn is out; the holder does not.
        assert!(q.must_wait(Some(QueueAsk::Wait), None));
        assert!(!q.must_wait(Some(QueueAsk::Turn(7)), None));
        assert!(!q.must_wait(None, None), "outsiders never wait");
        assert_eq!(
            q.settle(Some(QueueAsk::Wait), Some(7), true),
            Verdict::Reply
        );
        assert!(q.turn.is_some(), "the grant keeps the turn");
        assert_eq!(
            q.settle(Some(QueueAsk::Turn(7)), None, false),
            Verdict::Reply
        );
        assert!(q.turn.is_none(), "the holder's landing ends the turn");
    }

    #[test]
    fn the_queue_is_bounded_and_turns_expire() {
        let mut q = queue(1);
        q.turn = Some(Turn {
            token: 1,
            until: Instant::now(),
        });
        assert!(q.must_wait(Some(QueueAsk::Wait), None));
        assert!(
            !q.must_wait(Some(QueueAsk::Wait), None),
            "full: answered at once"
        );
        q.expire(Instant::now());
        assert!(q.turn.is_none());
        assert_eq!(q.expired, 1);
        q.cancel_pending();
        assert_eq!(q.settle(Some(QueueAsk::Wait), None, true), Verdict::Hold);
    }
}

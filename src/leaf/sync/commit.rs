//! The commit and landing path: check in, push until the hub takes the
//! check-in (rebasing after refusals when the leaf lands), and the task's
//! outcome.

use crate::repo::{ArtifactHash, RebaseError};
use crate::report::{LandingStrategy, PushMark, PushResult, TrialClock};
use crate::telemetry::W3c;
use crate::xfer::{PushOutcome, QueueAsk};

use super::super::error::LeafError;
use super::super::retry::jitter;
use super::connect::set_trace;
use super::{retry_until, CommitOutcome, CommitRequest, GaveUp, SyncState, MAX_PUSH_ATTEMPTS};

impl SyncState {
    /// Checks in the task's files (already in the worktree) and pushes
    /// until the hub takes the check-in, a rebase conflicts, or the attempts run out; how depends on
    /// the trial's landing strategy.
    ///
    /// - Hub landing: the check-in goes on the newest trunk check-in this
    ///   leaf holds, and the push asks the hub to land it on its tip.
    ///   The leaf does not follow tip broadcasts (it does not subscribe):
    ///   the hub rebases a check-in whose files did not change on trunk, so
    ///   catching up would only cost this leaf work that grows with the
    ///   herd. A refusal means the files did change: the leaf rebases onto
    ///   the tip it was sent, which meets the conflict (or, if trunk has the
    ///   same result, pushes again).
    /// - Leaf rebasing: the leaf catches up on broadcasts first, pushes
    ///   asking to wait for a turn in the hub's push queue, and on a refusal
    ///   rebases onto the tip it was sent and pushes again (with the turn,
    ///   when one was granted).
    pub(super) fn commit(
        &mut self,
        request: &CommitRequest,
        span: &tracing::Span,
    ) -> Result<CommitOutcome, LeafError> {
        let hub_landing = self.config.landing == LandingStrategy::Hub;
        // A full leaf caught up before the task (`prepare`); it commits on
        // the tip its worktree stands at and leaves newer tips to the hub
        // (landing) or to a refusal, which brings every artifact it lacks.
        let absorb = !hub_landing && self.worktree.is_none();
        if absorb {
            self.absorb_tips();
        }
        set_trace(&self.client, &W3c::of(span));
        let mut parent = self.hub_tip.clone();
        let spec = request.spec(parent.clone(), &self.config.user);
        let mut checkin = self
            .repo
            .commit(&spec)
            .map_err(self.repo_err("check in"))?
            .hash;
        let mut fork_retries = 0;
        let mut ask = QueueAsk::Wait;
        for _ in 0..MAX_PUSH_ATTEMPTS {
            if absorb {
                // Tips heard of while building or backing off: take them
                // and rebase first rather than push onto a parent gone.
                self.absorb_tips();
                set_trace(&self.client, &W3c::of(span));
            }
            if self.hub_tip != parent {
                let onto = self.hub_tip.clone();
                match self.rebase(&checkin, &onto, fork_retries)? {
                    Ok(rebased) => checkin = rebased,
                    Err(conflict) => {
                        if let Some(last) = self.pushes.last_mut() {
                            last.result = PushResult::Conflict;
                        }
                        return Ok(conflict);
                    }
                }
                parent = onto;
            }
            // A push is safe to repeat when its reply was lost (the hub
            // killed after COMMIT): the hub finds the check-in held, or
            // remembers what it landed for it, and answers without a
            // refusal, so it counts once and is never rebased into a copy.
            let verdict = match self.push(&checkin, ask) {
                Ok(verdict) => verdict,
                Err(gave_up) => return Ok(self.push_failed(gave_up, &checkin, fork_retries)),
            };
            match verdict {
                PushOutcome::Landed {
                    checkin: landed,
                    seq,
                    stored,
                } => return Ok(self.landed(span, &parent, landed, seq, stored, fork_retries)),
                PushOutcome::Accepted { tip, seq } => {
                    span.record("commit.uuid", checkin.as_str());
                    span.record("commit.parent", parent.as_str());
                    self.saw_tip(tip.unwrap_or_else(|| checkin.clone()), seq);
                    return Ok(CommitOutcome::Landed {
                        checkin,
                        fork_retries,
                    });
                }
                PushOutcome::Refused { tip, seq, turn, .. } => {
                    fork_retries += 1;
                    tracing::debug!(%checkin, %tip, seq, fork_retries, "push refused");
                    ask = self.refused(tip, seq, turn, ask, fork_retries)?;
                }
            }
        }
        Ok(CommitOutcome::Failed {
            fork_retries,
            error: Box::new(LeafError::TooManyRefusals {
                task: request.comment.clone(),
                attempts: MAX_PUSH_ATTEMPTS,
            }),
        })
    }

    /// One push of `checkin` (asking for a hub landing or for a place in
    /// the push queue, as the trial lands), retried while the hub does not
    /// answer, and marked on the trial clock with what it got.
    fn push(&mut self, checkin: &ArtifactHash, ask: QueueAsk) -> Result<PushOutcome, GaveUp> {
        let push_start = TrialClock::get().now_ms();
        let pushed = retry_until(self.config.hub_retry, || {
            if self.config.landing == LandingStrategy::Hub {
                self.client.push_landing(&self.repo, checkin)
            } else {
                self.client
                    .push_queued(&self.repo, std::slice::from_ref(checkin), Some(ask))
            }
        });
        let result = match &pushed {
            Ok(PushOutcome::Refused { .. }) => PushResult::Refused,
            Ok(_) => PushResult::Landed,
            Err(_) => PushResult::Failed,
        };
        self.pushes.push(PushMark::ending_now(push_start, result));
        pushed
    }

    /// After a refusal naming the hub's `tip`: records it, fetches it when
    /// the refusal did not bring it, and says how to ask next time. The
    /// rebase onto the tip (or a newer one heard of meanwhile) happens at
    /// the top of the push loop. With a turn the trunk is reserved for this
    /// leaf: no waiting.
    fn refused(
        &mut self,
        tip: ArtifactHash,
        seq: u64,
        turn: Option<u64>,
        ask: QueueAsk,
        fork_retries: u32,
    ) -> Result<QueueAsk, LeafError> {
        self.saw_tip(tip.clone(), Some(seq));
        if !self.holds(&tip)? {
            // A server without the fast path sent nothing with its
            // refusal: fetch the new trunk first.
            self.pull()?;
        }
        Ok(match turn {
            Some(token) => QueueAsk::Turn(token),
            None if self.config.landing == LandingStrategy::Hub => ask,
            None => {
                jitter(fork_retries);
                QueueAsk::Wait
            }
        })
    }

    /// A check-in the hub landed (wrote anew on its tip) as the task's
    /// outcome. The next check-in goes on the landed one when this leaf
    /// stored it (its baseline was here), else on the same parent as this
    /// one: the hub rebases either.
    fn landed(
        &mut self,
        span: &tracing::Span,
        parent: &ArtifactHash,
        landed: ArtifactHash,
        seq: u64,
        stored: bool,
        fork_retries: u32,
    ) -> CommitOutcome {
        span.record("commit.uuid", landed.as_str());
        span.record("commit.parent", parent.as_str());
        if stored {
            self.saw_tip(landed.clone(), Some(seq));
        }
        self.heard_seq = self.heard_seq.max(seq);
        CommitOutcome::Landed {
            checkin: landed,
            fork_retries,
        }
    }

    /// A push that gave up on an unanswering hub, as the task's outcome.
    fn push_failed(
        &self,
        gave_up: GaveUp,
        checkin: &ArtifactHash,
        fork_retries: u32,
    ) -> CommitOutcome {
        let url = self.config.hub_url.clone();
        let step = format!("push {checkin}");
        let error = gave_up.into_leaf_error(&url, step, |source| LeafError::Push {
            url: url.clone(),
            checkin: checkin.to_string(),
            source,
        });
        CommitOutcome::Failed {
            fork_retries,
            error: Box::new(error),
        }
    }

    /// Re-makes `checkin` on `onto`; the inner `Err` is the task's end by
    /// a conflict.
    fn rebase(
        &self,
        checkin: &ArtifactHash,
        onto: &ArtifactHash,
        fork_retries: u32,
    ) -> Result<Result<ArtifactHash, CommitOutcome>, LeafError> {
        match self.repo.rebase(checkin, onto) {
            Ok(rebased) => Ok(Ok(rebased.hash)),
            Err(RebaseError::Conflict { path }) => {
                Ok(Err(CommitOutcome::Conflict { path, fork_retries }))
            }
            Err(source) => Err(LeafError::Rebase {
                checkin: checkin.to_string(),
                onto: onto.to_string(),
                source: Box::new(source),
            }),
        }
    }
}

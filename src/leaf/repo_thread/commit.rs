//! The commit and landing path: check in, push until the hub takes the
//! check-in (rebasing after refusals when the leaf lands), and the task's
//! outcome.

use crate::repo::{describe_conflicts, ArtifactHash, RebaseError};
use crate::telemetry::W3c;
use crate::wire::{LandingStrategy, PushMark, PushResult, TrialClock};
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
        let mut checkin = self.check_in(request, &parent)?;
        let mut fork_retries = 0;
        let mut resolutions = 0;
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
                match self.rebase(&checkin, &onto, request, fork_retries)? {
                    Ok(Rebased::Merged(rebased)) => checkin = rebased,
                    Ok(Rebased::Redone(redone)) => {
                        checkin = redone;
                        resolutions += 1;
                        if let Some(last) = self.pushes.last_mut() {
                            last.result = PushResult::Conflict;
                        }
                    }
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
                    merged,
                } => {
                    if merged > 0 {
                        if let Some(last) = self.pushes.last_mut() {
                            last.result = PushResult::Merged;
                        }
                    }
                    span.record("commit.uuid", landed.as_str());
                    span.record("commit.parent", parent.as_str());
                    if stored {
                        self.saw_tip(landed.clone(), Some(seq));
                    }
                    self.heard_seq = self.heard_seq.max(seq);
                    return Ok(CommitOutcome::Landed {
                        checkin: landed,
                        fork_retries,
                        resolutions,
                    });
                }
                PushOutcome::Accepted { tip, seq } => {
                    span.record("commit.uuid", checkin.as_str());
                    span.record("commit.parent", parent.as_str());
                    self.saw_tip(tip.unwrap_or_else(|| checkin.clone()), seq);
                    return Ok(CommitOutcome::Landed {
                        checkin,
                        fork_retries,
                        resolutions,
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

    /// The task's check-in on `parent`: its files, and its hot-file edit
    /// made on the file as `parent` has it.
    fn check_in(
        &mut self,
        request: &CommitRequest,
        parent: &ArtifactHash,
    ) -> Result<ArtifactHash, LeafError> {
        let mut spec = request.spec(parent.clone(), &self.config.user);
        if let Some(edit) = &request.edit {
            let text = self.write_edit(parent, edit)?;
            spec.changes.push(crate::repo::FileChange {
                path: edit.path.clone(),
                content: Some(text),
            });
        }
        Ok(self
            .repo
            .commit(&spec)
            .map_err(self.repo_err("check in"))?
            .hash)
    }

    /// Re-makes `checkin` on `onto`, merging by lines files trunk changed
    /// too. When lines conflict only in the task's hot file, the task's
    /// edit is made again on `onto`'s text, as an agent would redo it on
    /// the file it now reads (never leaving conflict markers). The `Err`
    /// is the task's end by a conflict nothing resolves.
    fn rebase(
        &mut self,
        checkin: &ArtifactHash,
        onto: &ArtifactHash,
        request: &CommitRequest,
        fork_retries: u32,
    ) -> Result<Result<Rebased, CommitOutcome>, LeafError> {
        match self.repo.rebase(checkin, onto) {
            Ok(rebased) => Ok(Ok(Rebased::Merged(rebased.hash))),
            Err(RebaseError::Conflict { conflicts }) => {
                let redoable = request
                    .edit
                    .as_ref()
                    .is_some_and(|e| conflicts.iter().all(|c| c.path == e.path));
                if redoable {
                    tracing::debug!(conflicts = %describe_conflicts(&conflicts), "redoing the edit");
                    return self.check_in(request, onto).map(|c| Ok(Rebased::Redone(c)));
                }
                Ok(Err(CommitOutcome::Conflict {
                    conflicts: describe_conflicts(&conflicts),
                    fork_retries,
                }))
            }
            Err(source) => Err(LeafError::Rebase {
                checkin: checkin.to_string(),
                onto: onto.to_string(),
                source: Box::new(source),
            }),
        }
    }
}

/// A check-in made again on a newer parent.
enum Rebased {
    /// Its changes laid on the parent (files trunk changed too merged by
    /// lines).
    Merged(ArtifactHash),
    /// Its hot-file edit conflicted there and was made again.
    Redone(ArtifactHash),
}

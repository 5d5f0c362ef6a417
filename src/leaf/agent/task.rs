//! One task from claim to close, in steps: claim, the work (the task's
//! files written while the agent thinks, the claim kept alive), the fence
//! check, the commit, and settling the claim by what the commit got. Every
//! way out prints the task's line.

use std::time::Instant;

use tracing::Instrument;

use crate::coord::{Claim, ClaimError, OpenedTask, TaskId};
use crate::telemetry::W3c;
use crate::wire::{ClaimOutcome, TaskLine, TaskOutcome, TimelineRecorder};
use crate::workload::TaskPlan;

use super::super::error::{chain, LeafError};
use super::super::repo_thread::{elapsed_ms, CommitOutcome, CommitRequest, Committed};
use super::Agent;

/// The first and the longest wait before claiming again a task whose hot
/// file another task holds (`--hold-hot`).
const HOLD_FIRST_WAIT: std::time::Duration = std::time::Duration::from_millis(5);
const HOLD_MAX_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// What a task's line will say, gathered as the task goes.
struct LineDraft<'a> {
    id: &'a TaskId,
    plan: &'a TaskPlan,
    timeline: TimelineRecorder,
    /// The `leaf.task` span's traceparent, when spans are exported.
    trace: Option<String>,
}

/// How a landed or given-up commit ends the task.
struct Settled {
    outcome: TaskOutcome,
    fork_retries: u32,
    resolutions: u32,
    commit_ms: Option<f64>,
    checkin: Option<String>,
}

impl Settled {
    /// A task that ended before any push.
    fn early(outcome: TaskOutcome) -> Settled {
        Settled {
            outcome,
            fork_retries: 0,
            resolutions: 0,
            commit_ms: None,
            checkin: None,
        }
    }
}

impl Agent<'_> {
    /// One task from claim to close; prints its task line. `Err` only for
    /// fatal failures (the repository thread or the local repository).
    /// `opened` is the task as this leaf just opened it, when it did.
    pub(super) async fn task(
        &self,
        id: &TaskId,
        opened: Option<&OpenedTask>,
        plan: &TaskPlan,
    ) -> Result<TaskOutcome, LeafError> {
        let span = tracing::info_span!(
            "leaf.task",
            slot = i64::from(self.config.slot),
            task = i64::from(plan.index),
            task_id = %id,
            outcome = tracing::field::Empty,
        );
        let outcome = self
            .task_in_span(id, opened, plan)
            .instrument(span.clone())
            .await;
        if let Ok(outcome) = &outcome {
            span.record("outcome", tracing::field::debug(outcome));
        }
        outcome
    }

    /// [`Agent::task`] inside its `leaf.task` span.
    async fn task_in_span(
        &self,
        id: &TaskId,
        opened: Option<&OpenedTask>,
        plan: &TaskPlan,
    ) -> Result<TaskOutcome, LeafError> {
        let mut draft = LineDraft {
            id,
            plan,
            timeline: TimelineRecorder::start(),
            trace: W3c::of(&tracing::Span::current()).traceparent,
        };
        let claimed = self.claim(id, opened).await;
        draft.timeline.claimed();
        let claim = match claimed {
            Ok(claim) => claim,
            Err(outcome) => {
                return Ok(self.report(draft, ClaimOutcome::Lost, Settled::early(outcome)));
            }
        };
        let (claim, ready) = self.work(id, plan, claim).await;
        draft.timeline.thought();
        if let Err(outcome) = ready {
            self.abandon(claim).await;
            return Ok(self.report(draft, ClaimOutcome::Won, Settled::early(outcome)));
        }

        let start = Instant::now();
        draft.timeline.committing();
        if let Err(source) = self.retrying("check", || self.coord.check(&claim)).await {
            let e = LeafError::Fence {
                step: "check",
                task: id.to_string(),
                source,
            };
            self.reporter.error(chain(&e), false);
            self.abandon(claim).await;
            let failed = Settled::early(TaskOutcome::Failed);
            return Ok(self.report(draft, ClaimOutcome::Won, failed));
        }
        let committed = match self.commit(plan).await {
            Ok(Committed { outcome, pushes }) => {
                draft.timeline.pushed(pushes);
                outcome
            }
            Err(e) => {
                self.abandon(claim).await;
                return Err(e);
            }
        };
        let settled = self.settle(id, claim, committed, start).await;
        Ok(self.report(draft, ClaimOutcome::Won, settled))
    }

    /// Claims the task; `Err` is the task's outcome when the claim went to
    /// another leaf (lost) or could not be made (failed, reported). A task
    /// this leaf just opened is claimed at the revision it wrote (no read);
    /// a try after a lost answer reads what that try left.
    async fn claim(&self, id: &TaskId, opened: Option<&OpenedTask>) -> Result<Claim, TaskOutcome> {
        let claim_span = tracing::info_span!("coord.Claim", outcome = tracing::field::Empty);
        let first = std::cell::Cell::new(opened);
        let claimed = self
            .retrying("claim", || async {
                match first.take() {
                    Some(opened) => self.coord.claim_opened(opened).await,
                    None => self.coord.claim(id).await,
                }
            })
            .instrument(claim_span.clone())
            .await;
        let claimed = match claimed {
            Err(ClaimError::HeldByAnother { .. }) if self.config.workload().hot.hold => {
                self.wait_for_hold(id).instrument(claim_span.clone()).await
            }
            other => other,
        };
        claim_span.record("outcome", if claimed.is_ok() { "won" } else { "lost" });
        match claimed {
            Ok(claim) => Ok(claim),
            Err(
                ClaimError::AlreadyClaimed { .. }
                | ClaimError::HeldByAnother { .. }
                | ClaimError::NoSuchTask { .. },
            ) => Err(TaskOutcome::ClaimLost),
            Err(e) => {
                self.reporter.error(chain(&LeafError::Claim(e)), false);
                Err(TaskOutcome::Failed)
            }
        }
    }

    /// With `--hold-hot`, a task whose hot file another task holds waits
    /// for it (the lock-based design's cost) and claims again, until the
    /// hub retry time has passed or a stop request comes.
    async fn wait_for_hold(&self, id: &TaskId) -> Result<Claim, ClaimError> {
        let start = Instant::now();
        let mut wait = HOLD_FIRST_WAIT;
        loop {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(HOLD_MAX_WAIT);
            match self.retrying("claim", || self.coord.claim(id)).await {
                Err(ClaimError::HeldByAnother { .. })
                    if start.elapsed() < self.config.hub_retry && !*self.stop.borrow() => {}
                other => return other,
            }
        }
    }

    /// The agent's work: its files go into the worktree while it thinks, so
    /// the commit that follows measures checking in and landing. A full
    /// leaf first brings its worktree to the newest trunk tip (one pull for
    /// all it missed), also within the think time. `Err` is the task's
    /// outcome when the files could not be written (failed, reported) or a
    /// stop cut the thinking short (abandoned); the claim comes back either
    /// way, renewed if the work outlasted a third of its lease.
    async fn work(
        &self,
        id: &TaskId,
        plan: &TaskPlan,
        mut claim: Claim,
    ) -> (Claim, Result<(), TaskOutcome>) {
        let written = self.sync.prepare(
            self.config.worktree(),
            plan.files.clone(),
            plan.edit.clone(),
        );
        let work = async { tokio::join!(written, self.think(plan.think)) };
        tokio::pin!(work);
        // A leaf that is alive keeps its claim: when catching up takes long
        // (a big herd on few cores), the lease is renewed every third of
        // its lifetime rather than left to expire under the task.
        let (written, thought) = loop {
            tokio::select! {
                done = &mut work => break done,
                () = tokio::time::sleep(self.config.hold_ttl() / 3) => {
                    if let Err(e) = self.coord.renew(&mut claim).await {
                        tracing::warn!(error = %chain(&e), task = %id, "cannot renew the claim");
                    }
                }
            }
        };
        let ready = match written {
            Err(e) => {
                self.reporter.error(chain(&e), false);
                Err(TaskOutcome::Failed)
            }
            Ok(()) if !thought => Err(TaskOutcome::Abandoned),
            Ok(()) => Ok(()),
        };
        (claim, ready)
    }

    /// Checks in and pushes the task's files under a `coord.Commit` span,
    /// recording its retries on it.
    async fn commit(&self, plan: &TaskPlan) -> Result<Committed, LeafError> {
        let request = CommitRequest {
            files: plan.files.clone(),
            comment: plan.title.clone(),
            edit: plan.edit.clone(),
        };
        let commit_span = tracing::info_span!(
            "coord.Commit",
            "commit.fork_retried" = tracing::field::Empty,
            "commit.fork_retried_succeeded" = tracing::field::Empty,
            "commit.retries" = tracing::field::Empty,
            "commit.uuid" = tracing::field::Empty,
            "commit.parent" = tracing::field::Empty,
        );
        let committed = self
            .sync
            .commit(request, commit_span.clone())
            .instrument(commit_span.clone())
            .await;
        if let Ok(Committed { outcome, .. }) = &committed {
            let (retries, landed) = match outcome {
                CommitOutcome::Landed { fork_retries, .. } => (*fork_retries, true),
                CommitOutcome::Conflict { fork_retries, .. }
                | CommitOutcome::Failed { fork_retries, .. } => (*fork_retries, false),
            };
            commit_span.record("commit.fork_retried", retries > 0);
            commit_span.record("commit.fork_retried_succeeded", retries > 0 && landed);
            // As i64: span attributes take no u64 (it would become a string).
            commit_span.record("commit.retries", i64::from(retries));
        }
        committed
    }

    /// Closes the claim of a landed commit, gives it up otherwise.
    async fn settle(
        &self,
        id: &TaskId,
        claim: Claim,
        committed: CommitOutcome,
        start: Instant,
    ) -> Settled {
        match committed {
            CommitOutcome::Landed {
                checkin,
                fork_retries,
                resolutions,
            } => {
                let commit_ms = elapsed_ms(start);
                if let Err(source) = self.coord.close(claim).await {
                    // The check-in is on trunk whatever the record says.
                    let e = LeafError::Fence {
                        step: "close",
                        task: id.to_string(),
                        source,
                    };
                    self.reporter.error(chain(&e), false);
                }
                Settled {
                    outcome: TaskOutcome::Committed,
                    fork_retries,
                    resolutions,
                    commit_ms: Some(commit_ms),
                    checkin: Some(checkin.to_string()),
                }
            }
            CommitOutcome::Conflict {
                conflicts,
                fork_retries,
            } => {
                tracing::warn!(task = %id, conflicts, "rebase conflict; giving the task up");
                self.abandon(claim).await;
                Settled {
                    fork_retries,
                    ..Settled::early(TaskOutcome::Unrecoverable)
                }
            }
            CommitOutcome::Failed {
                fork_retries,
                error,
            } => {
                self.reporter.error(chain(&*error), false);
                self.abandon(claim).await;
                Settled {
                    fork_retries,
                    ..Settled::early(TaskOutcome::Failed)
                }
            }
        }
    }

    /// Prints the task's line; returns its outcome.
    fn report(&self, draft: LineDraft<'_>, claim: ClaimOutcome, settled: Settled) -> TaskOutcome {
        self.reporter.task(TaskLine {
            slot: self.config.slot,
            task: draft.plan.index,
            task_id: draft.id.to_string(),
            claim,
            commit_ms: settled.commit_ms,
            fork_retries: settled.fork_retries,
            resolutions: settled.resolutions,
            checkin: settled.checkin,
            outcome: settled.outcome,
            timeline: Some(draft.timeline.finish()),
            trace: draft.trace,
        });
        settled.outcome
    }
}

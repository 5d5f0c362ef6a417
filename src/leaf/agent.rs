//! [`run`]: one leaf-agent slot from start to summary. Start-up clones (or
//! opens and pulls) the hub's repository on the repository thread, joins
//! the trial on NATS under the scope derived from the project code, and
//! subscribes to tips; then two loops share the one async thread: the task
//! loop (Open → Claim → think → Check → Commit → Close, in disjoint or
//! shared mode) and the tip loop (catch up on broadcasts, coalesced: while
//! one catch-up waits on the repository thread, newer tips pile up in the
//! subscription and the next call takes only the latest).

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::Instrument;

use crate::coord::{
    subscribe_tips, Claim, ClaimError, Coord, CoordConfig, CoordError, FenceError, OpenedTask,
    Scope, TaskId, TaskStatus, TipSubscription, DEFAULT_OP_TIMEOUT,
};
use crate::report::{
    ClaimOutcome, HubKind, LandingStrategy, LeafLine, LeafMode, LeafReady, LeafSummary, TaskLine,
    TaskOutcome, TimelineRecorder,
};
use crate::telemetry::W3c;
use crate::workload::{pool_task, Mode, SlotWorkload, TaskPlan};

use super::config::LeafConfig;
use super::error::{chain, LeafError};
use super::output::Reporter;
use super::plain::RepoThread;
use super::sync::{elapsed_ms, CommitOutcome, CommitRequest, Committed, PendingTip, SyncConfig};
use super::worktree::full_counts;
use super::{EXIT_INCOMPLETE, EXIT_OK};

/// Attempts at joining the trial on NATS at start, with doubling waits.
const CONNECT_ATTEMPTS: u32 = 5;
const CONNECT_FIRST_WAIT: Duration = Duration::from_millis(200);
/// Waits between tries of a coordination step NATS did not answer (a
/// server restarting), doubling from the first to the last.
const COORD_FIRST_WAIT: Duration = Duration::from_millis(100);
const COORD_MAX_WAIT: Duration = Duration::from_secs(2);
/// Passes over the shared pool: after the first, only tasks whose winner
/// gave them up (open again) are tried.
const MAX_POOL_PASSES: u32 = 100;

/// How a run ended (fatal errors are the `Err` of [`run`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LeafRun {
    /// The totals, as printed in the summary line.
    pub summary: LeafSummary,
    /// Tasks that ended failed or abandoned.
    pub incomplete: u32,
    /// Whether a stop request ended the run before its tasks were done.
    pub stopped: bool,
}

impl LeafRun {
    /// [`EXIT_OK`] when every task ended committed, lost or unrecoverable
    /// and no stop cut the run short; [`EXIT_INCOMPLETE`] otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.incomplete == 0 && !self.stopped {
            EXIT_OK
        } else {
            EXIT_INCOMPLETE
        }
    }
}

/// Runs one slot: start-up, the `ready` line, every task, the summary line.
/// `stop` turning true asks the leaf to finish (a commit in flight) or
/// abandon (a claim not yet committing) its current task and end. Must run
/// on a current-thread runtime or a `LocalSet` (the reporter is not `Send`).
pub async fn run(
    config: LeafConfig,
    reporter: &Reporter,
    stop: watch::Receiver<bool>,
) -> Result<LeafRun, LeafError> {
    config.validate()?;
    let slot = config.slot;
    let user = format!("slot-{slot}");
    let leaf_id = format!("slot-{slot}-{:04x}", rand::random::<u16>());
    let (sync, started) = RepoThread::start(
        config.hub_kind,
        SyncConfig {
            hub_url: config.hub_url.clone(),
            repo_path: config.repo_path(),
            worktree: config.worktree(),
            user,
            trace: W3c::of(&tracing::Span::current()),
            login: config.hub_login.clone(),
            hub_retry: config.hub_retry,
            landing: config.landing,
            leaf: config.leaf,
        },
    )
    .await?;
    tracing::info!(slot, tip = %started.tip, project = %started.project_code, "repository ready");
    let connect_err = |source| LeafError::Connect {
        url: config.nats_url.clone(),
        source,
    };
    let scope = Scope::for_project(&started.project_code).map_err(connect_err)?;
    let coord = connect(&config, scope.as_str(), &leaf_id).await?;
    // A full leaf follows tips to keep its worktree current, and leaf
    // landing catches up on them before pushing. A stock fossil server
    // publishes none; with hub landing a sparse leaf never needs one (the
    // hub lands its check-ins on whatever tip it has, and a refusal brings
    // the tip), and every broadcast would cost each leaf and nats-server
    // work that grows with the herd.
    let follow = config.leaf == LeafMode::Full || config.landing == LandingStrategy::Leaf;
    let mut tips = match config.hub_kind {
        HubKind::Herd if follow => Some(
            subscribe_tips(coord.client().clone(), scope.as_str(), DEFAULT_OP_TIMEOUT)
                .await
                .map_err(connect_err)?,
        ),
        HubKind::Herd | HubKind::Fossil => None,
    };
    reporter.line(&LeafLine::Ready(LeafReady {
        slot,
        leaf_id: leaf_id.clone(),
        tip: started.tip.to_string(),
    }));

    let agent = Agent {
        config: &config,
        coord: &coord,
        sync: &sync,
        reporter,
        stop,
    };
    let pending = sync.tips();
    let sent = || {
        coord
            .client()
            .statistics()
            .out_messages
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let sent_before = sent();
    let result = tokio::select! {
        result = agent.tasks() => result,
        never = tip_loop(tips.as_mut(), &pending) => match never {},
    };
    reporter.nats_ops(sent().saturating_sub(sent_before));
    let stopped = match result {
        Ok(stopped) => stopped,
        Err(e) => return Err(e),
    };
    if !stopped && config.leaf == LeafMode::Full && config.hub_kind == HubKind::Herd {
        // The trial's end: the worktree follows trunk one last time, to the
        // newest tip this leaf heard of (its own last landing, at least).
        if let Err(e) = sync.prepare(config.worktree(), Vec::new()).await {
            reporter.error(chain(&e), false);
        }
    }
    let tips = sync.tips();
    let hub_requests = sync.finish();
    let (pulled, skipped) = tips.counts();
    reporter.broadcasts_pulled(count(pulled));
    reporter.broadcasts_skipped(count(skipped));
    let (bytes, files) = full_counts(&tips);
    reporter.pulled_and_updated(bytes, files);
    let summary = reporter.summary(hub_requests);
    reporter.line(&LeafLine::Summary(summary.clone()));
    Ok(LeafRun {
        summary,
        incomplete: reporter.incomplete(),
        stopped,
    })
}

/// Joins the trial, retrying a NATS server that is not up yet.
async fn connect(config: &LeafConfig, scope: &str, leaf_id: &str) -> Result<Coord, LeafError> {
    let mut wait = CONNECT_FIRST_WAIT;
    let mut attempt = 1;
    loop {
        let mut coord_config = CoordConfig::new(config.nats_url.clone(), scope);
        coord_config.token = config.nats_token.clone();
        coord_config.hold_ttl = config.hold_ttl();
        match Coord::connect(coord_config, leaf_id).await {
            Ok(coord) => return Ok(coord),
            Err(e) if attempt < CONNECT_ATTEMPTS => {
                tracing::info!(error = %chain(&e), attempt, "cannot join the trial on nats; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            Err(source) => {
                return Err(LeafError::Connect {
                    url: config.nats_url.clone(),
                    source,
                })
            }
        }
    }
}

/// Records every broadcast tip for the repository thread, which catches up
/// on the newest one right before it commits or pushes (see
/// [`PendingTip`](super::sync::PendingTip)); never returns.
async fn tip_loop(
    tips: Option<&mut TipSubscription>,
    pending: &PendingTip,
) -> std::convert::Infallible {
    let Some(tips) = tips else {
        return std::future::pending().await;
    };
    loop {
        match tips.next_batch().await {
            Some(Ok(batch)) => {
                pending.note(batch.into_iter().map(|event| (event.tip, event.trace)))
            }
            Some(Err(e)) => tracing::warn!(error = %chain(&e), "tip subscription hiccup"),
            None => {
                // The connection is closed for good; the task loop meets the
                // same fact on its next coordination step.
                tracing::warn!("tip subscription closed");
                std::future::pending::<()>().await;
            }
        }
    }
}

fn count(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The task loop's view of the world.
struct Agent<'a> {
    config: &'a LeafConfig,
    coord: &'a Coord,
    sync: &'a RepoThread,
    reporter: &'a Reporter,
    stop: watch::Receiver<bool>,
}

impl Agent<'_> {
    /// Runs every task of the slot (or walks the pool); `Ok(true)` when a
    /// stop request ended it early.
    async fn tasks(&self) -> Result<bool, LeafError> {
        match self.config.mode {
            Mode::Disjoint => self.disjoint().await,
            Mode::Shared => self.shared().await,
        }
    }

    fn stop_requested(&self) -> bool {
        *self.stop.borrow()
    }

    async fn disjoint(&self) -> Result<bool, LeafError> {
        let c = self.config;
        let mut workload = SlotWorkload::new(c.workload.clone(), c.seed, c.slot);
        for _ in 0..c.tasks {
            if self.stop_requested() {
                return Ok(true);
            }
            let plan = workload.next_task();
            // A retry after a lost answer may leave an unused open record
            // behind; no other slot opens this slot's tasks.
            let opened = self
                .retrying("open", || {
                    self.coord
                        .open_new_task(&plan.title, plan.files.iter().map(|(path, _)| path))
                })
                .await
                .map_err(|source| LeafError::Coord {
                    step: "open",
                    task: plan.title.clone(),
                    source,
                })?;
            self.task(&opened.id, Some(&opened), &plan).await?;
        }
        Ok(self.stop_requested())
    }

    /// Shared mode: every leaf walks the pool of N×K tasks from its own
    /// offset, opening each (create-if-absent under a fixed id, so all
    /// leaves agree) and trying to claim it. A lost task is settled when
    /// another leaf holds or closed it; one that is open again (its winner
    /// gave it up) is tried on the next pass.
    async fn shared(&self) -> Result<bool, LeafError> {
        let c = self.config;
        let pool = c.pool_size()?;
        let offset = c.slot.wrapping_mul(c.tasks) % pool;
        let mut pending: Vec<u32> = (0..pool).map(|i| (offset + i) % pool).collect();
        for _ in 0..MAX_POOL_PASSES {
            let mut lost = Vec::new();
            for &k in &pending {
                if self.stop_requested() {
                    return Ok(true);
                }
                let plan = pool_task(&c.workload, c.seed, k);
                let id = pool_task_id(k)?;
                self.retrying("open", || {
                    self.coord.open_task_with_id(
                        &id,
                        &plan.title,
                        plan.files.iter().map(|(p, _)| p),
                    )
                })
                .await
                .map_err(|source| LeafError::Coord {
                    step: "open",
                    task: id.to_string(),
                    source,
                })?;
                if self.task(&id, None, &plan).await? == TaskOutcome::ClaimLost {
                    lost.push(k);
                }
            }
            pending.clear();
            for k in lost {
                let id = pool_task_id(k)?;
                let record = self
                    .coord
                    .task(&id)
                    .await
                    .map_err(|source| LeafError::Coord {
                        step: "read",
                        task: id.to_string(),
                        source,
                    })?;
                if record.is_some_and(|(r, _)| r.status == TaskStatus::Open) {
                    pending.push(k);
                }
            }
            if pending.is_empty() {
                break;
            }
        }
        Ok(self.stop_requested())
    }

    /// One task from claim to close; prints its task line. `Err` only for
    /// fatal failures (the repository thread or the local repository).
    /// `opened` is the task as this leaf just opened it, when it did.
    async fn task(
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
        let trace = W3c::of(&tracing::Span::current()).traceparent;
        let mut timeline = TimelineRecorder::start();
        let line =
            |timeline: &TimelineRecorder, claim, outcome, fork_retries, commit_ms, checkin| {
                TaskLine {
                    slot: self.config.slot,
                    task: plan.index,
                    task_id: id.to_string(),
                    claim,
                    commit_ms,
                    fork_retries,
                    checkin,
                    outcome,
                    timeline: Some(timeline.finish()),
                    trace: trace.clone(),
                }
            };
        let claim_span = tracing::info_span!("coord.Claim", outcome = tracing::field::Empty);
        // A task this leaf just opened is claimed at the revision it wrote
        // (no read); a try after a lost answer reads what that try left.
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
        timeline.claimed();
        claim_span.record("outcome", if claimed.is_ok() { "won" } else { "lost" });
        drop(claim_span);
        let claim = match claimed {
            Ok(claim) => claim,
            Err(
                ClaimError::AlreadyClaimed { .. }
                | ClaimError::HeldByAnother { .. }
                | ClaimError::NoSuchTask { .. },
            ) => {
                let outcome = TaskOutcome::ClaimLost;
                self.reporter
                    .task(line(&timeline, ClaimOutcome::Lost, outcome, 0, None, None));
                return Ok(outcome);
            }
            Err(e) => {
                self.reporter.error(chain(&LeafError::Claim(e)), false);
                let outcome = TaskOutcome::Failed;
                self.reporter
                    .task(line(&timeline, ClaimOutcome::Lost, outcome, 0, None, None));
                return Ok(outcome);
            }
        };

        // The agent's work: its files go into the worktree while it thinks,
        // so the commit that follows measures checking in and landing. A
        // full leaf first brings its worktree to the newest trunk tip (one
        // pull for all it missed), also within the think time.
        let written = self
            .sync
            .prepare(self.config.worktree(), plan.files.clone());
        let work = async { tokio::join!(written, self.think(plan.think)) };
        tokio::pin!(work);
        // A leaf that is alive keeps its claim: when catching up takes long
        // (a big herd on few cores), the lease is renewed every third of
        // its lifetime rather than left to expire under the task.
        let mut claim = claim;
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
        timeline.thought();
        if let Err(e) = written {
            self.reporter.error(chain(&e), false);
            self.abandon(claim).await;
            let outcome = TaskOutcome::Failed;
            self.reporter
                .task(line(&timeline, ClaimOutcome::Won, outcome, 0, None, None));
            return Ok(outcome);
        }
        if !thought {
            self.abandon(claim).await;
            let outcome = TaskOutcome::Abandoned;
            self.reporter
                .task(line(&timeline, ClaimOutcome::Won, outcome, 0, None, None));
            return Ok(outcome);
        }

        let start = Instant::now();
        timeline.committing();
        if let Err(source) = self.retrying("check", || self.coord.check(&claim)).await {
            let e = LeafError::Fence {
                step: "check",
                task: id.to_string(),
                source,
            };
            self.reporter.error(chain(&e), false);
            self.abandon(claim).await;
            let outcome = TaskOutcome::Failed;
            self.reporter
                .task(line(&timeline, ClaimOutcome::Won, outcome, 0, None, None));
            return Ok(outcome);
        }
        let request = CommitRequest {
            files: plan.files.clone(),
            comment: plan.title.clone(),
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
        drop(commit_span);
        let committed = match committed {
            Ok(Committed { outcome, pushes }) => {
                timeline.pushed(pushes);
                outcome
            }
            Err(e) => {
                self.abandon(claim).await;
                return Err(e);
            }
        };
        let (outcome, fork_retries, commit_ms, checkin) = match committed {
            CommitOutcome::Landed {
                checkin,
                fork_retries,
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
                (
                    TaskOutcome::Committed,
                    fork_retries,
                    Some(commit_ms),
                    Some(checkin.to_string()),
                )
            }
            CommitOutcome::Conflict { path, fork_retries } => {
                tracing::warn!(task = %id, path, "rebase conflict; giving the task up");
                self.abandon(claim).await;
                (TaskOutcome::Unrecoverable, fork_retries, None, None)
            }
            CommitOutcome::Failed {
                fork_retries,
                error,
            } => {
                self.reporter.error(chain(&*error), false);
                self.abandon(claim).await;
                (TaskOutcome::Failed, fork_retries, None, None)
            }
        };
        self.reporter.task(line(
            &timeline,
            ClaimOutcome::Won,
            outcome,
            fork_retries,
            commit_ms,
            checkin,
        ));
        Ok(outcome)
    }

    /// Runs one coordination step, trying again while NATS does not answer
    /// (see [`Unanswered`]) until [`LeafConfig::hub_retry`] has passed, with
    /// doubling waits.
    async fn retrying<T, E, F, Fut>(&self, what: &'static str, mut step: F) -> Result<T, E>
    where
        E: Unanswered + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let start = Instant::now();
        let mut wait = COORD_FIRST_WAIT;
        let mut attempt = 1;
        loop {
            let e = match step().await {
                Err(e) if e.unanswered(attempt, self.coord.leaf_id()) => e,
                other => return other,
            };
            if start.elapsed() + wait > self.config.hub_retry || self.stop_requested() {
                return Err(e);
            }
            tracing::warn!(step = what, attempt, error = %e, "nats did not answer; retrying");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(COORD_MAX_WAIT);
            attempt += 1;
        }
    }

    /// Sleeps the think time; `false` when a stop request cut it short.
    async fn think(&self, think: Duration) -> bool {
        let start = Instant::now();
        let mut stop = self.stop.clone();
        let finished = tokio::select! {
            () = tokio::time::sleep(think) => true,
            _ = stop.wait_for(|s| *s) => false,
        };
        let slept = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.reporter.thought(slept);
        finished
    }

    /// Releases a claim we will not commit; a failure is reported, not
    /// fatal (the holds expire with the lease).
    async fn abandon(&self, claim: Claim) {
        let task = claim.task.to_string();
        if let Err(source) = self.coord.abandon(claim).await {
            let e = LeafError::Coord {
                step: "abandon",
                task,
                source,
            };
            self.reporter.error(chain(&e), false);
        }
    }
}

/// Errors of a coordination step that may succeed when tried again: NATS
/// did not answer (a timeout, a dropped connection, JetStream not yet back
/// after a restart).
trait Unanswered {
    /// Whether trying again may help; `attempt` is the try that failed and
    /// `me` this leaf's id.
    fn unanswered(&self, attempt: u32, me: &str) -> bool;
}

impl Unanswered for CoordError {
    fn unanswered(&self, _: u32, _: &str) -> bool {
        matches!(
            self,
            CoordError::Timeout { .. } | CoordError::Nats { .. } | CoordError::Connect { .. }
        )
    }
}

impl Unanswered for ClaimError {
    /// A claim whose answer was lost may have been written, wholly or in
    /// part: on the next try the task is then claimed, or a file held, by
    /// this very leaf. That is not contention; it clears when the lease
    /// runs out, and the claim is then taken again.
    fn unanswered(&self, attempt: u32, me: &str) -> bool {
        match self {
            ClaimError::Coord(e) => e.unanswered(attempt, me),
            ClaimError::AlreadyClaimed { by: Some(by), .. } => attempt > 1 && by == me,
            ClaimError::HeldByAnother { holder, .. } => attempt > 1 && holder == me,
            _ => false,
        }
    }
}

impl Unanswered for FenceError {
    fn unanswered(&self, attempt: u32, me: &str) -> bool {
        matches!(self, FenceError::Coord(e) if e.unanswered(attempt, me))
    }
}

/// The fixed id of pool task `k`, the same in every leaf.
fn pool_task_id(k: u32) -> Result<TaskId, LeafError> {
    let id = format!("pool-{k}");
    TaskId::new(id.clone()).map_err(|source| LeafError::Coord {
        step: "name",
        task: id,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_ids_are_valid_keys_and_distinct() {
        assert_eq!(pool_task_id(0).unwrap().as_str(), "pool-0");
        assert_ne!(pool_task_id(1).unwrap(), pool_task_id(10).unwrap());
    }

    #[test]
    fn only_unanswered_steps_are_tried_again() {
        let timeout = || CoordError::Timeout {
            op: "claim task t".into(),
            step: "read record",
            after: Duration::from_secs(5),
        };
        let task = TaskId::new("t").unwrap();
        assert!(timeout().unanswered(1, "me"));
        assert!(ClaimError::Coord(timeout()).unanswered(1, "me"));
        assert!(FenceError::Coord(timeout()).unanswered(1, "me"));
        let mine = ClaimError::AlreadyClaimed {
            task: task.clone(),
            status: None,
            by: Some("me".into()),
        };
        // Claimed by this leaf: a lost answer's doing only after a first try.
        assert!(!mine.unanswered(1, "me"));
        assert!(mine.unanswered(2, "me"));
        assert!(!mine.unanswered(2, "other"));
        let held = ClaimError::HeldByAnother {
            task: task.clone(),
            file: "f".into(),
            holder: "other".into(),
        };
        assert!(!held.unanswered(2, "me"));
        assert!(!ClaimError::NoSuchTask { task: task.clone() }.unanswered(2, "me"));
        assert!(!FenceError::LeaseExpired { task }.unanswered(2, "me"));
        assert!(!CoordError::InvalidTaskId { id: "x".into() }.unanswered(1, "me"));
    }

    #[test]
    fn exit_codes_follow_the_run() {
        let run = LeafRun {
            summary: LeafSummary::default(),
            incomplete: 0,
            stopped: false,
        };
        assert_eq!(run.exit_code(), EXIT_OK);
        let stopped = LeafRun {
            stopped: true,
            ..run.clone()
        };
        assert_eq!(stopped.exit_code(), EXIT_INCOMPLETE);
        let failed = LeafRun {
            incomplete: 1,
            ..run
        };
        assert_eq!(failed.exit_code(), EXIT_INCOMPLETE);
    }
}

//! [`run`]: one leaf-agent slot from start to summary. Start-up clones (or
//! opens and pulls) the hub's repository on the repository thread, joins
//! the trial on NATS under the scope derived from the project code, and
//! subscribes to tips; then two loops share the one async thread: the task
//! loop (Open → Claim → think → Check → Commit → Close, in disjoint or
//! shared mode) and the tip loop (catch up on broadcasts, coalesced: while
//! one catch-up waits on the repository thread, newer tips pile up in the
//! subscription and the next call takes only the latest).
//!
//! Files: `loops` (the task loop in disjoint and shared mode, and the
//! coordination steps' retries), `task` (one task from claim to close),
//! `unanswered` (which coordination failures are worth another try).

mod loops;
mod task;
mod unanswered;

use std::time::Duration;

use tokio::sync::watch;

use crate::coord::{
    subscribe_tips, subscribe_tips_since, Coord, CoordConfig, Scope, TipSubscription,
    DEFAULT_OP_TIMEOUT,
};
use crate::telemetry::W3c;
use crate::wire::{HubKind, LandingStrategy, LeafLine, LeafMode, LeafReady, LeafSummary};

use super::config::LeafConfig;
use super::dispatch::RepoThread;
use super::error::{chain, LeafError};
use super::output::Reporter;
use super::repo_thread::{PendingTip, SyncConfig};
use crate::exit::{EXIT_FAILED, EXIT_OK};

/// Attempts at joining the trial on NATS at start, with doubling waits.
const CONNECT_ATTEMPTS: u32 = 5;
const CONNECT_FIRST_WAIT: Duration = Duration::from_millis(200);

/// How far before its clone a stream-catching leaf starts reading the tip
/// stream: room for the hub's and the leaf's clocks to differ. A leaf on
/// a clock further off finds a gap and pulls once.
const STREAM_CLOCK_MARGIN: Duration = Duration::from_secs(2);

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
    /// and no stop cut the run short; [`EXIT_FAILED`] otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.incomplete == 0 && !self.stopped {
            EXIT_OK
        } else {
            EXIT_FAILED
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
    // A leaf that catches up from the stream reads it from a little before
    // its clone began, so what landed while it cloned costs no pull.
    let cloning_since = std::time::SystemTime::now() - STREAM_CLOCK_MARGIN;
    let (sync, started) = RepoThread::start(
        config.spec.hub_kind,
        SyncConfig {
            hub_url: config.hub_url.clone(),
            repo_path: config.repo_path(),
            worktree: config.worktree(),
            user,
            trace: W3c::of(&tracing::Span::current()),
            login: config.hub_login.clone(),
            hub_retry: config.hub_retry,
            landing: config.spec.landing,
            leaf: config.spec.leaf,
            catch_up: config.spec.catch_up,
            stream_buffer_bytes: config.stream_buffer_bytes,
            hold_hot: config.workload().hot.hold,
            counters: std::sync::Arc::clone(reporter.counters()),
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
    let mut tips = follow_tips(&config, &coord, &scope, cloning_since)
        .await
        .map_err(connect_err)?;
    let from_stream = config.spec.catch_up.from_stream(config.spec.leaf);
    reporter.started();
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
    let tasks = async {
        let result = agent.tasks().await;
        if let Ok(false) = result {
            if config.spec.leaf == LeafMode::Full && config.spec.hub_kind != HubKind::Fossil {
                // The trial's end: the worktree follows trunk one last time,
                // to the newest tip this leaf heard of (its own last
                // landing, at least), while the tip loop still records what
                // the stream brings; a git leaf pulls the server's main.
                if let Err(e) = sync.prepare(config.worktree(), Vec::new(), None).await {
                    reporter.error(chain(&e), false);
                }
            }
        }
        result
    };
    let result = tokio::select! {
        result = tasks => result,
        never = tip_loop(tips.as_mut(), &pending) => match never {},
    };
    reporter.nats_ops(sent().saturating_sub(sent_before));
    let stopped = result?;
    let tips = sync.tips();
    reporter.measure_memory();
    sync.finish();
    tips.skip_pending();
    if from_stream {
        let counters = reporter.counters();
        let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            checkins = load(&counters.checkins_applied),
            gap_pulls = load(&counters.gap_pulls),
            "caught up from the stream"
        );
    }
    let summary = reporter.summary();
    reporter.line(&LeafLine::Summary(summary.clone()));
    Ok(LeafRun {
        summary,
        incomplete: reporter.incomplete(),
        stopped,
    })
}

/// The tip subscription this leaf needs, if any. A full leaf follows tips
/// to keep its worktree current (from the stream: every batch published
/// since `since`, a little before its clone began), and leaf landing
/// catches up on them before pushing. A stock fossil server publishes
/// none; with hub landing a sparse leaf never needs one (the hub lands its
/// check-ins on whatever tip it has, and a refusal brings the tip), and
/// every broadcast would cost each leaf and nats-server work that grows
/// with the herd.
async fn follow_tips(
    config: &LeafConfig,
    coord: &Coord,
    scope: &Scope,
    since: std::time::SystemTime,
) -> Result<Option<TipSubscription>, crate::coord::CoordError> {
    let follow = config.spec.leaf == LeafMode::Full || config.spec.landing == LandingStrategy::Leaf;
    let from_stream = config.spec.catch_up.from_stream(config.spec.leaf);
    let client = coord.client().clone();
    Ok(match config.spec.hub_kind {
        HubKind::Herd if from_stream => {
            Some(subscribe_tips_since(client, scope.as_str(), DEFAULT_OP_TIMEOUT, since).await?)
        }
        HubKind::Herd if follow => {
            Some(subscribe_tips(client, scope.as_str(), DEFAULT_OP_TIMEOUT).await?)
        }
        HubKind::Herd | HubKind::Fossil | HubKind::Git => None,
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
/// [`PendingTip`](super::repo_thread::PendingTip)); never returns.
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

/// The task loop's view of the world.
struct Agent<'a> {
    config: &'a LeafConfig,
    coord: &'a Coord,
    sync: &'a RepoThread,
    reporter: &'a Reporter,
    stop: watch::Receiver<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(stopped.exit_code(), EXIT_FAILED);
        let failed = LeafRun {
            incomplete: 1,
            ..run
        };
        assert_eq!(failed.exit_code(), EXIT_FAILED);
    }
}

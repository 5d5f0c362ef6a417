//! `leaf-agent`: one slot of a trial: clone the hub, claim tasks on NATS,
//! commit and push them, print JSON lines on stdout.
//!
//! Exit codes: 0 every task ended committed, lost or unrecoverable; 1 the
//! leaf stopped early (fatal error, failed task, or SIGTERM); 2 bad flags,
//! or the hub or NATS unreachable at start.
//!
//! Credentials come only from the environment, never from flags (argv is
//! readable by every local user): `HERD_HUB_USER` and `HERD_HUB_SECRET` sign
//! every sync request with a Fossil login card, `HERD_NATS_TOKEN` is the
//! NATS auth token. herd sets them for each trial.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use herd::chain::chain;
use herd::coord::Secret;
use herd::exit::Failure;
use herd::leaf::{self, HubLogin, LeafConfig, LeafError, Reporter};
use herd::spec::{LeafPlace, TrialSpec};
use herd::telemetry::{self, W3c};
use tracing::Instrument;

/// One leaf-agent slot: clone the hub, then claim, commit and close tasks.
///
/// stdout carries only JSON lines (ready, task, error, summary); logs go to
/// stderr (RUST_LOG). Credentials are read from the environment only:
/// $HERD_HUB_USER with $HERD_HUB_SECRET (hub login), $HERD_NATS_TOKEN (NATS
/// token). Exit codes: 0 every task ended committed, lost or
/// unrecoverable; 1 the leaf stopped early (fatal error, failed task, or
/// SIGTERM); 2 bad flags, or the hub or NATS unreachable at start.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    place: LeafPlace,
    #[command(flatten)]
    spec: TrialSpec,
    /// How long a push or pull keeps retrying a hub that does not answer
    /// (down, restarting) before the task fails.
    #[arg(long, env = "HERD_HUB_RETRY_SECS", default_value_t = leaf::DEFAULT_HUB_RETRY.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    hub_retry_secs: u64,
    /// With --catch-up stream: most bytes of received batches held before
    /// they are applied; past it the oldest are dropped, and the gap they
    /// leave costs one pull.
    #[arg(long, env = "HERD_STREAM_BUFFER_BYTES", default_value_t = leaf::DEFAULT_STREAM_BUFFER_BYTES, value_parser = clap::value_parser!(u64).range(1..))]
    stream_buffer_bytes: u64,
}

fn main() -> ExitCode {
    herd::exit::finish("leaf-agent", main_result(Cli::parse()))
}

/// Starts telemetry and runs the slot; flushes the spans (bounded) before
/// the process ends.
fn main_result(cli: Cli) -> Result<u8, Failure> {
    let telemetry = telemetry::init("leaf-agent", Some(cli.place.slot))
        .map_err(|e| Failure::usage(chain(&e)))?;
    let result = start(cli);
    drop(telemetry);
    result
}

/// The hub login from the environment: both variables or neither.
fn hub_login() -> Result<Option<HubLogin>, String> {
    let user = std::env::var(herd::env::HUB_USER)
        .ok()
        .filter(|u| !u.is_empty());
    match (user, Secret::from_env(herd::env::HUB_SECRET)) {
        (Some(user), Some(secret)) => Ok(Some(HubLogin { user, secret })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(format!(
            "${} is set but ${} is not",
            herd::env::HUB_USER,
            herd::env::HUB_SECRET
        )),
        (None, Some(_)) => Err(format!(
            "${} is set but ${} is not",
            herd::env::HUB_SECRET,
            herd::env::HUB_USER
        )),
    }
}

fn start(cli: Cli) -> Result<u8, Failure> {
    let hub_login = hub_login().map_err(Failure::usage)?;
    let (place, spec) = (cli.place, cli.spec);
    let config = LeafConfig {
        hub_url: place.hub,
        nats_url: place.nats_url,
        slot: place.slot,
        workdir: place.workdir,
        spec,
        hub_login,
        nats_token: Secret::from_env(herd::env::NATS_TOKEN),
        hub_retry: Duration::from_secs(cli.hub_retry_secs),
        stream_buffer_bytes: usize::try_from(cli.stream_buffer_bytes).unwrap_or(usize::MAX),
    };
    config.validate().map_err(|e| Failure::usage(chain(&e)))?;
    run(config)
}

fn run(config: LeafConfig) -> Result<u8, Failure> {
    let slot = config.slot;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the async runtime: {e}")))?;
    let reporter = Reporter::new(slot, Box::new(std::io::stdout()));
    // The process span, a child of herd's when started by herd.
    let root = tracing::info_span!("leaf.run", slot = i64::from(slot));
    W3c::from_env().adopt(&root);
    let result = runtime.block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("stop requested; finishing the current task");
            let _ = stop_tx.send(true);
        });
        leaf::run(config, &reporter, stop_rx).instrument(root).await
    });
    match result {
        Ok(run) => Ok(run.exit_code()),
        Err(e) => {
            let text = chain(&e);
            reporter.error(text.clone(), true);
            Err(if is_start_failure(&e) {
                Failure::usage(text)
            } else {
                Failure::failed(text)
            })
        }
    }
}

fn is_start_failure(e: &LeafError) -> bool {
    e.is_unreachable() || matches!(e, LeafError::Config(_))
}

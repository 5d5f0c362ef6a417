//! The `herd` supervisor: spawns nats-server, the hub and one leaf-agent per
//! slot, reads their JSON lines over pipes, and aggregates a trial's summary.
//!
//! herd knows processes and their lines, nothing else: it never runs leaf
//! code in its own process and never opens a leaf's repository. It talks to
//! its own hub only through `/stats`. With `--hub-kind fossil` a stock
//! `fossil server` plays the hub instead (`fossil_hub`), and herd counts its
//! check-ins with `fossil sql`.

mod fossil_hub;
mod nats;
pub mod process;
pub mod summary;
mod trial;

use std::path::PathBuf;
use std::time::Duration;

pub use summary::{HubCount, SlotFailure, TrialReport};
pub use trial::run;

use crate::report::{HubKind, LandingStrategy, LeafMode};
use crate::workload::{Mode, WorkloadConfig};

/// Exit code: the trial passed every check.
pub const EXIT_OK: u8 = 0;
/// Exit code: the trial ran but a check failed (a count, linearity, a slot).
pub const EXIT_TRIAL_FAILED: u8 = 1;
/// Exit code: bad flags or an unusable environment; no trial ran.
pub const EXIT_USAGE: u8 = 2;

/// Everything a trial needs, validated.
#[derive(Debug, Clone)]
pub struct TrialConfig {
    /// Leaf-agents to start.
    pub agents: u32,
    /// Tasks per agent.
    pub tasks: u32,
    /// Workload seed.
    pub seed: u64,
    /// Workload knobs.
    pub workload: WorkloadConfig,
    /// Disjoint or shared tasks.
    pub mode: Mode,
    /// herd's hub, or a stock `fossil server`.
    pub hub_kind: HubKind,
    /// Who lands a check-in whose parent went stale (herd's hub only).
    pub landing: LandingStrategy,
    /// Full leaves (every artifact, a current worktree) or sparse ones.
    pub leaf: LeafMode,
    /// Keep the work directory here; `None` uses a temporary one.
    pub workdir: Option<PathBuf>,
    /// Use this NATS server instead of starting one.
    pub nats_url: Option<String>,
    /// The nats-server binary to start.
    pub nats_server: Option<PathBuf>,
    /// Abort the trial after this long.
    pub timeout: Option<Duration>,
    /// Copy children's stderr to the terminal with a prefix.
    pub verbose: bool,
    /// Show a progress line on stderr.
    pub progress: bool,
    /// Directory holding the `hub` and `leaf-agent` binaries.
    pub bin_dir: PathBuf,
    /// The trace context children start their root spans from (passed as
    /// `TRACEPARENT`/`TRACESTATE`); empty when no spans are exported.
    pub trace: crate::telemetry::W3c,
}

/// Why a trial could not run (as opposed to ran and failed a check).
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// No nats-server binary was found.
    #[error("nats-server not found (looked in {looked}); run scripts/install-deps or pass --nats-server PATH")]
    NatsNotFound {
        /// Where herd looked.
        looked: String,
    },
    /// A child could not be started.
    #[error("cannot start {what}")]
    Spawn {
        /// Which child.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A child started but did not become ready.
    #[error("{what} failed: {detail}")]
    ChildFailed {
        /// Which child.
        what: String,
        /// What happened.
        detail: String,
    },
    /// A file-system or OS step failed.
    #[error("cannot {what}")]
    Io {
        /// The step.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl SupervisorError {
    fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        SupervisorError::Io {
            what: what.into(),
            source,
        }
    }
}

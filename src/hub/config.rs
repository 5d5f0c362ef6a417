//! The hub's validated configuration: what `bin/hub.rs` turns its flags into
//! before anything starts. Defaults live here so tests and benches build the
//! same hub the binary runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::xfer::ServerConfig;

/// Worker threads serving HTTP requests unless configured otherwise. Pushes
/// wait on the writer while holding a worker, so this also bounds how many
/// pushes one write transaction can batch.
pub const DEFAULT_THREADS: usize = 32;
/// Most pushes the writer puts into one SQLite transaction.
pub const DEFAULT_MAX_BATCH: usize = 64;
/// Bound of one NATS round trip of the tip publisher.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// How the single writer groups pushes into transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// Every push waiting in the writer's queue goes into one transaction
    /// (up to the batch limit), each still handled in order against the
    /// moving tip; replies go out after the one COMMIT.
    Queue {
        /// Most pushes per transaction.
        max: usize,
    },
    /// One transaction per push.
    Off,
}

impl Batching {
    /// Most pushes one transaction may hold (1 when batching is off).
    pub fn limit(self) -> usize {
        match self {
            Batching::Queue { max } => max.max(1),
            Batching::Off => 1,
        }
    }
}

/// Everything a hub needs to start.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The repository file; created (with `nobody` granted `g`, `o`, `i`)
    /// when it does not exist.
    pub repo: PathBuf,
    /// The HTTP listen address; port 0 picks a free one.
    pub listen: SocketAddr,
    /// NATS server URL for tip broadcasts; `None` runs without broadcasts.
    pub nats_url: Option<String>,
    /// `project-name` of a newly created repository.
    pub project_name: Option<String>,
    /// HTTP worker threads.
    pub threads: usize,
    /// How pushes are grouped into write transactions.
    pub batching: Batching,
    /// Request size limits and reply budgets of the sync server.
    pub server: ServerConfig,
    /// Bound of one NATS round trip (connect, publish).
    pub publish_timeout: Duration,
}

impl HubConfig {
    /// A configuration with the defaults: loopback on a free port, no NATS.
    pub fn new(repo: impl Into<PathBuf>) -> HubConfig {
        HubConfig {
            repo: repo.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            nats_url: None,
            project_name: None,
            threads: DEFAULT_THREADS,
            batching: Batching::Queue {
                max: DEFAULT_MAX_BATCH,
            },
            server: ServerConfig::default(),
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
        }
    }
}

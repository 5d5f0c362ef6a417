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
/// Largest request body the HTTP listener takes.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 64 << 20;
/// How long one request may take to arrive, head and body, from its first
/// byte; also the bound of writing one reply.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may wait for its next request before it is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most connections open at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Bounds of the HTTP listener: what one client can make the hub hold.
///
/// A request whose declared `Content-Length` is over `max_request_bytes` is
/// answered 413 before any of its body is read; bytes past the declared
/// length are the next request's, which then fails to parse (400, closed).
/// A request must arrive whole within `read_timeout` of its first byte, so a
/// client trickling bytes (slowloris) is dropped with 408. An idle
/// connection is closed after `idle_timeout`. When `max_connections` are
/// open, a new connection takes the place of the longest-idle one; when none
/// is idle it gets 503 and is closed. Bodies are read by the listener before
/// a worker sees the request, so slow clients never hold a worker; the
/// bodies held at once total at most four times `max_request_bytes` (a body
/// waits for room within its read timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request body, in bytes.
    pub max_request_bytes: u64,
    /// Bound of reading one request (from its first byte) and of writing
    /// one reply.
    pub read_timeout: Duration,
    /// Bound of waiting for the next request on an open connection.
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            read_timeout: DEFAULT_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

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
    /// Bounds of the HTTP listener (request size, timeouts, connections).
    pub http: HttpLimits,
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
            http: HttpLimits::default(),
        }
    }
}

//! The hub's validated configuration: what `bin/hub.rs` turns its flags into
//! before anything starts. Defaults live here so tests and benches build the
//! same hub the binary runs.
//!
//! Access: a hub listens on loopback unless told otherwise, and anonymous
//! clients get `nobody`'s capabilities. Listening anywhere else needs users
//! (then login is required) or an explicit `allow_anonymous`;
//! [`HubConfig::validate`] refuses the open door before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::queue::{QueueConfig, DEFAULT_LEASE};
use crate::coord::Secret;
use crate::xfer::ServerConfig;

/// Capabilities of a configured user unless given: clone (`g`), read (`o`)
/// and push (`i`).
pub const DEFAULT_USER_CAPS: &str = "gio";

/// A user the hub creates (or updates) in the repository's `user` table at
/// start, stored as Fossil 2.21 stores passwords: the shared secret
/// SHA1("PROJECT-CODE/LOGIN/PASSWORD"), so a real `fossil` on the same file
/// sees the same user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubUser {
    /// The login.
    pub login: String,
    /// The cleartext password (`Debug` hides it).
    pub password: Secret,
    /// Fossil capability letters.
    pub caps: String,
}

/// Why a hub configuration is refused before anything starts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A non-loopback address with neither users nor `allow_anonymous`.
    #[error(
        "refusing to serve {addr} to anonymous clients: listening beyond loopback needs a user \
         (--user with HERD_HUB_SECRET) or --allow-anonymous"
    )]
    OpenDoor {
        /// The listen address.
        addr: SocketAddr,
    },
    /// A configured user cannot log in as given.
    #[error("user {login:?}: {reason}")]
    BadUser {
        /// The login as given.
        login: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Blocking threads (each with a read connection) unless configured
/// otherwise: they serve pulls, clones, `/stats` and `/healthz` and decode
/// pushes. A push waiting for the writer or for its turn holds none, so
/// this does not grow with the number of clients.
pub const DEFAULT_THREADS: usize = 16;
/// Most pushes the push queue holds unless configured otherwise. A held
/// push is a pending request (its decoded body, a connection), not a
/// thread; beyond this, stale pushes are refused at once.
pub const DEFAULT_PUSH_QUEUE: usize = 1024;
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
/// is idle it gets 503 and is closed. A body is read whole before the
/// request is served, and no thread waits on a client; the bodies held at
/// once total at most four times `max_request_bytes` (a body waits for room
/// within its read timeout).
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
    /// Every batch's broadcast carries its check-ins' files as well as
    /// their manifests (full leaves with `--catch-up stream` apply it).
    pub broadcast_files: bool,
    /// `project-name` of a newly created repository.
    pub project_name: Option<String>,
    /// Blocking threads for SQLite reads and decoding, each with a read
    /// connection.
    pub threads: usize,
    /// How pushes are grouped into write transactions.
    pub batching: Batching,
    /// Request size limits and reply budgets of the sync server.
    pub server: ServerConfig,
    /// Bound of one NATS round trip (connect, publish).
    pub publish_timeout: Duration,
    /// The push queue (turns for pushers that wait); capacity 0 is off.
    pub push_queue: QueueConfig,
    /// Users created or updated in the repository at start.
    pub users: Vec<HubUser>,
    /// Clients that do not log in get no capability (not even `nobody`'s).
    pub require_login: bool,
    /// Serve anonymous clients on a non-loopback address.
    pub allow_anonymous: bool,
    /// The NATS auth token of the tip broadcaster's connection.
    pub nats_token: Option<Secret>,
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
            broadcast_files: false,
            project_name: None,
            threads: DEFAULT_THREADS,
            batching: Batching::Queue {
                max: DEFAULT_MAX_BATCH,
            },
            server: ServerConfig::default(),
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
            push_queue: QueueConfig {
                capacity: DEFAULT_PUSH_QUEUE,
                lease: DEFAULT_LEASE,
            },
            users: Vec::new(),
            require_login: false,
            allow_anonymous: false,
            nats_token: None,
            http: HttpLimits::default(),
        }
    }

    /// Checks access before anything starts: users must be usable, and a
    /// non-loopback listener needs users or `allow_anonymous`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for user in &self.users {
            let bad = |reason| ConfigError::BadUser {
                login: user.login.clone(),
                reason,
            };
            if user.login.is_empty() || user.login.chars().any(|c| c.is_whitespace()) {
                return Err(bad("a login must be one word"));
            }
            if crate::xfer::login::is_anonymous(&user.login) {
                return Err(bad("nobody and anonymous cannot log in"));
            }
            if user.password.expose().is_empty() {
                return Err(bad("the password is empty"));
            }
        }
        if !self.listen.ip().is_loopback() && self.users.is_empty() && !self.allow_anonymous {
            return Err(ConfigError::OpenDoor { addr: self.listen });
        }
        Ok(())
    }

    /// Whether anonymous clients are refused: asked for, or implied by
    /// users on a non-loopback address without `allow_anonymous`.
    pub fn login_required(&self) -> bool {
        self.require_login
            || (!self.listen.ip().is_loopback() && !self.users.is_empty() && !self.allow_anonymous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(login: &str, password: &str) -> HubUser {
        HubUser {
            login: login.into(),
            password: Secret::new(password),
            caps: DEFAULT_USER_CAPS.into(),
        }
    }

    #[test]
    fn beyond_loopback_needs_users_or_allow_anonymous() {
        let mut c = HubConfig::new("/tmp/x.fossil");
        c.validate().unwrap();
        assert!(!c.login_required());
        c.listen = SocketAddr::from(([0, 0, 0, 0], 8080));
        assert_eq!(c.validate(), Err(ConfigError::OpenDoor { addr: c.listen }));
        c.allow_anonymous = true;
        c.validate().unwrap();
        assert!(!c.login_required());
        c.allow_anonymous = false;
        c.users.push(user("alice", "s3cret"));
        c.validate().unwrap();
        assert!(c.login_required(), "users beyond loopback imply login");
    }

    #[test]
    fn unusable_users_are_refused_and_passwords_never_printed() {
        let mut c = HubConfig::new("/tmp/x.fossil");
        for (login, pw) in [("", "x"), ("a b", "x"), ("nobody", "x"), ("alice", "")] {
            c.users = vec![user(login, pw)];
            assert!(
                matches!(c.validate(), Err(ConfigError::BadUser { .. })),
                "{login:?}/{pw:?}"
            );
        }
        c.users = vec![user("alice", "s3cret")];
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}

//! The hub's errors: [`HubError`] names the startup or shutdown step that
//! failed. Request-level failures never become a `HubError`: they become an
//! HTTP status or an `error` card in `http.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

use crate::coord::CoordError;
use crate::repo::RepoError;

/// Why the hub could not start or stop cleanly.
#[derive(Debug, Error)]
pub enum HubError {
    /// The configuration was refused before anything started.
    #[error("invalid configuration")]
    Config(#[from] super::config::ConfigError),
    /// Another hub serves the repository, or its lock could not be taken.
    #[error(transparent)]
    Lock(#[from] super::lock::LockError),
    /// The repository could not be created.
    #[error("create repository {path}")]
    CreateRepo {
        /// The path given.
        path: PathBuf,
        /// Why.
        #[source]
        source: RepoError,
    },
    /// The repository could not be opened or read.
    #[error("open repository {path}")]
    OpenRepo {
        /// The path given.
        path: PathBuf,
        /// Why.
        #[source]
        source: RepoError,
    },
    /// The repository's trunk has forked: herd's hub keeps one linear
    /// trunk, and would have to pick a tip silently.
    #[error(
        "{} has a forked trunk: {} leaves ({}); herd's hub serves one linear trunk, so join them \
         first: `fossil open {}` in an empty directory, then `fossil merge LEAF` for each leaf \
         but the newest and `fossil commit -m \"join the trunk's leaves\"`",
        path.display(),
        leaves.len(),
        leaves.join(", "),
        path.display()
    )]
    ForkedTrunk {
        /// The repository.
        path: PathBuf,
        /// Every trunk leaf (short names), newest first.
        leaves: Vec<String>,
    },
    /// The HTTP listener could not be bound.
    #[error("listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The listener has no IP address (never for a TCP listener).
    #[error("listener on {addr} has no ip address")]
    NoIpAddress {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The NATS connection or the tip stream could not be set up.
    #[error("set up tip broadcasts on nats at {url}")]
    Nats {
        /// The NATS URL.
        url: String,
        /// Why.
        #[source]
        source: CoordError,
    },
    /// A thread or the async runtime could not be started.
    #[error("start {what}")]
    Spawn {
        /// The thread or runtime.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The final WAL checkpoint failed.
    #[error("checkpoint repository {path}")]
    Checkpoint {
        /// The repository.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
}

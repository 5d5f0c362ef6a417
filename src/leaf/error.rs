//! [`LeafError`]: every way a leaf-agent fails, each variant naming the step
//! and what it worked on (URL, path, task), with the lower layer's error as
//! its source, so a printed chain reads as one sentence.

use std::path::PathBuf;

use crate::coord::{ClaimError, CoordError, FenceError};
use crate::repo::{RebaseError, RepoError};
use crate::xfer::ClientError;

use super::config::ConfigError;

/// Why a leaf-agent (or one of its steps) failed.
#[derive(Debug, thiserror::Error)]
pub enum LeafError {
    /// The configuration is unusable.
    #[error("invalid configuration")]
    Config(#[from] ConfigError),
    /// The slot's directory could not be prepared.
    #[error("prepare {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The hub could not be cloned (after retries).
    #[error("clone {url} into {path}")]
    Clone {
        /// The hub URL.
        url: String,
        /// The target repository.
        path: PathBuf,
        /// The client's error.
        #[source]
        source: Box<ClientError>,
    },
    /// A pull from the hub failed.
    #[error("pull from {url}")]
    Pull {
        /// The hub URL.
        url: String,
        /// The client's error.
        #[source]
        source: Box<ClientError>,
    },
    /// A push to the hub failed (after retries).
    #[error("push {checkin} to {url}")]
    Push {
        /// The hub URL.
        url: String,
        /// The check-in being pushed.
        checkin: String,
        /// The client's error.
        #[source]
        source: Box<ClientError>,
    },
    /// The local repository failed.
    #[error("{step} in {path}")]
    Repo {
        /// What was being done.
        step: &'static str,
        /// The repository file.
        path: PathBuf,
        /// The repository error.
        #[source]
        source: Box<RepoError>,
    },
    /// A rebase failed for a reason other than a conflict.
    #[error("rebase {checkin} onto {onto}")]
    Rebase {
        /// The check-in being rebased.
        checkin: String,
        /// The new parent.
        onto: String,
        /// The repository's error.
        #[source]
        source: Box<RebaseError>,
    },
    /// Connecting to NATS or opening the trial's buckets failed.
    #[error("join the trial on nats at {url}")]
    Connect {
        /// The NATS URL.
        url: String,
        /// The coordination error.
        #[source]
        source: CoordError,
    },
    /// A coordination step of a task failed.
    #[error("{step} task {task}")]
    Coord {
        /// What was being done (open, abandon).
        step: &'static str,
        /// The task id.
        task: String,
        /// The coordination error.
        #[source]
        source: CoordError,
    },
    /// A claim failed for a reason other than contention.
    #[error("claim failed")]
    Claim(#[source] ClaimError),
    /// The fence before a commit, or the close after it, found the claim
    /// no longer ours.
    #[error("{step} task {task}")]
    Fence {
        /// `check` or `close`.
        step: &'static str,
        /// The task id.
        task: String,
        /// Why the claim is not ours.
        #[source]
        source: FenceError,
    },
    /// The hub did not answer a push or pull for the whole retry deadline.
    #[error(
        "{step}: hub {url} did not answer for {waited_ms} ms ({attempts} attempts); giving up"
    )]
    HubUnreachable {
        /// The exchange (`pull`, `push <check-in>`).
        step: String,
        /// The hub URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// How long the leaf kept trying, in milliseconds.
        waited_ms: u64,
        /// The last attempt's error.
        #[source]
        source: Box<ClientError>,
    },
    /// Too many pushes were refused in a row.
    #[error("push of task {task} refused {attempts} times; giving up")]
    TooManyRefusals {
        /// The task's title.
        task: String,
        /// Pushes tried.
        attempts: u32,
    },
    /// A `git` command failed (`--hub-kind git`).
    #[error("git {step} in {}: {detail}", dir.display())]
    Git {
        /// The command.
        step: String,
        /// The clone it ran in.
        dir: PathBuf,
        /// What git said, and its exit status.
        detail: String,
    },
    /// The repository thread is gone (it panicked or could not start).
    #[error("the repository thread stopped")]
    WorkerGone,
}

impl LeafError {
    /// Whether the failure means an endpoint is unusable at start (exit 2).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, LeafError::Clone { .. } | LeafError::Connect { .. })
    }
}

pub use crate::chain::chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_reads_as_one_sentence() {
        let e = LeafError::Io {
            path: PathBuf::from("/x/wt"),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        };
        assert_eq!(chain(&e), "prepare /x/wt: denied");
        assert!(!e.is_unreachable());
    }
}

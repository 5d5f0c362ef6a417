//! The coordination errors: [`CoordError`] for transport, timeouts and bad
//! input, [`ClaimError`] for the ways a claim is refused, and [`FenceError`]
//! for the ways a fenced write finds the claim no longer ours. Messages are
//! lowercase and name the operation and key, so a printed chain reads as one
//! sentence, e.g. `claim task t-12: cas update timed out after 5s`.

use std::time::Duration;

use super::task::{TaskId, TaskStatus};

/// A boxed error from the NATS client, whose error types differ per call.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Failures of the coordination layer itself: bad input, connection,
/// timeouts and undecodable records.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// The trial scope was empty.
    #[error("invalid trial scope {scope:?}: it must not be empty")]
    InvalidScope {
        /// The scope as given.
        scope: String,
    },
    /// A task id is not usable as a key-value key.
    #[error("invalid task id {id:?}: use 1-200 characters of [-_=.a-zA-Z0-9/] without empty dot segments")]
    InvalidTaskId {
        /// The id as given.
        id: String,
    },
    /// A task's file path is not a normalized relative path.
    #[error("invalid file path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The NATS URL (list) cannot be parsed.
    #[error("bad NATS URL list {urls:?}: {why}")]
    BadUrl {
        /// The list as given.
        urls: String,
        /// What is wrong with it.
        why: String,
    },
    /// The connection to the NATS server failed.
    #[error("connect to nats at {url}")]
    Connect {
        /// The server URL.
        url: String,
        /// The client's error.
        #[source]
        source: async_nats::ConnectError,
    },
    /// A step of an operation did not finish within the operation timeout.
    #[error("{op}: {step} timed out after {after:?}")]
    Timeout {
        /// The operation and its key, e.g. `claim task t-12`.
        op: String,
        /// The step that timed out, e.g. `cas update`.
        step: &'static str,
        /// The configured operation timeout.
        after: Duration,
    },
    /// A step of an operation failed in the NATS client or server.
    #[error("{op}: {step}")]
    Nats {
        /// The operation and its key.
        op: String,
        /// The step that failed.
        step: &'static str,
        /// The client's error.
        #[source]
        source: BoxError,
    },
    /// A stored record or message was not the JSON this module writes.
    #[error("{op}: decode {what}")]
    Decode {
        /// The operation and its key.
        op: String,
        /// What was being decoded, e.g. `task record`.
        what: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A trace header value cannot travel in a NATS header.
    #[error("{op}: header {name} has a value that is not a valid nats header value")]
    InvalidHeader {
        /// The operation.
        op: String,
        /// The header name.
        name: &'static str,
    },
}

/// Why a claim was not granted. `AlreadyClaimed` and `HeldByAnother` are the
/// normal outcomes of contention (a lost claim), not faults.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// No record exists for the task.
    #[error("claim task {task}: no such task")]
    NoSuchTask {
        /// The task.
        task: TaskId,
    },
    /// The task is not open (or another leaf won the compare-and-set).
    #[error("claim task {task}: already claimed")]
    AlreadyClaimed {
        /// The task.
        task: TaskId,
        /// The status seen, `None` when the compare-and-set was lost and the
        /// winner's write was not read.
        status: Option<TaskStatus>,
        /// The claimant seen, if any.
        by: Option<String>,
    },
    /// A live hold of another claim covers one of the task's files; the
    /// task was rolled back to open and the holds taken were released.
    #[error("claim task {task}: file {file} is held by {holder}")]
    HeldByAnother {
        /// The task.
        task: TaskId,
        /// The contested file.
        file: String,
        /// The leaf holding it.
        holder: String,
    },
    /// The coordination layer failed.
    #[error(transparent)]
    Coord(#[from] CoordError),
}

/// Why a fenced step (check, close, renew) found the claim no longer valid.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// The task record is gone.
    #[error("fence task {task}: the task record is gone")]
    TaskGone {
        /// The task.
        task: TaskId,
    },
    /// Someone else claimed the task since: its epoch moved on.
    #[error("fence task {task}: claim epoch moved from {mine} to {now}")]
    EpochMoved {
        /// The task.
        task: TaskId,
        /// The epoch of this claim.
        mine: u64,
        /// The epoch in the record now.
        now: u64,
    },
    /// Same epoch, but the task is no longer claimed by this leaf.
    #[error("fence task {task}: the task is {status} by {by:?}, not claimed by this leaf")]
    NotMine {
        /// The task.
        task: TaskId,
        /// The status seen.
        status: TaskStatus,
        /// The claimant seen.
        by: Option<String>,
    },
    /// The claim's lease on the task ran out; another leaf may take it over.
    #[error("fence task {task}: the claim lease expired")]
    LeaseExpired {
        /// The task.
        task: TaskId,
    },
    /// A file's hold was released or taken over.
    #[error("fence task {task}: hold on {file} lost (now held by {holder:?})")]
    HoldLost {
        /// The task.
        task: TaskId,
        /// The file.
        file: String,
        /// Who holds it now, if anyone.
        holder: Option<String>,
    },
    /// A file's hold is still ours but expired.
    #[error("fence task {task}: hold on {file} expired")]
    HoldExpired {
        /// The task.
        task: TaskId,
        /// The file.
        file: String,
    },
    /// The coordination layer failed.
    #[error(transparent)]
    Coord(#[from] CoordError),
}

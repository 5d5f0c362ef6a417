//! What crosses between the async side and the repository thread: the
//! requests, and how a commit or a broadcast ended.

use std::time::SystemTime;

use tokio::sync::oneshot;

use crate::repo::{ArtifactHash, CheckinSpec, FileChange};
use crate::wire::PushMark;
use crate::workload::HotEdit;

use super::super::error::LeafError;

/// One task's commit as the async side asks for it.
#[derive(Debug, Clone)]
pub(in crate::leaf) struct CommitRequest {
    /// Relative paths and contents to write and check in.
    pub files: Vec<(String, Vec<u8>)>,
    /// The check-in comment.
    pub comment: String,
    /// Lines the task inserts into a shared hot file, made on the file as
    /// the check-in's parent has it (and made again on a newer parent when
    /// they conflict there).
    pub edit: Option<HotEdit>,
}

impl CommitRequest {
    /// The check-in of this request's files on `parent`, by `user`, now.
    pub fn spec(&self, parent: ArtifactHash, user: &str) -> CheckinSpec {
        CheckinSpec {
            parent,
            changes: self
                .files
                .iter()
                .map(|(path, content)| FileChange {
                    path: path.clone(),
                    content: Some(content.clone()),
                })
                .collect(),
            comment: self.comment.clone(),
            user: user.to_string(),
            time: SystemTime::now(),
        }
    }
}

/// How a commit ended.
#[derive(Debug)]
pub(in crate::leaf) enum CommitOutcome {
    /// The hub accepted the check-in.
    Landed {
        /// The accepted check-in.
        checkin: ArtifactHash,
        /// Refused pushes before it landed.
        fork_retries: u32,
        /// Times the task's hot-file edit conflicted and was redone on
        /// newer text.
        resolutions: u32,
    },
    /// A rebase found files changed on both sides that neither a line
    /// merge nor redoing the task's edit could join.
    Conflict {
        /// The files and lines, described.
        conflicts: String,
        /// Refused pushes before the conflict.
        fork_retries: u32,
    },
    /// The push failed for good (after retries); the error says why.
    Failed {
        /// Refused pushes before the failure.
        fork_retries: u32,
        /// Why.
        error: Box<LeafError>,
    },
}

/// A commit's outcome and the pushes it took.
#[derive(Debug)]
pub(in crate::leaf) struct Committed {
    /// How it ended.
    pub outcome: CommitOutcome,
    /// Each push, on the trial clock.
    pub pushes: Vec<PushMark>,
}

/// How a tip broadcast was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::leaf) enum CatchUp {
    /// The repository already held the tip.
    AlreadyHeld,
    /// The broadcast's bundle brought it, without a hub request.
    Applied,
    /// One pull from the hub brought it.
    Pulled,
}

/// A message to the repository thread.
pub(in crate::leaf) enum Request {
    /// Before a task's think time: (full leaves) catch up on the newest tip
    /// heard of and bring the worktree to it, then write the task's files
    /// into the worktree. With no files, only the catching up (the end of
    /// a trial).
    Prepare {
        files: Vec<(String, Vec<u8>)>,
        /// The task's hot-file edit, made on the file at the tip caught
        /// up to.
        edit: Option<HotEdit>,
        reply: oneshot::Sender<Result<(), LeafError>>,
    },
    Commit {
        request: CommitRequest,
        /// The `coord.Commit` span: its context goes to the hub with every
        /// exchange, and the check-in's hashes are recorded on it.
        span: tracing::Span,
        reply: oneshot::Sender<Result<Committed, LeafError>>,
    },
}

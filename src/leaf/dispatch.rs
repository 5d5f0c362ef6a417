//! [`RepoThread`]: a slot's repository thread for the kind of hub the trial
//! runs: herd's hub (`repo_thread/`), a stock `fossil server` (`plain`) or
//! a stock git server (`git`). The task loop talks to it alone.

use std::path::PathBuf;
use std::sync::Arc;

use super::error::LeafError;
use super::repo_thread::{CommitRequest, Committed, PendingTip, Started, SyncConfig, SyncHandle};
use super::worktree::write_worktree;
use crate::wire::HubKind;

/// A slot's repository thread, for the kind of hub the trial runs.
pub(super) enum RepoThread {
    /// herd's hub: fast path, push-rebase-retry, tip broadcasts.
    Herd(SyncHandle),
    /// A stock `fossil server`: plain pull, commit, plain push.
    Plain(super::plain::PlainHandle),
    /// A stock git server: the real `git` in the slot's clone.
    Git(super::git::GitHandle),
}

impl RepoThread {
    /// Starts the thread for `kind`; it clones (or opens and pulls) and
    /// checks out the trunk tip before answering.
    pub(super) async fn start(
        kind: HubKind,
        config: SyncConfig,
    ) -> Result<(RepoThread, Started), LeafError> {
        Ok(match kind {
            HubKind::Herd => {
                let (handle, started) = SyncHandle::start(config).await?;
                (RepoThread::Herd(handle), started)
            }
            HubKind::Fossil => {
                let (handle, started) = super::plain::PlainHandle::start(config).await?;
                (RepoThread::Plain(handle), started)
            }
            HubKind::Git => {
                let (handle, started) = super::git::GitHandle::start(config).await?;
                (RepoThread::Git(handle), started)
            }
        })
    }

    /// Writes a task's files into the worktree at `dir`; a full leaf of
    /// herd's hub first catches up and brings the worktree to the newest
    /// trunk tip it knows, then makes the task's hot-file edit on it. With
    /// no files, only the catching up. Against a stock server the hot-file
    /// edit is made at commit time, after autosync's pull.
    pub(super) async fn prepare(
        &self,
        dir: PathBuf,
        files: Vec<(String, Vec<u8>)>,
        edit: Option<crate::workload::HotEdit>,
    ) -> Result<(), LeafError> {
        match self {
            RepoThread::Herd(h) => h.prepare(files, edit).await,
            RepoThread::Plain(_) => write_worktree(dir, files).await,
            RepoThread::Git(h) => h.prepare(files, edit).await,
        }
    }

    /// Commits one task's files and pushes them until they land or fail.
    pub(super) async fn commit(
        &self,
        request: CommitRequest,
        span: tracing::Span,
    ) -> Result<Committed, LeafError> {
        match self {
            RepoThread::Herd(h) => h.commit(request, span).await,
            RepoThread::Plain(h) => h.commit(request).await,
            RepoThread::Git(h) => h.commit(request).await,
        }
    }

    /// Where the tip loop records broadcasts (none ever come for a stock
    /// server, so its counts stay 0).
    pub(super) fn tips(&self) -> Arc<PendingTip> {
        match self {
            RepoThread::Herd(h) => h.tips(),
            RepoThread::Plain(h) => h.tips(),
            RepoThread::Git(h) => h.tips(),
        }
    }

    /// Ends the thread after its current request (its counts are then
    /// final).
    pub(super) fn finish(self) {
        match self {
            RepoThread::Herd(h) => h.finish(),
            RepoThread::Plain(h) => h.finish(),
            RepoThread::Git(h) => h.finish(),
        }
    }
}

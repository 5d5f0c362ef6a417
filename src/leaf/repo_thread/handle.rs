//! The async side's end: [`SyncHandle`] starts the repository thread and
//! sends it requests, awaiting each answer.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::super::error::LeafError;
use super::super::worker::Worker;
use super::{CommitRequest, Committed, PendingTip, Request, Started, SyncConfig, SyncState};

/// The async side's handle on the repository thread. Dropping it ends the
/// thread after the request in progress; [`SyncHandle::finish`] also waits.
pub(in crate::leaf) struct SyncHandle(Worker<Request>);

impl SyncHandle {
    /// Starts the thread, which clones or opens the repository and checks
    /// out the trunk tip before answering.
    pub(in crate::leaf) async fn start(
        config: SyncConfig,
    ) -> Result<(SyncHandle, Started), LeafError> {
        let keep = config.catch_up.from_stream(config.leaf);
        let tips = Arc::new(PendingTip::new(
            keep.then_some(config.stream_buffer_bytes),
            Arc::clone(&config.counters),
        ));
        let pending = Arc::clone(&tips);
        let open = move |inbox| SyncState::open(config, inbox, pending);
        let (worker, started) = Worker::spawn("leaf-repo", tips, open, |mut state: SyncState| {
            state.serve()
        })
        .await?;
        Ok((SyncHandle(worker), started))
    }

    /// Broadcast tips for the repository thread.
    pub(in crate::leaf) fn tips(&self) -> Arc<PendingTip> {
        Arc::clone(&self.0.tips)
    }

    /// Catches up and updates the worktree (full leaves), then writes
    /// `files` into it.
    pub(in crate::leaf) async fn prepare(
        &self,
        files: Vec<(String, Vec<u8>)>,
        edit: Option<crate::workload::HotEdit>,
    ) -> Result<(), LeafError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Prepare { files, edit, reply })?;
        answer.await.map_err(|_| LeafError::WorkerGone)?
    }

    /// Commits and pushes one task's files.
    /// `span` is the commit's span; the hub's spans become its children.
    pub(in crate::leaf) async fn commit(
        &self,
        request: CommitRequest,
        span: tracing::Span,
    ) -> Result<Committed, LeafError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Commit {
            request,
            span,
            reply,
        })?;
        answer.await.map_err(|_| LeafError::WorkerGone)?
    }

    /// Ends the thread after its current request and waits for it (its
    /// counts are then final).
    pub(in crate::leaf) fn finish(self) {
        self.0.finish();
    }

    fn send(&self, request: Request) -> Result<(), LeafError> {
        self.0.send(request)
    }
}

//! The async side's end: [`SyncHandle`] starts the repository thread and
//! sends it requests, awaiting each answer.

use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::super::error::LeafError;
use super::{CommitRequest, Committed, PendingTip, Request, Started, SyncConfig, SyncState};

/// The async side's handle on the repository thread. Dropping it ends the
/// thread after the request in progress; [`SyncHandle::finish`] also waits.
pub(in crate::leaf) struct SyncHandle {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    /// Broadcast tips for the repository thread.
    pub(in crate::leaf) tips: Arc<PendingTip>,
}

impl SyncHandle {
    /// Starts the thread, which clones or opens the repository and checks
    /// out the trunk tip before answering.
    pub(in crate::leaf) async fn start(
        config: SyncConfig,
    ) -> Result<(SyncHandle, Started), LeafError> {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let keep = config.catch_up.from_stream(config.leaf);
        let tips = Arc::new(PendingTip::new(
            keep.then_some(config.stream_buffer_bytes),
            Arc::clone(&config.counters),
        ));
        let pending = Arc::clone(&tips);
        let thread = std::thread::Builder::new()
            .name("leaf-repo".into())
            .spawn(move || {
                let mut state = match SyncState::open(config, rx, pending) {
                    Ok((state, started)) => {
                        let _ = ready_tx.send(Ok(started));
                        state
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                state.serve();
            })
            .map_err(|source| LeafError::Io {
                path: PathBuf::from("(repository thread)"),
                source,
            })?;
        let handle = SyncHandle {
            requests: Some(tx),
            thread: Some(thread),
            tips,
        };
        let started = ready_rx.await.map_err(|_| LeafError::WorkerGone)??;
        Ok((handle, started))
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
    pub(in crate::leaf) fn finish(mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn send(&self, request: Request) -> Result<(), LeafError> {
        self.requests
            .as_ref()
            .ok_or(LeafError::WorkerGone)?
            .send(request)
            .map_err(|_| LeafError::WorkerGone)
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

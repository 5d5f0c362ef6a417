//! A repository thread for a stock server (`plain`, `git`): one thread that
//! owns the blocking state (a repository and client, or a clone driven by
//! `git`), opens it, then serves requests one at a time, in order; the
//! async side holds a [`Worker`] and awaits each answer on a oneshot
//! channel that travels inside the request.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::counters::LeafCounters;
use super::error::LeafError;
use super::repo_thread::{PendingTip, Started};

/// The async side's handle on a repository thread serving `R`s.
pub(super) struct Worker<R> {
    requests: Option<mpsc::Sender<R>>,
    thread: Option<JoinHandle<()>>,
    /// Never noted: a stock server broadcasts nothing.
    pub(super) tips: Arc<PendingTip>,
}

impl<R: Send + 'static> Worker<R> {
    /// Starts thread `name`: `open` makes its state (and what start-up
    /// found) before anything is answered; then each request goes to
    /// `serve`, which answers it and says how many requests the thread has
    /// sent to the server so far, which goes to `counters`.
    pub(super) async fn start<S, O, F>(
        name: &str,
        counters: Arc<LeafCounters>,
        open: O,
        mut serve: F,
    ) -> Result<(Worker<R>, Started), LeafError>
    where
        S: 'static,
        O: FnOnce() -> Result<(S, Started), LeafError> + Send + 'static,
        F: FnMut(&mut S, R) -> u64 + Send + 'static,
    {
        let tips = Arc::new(PendingTip::new(None, Arc::clone(&counters)));
        let open = move |inbox| open().map(|(state, started)| ((state, inbox), started));
        let run = move |(mut state, inbox): (S, mpsc::Receiver<R>)| {
            while let Ok(request) = inbox.recv() {
                let sent = serve(&mut state, request);
                counters.hub_requests.store(sent, Ordering::Relaxed);
            }
        };
        Worker::spawn(name, tips, open, run).await
    }

    /// Starts thread `name` holding `tips`: `open` makes its state from the
    /// thread's inbox of requests (and says what start-up found) before
    /// anything is answered; then `run` serves with it until the inbox
    /// closes. Herd's repository thread (`repo_thread`) reads its inbox
    /// itself; the stock servers' go through [`Worker::start`].
    pub(super) async fn spawn<S, O, F>(
        name: &str,
        tips: Arc<PendingTip>,
        open: O,
        run: F,
    ) -> Result<(Worker<R>, Started), LeafError>
    where
        O: FnOnce(mpsc::Receiver<R>) -> Result<(S, Started), LeafError> + Send + 'static,
        F: FnOnce(S) + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<R>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let state = match open(rx) {
                    Ok((state, started)) => {
                        let _ = ready_tx.send(Ok(started));
                        state
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                run(state);
            })
            .map_err(|source| LeafError::Io {
                path: PathBuf::from("(repository thread)"),
                source,
            })?;
        let worker = Worker {
            requests: Some(tx),
            thread: Some(thread),
            tips,
        };
        let started = ready_rx.await.map_err(|_| LeafError::WorkerGone)??;
        Ok((worker, started))
    }

    /// Hands the thread a request.
    pub(super) fn send(&self, request: R) -> Result<(), LeafError> {
        self.requests
            .as_ref()
            .ok_or(LeafError::WorkerGone)?
            .send(request)
            .map_err(|_| LeafError::WorkerGone)
    }

    /// Ends the thread after its current request (its counts are then
    /// final).
    pub(super) fn finish(mut self) {
        self.stop();
    }
}

impl<R> Worker<R> {
    /// Closes the inbox and waits for the thread to end.
    fn stop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl<R> Drop for Worker<R> {
    fn drop(&mut self) {
        self.stop();
    }
}

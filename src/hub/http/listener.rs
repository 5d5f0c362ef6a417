//! The listener: accepts connections under the hub's [`HttpLimits`] (the
//! connection table, the body budget) on one I/O thread running a small
//! tokio runtime, so thousands of idle or slow connections cost a task
//! each, not a thread. Each connection's task (`conn`) reads whole requests
//! and hands them to the worker threads as [`Exchange`]s.
//!
//! Why not tiny_http: it gives every connection a thread, reads with no
//! deadline, hands a request to a worker before its body has arrived (so a
//! slow body holds a worker), and its accept loop ends for good on the first
//! accept error (EMFILE when descriptors run out).
//!
//! Every refusal is an answer built by [`super::response`], the one place
//! failures become statuses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{oneshot, watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::conn::{refuse, serve_connection};
use super::wire::Head;
use super::Failure;
use crate::hub::config::HttpLimits;
use crate::hub::stats::Counters;

/// One request handed to a worker, and where its reply goes.
pub(crate) struct Exchange {
    /// The request, body and all.
    pub(crate) request: HttpRequest,
    /// The worker's reply.
    pub(crate) reply: oneshot::Sender<HttpResponse>,
}

/// A request read whole by the listener.
pub(crate) struct HttpRequest {
    /// Method, path and headers.
    pub(crate) head: Head,
    /// The body (`Content-Length` bytes).
    pub(crate) body: Vec<u8>,
    /// The client's address.
    pub(crate) peer: SocketAddr,
}

/// A reply to write.
pub(crate) struct HttpResponse {
    /// The HTTP status.
    pub(crate) status: u16,
    /// The `Content-Type` value.
    pub(crate) content_type: &'static str,
    /// The body.
    pub(crate) body: Vec<u8>,
}

/// Request bodies held at once, in units of the largest body: a herd of
/// clients each sending the largest body waits for room (within its read
/// timeout) instead of growing the hub without bound.
pub(crate) const BODY_BUDGET_FACTOR: u64 = 4;
/// Pause after an accept error (descriptors exhausted), so the loop does
/// not spin while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What the listener did, logged when it stops.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) accepted: AtomicU64,
    pub(super) evicted: AtomicU64,
    pub(super) refused_full: AtomicU64,
    pub(super) timed_out: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) accept_errors: AtomicU64,
}

impl Tally {
    pub(super) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The open connections: how many, and which are idle (waiting for their
/// next request), so a full table can make room by closing the longest-idle.
#[derive(Default)]
struct Table {
    open: usize,
    next_id: u64,
    idle: HashMap<u64, (Instant, Arc<Notify>)>,
}

/// What every connection task shares.
pub(super) struct Ctx {
    pub(super) limits: HttpLimits,
    /// The effective body limit (the listener's and the codec's, whichever
    /// is smaller).
    pub(super) max_body: u64,
    pub(super) jobs: std::sync::mpsc::Sender<Exchange>,
    pub(super) counters: Arc<Counters>,
    /// Bytes of request bodies that may be held at once.
    pub(super) bodies: Arc<Semaphore>,
    table: Mutex<Table>,
    pub(super) tally: Tally,
}

impl Ctx {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot for a new connection: a free one, or the longest-idle
    /// connection's (which is told to close). `None` when every connection
    /// is busy.
    fn admit(&self) -> Option<(u64, Arc<Notify>)> {
        let mut table = self.table();
        if table.open >= self.limits.max_connections {
            let oldest = table
                .idle
                .iter()
                .min_by_key(|(_, (since, _))| *since)
                .map(|(id, _)| *id)?;
            if let Some((_, evict)) = table.idle.remove(&oldest) {
                evict.notify_one();
                Tally::add(&self.tally.evicted);
            }
        }
        table.open += 1;
        table.next_id += 1;
        Some((table.next_id, Arc::new(Notify::new())))
    }

    pub(super) fn set_idle(&self, id: u64, evict: &Arc<Notify>) {
        self.table()
            .idle
            .insert(id, (Instant::now(), Arc::clone(evict)));
    }

    pub(super) fn set_busy(&self, id: u64) {
        self.table().idle.remove(&id);
    }

    pub(super) fn close(&self, id: u64) {
        let mut table = self.table();
        table.idle.remove(&id);
        table.open = table.open.saturating_sub(1);
    }
}

/// The running listener.
pub(crate) struct Listener {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Starts serving `listener` on a thread of its own; requests go to
    /// `jobs`. The worker side ends when the listener has stopped and
    /// dropped every sender.
    pub(crate) fn start(
        listener: std::net::TcpListener,
        limits: HttpLimits,
        max_body: u64,
        jobs: std::sync::mpsc::Sender<Exchange>,
        counters: Arc<Counters>,
    ) -> std::io::Result<Listener> {
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = watch::channel(false);
        // Permits are counted in u32 by acquire_many; a body over 4 GiB is
        // never allowed anyway (the codec's own bound is lower).
        let max_body = max_body
            .min(limits.max_request_bytes)
            .min(u64::from(u32::MAX));
        let budget = max_body
            .saturating_mul(BODY_BUDGET_FACTOR)
            .min(Semaphore::MAX_PERMITS as u64);
        let ctx = Arc::new(Ctx {
            limits,
            max_body,
            jobs,
            counters,
            bodies: Arc::new(Semaphore::new(budget as usize)),
            table: Mutex::new(Table::default()),
            tally: Tally::default(),
        });
        let thread = std::thread::Builder::new()
            .name("hub-listener".into())
            .spawn(move || runtime.block_on(accept_loop(listener, ctx, stopped)))?;
        Ok(Listener {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops accepting, closes idle and half-read connections, writes the
    /// replies of requests already handed to workers, and returns when
    /// every connection is closed.
    pub(crate) fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the http listener panicked");
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.halt();
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    ctx: Arc<Ctx>,
    mut stopped: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the listener");
            return;
        }
    };
    let mut tasks = JoinSet::new();
    let mut failing = false;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                failing = false;
                // Replies leave in two writes (head, body); without
                // TCP_NODELAY the second would wait for a delayed ACK.
                let _ = stream.set_nodelay(true);
                Tally::add(&ctx.tally.accepted);
                match ctx.admit() {
                    Some((id, evict)) => {
                        let ctx = Arc::clone(&ctx);
                        let stopped = stopped.clone();
                        tasks.spawn(async move {
                            serve_connection(stream, peer, id, &evict, &ctx, stopped).await;
                            ctx.close(id);
                        });
                    }
                    None => {
                        Tally::add(&ctx.tally.refused_full);
                        let ctx = Arc::clone(&ctx);
                        tasks.spawn(async move {
                            let mut stream = stream;
                            let max = ctx.limits.max_connections;
                            refuse(&mut stream, &ctx, Failure::Full { max }).await;
                        });
                    }
                }
            }
            Err(e) => {
                // Out of descriptors, or a connection reset while queued:
                // neither is a reason to stop serving. One warning per
                // streak of failures.
                Tally::add(&ctx.tally.accept_errors);
                if !failing {
                    tracing::warn!(error = %e, "accept failed; retrying every 50 ms");
                }
                failing = true;
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    _ = stopped.changed() => break,
                }
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
    let t = &ctx.tally;
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    tracing::info!(
        accepted = n(&t.accepted),
        evicted_idle = n(&t.evicted),
        refused_full = n(&t.refused_full),
        timed_out = n(&t.timed_out),
        refused = n(&t.refused),
        accept_errors = n(&t.accept_errors),
        "http listener stopped"
    );
}

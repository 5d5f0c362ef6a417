//! The listener: accepts connections on one I/O thread running a small
//! tokio runtime, under the hub's [`HttpLimits`] that concern more than
//! one connection: the connection table (a newcomer takes the place of the
//! longest-idle connection, or gets 503 when none is idle), the budget of
//! request bodies held at once, and a pause after an accept error. Each
//! connection is a task (`conn`), so thousands of idle or slow connections
//! cost a task each, not a thread. The runtime's blocking pool, bounded by
//! the hub's read connections, does the SQLite work.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::conn::{refuse, serve_connection};
use super::{Failure, Shared};
use crate::hub::config::HttpLimits;

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
    /// Routing and the blocking work.
    pub(super) shared: Arc<Shared>,
    /// hyper's HTTP/1 settings.
    pub(super) http: hyper::server::conn::http1::Builder,
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

    fn close(&self, id: u64) {
        let mut table = self.table();
        table.idle.remove(&id);
        table.open = table.open.saturating_sub(1);
    }
}

/// A connection's place in the table, given back however its task ends.
struct Slot<'a> {
    ctx: &'a Ctx,
    id: u64,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.ctx.close(self.id);
    }
}

/// The running listener.
pub(crate) struct Listener {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Starts serving `listener` on a thread of its own. Every request is
    /// answered by the time [`Listener::stop`] returns, and `shared` (with
    /// its read connections and the writer's queue) is dropped by then.
    pub(crate) fn start(
        listener: std::net::TcpListener,
        limits: HttpLimits,
        max_body: u64,
        shared: Arc<Shared>,
    ) -> std::io::Result<Listener> {
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(shared.blocking_threads())
            .thread_name("hub-blocking")
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
        let mut http = hyper::server::conn::http1::Builder::new();
        http
            // A client may shut its write side once its request is sent
            // (Fossil's HTTP/1.0 requests do); its reply still goes out.
            .half_close(true)
            .max_headers(super::conn::MAX_HEADERS)
            .max_header_size(super::conn::MAX_HEAD)
            // Our own clock covers the head and the body (408), see `conn`.
            .header_read_timeout(None)
            .auto_date_header(false);
        let ctx = Arc::new(Ctx {
            limits,
            max_body,
            shared,
            http,
            bodies: Arc::new(Semaphore::new(budget as usize)),
            table: Mutex::new(Table::default()),
            tally: Tally::default(),
        });
        let thread = std::thread::Builder::new()
            .name("hub-http".into())
            .spawn(move || runtime.block_on(accept_loop(listener, ctx, stopped)))?;
        Ok(Listener {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops accepting, closes idle and half-read connections, writes the
    /// replies of requests already read, and returns when every
    /// connection is closed.
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
                // Replies may leave in two writes (head, body); without
                // TCP_NODELAY the second would wait for a delayed ACK.
                let _ = stream.set_nodelay(true);
                Tally::add(&ctx.tally.accepted);
                let ctx = Arc::clone(&ctx);
                match ctx.admit() {
                    Some((id, evict)) => {
                        let stopped = stopped.clone();
                        tasks.spawn(async move {
                            let _slot = Slot { ctx: &ctx, id };
                            serve_connection(stream, peer, id, evict, &ctx, stopped).await;
                        });
                    }
                    None => {
                        Tally::add(&ctx.tally.refused_full);
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

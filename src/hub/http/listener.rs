//! The listener: accepts connections and reads whole requests under the
//! hub's [`HttpLimits`], on one I/O thread running a small tokio runtime, so
//! thousands of idle or slow connections cost a task each, not a thread.
//! A complete request goes to the worker threads as an [`Exchange`]; the
//! connection's task waits for the reply and writes it.
//!
//! Why not tiny_http: it gives every connection a thread, reads with no
//! deadline, hands a request to a worker before its body has arrived (so a
//! slow body holds a worker), and its accept loop ends for good on the first
//! accept error (EMFILE when descriptors run out).
//!
//! Every refusal here is an answer built by [`super::response`], the one
//! place failures become statuses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{timeout, timeout_at, Instant};

use super::wire::{self, Head, HeadError, MAX_HEAD};
use super::{is_sync, response, Answer, Failure};
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

/// How long a refusal to a client that is not reading may take to write.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Request bodies held at once, in units of the largest body: a herd of
/// clients each sending the largest body waits for room (within its read
/// timeout) instead of growing the hub without bound.
pub(crate) const BODY_BUDGET_FACTOR: u64 = 4;
/// Most bytes read and dropped after a refusal, before closing.
const LINGER_BYTES: usize = 256 * 1024;
/// Pause after an accept error (descriptors exhausted), so the loop does
/// not spin while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What the listener did, logged when it stops.
#[derive(Debug, Default)]
struct Tally {
    accepted: AtomicU64,
    evicted: AtomicU64,
    refused_full: AtomicU64,
    timed_out: AtomicU64,
    refused: AtomicU64,
    accept_errors: AtomicU64,
}

impl Tally {
    fn add(counter: &AtomicU64) {
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
struct Ctx {
    limits: HttpLimits,
    /// The effective body limit (the listener's and the codec's, whichever
    /// is smaller).
    max_body: u64,
    jobs: std::sync::mpsc::Sender<Exchange>,
    counters: Arc<Counters>,
    /// Bytes of request bodies that may be held at once.
    bodies: Arc<Semaphore>,
    table: Mutex<Table>,
    tally: Tally,
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

    fn set_idle(&self, id: u64, evict: &Arc<Notify>) {
        self.table()
            .idle
            .insert(id, (Instant::now(), Arc::clone(evict)));
    }

    fn set_busy(&self, id: u64) {
        self.table().idle.remove(&id);
    }

    fn close(&self, id: u64) {
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

/// How reading one request ended.
enum Read {
    /// A whole request, and its body's share of the budget.
    Request(Head, Vec<u8>, Option<OwnedSemaphorePermit>),
    /// The client closed or reset the connection between requests.
    Gone,
    /// The request cannot be served; the answer closes the connection.
    Refused { failure: Failure, sync: bool },
}

/// Serves one connection's requests in order until it closes, errs, idles
/// out, is evicted, or the listener stops.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    evict: &Arc<Notify>,
    ctx: &Ctx,
    mut stopped: watch::Receiver<bool>,
) {
    let mut conn = BufReader::new(stream);
    loop {
        // Idle: wait for the first byte of the next request (a pipelined
        // one may already be buffered).
        ctx.set_idle(id, evict);
        let first = tokio::select! {
            r = timeout(ctx.limits.idle_timeout, conn.fill_buf()) => {
                matches!(r, Ok(Ok(bytes)) if !bytes.is_empty())
            }
            () = evict.notified() => false,
            _ = stopped.changed() => false,
        };
        ctx.set_busy(id);
        if !first || *stopped.borrow() {
            return;
        }
        let deadline = Instant::now() + ctx.limits.read_timeout;
        let read = tokio::select! {
            r = timeout_at(deadline, read_request(&mut conn, ctx)) => match r {
                Ok(read) => read,
                Err(_) => {
                    Tally::add(&ctx.tally.timed_out);
                    Read::Refused {
                        failure: Failure::Timeout { after: ctx.limits.read_timeout },
                        sync: false,
                    }
                }
            },
            // The request has not arrived: it was never received.
            _ = stopped.changed() => return,
        };
        let (head, body, _budget) = match read {
            Read::Request(head, body, budget) => (head, body, budget),
            Read::Gone => return,
            Read::Refused { failure, sync } => {
                Tally::add(&ctx.tally.refused);
                if sync {
                    Counters::add(&ctx.counters.requests, 1);
                }
                refuse(conn.get_mut(), ctx, failure).await;
                return;
            }
        };
        let keep_alive = head.keep_alive();
        let (reply, answer) = oneshot::channel();
        let exchange = Exchange {
            request: HttpRequest { head, body, peer },
            reply,
        };
        let reply = match ctx.jobs.send(exchange) {
            Ok(()) => answer.await.ok(),
            Err(_) => None,
        };
        // No reply: the workers are gone, the hub is stopping.
        let reply = reply.unwrap_or_else(|| response(Answer::Failed(Failure::WriterStopped)));
        let keep_alive = keep_alive && !*stopped.borrow();
        if !write_reply(conn.get_mut(), &reply, keep_alive, ctx.limits.read_timeout).await
            || !keep_alive
        {
            return;
        }
    }
}

/// Reads one request, head then body, within the limits (the caller bounds
/// the time).
async fn read_request(conn: &mut BufReader<TcpStream>, ctx: &Ctx) -> Read {
    let head = match read_head(conn).await {
        Ok(Some(head)) => head,
        Ok(None) => return Read::Gone,
        Err(e) => {
            let failure = match e {
                HeadError::TooLarge => Failure::HeadTooLarge,
                e => Failure::BadHead(e),
            };
            return Read::Refused {
                failure,
                sync: false,
            };
        }
    };
    let sync = is_sync(&head.method, head.header("Content-Type"));
    let length = match head.content_length() {
        Ok(n) => n,
        Err(e) => {
            let failure = match e {
                HeadError::Chunked(_) => Failure::LengthRequired(e),
                e => Failure::BadHead(e),
            };
            return Read::Refused { failure, sync };
        }
    };
    if length > ctx.max_body {
        // Refused before a byte of the body is read.
        return Read::Refused {
            failure: Failure::TooLarge { max: ctx.max_body },
            sync,
        };
    }
    // Room for the body among all bodies held, given back once the reply is
    // in (the worker has dropped the body by then). `length` is at most
    // `max_body`, which fits u32.
    let budget = match u32::try_from(length).unwrap_or(u32::MAX) {
        0 => None,
        n => match Arc::clone(&ctx.bodies).acquire_many_owned(n).await {
            Ok(permit) => Some(permit),
            Err(_) => return Read::Gone,
        },
    };
    if length > 0
        && head.expects_continue()
        && conn.get_mut().write_all(wire::CONTINUE).await.is_err()
    {
        return Read::Gone;
    }
    // Grows with what arrives, not with what the head declares.
    let mut body = Vec::with_capacity(usize::try_from(length.min(64 * 1024)).unwrap_or(0));
    match (&mut *conn).take(length).read_to_end(&mut body).await {
        Ok(n) if n as u64 == length => Read::Request(head, body, budget),
        Ok(n) => Read::Refused {
            failure: Failure::ShortBody {
                got: n as u64,
                declared: length,
            },
            sync,
        },
        Err(e) => Read::Refused {
            failure: Failure::BadBody(e),
            sync,
        },
    }
}

/// Reads a request head; `None` when the connection closes before one
/// starts.
async fn read_head(conn: &mut BufReader<TcpStream>) -> Result<Option<Head>, HeadError> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = match conn.fill_buf().await {
            Ok(chunk) => chunk,
            Err(_) if buf.is_empty() => return Ok(None),
            Err(_) => return Err(HeadError::Malformed(httparse::Error::Token)),
        };
        if chunk.is_empty() {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(HeadError::Malformed(httparse::Error::Token))
            };
        }
        let scanned = buf.len();
        let taken = chunk.len();
        buf.extend_from_slice(chunk);
        if let Some(end) = wire::head_end(&buf, scanned).filter(|&end| end <= MAX_HEAD) {
            // Leave whatever follows the head (the body, a pipelined
            // request) in the reader.
            conn.consume(taken - (buf.len() - end));
            buf.truncate(end);
            return wire::parse_head(&buf).map(Some);
        }
        conn.consume(taken);
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Writes `reply` within `bound`; false when the client did not take it.
async fn write_reply(
    stream: &mut TcpStream,
    reply: &HttpResponse,
    keep_alive: bool,
    bound: Duration,
) -> bool {
    let head = wire::reply_head(
        reply.status,
        reply.content_type,
        reply.body.len(),
        keep_alive,
    );
    let write = async {
        stream.write_all(&head).await?;
        stream.write_all(&reply.body).await?;
        stream.flush().await
    };
    match timeout(bound, write).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "client went away before the reply");
            false
        }
        Err(_) => {
            tracing::debug!("client did not take its reply in time");
            false
        }
    }
}

/// Answers a request the listener refuses, and closes the connection.
///
/// The close lingers: after the reply, the write side is shut and what the
/// client still sends (the body of a refused request) is read and dropped
/// for a moment, because closing with unread bytes resets the connection,
/// and a reset can destroy the reply before the client reads it.
async fn refuse(stream: &mut TcpStream, ctx: &Ctx, failure: Failure) {
    Counters::add(&ctx.counters.http_requests, 1);
    let reply = response(Answer::Failed(failure));
    if !write_reply(stream, &reply, false, REFUSAL_WRITE_TIMEOUT).await {
        return;
    }
    let _ = stream.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 8192];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = timeout(REFUSAL_WRITE_TIMEOUT, drain).await;
}

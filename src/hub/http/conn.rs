//! One connection. hyper parses and frames its HTTP/1.x requests and
//! writes the replies (keep-alive, pipelining in order, `Expect:
//! 100-continue`, ambiguous lengths refused); this file adds the limits
//! hyper has no knob for:
//!
//! - one clock per request: the request (head and body) must arrive within
//!   the read timeout of its first byte (408), its reply must be taken
//!   within the same bound, and a connection waiting for its next request
//!   is closed after the idle timeout;
//! - whether the connection is idle, for the connection table: [`Framed`]
//!   hands hyper no byte past the end of the head or body it is reading,
//!   so bytes of a next (pipelined) request stay in the socket, where they
//!   show that the connection is busy and start that request's clock;
//! - bodies: a `Content-Length` body is refused (413) before any of it is
//!   read when it is over the limit, waits for room in the body budget,
//!   and is read whole before the request is served. A `Transfer-Encoding`
//!   body is refused with 411: Fossil's clients always send a length, and
//!   without one neither the 413 nor the budget could be decided up front.
//!
//! A request refused while it is read is answered with `Connection:
//! close`; the close lingers (what the client still sends is read and
//! dropped for a moment), because closing with unread bytes resets the
//! connection, and a reset can destroy the reply before the client reads it.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::http::request::Parts as Head;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit};
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use super::server::{Ctx, Tally};
use super::{is_sync, response, route, Answer, Failure, HttpResponse};
use crate::hub::stats::Counters;

/// Largest request head (request line and headers), in bytes (431).
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// Most headers one request may carry (431).
pub(super) const MAX_HEADERS: usize = 64;
/// How long a refusal to a client that is not reading may take to write.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Most bytes read and dropped after a refusal, before closing.
const LINGER_BYTES: usize = 256 * 1024;

/// Where a connection is in its request cycle, which decides its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the next request since `since`: closed at the idle
    /// timeout, or to make room in a full table.
    Idle { since: Instant },
    /// A head is arriving; the request must be in by `deadline`.
    Head { deadline: Instant },
    /// hyper has the head and the body is being read (under the same
    /// deadline, kept by the reading).
    Body,
    /// The request is read whole and being served: no clock.
    Serving,
    /// The reply is with hyper and must be written by `deadline`.
    Replying { deadline: Instant },
}

/// Which bytes hyper may read next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    /// A head, up to its blank line; `newlines` is how far into one the
    /// bytes so far end (a terminator may straddle reads).
    Head { newlines: u8 },
    /// A body with `left` bytes to go.
    Body { left: u64 },
    /// Between a head and its dispatch, or after a refusal: no bound.
    Unframed,
}

/// Where a head's blank line is in `bytes`, scanning on from `newlines`:
/// `Ok(end)` just past it, or `Err(newlines)` at the end of `bytes`. Bare
/// LF line ends count, as they do for hyper's parser.
fn head_end(mut newlines: u8, bytes: &[u8]) -> Result<usize, u8> {
    for (i, &b) in bytes.iter().enumerate() {
        newlines = match (newlines, b) {
            (1 | 2, b'\n') => return Ok(i + 1),
            (_, b'\n') => 1,
            (1, b'\r') => 2,
            _ => 0,
        };
    }
    Err(newlines)
}

struct State {
    phase: Phase,
    segment: Segment,
    /// A request was refused while it was read: the close lingers.
    refused: bool,
}

/// One connection's clock and framing, shared by its task, its socket
/// wrapper and its requests.
struct Conn {
    id: u64,
    evict: Arc<Notify>,
    ctx: Arc<Ctx>,
    state: Mutex<State>,
    /// Told whenever the phase changes, so the task re-arms its clock.
    changed: Notify,
}

impl Conn {
    fn new(id: u64, evict: Arc<Notify>, ctx: &Arc<Ctx>) -> Conn {
        ctx.set_idle(id, &evict);
        Conn {
            id,
            evict,
            ctx: Arc::clone(ctx),
            state: Mutex::new(State {
                phase: Phase::Idle {
                    since: Instant::now(),
                },
                segment: Segment::Head { newlines: 0 },
                refused: false,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn phase(&self) -> Phase {
        self.lock().phase
    }

    fn enter(&self, state: &mut State, phase: Phase) {
        match (state.phase, phase) {
            (Phase::Idle { .. }, Phase::Idle { .. }) => {}
            (Phase::Idle { .. }, _) => self.ctx.set_busy(self.id),
            (_, Phase::Idle { .. }) => self.ctx.set_idle(self.id, &self.evict),
            _ => {}
        }
        state.phase = phase;
        self.changed.notify_one();
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.ctx.limits.read_timeout
    }

    /// Bytes came off the socket: an idle connection's next request began.
    fn arrived(&self) {
        let mut state = self.lock();
        if let Phase::Idle { .. } = state.phase {
            let deadline = self.deadline();
            self.enter(&mut state, Phase::Head { deadline });
        }
    }

    /// hyper has a request's head and calls the service: the body, of
    /// `length` bytes (`None`: not framed by a length), is next. Returns
    /// the request's deadline.
    fn dispatched(&self, length: Option<u64>) -> Instant {
        let mut state = self.lock();
        let deadline = match state.phase {
            Phase::Head { deadline } => deadline,
            // A pipelined head read with the previous request.
            _ => self.deadline(),
        };
        state.segment = match length {
            Some(0) => Segment::Head { newlines: 0 },
            Some(left) => Segment::Body { left },
            None => Segment::Unframed,
        };
        self.enter(&mut state, Phase::Body);
        deadline
    }

    fn serving(&self) {
        let mut state = self.lock();
        self.enter(&mut state, Phase::Serving);
    }

    fn replying(&self, refused: bool) {
        let mut state = self.lock();
        state.refused |= refused;
        let deadline = self.deadline();
        self.enter(&mut state, Phase::Replying { deadline });
    }

    /// Whether the client may still be sending when hyper closes: a
    /// request was refused half read, or hyper refused a head itself.
    fn lingers(&self) -> bool {
        let state = self.lock();
        state.refused || matches!(state.phase, Phase::Head { .. })
    }

    /// hyper has written all it had; after a reply, the connection waits
    /// for its next request, unless its first bytes are already here.
    fn flushed(&self, next_waiting: bool) {
        let mut state = self.lock();
        if let Phase::Replying { .. } = state.phase {
            let next = if next_waiting {
                Phase::Head {
                    deadline: self.deadline(),
                }
            } else {
                Phase::Idle {
                    since: Instant::now(),
                }
            };
            self.enter(&mut state, next);
        }
    }

    /// Most bytes hyper may read now, before looking at them: `None` while
    /// a head is read (it ends at its blank line).
    fn bound(&self) -> Option<u64> {
        match self.lock().segment {
            Segment::Head { .. } => None,
            Segment::Body { left } => Some(left),
            Segment::Unframed => Some(u64::MAX),
        }
    }

    /// How many of `ready`, the next bytes of a head in the socket, hyper
    /// may have: up to its blank line.
    fn head_bytes(&self, ready: &[u8]) -> usize {
        match self.lock().segment {
            Segment::Head { newlines } => head_end(newlines, ready).unwrap_or(ready.len()),
            _ => ready.len(),
        }
    }

    /// hyper took `bytes` off the socket.
    fn consumed(&self, bytes: &[u8]) {
        let mut state = self.lock();
        state.segment = match state.segment {
            Segment::Head { newlines } => match head_end(newlines, bytes) {
                Ok(_) => Segment::Unframed,
                Err(newlines) => Segment::Head { newlines },
            },
            Segment::Body { left } => match left.saturating_sub(bytes.len() as u64) {
                0 => Segment::Head { newlines: 0 },
                left => Segment::Body { left },
            },
            Segment::Unframed => Segment::Unframed,
        };
    }

    fn reads_head(&self) -> bool {
        matches!(self.lock().segment, Segment::Head { .. })
    }
}

/// The socket as hyper sees it: reads end where the current head or body
/// ends, and arrivals and flushes move the connection's clock.
struct Framed<'a> {
    stream: &'a mut TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Framed<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = match this.conn.bound() {
            Some(left) => usize::try_from(left).unwrap_or(usize::MAX),
            None => {
                // Look first, then take only the head.
                let before = out.filled().len();
                ready!(this.stream.poll_peek(cx, out))?;
                let n = this.conn.head_bytes(&out.filled()[before..]);
                out.set_filled(before);
                n
            }
        };
        let n = n.min(out.remaining());
        if n == 0 {
            return Poll::Ready(Ok(())); // end of stream
        }
        let mut part = ReadBuf::new(out.initialize_unfilled_to(n));
        ready!(Pin::new(&mut *this.stream).poll_read(cx, &mut part))?;
        let taken = part.filled().len();
        this.conn.consumed(part.filled());
        out.advance(taken);
        if taken > 0 {
            this.conn.arrived();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Framed<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut *this.stream).poll_flush(cx))?;
        if let Phase::Replying { .. } = this.conn.phase() {
            // hyper flushes once a reply is written whole.
            let mut first = [0u8; 1];
            let mut peek = ReadBuf::new(&mut first);
            let waiting = this.conn.reads_head()
                && matches!(this.stream.poll_peek(cx, &mut peek), Poll::Ready(Ok(1)));
            this.conn.flushed(waiting);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().stream).poll_shutdown(cx)
    }
}

/// How a connection's hyper side ended.
enum End {
    /// hyper finished (the client closed, or a reply said close).
    Finished,
    /// Idle too long, evicted, a reply not taken, or the hub stopping.
    Dropped,
    /// A head did not arrive within the read timeout.
    HeadTimedOut,
}

/// Serves one connection until it closes, idles out, is evicted, or the
/// listener stops (requests already read are answered first).
pub(super) async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    evict: Arc<Notify>,
    ctx: &Arc<Ctx>,
    stopped: watch::Receiver<bool>,
) {
    let conn = Arc::new(Conn::new(id, evict, ctx));
    match drive(&mut stream, peer, &conn, stopped).await {
        End::Finished if conn.lingers() => linger(&mut stream).await,
        End::Finished => {}
        End::Dropped => {}
        End::HeadTimedOut => {
            Tally::add(&ctx.tally.timed_out);
            let after = ctx.limits.read_timeout;
            refuse(&mut stream, ctx, Failure::Timeout { after }).await;
        }
    }
}

/// Runs hyper on the connection under its clock.
async fn drive(
    stream: &mut TcpStream,
    peer: SocketAddr,
    conn: &Arc<Conn>,
    mut stopped: watch::Receiver<bool>,
) -> End {
    let ctx = &conn.ctx;
    let service = {
        let conn = Arc::clone(conn);
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let length = match request.headers().contains_key(TRANSFER_ENCODING) {
                true => None,
                false => request.body().size_hint().exact(),
            };
            let deadline = conn.dispatched(length);
            respond(request, deadline, peer, Arc::clone(&conn))
        })
    };
    let io = TokioIo::new(Framed {
        stream,
        conn: Arc::clone(conn),
    });
    let http = ctx.http.serve_connection(io, service);
    tokio::pin!(http);
    let mut stopping = false;
    loop {
        let phase = conn.phase();
        let wake = match phase {
            Phase::Idle { since } => Some(since + ctx.limits.idle_timeout),
            Phase::Head { deadline } | Phase::Replying { deadline } => Some(deadline),
            Phase::Body | Phase::Serving => None,
        };
        tokio::select! {
            done = http.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "connection ended");
                }
                return End::Finished;
            }
            () = sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                if conn.phase() == phase {
                    return match phase {
                        Phase::Head { .. } => End::HeadTimedOut,
                        _ => End::Dropped,
                    };
                }
            }
            () = conn.changed.notified() => {}
            () = conn.evict.notified() => return End::Dropped,
            _ = stopped.changed(), if !stopping => match phase {
                // Not received yet: it never will be.
                Phase::Idle { .. } | Phase::Head { .. } | Phase::Body => return End::Dropped,
                _ => {
                    http.as_mut().graceful_shutdown();
                    stopping = true;
                }
            },
        }
    }
}

/// hyper's service: reads the body under the limits, serves the request,
/// and makes the answer an HTTP response.
async fn respond(
    request: Request<Incoming>,
    deadline: Instant,
    peer: SocketAddr,
    conn: Arc<Conn>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let ctx = &conn.ctx;
    Counters::add(&ctx.shared.counters.http_requests, 1);
    let (head, body) = request.into_parts();
    let answer = match read_body(&head, body, deadline, ctx).await {
        Ok((body, budget)) => {
            conn.serving();
            let answer = route(&head, body, peer.ip().to_string(), &ctx.shared).await;
            drop(budget);
            answer
        }
        Err(failure) => {
            Tally::add(&ctx.tally.refused);
            if let Failure::Timeout { .. } = failure {
                Tally::add(&ctx.tally.timed_out);
            }
            if is_sync(&head) {
                Counters::add(&ctx.shared.counters.requests, 1);
            }
            Answer::Failed(failure)
        }
    };
    let reply = response(answer);
    conn.replying(reply.close);
    Ok(into_hyper(reply))
}

/// Reads a request's body whole, within its deadline, once the body budget
/// has room for it; with it, its share of the budget.
async fn read_body(
    head: &Head,
    body: Incoming,
    deadline: Instant,
    ctx: &Ctx,
) -> Result<(Vec<u8>, Option<OwnedSemaphorePermit>), Failure> {
    if let Some(coding) = head.headers.get(TRANSFER_ENCODING) {
        let coding = String::from_utf8_lossy(coding.as_bytes()).into_owned();
        return Err(Failure::LengthRequired { coding });
    }
    // hyper has checked the length headers (one number) and delivers
    // exactly that many bytes; without one, a request has no body.
    let declared = body.size_hint().exact().unwrap_or(0);
    if declared > ctx.max_body {
        // Refused before a byte of the body is read (nor 100 Continue sent).
        return Err(Failure::TooLarge { max: ctx.max_body });
    }
    if declared == 0 {
        return Ok((Vec::new(), None));
    }
    let read = async {
        // `declared` is at most `max_body`, which fits u32.
        let permits = u32::try_from(declared).unwrap_or(u32::MAX);
        let budget = Arc::clone(&ctx.bodies)
            .acquire_many_owned(permits)
            .await
            .map_err(|_| Failure::WriterStopped)?;
        // Grows with what arrives, not with what the head declares.
        let mut data = Vec::with_capacity(usize::try_from(declared.min(64 * 1024)).unwrap_or(0));
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let got = data.len() as u64;
            let frame = frame.map_err(|_| Failure::BadBody { got, declared })?;
            if let Some(chunk) = frame.data_ref() {
                data.extend_from_slice(chunk);
            }
        }
        Ok((data, Some(budget)))
    };
    let after = ctx.limits.read_timeout;
    timeout_at(deadline, read)
        .await
        .unwrap_or(Err(Failure::Timeout { after }))
}

fn into_hyper(reply: HttpResponse) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if reply.close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Answers a connection outside hyper (its head never came, or the table is
/// full), and closes it.
pub(super) async fn refuse(stream: &mut TcpStream, ctx: &Ctx, failure: Failure) {
    Counters::add(&ctx.shared.counters.http_requests, 1);
    let reply = response(Answer::Failed(failure));
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.content_type,
        reply.body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&reply.body).await?;
        stream.flush().await
    };
    if let Ok(Ok(())) = timeout(REFUSAL_WRITE_TIMEOUT, write).await {
        linger(stream).await;
    }
}

/// Shuts the write side and reads what the client still sends, for a
/// moment, before the connection is dropped.
async fn linger(stream: &mut TcpStream) {
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

#[cfg(test)]
mod tests {
    use super::head_end;

    #[test]
    fn head_end_finds_crlf_and_bare_lf_blank_lines_across_reads() {
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nNEXT";
        assert_eq!(head_end(0, req), Ok(req.len() - 4));
        assert_eq!(head_end(0, b"GET / HTTP/1.0\n\nrest"), Ok(16));
        assert_eq!(head_end(0, b"GET / HTTP/1.1\r\nHost: x\r\n"), Err(1));
        // A terminator split across two reads is still found.
        let Err(newlines) = head_end(0, b"GET / HTTP/1.1\r\n\r") else {
            panic!("no end yet");
        };
        assert_eq!(head_end(newlines, b"\nbody"), Ok(1));
        assert_eq!(head_end(0, b"a\r\rb\n"), Err(1));
    }
}

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
//!
//! Files: `clock` (the connection's phase, deadlines and framing state,
//! [`Conn`]), `framed` (the socket as hyper sees it, [`Framed`]); this
//! file drives hyper on it and reads bodies.

mod clock;
mod framed;

use clock::{Conn, Phase};
use framed::Framed;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::http::request::Parts as Head;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    Counters::add(&ctx.shared.counters.bytes_out, reply.body.len() as u64);
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
    Counters::add(&ctx.shared.counters.bytes_out, reply.body.len() as u64);
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

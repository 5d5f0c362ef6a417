//! One connection: reads its requests in order, each whole (head, then
//! body) within the read timeout and the size limits, hands it to the
//! workers and writes the reply; waits for the next one up to the idle
//! timeout. Refusals are answered and close the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch, Notify, OwnedSemaphorePermit};
use tokio::time::{timeout, timeout_at, Instant};

use super::listener::{Ctx, Exchange, HttpRequest, HttpResponse, Tally};
use super::wire::{self, Head, HeadError, MAX_HEAD};
use super::{is_sync, response, Answer, Failure};
use crate::hub::stats::Counters;

/// How long a refusal to a client that is not reading may take to write.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Most bytes read and dropped after a refusal, before closing.
const LINGER_BYTES: usize = 256 * 1024;

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
pub(super) async fn serve_connection(
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
pub(super) async fn refuse(stream: &mut TcpStream, ctx: &Ctx, failure: Failure) {
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

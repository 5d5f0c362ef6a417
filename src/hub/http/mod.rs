//! The HTTP side: hyper's HTTP/1.1 server on one async I/O thread
//! (`server`: the accept loop and the connection table; `conn`: one
//! connection, with the limits hyper has no knob for), and routing.
//!
//! Routing follows `fossil server`: any POST whose content type is one of
//! Fossil's (`application/x-fossil`, `-debug`, `-uncompressed`) is a sync
//! request, whatever the path (reference 5.1). Everything that touches
//! SQLite runs on a bounded pool of blocking threads, each run with a
//! read-only connection of its own (WAL lets readers run beside the
//! writer): pulls and clones are served there in one read transaction, and
//! a push is decoded there and handed to the writer thread, whose reply the
//! request then awaits as a future: a push waiting for the writer or for
//! its turn holds no thread. `GET /healthz` and `GET /stats` answer for
//! operators and herd; anything else is 404.
//!
//! [`response`] is the one place a request's result, or the refusal of
//! it, becomes an HTTP status. Heads that are not HTTP/1.x or are over
//! their limits never reach it: hyper answers those itself (400, 431).

mod conn;
mod server;

use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::http::request::Parts as Head;
use tokio::sync::{oneshot, Semaphore};

pub(crate) use server::Listener;

use super::broadcast::{chain, NatsHealth};
use super::stats::{Counters, RepoFigures};
use super::writer::Job;
use crate::coord::{TRACEPARENT_HEADER, TRACESTATE_HEADER};
use crate::repo::Repository;
use crate::telemetry::W3c;
use crate::wire::HubStats;
use crate::xfer::{
    handle_decoded, handle_with, ContentType, Decoded, Kind, Request, Response, ServerConfig,
};

/// What every request shares.
pub(crate) struct Shared {
    /// The sync server's limits and budgets.
    pub(crate) config: ServerConfig,
    /// The hub's counters.
    pub(crate) counters: Arc<Counters>,
    /// The NATS connection, when broadcasting.
    pub(crate) nats: Option<NatsHealth>,
    /// The writer's queue.
    pub(crate) writer: SyncSender<Job>,
    /// Read connections not in use; a permit of `reading` holds one.
    readers: Mutex<Vec<Repository>>,
    /// One permit per read connection: requests beyond them wait as futures.
    reading: Arc<Semaphore>,
}

impl Shared {
    /// Everything requests share; `readers` bound the blocking work that
    /// runs at once.
    pub(crate) fn new(
        config: ServerConfig,
        counters: Arc<Counters>,
        nats: Option<NatsHealth>,
        writer: SyncSender<Job>,
        readers: Vec<Repository>,
    ) -> Shared {
        Shared {
            config,
            counters,
            nats,
            writer,
            reading: Arc::new(Semaphore::new(readers.len())),
            readers: Mutex::new(readers),
        }
    }

    /// How many requests may run blocking work at once.
    fn blocking_threads(&self) -> usize {
        self.reading.available_permits().max(1)
    }
}

/// What a request comes to, before it becomes HTTP.
enum Answer {
    /// A sync reply (always HTTP 200: Fossil reports errors in cards).
    Sync {
        content_type: ContentType,
        body: Vec<u8>,
    },
    /// A JSON document.
    Json(String),
    /// `GET /healthz` found everything usable.
    Healthy,
    /// The request could not be served.
    Failed(Failure),
}

/// Why a request could not be served; [`response`] picks the status.
enum Failure {
    /// No route: not a sync request, `/healthz` or `/stats`.
    NotFound,
    /// The declared body is over the request size limit (413).
    TooLarge { max: u64 },
    /// A `Transfer-Encoding` body: the hub needs a length (411).
    LengthRequired { coding: String },
    /// The body ended or failed before its declared length (400).
    BadBody { got: u64, declared: u64 },
    /// The request did not arrive within the read timeout (408).
    Timeout { after: Duration },
    /// Every connection slot is busy (503).
    Full { max: usize },
    /// The writer thread is gone (503; only while stopping).
    WriterStopped,
    /// The repository cannot be read (503).
    Repository(crate::repo::RepoError),
    /// Broadcasting is configured and NATS is disconnected (503).
    NatsDisconnected,
    /// `/stats` could not be encoded (500).
    Encode(serde_json::Error),
    /// Serving the request panicked (500); the hub goes on.
    Panicked,
}

/// A reply to write.
struct HttpResponse {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    /// The request was refused before it was read whole: the connection
    /// closes after the reply.
    close: bool,
}

/// The `Content-Type` of a request, when it is text.
fn content_type(head: &Head) -> Option<&str> {
    head.headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// Whether a request with this head is a sync request.
fn is_sync(head: &Head) -> bool {
    head.method == hyper::Method::POST
        && content_type(head).is_some_and(|ct| ContentType::parse(ct).is_ok())
}

/// Serves a request read whole.
async fn route(head: &Head, body: Vec<u8>, peer: String, shared: &Arc<Shared>) -> Answer {
    if is_sync(head) {
        return sync(head, body, peer, shared).await;
    }
    match (head.method.as_str(), head.uri.path()) {
        ("GET", "/healthz") => healthz(shared).await,
        ("GET", "/stats") => stats(shared).await,
        ("GET", "/counters") => match serde_json::to_string(&shared.counters.live()) {
            Ok(json) => Answer::Json(json),
            Err(e) => Answer::Failed(Failure::Encode(e)),
        },
        _ => Answer::Failed(Failure::NotFound),
    }
}

/// Runs `work` on a blocking thread with a read connection of its own,
/// after waiting (as a future, holding no thread) for one to be free. A
/// panic in `work` is answered 500 and the connection goes back to the pool.
async fn blocking<T: Send + 'static>(
    shared: &Arc<Shared>,
    work: impl FnOnce(&Repository, &Shared) -> T + Send + 'static,
) -> Result<T, Failure> {
    let permit = Arc::clone(&shared.reading)
        .acquire_owned()
        .await
        .map_err(|_| Failure::WriterStopped)?;
    let shared = Arc::clone(shared);
    // The reader goes back inside the blocking task, so a request dropped
    // while it runs (client gone) loses nothing.
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let pool = || {
            shared
                .readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        let reader = pool().pop().expect("every permit stands for a free reader");
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&reader, &shared)));
        pool().push(reader);
        out
    });
    match task.await {
        Ok(Ok(out)) => Ok(out),
        _ => Err(Failure::Panicked),
    }
}

/// How the blocking part of a sync request ended.
enum Served {
    /// Answered there (a pull, a clone, an undecodable body).
    Reply(Box<Response>),
    /// Handed to the writer, which answers after its COMMIT.
    Pushed(oneshot::Receiver<Response>),
    /// The writer is gone.
    Stopped,
}

/// Serves a sync request: decoding and reads on a blocking thread, pushes
/// on the writer.
async fn sync(head: &Head, body: Vec<u8>, peer: String, shared: &Arc<Shared>) -> Answer {
    Counters::add(&shared.counters.requests, 1);
    let header = |name: &str| {
        head.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let trace = W3c {
        traceparent: header(TRACEPARENT_HEADER),
        tracestate: header(TRACESTATE_HEADER),
    };
    let span = tracing::info_span!(
        "hub.xfer",
        "cards.in" = tracing::field::Empty,
        "cards.out" = tracing::field::Empty,
        "artifacts.received" = tracing::field::Empty,
        "artifacts.sent" = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    // A child of the pushing or pulling operation; a request without a
    // trace context joins the trial's trace through herd's root.
    let parent = match &trace.traceparent {
        Some(_) => W3c {
            traceparent: trace.traceparent.clone(),
            tracestate: trace.tracestate.clone(),
        },
        None => W3c::from_env(),
    };
    parent.adopt(&span);
    let content_type = content_type(head).unwrap_or_default().to_string();
    let in_span = span.clone();
    let served = blocking(shared, move |reader, shared| {
        in_span.in_scope(|| serve_sync(reader, shared, &content_type, &body, peer, trace))
    })
    .await;
    let response = match served {
        Ok(Served::Reply(response)) => *response,
        Ok(Served::Pushed(reply)) => match reply.await {
            Ok(response) => response,
            Err(_) => return Answer::Failed(Failure::WriterStopped),
        },
        Ok(Served::Stopped) => return Answer::Failed(Failure::WriterStopped),
        Err(failure) => return Answer::Failed(failure),
    };
    let o = &response.outcome;
    let outcome = if !o.advances.is_empty() {
        "accepted"
    } else if !o.refusals.is_empty() {
        "refused"
    } else if o.failure.is_some() {
        "failed"
    } else {
        "read"
    };
    span.record("cards.in", count(o.cards_in));
    span.record("cards.out", count(o.cards_out));
    span.record("artifacts.received", count(o.artifacts_received));
    span.record("artifacts.sent", count(o.artifacts_sent));
    span.record("outcome", outcome);
    if let Some(failure) = &o.failure {
        span.in_scope(|| tracing::debug!(failure = %failure, "sync request failed"));
    }
    Answer::Sync {
        content_type: response.content_type,
        body: response.body,
    }
}

/// The blocking part of [`sync`], inside its `hub.xfer` span.
fn serve_sync(
    reader: &Repository,
    shared: &Shared,
    content_type: &str,
    body: &[u8],
    peer: String,
    trace: W3c,
) -> Served {
    let request = Request {
        content_type,
        body,
        peer: Some(&peer),
    };
    let decoded = match Decoded::new(&request, &shared.config.limits) {
        // Undecodable: the server function builds the error card reply.
        Err(_) => return Served::Reply(Box::new(handle_with(reader, &request, &shared.config))),
        Ok(decoded) => decoded,
    };
    match decoded.kind() {
        Kind::ReadOnly => Served::Reply(Box::new(read_snapshot(reader, || {
            handle_decoded(reader, &decoded, Some(&peer), &shared.config)
        }))),
        Kind::Write => {
            Counters::add(&shared.counters.writes, 1);
            Counters::add(&shared.counters.backlog, 1);
            let (reply, answer) = oneshot::channel();
            let job = Job {
                decoded,
                content_type: ContentType::parse(content_type).unwrap_or(ContentType::Fossil),
                peer: Some(peer),
                trace: trace_of(&tracing::Span::current()).unwrap_or(trace),
                reply,
            };
            // Blocks this pool thread only while the writer's queue is full.
            match shared.writer.send(job) {
                Ok(()) => Served::Pushed(answer),
                Err(_) => {
                    Counters::sub(&shared.counters.backlog, 1);
                    Served::Stopped
                }
            }
        }
    }
}

/// A count as a span attribute: i64, since a u64 would become a string.
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The trace context of `span` as broadcast headers, when spans are
/// exported: a push's trunk advance and tip broadcast then hang under its
/// `hub.xfer` span.
fn trace_of(span: &tracing::Span) -> Option<W3c> {
    let w = W3c::of(span);
    w.traceparent.is_some().then_some(w)
}

async fn healthz(shared: &Arc<Shared>) -> Answer {
    let read = blocking(shared, |reader, _| {
        read_snapshot(reader, || reader.trunk_tip())
    });
    match read.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Answer::Failed(Failure::Repository(e)),
        Err(failure) => return Answer::Failed(failure),
    }
    match &shared.nats {
        Some(nats) if !nats.connected() => Answer::Failed(Failure::NatsDisconnected),
        _ => Answer::Healthy,
    }
}

async fn stats(shared: &Arc<Shared>) -> Answer {
    let read = blocking(shared, |reader, _| {
        read_snapshot(reader, || RepoFigures::read(reader))
    });
    match read.await {
        Ok(Ok(figures)) => {
            let stats = HubStats::new(figures, &shared.counters);
            match serde_json::to_string(&stats) {
                Ok(json) => Answer::Json(json),
                Err(e) => Answer::Failed(Failure::Encode(e)),
            }
        }
        Ok(Err(e)) => Answer::Failed(Failure::Repository(e)),
        Err(failure) => Answer::Failed(failure),
    }
}

/// Runs `f` in one read transaction on `repo`, so its queries see one
/// committed state even while the writer commits.
fn read_snapshot<T>(repo: &Repository, f: impl FnOnce() -> T) -> T {
    let began = repo.conn.execute_batch("BEGIN DEFERRED").is_ok();
    let out = f();
    if began {
        let _ = repo.conn.execute_batch("COMMIT");
    }
    out
}

const TEXT: &str = "text/plain; charset=utf-8";

/// The one place an answer becomes an HTTP response, and a failure an
/// HTTP status.
fn response(answer: Answer) -> HttpResponse {
    let (status, content_type, body, close) = match answer {
        Answer::Sync { content_type, body } => (200, content_type.as_str(), body, false),
        Answer::Json(json) => (200, "application/json", json.into_bytes(), false),
        Answer::Healthy => (200, TEXT, b"ok\n".to_vec(), false),
        Answer::Failed(failure) => {
            let (status, text) = match &failure {
                Failure::NotFound => (404, "not found".to_string()),
                Failure::TooLarge { max } => (413, format!("request body over {max} bytes")),
                Failure::LengthRequired { coding } => (
                    411,
                    format!("transfer-encoding {coding:?} is not supported; send content-length"),
                ),
                Failure::BadBody { got, declared } => (
                    400,
                    format!("request body ended after {got} of {declared} bytes"),
                ),
                Failure::Timeout { after } => (
                    408,
                    format!("request not received within {} ms", after.as_millis()),
                ),
                Failure::Full { max } => (503, format!("all {max} connections busy")),
                Failure::WriterStopped => (503, "the hub is stopping".to_string()),
                Failure::Repository(e) => (503, format!("repository unusable: {}", chain(e))),
                Failure::NatsDisconnected => (503, "nats disconnected".to_string()),
                Failure::Encode(e) => (500, format!("cannot encode stats: {e}")),
                Failure::Panicked => (500, "internal error".to_string()),
            };
            if status >= 500 {
                tracing::warn!(status, reason = %text, "request failed");
            } else {
                tracing::debug!(status, reason = %text, "request refused");
            }
            // Refused before the request was read whole: what follows on
            // the connection cannot be trusted to start a request.
            let close = matches!(
                failure,
                Failure::TooLarge { .. }
                    | Failure::LengthRequired { .. }
                    | Failure::BadBody { .. }
                    | Failure::Timeout { .. }
                    | Failure::Full { .. }
            );
            (status, TEXT, format!("{text}\n").into_bytes(), close)
        }
    };
    HttpResponse {
        status,
        content_type,
        body,
        close,
    }
}

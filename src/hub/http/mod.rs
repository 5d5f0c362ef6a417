//! The HTTP side: a listener that reads whole requests under the hub's
//! limits (`listener` and `conn`, on bytes parsed by `wire`), and worker
//! threads that serve them, each with its own read-only connection to the
//! repository (WAL lets readers run beside the writer). Routing follows
//! `fossil server`: any POST whose content type is one of Fossil's
//! (`application/x-fossil`, `-debug`, `-uncompressed`) is a sync request,
//! whatever the path (reference 5.1). Pulls and clones are served here in
//! one read transaction; pushes go to the writer and the worker waits for
//! its reply. `GET /healthz` and `GET /stats` answer for operators and herd;
//! anything else is 404.
//!
//! [`response`] is the one place a request's result, or the listener's
//! refusal of it, becomes an HTTP status.

mod conn;
mod listener;
mod wire;

use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub(crate) use listener::{Exchange, HttpResponse, Listener};

use super::broadcast::{chain, NatsHealth};
use super::stats::{Counters, RepoFigures, Stats};
use super::writer::Job;
use crate::coord::{TraceHeaders, TRACEPARENT_HEADER, TRACESTATE_HEADER};
use crate::repo::Repository;
use crate::telemetry::W3c;
use crate::xfer::{handle_decoded, handle_with, ContentType, Decoded, Kind, Request, ServerConfig};
use listener::HttpRequest;

/// What every worker shares.
pub(crate) struct Shared {
    /// The sync server's limits and budgets.
    pub(crate) config: ServerConfig,
    /// The hub's counters.
    pub(crate) counters: Arc<Counters>,
    /// The NATS connection, when broadcasting.
    pub(crate) nats: Option<NatsHealth>,
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
    /// The head is not HTTP, or its length headers are unusable (400).
    BadHead(wire::HeadError),
    /// The head is over its size limit (431).
    HeadTooLarge,
    /// A chunked body: the hub needs a length (411).
    LengthRequired(wire::HeadError),
    /// The body could not be read (400).
    BadBody(std::io::Error),
    /// The body ended before its declared length (400).
    ShortBody { got: u64, declared: u64 },
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
    /// Serving the request panicked (500); the worker lives on.
    Panicked,
}

/// Whether a request with this method and content type is a sync request.
fn is_sync(method: &str, content_type: Option<&str>) -> bool {
    method == "POST" && content_type.is_some_and(|ct| ContentType::parse(ct).is_ok())
}

/// The queue the listener fills and the workers share.
pub(crate) type Jobs = Mutex<Receiver<Exchange>>;

/// Serves requests until the listener has stopped and the queue is empty.
/// A panic while serving one request is answered 500 and the worker goes on.
pub(crate) fn serve(jobs: &Jobs, reader: &Repository, writer: &SyncSender<Job>, shared: &Shared) {
    loop {
        let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(Exchange { request, reply }) = next else {
            return;
        };
        Counters::add(&shared.counters.http_requests, 1);
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            route(&request, reader, writer, shared)
        }))
        .unwrap_or_else(|_| {
            tracing::error!(path = %request.head.path, "serving a request panicked");
            Answer::Failed(Failure::Panicked)
        });
        // The listener may have given up on the client; nobody to tell.
        let _ = reply.send(response(answer));
    }
}

fn route(
    request: &HttpRequest,
    reader: &Repository,
    writer: &SyncSender<Job>,
    shared: &Shared,
) -> Answer {
    let head = &request.head;
    if is_sync(&head.method, head.header("Content-Type")) {
        return sync(request, reader, writer, shared);
    }
    match (head.method.as_str(), head.path.as_str()) {
        ("GET", "/healthz") => healthz(reader, shared),
        ("GET", "/stats") => stats(reader, shared),
        _ => Answer::Failed(Failure::NotFound),
    }
}

/// The headers a sync request's span needs.
struct Parts {
    trace: TraceHeaders,
    peer: Option<String>,
}

fn request_parts(request: &HttpRequest) -> Parts {
    let header = |name: &str| request.head.header(name).map(str::to_string);
    Parts {
        trace: TraceHeaders {
            traceparent: header(TRACEPARENT_HEADER),
            tracestate: header(TRACESTATE_HEADER),
        },
        peer: Some(request.peer.ip().to_string()),
    }
}

/// Serves a sync request: reads here, pushes on the writer.
fn sync(
    request: &HttpRequest,
    reader: &Repository,
    writer: &SyncSender<Job>,
    shared: &Shared,
) -> Answer {
    Counters::add(&shared.counters.requests, 1);
    let parts = &request_parts(request);
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
    let parent = match &parts.trace.traceparent {
        Some(_) => W3c {
            traceparent: parts.trace.traceparent.clone(),
            tracestate: parts.trace.tracestate.clone(),
        },
        None => W3c::from_env(),
    };
    parent.adopt(&span);
    let _entered = span.enter();
    sync_in_span(request, parts, reader, writer, shared)
}

/// [`sync`] inside its `hub.xfer` span (the current span), which it fills.
fn sync_in_span(
    request: &HttpRequest,
    parts: &Parts,
    reader: &Repository,
    writer: &SyncSender<Job>,
    shared: &Shared,
) -> Answer {
    let span = tracing::Span::current();
    let content_type = request.head.header("Content-Type").unwrap_or_default();
    let sync_request = Request {
        content_type,
        body: &request.body,
        peer: parts.peer.as_deref(),
    };
    let response = match Decoded::new(&sync_request, &shared.config.limits) {
        // Undecodable: the server function builds the error card reply.
        Err(_) => handle_with(reader, &sync_request, &shared.config),
        Ok(decoded) => match decoded.kind() {
            Kind::ReadOnly => read_snapshot(reader, || {
                handle_decoded(reader, &decoded, parts.peer.as_deref(), &shared.config)
            }),
            Kind::Write => {
                Counters::add(&shared.counters.writes, 1);
                let (reply, answer) = std::sync::mpsc::sync_channel(1);
                let job = Job {
                    decoded,
                    content_type: ContentType::parse(content_type).unwrap_or(ContentType::Fossil),
                    peer: parts.peer.clone(),
                    trace: trace_of(&span).unwrap_or_else(|| parts.trace.clone()),
                    reply,
                };
                if writer.send(job).is_err() {
                    return Answer::Failed(Failure::WriterStopped);
                }
                match answer.recv() {
                    Ok(response) => response,
                    Err(_) => return Answer::Failed(Failure::WriterStopped),
                }
            }
        },
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
    if let Some(failure) = &response.outcome.failure {
        tracing::debug!(peer = ?parts.peer, failure = %failure, "sync request failed");
    }
    Answer::Sync {
        content_type: response.content_type,
        body: response.body,
    }
}

/// A count as a span attribute: i64, since a u64 would become a string.
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The trace context of `span` as broadcast headers, when spans are
/// exported: a push's trunk advance and tip broadcast then hang under its
/// `hub.xfer` span.
fn trace_of(span: &tracing::Span) -> Option<TraceHeaders> {
    let w = W3c::of(span);
    w.traceparent.is_some().then_some(TraceHeaders {
        traceparent: w.traceparent,
        tracestate: w.tracestate,
    })
}

fn healthz(reader: &Repository, shared: &Shared) -> Answer {
    if let Err(e) = read_snapshot(reader, || reader.trunk_tip()) {
        return Answer::Failed(Failure::Repository(e));
    }
    match &shared.nats {
        Some(nats) if !nats.connected() => Answer::Failed(Failure::NatsDisconnected),
        _ => Answer::Healthy,
    }
}

fn stats(reader: &Repository, shared: &Shared) -> Answer {
    match read_snapshot(reader, || RepoFigures::read(reader)) {
        Ok(figures) => {
            let stats = Stats::new(figures, &shared.counters);
            match serde_json::to_string(&stats) {
                Ok(json) => Answer::Json(json),
                Err(e) => Answer::Failed(Failure::Encode(e)),
            }
        }
        Err(e) => Answer::Failed(Failure::Repository(e)),
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
    let (status, content_type, body) = match answer {
        Answer::Sync { content_type, body } => (200, content_type.as_str(), body),
        Answer::Json(json) => (200, "application/json", json.into_bytes()),
        Answer::Healthy => (200, TEXT, b"ok\n".to_vec()),
        Answer::Failed(failure) => {
            let (status, text) = match failure {
                Failure::NotFound => (404, "not found".to_string()),
                Failure::TooLarge { max } => (413, format!("request body over {max} bytes")),
                Failure::BadHead(e) => (400, e.to_string()),
                Failure::HeadTooLarge => (431, wire::HeadError::TooLarge.to_string()),
                Failure::LengthRequired(e) => (411, e.to_string()),
                Failure::BadBody(e) => (400, format!("cannot read the request body: {e}")),
                Failure::ShortBody { got, declared } => (
                    400,
                    format!("request body ended after {got} of {declared} bytes"),
                ),
                Failure::Timeout { after } => (
                    408,
                    format!("request not received within {} ms", after.as_millis()),
                ),
                Failure::Full { max } => (503, format!("all {max} connections busy")),
                Failure::WriterStopped => (503, "the hub is stopping".to_string()),
                Failure::Repository(e) => (503, format!("repository unusable: {}", chain(&e))),
                Failure::NatsDisconnected => (503, "nats disconnected".to_string()),
                Failure::Encode(e) => (500, format!("cannot encode stats: {e}")),
                Failure::Panicked => (500, "internal error".to_string()),
            };
            if status >= 500 {
                tracing::warn!(status, reason = %text, "request failed");
            } else {
                tracing::debug!(status, reason = %text, "request refused");
            }
            (status, TEXT, format!("{text}\n").into_bytes())
        }
    };
    HttpResponse {
        status,
        content_type,
        body,
    }
}

//! The HTTP side: worker threads taking requests from tiny_http, each with
//! its own read-only connection to the repository (WAL lets readers run
//! beside the writer). Routing follows `fossil server`: any POST whose
//! content type is one of Fossil's (`application/x-fossil`, `-debug`,
//! `-uncompressed`) is a sync request, whatever the path (reference 5.1).
//! Pulls and clones are served here in one read transaction; pushes go to
//! the writer and the worker waits for its reply. `GET /healthz` and
//! `GET /stats` answer for operators and herd; anything else is 404.
//!
//! [`respond`] is the one place a request's result becomes an HTTP status.

use std::io::Read;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use tiny_http::{Header, Method};

use super::broadcast::{chain, NatsHealth};
use super::stats::{Counters, RepoFigures, Stats};
use super::writer::Job;
use crate::coord::{TraceHeaders, TRACEPARENT_HEADER, TRACESTATE_HEADER};
use crate::repo::Repository;
use crate::telemetry::W3c;
use crate::xfer::{handle_decoded, handle_with, ContentType, Decoded, Kind, Request, ServerConfig};

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

/// Why a request could not be served; [`respond`] picks the status.
enum Failure {
    /// No route: not a sync request, `/healthz` or `/stats`.
    NotFound,
    /// The body is over the request size limit (413).
    TooLarge { max: u64 },
    /// The body could not be read (400).
    BadBody(std::io::Error),
    /// The writer thread is gone (503; only while stopping).
    WriterStopped,
    /// The repository cannot be read (503).
    Repository(crate::repo::RepoError),
    /// Broadcasting is configured and NATS is disconnected (503).
    NatsDisconnected,
    /// `/stats` could not be encoded (500).
    Encode(serde_json::Error),
}

/// Serves requests until the server is unblocked or closed.
pub(crate) fn serve(
    server: &tiny_http::Server,
    reader: &Repository,
    writer: &SyncSender<Job>,
    shared: &Shared,
) {
    while let Ok(mut request) = server.recv() {
        Counters::add(&shared.counters.http_requests, 1);
        let parts = request_parts(&request);
        let answer = match (&parts.method, parts.path.as_str(), &parts.content_type) {
            (Method::Post, _, Some(ct)) if ContentType::parse(ct).is_ok() => {
                sync(&mut request, &parts, reader, writer, shared)
            }
            (Method::Get, "/healthz", _) => healthz(reader, shared),
            (Method::Get, "/stats", _) => stats(reader, shared),
            _ => Answer::Failed(Failure::NotFound),
        };
        respond(request, answer);
    }
}

/// The request line and the headers routing needs.
struct Parts {
    method: Method,
    path: String,
    content_type: Option<String>,
    content_length: Option<u64>,
    trace: TraceHeaders,
    peer: Option<String>,
}

fn request_parts(request: &tiny_http::Request) -> Parts {
    let header = |name: &str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str().to_string())
    };
    let path = request.url().split('?').next().unwrap_or("/").to_string();
    Parts {
        method: request.method().clone(),
        path,
        content_type: header("Content-Type"),
        content_length: header("Content-Length").and_then(|v| v.trim().parse().ok()),
        trace: TraceHeaders {
            traceparent: header(TRACEPARENT_HEADER),
            tracestate: header(TRACESTATE_HEADER),
        },
        peer: request.remote_addr().map(|a| a.ip().to_string()),
    }
}

/// Reads a sync request's body under the limits and serves it: reads here,
/// pushes on the writer.
fn sync(
    request: &mut tiny_http::Request,
    parts: &Parts,
    reader: &Repository,
    writer: &SyncSender<Job>,
    shared: &Shared,
) -> Answer {
    Counters::add(&shared.counters.requests, 1);
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
    request: &mut tiny_http::Request,
    parts: &Parts,
    reader: &Repository,
    writer: &SyncSender<Job>,
    shared: &Shared,
) -> Answer {
    let span = tracing::Span::current();
    let max = shared.config.limits.max_total;
    if parts.content_length.is_some_and(|n| n > max) {
        return Answer::Failed(Failure::TooLarge { max });
    }
    let mut body = Vec::new();
    match request.as_reader().take(max + 1).read_to_end(&mut body) {
        Ok(_) if body.len() as u64 > max => return Answer::Failed(Failure::TooLarge { max }),
        Ok(_) => {}
        Err(e) => return Answer::Failed(Failure::BadBody(e)),
    }
    let content_type = parts.content_type.as_deref().unwrap_or_default();
    let sync_request = Request {
        content_type,
        body: &body,
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
/// HTTP status. Replies carry
/// Content-Type and Content-Length, as Fossil's client requires.
fn respond(request: tiny_http::Request, answer: Answer) {
    let (status, content_type, body) = match answer {
        Answer::Sync { content_type, body } => (200, content_type.as_str(), body),
        Answer::Json(json) => (200, "application/json", json.into_bytes()),
        Answer::Healthy => (200, TEXT, b"ok\n".to_vec()),
        Answer::Failed(failure) => {
            let (status, text) = match failure {
                Failure::NotFound => (404, "not found".to_string()),
                Failure::TooLarge { max } => (413, format!("request body over {max} bytes")),
                Failure::BadBody(e) => (400, format!("cannot read the request body: {e}")),
                Failure::WriterStopped => (503, "the hub is stopping".to_string()),
                Failure::Repository(e) => (503, format!("repository unusable: {}", chain(&e))),
                Failure::NatsDisconnected => (503, "nats disconnected".to_string()),
                Failure::Encode(e) => (500, format!("cannot encode stats: {e}")),
            };
            if status >= 500 {
                tracing::warn!(status, reason = %text, "request failed");
            }
            (status, TEXT, format!("{text}\n").into_bytes())
        }
    };
    let header = Header::from_bytes("Content-Type", content_type)
        .expect("content types are valid header values");
    let response = tiny_http::Response::from_data(body)
        .with_status_code(status)
        .with_header(header);
    if let Err(e) = request.respond(response) {
        tracing::debug!(error = %e, "client went away before the reply");
    }
}

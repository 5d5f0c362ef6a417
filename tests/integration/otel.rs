//! One trace per trial: `herd run` exporting to an OTLP/HTTP receiver that
//! lives inside the test (tiny_http answering `POST /v1/traces`, each body
//! decoded as an `ExportTraceServiceRequest`), and herd's preflight refusing
//! endpoints that are not OTLP receivers.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;

/// What every POST gets: a content type, and a status.
#[derive(Clone, Copy)]
enum Answer {
    /// 200 `application/x-protobuf`, empty body (a valid export response).
    Otlp,
    /// 200 `text/html`, a web page.
    Html,
}

/// A receiver on 127.0.0.1:0 keeping every decoded export request.
struct Receiver {
    url: String,
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    exports: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    undecodable: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start(answer: Answer) -> Receiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind the receiver"));
        let port = server.server_addr().to_ip().expect("an ip listener").port();
        let stop = Arc::new(AtomicBool::new(false));
        let exports = Arc::new(Mutex::new(Vec::new()));
        let undecodable = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
            let (exports, undecodable) = (Arc::clone(&exports), Arc::clone(&undecodable));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(100))
                    else {
                        continue;
                    };
                    let mut body = Vec::new();
                    let _ = request.as_reader().read_to_end(&mut body);
                    let (content_type, reply): (&str, &[u8]) = match answer {
                        Answer::Otlp => {
                            if request.url() == "/v1/traces" {
                                match ExportTraceServiceRequest::decode(body.as_slice()) {
                                    Ok(export) => exports.lock().unwrap().push(export),
                                    Err(e) => undecodable.lock().unwrap().push(e.to_string()),
                                }
                            } else {
                                undecodable
                                    .lock()
                                    .unwrap()
                                    .push(format!("post to {}", request.url()));
                            }
                            ("application/x-protobuf", b"")
                        }
                        Answer::Html => ("text/html", b"<html><body>hello</body></html>"),
                    };
                    let header = tiny_http::Header::from_bytes("Content-Type", content_type)
                        .expect("a valid header");
                    let _ = request.respond(
                        tiny_http::Response::from_data(reply.to_vec()).with_header(header),
                    );
                }
            })
        };
        Receiver {
            url: format!("http://127.0.0.1:{port}"),
            server,
            stop,
            exports,
            undecodable,
            thread: Some(thread),
        }
    }

    /// Every span received, with its service's resource attributes.
    fn spans(&self) -> Vec<(HashMap<String, AnyValue>, Span)> {
        let exports = self.exports.lock().unwrap();
        let mut out = Vec::new();
        for export in exports.iter() {
            for rs in &export.resource_spans {
                let resource = rs
                    .resource
                    .as_ref()
                    .map(|r| attributes(&r.attributes))
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        out.push((resource.clone(), span.clone()));
                    }
                }
            }
        }
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn attributes(kvs: &[KeyValue]) -> HashMap<String, AnyValue> {
    kvs.iter()
        .filter_map(|kv| {
            let value = kv.value.as_ref()?.value.clone()?;
            Some((kv.key.clone(), value))
        })
        .collect()
}

fn string_attr(attrs: &HashMap<String, AnyValue>, key: &str) -> Option<String> {
    match attrs.get(key)? {
        AnyValue::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn bool_attr(span: &Span, key: &str) -> Option<bool> {
    match attributes(&span.attributes).get(key)? {
        AnyValue::BoolValue(b) => Some(*b),
        _ => None,
    }
}

fn int_attr(span: &Span, key: &str) -> Option<i64> {
    match attributes(&span.attributes).get(key)? {
        AnyValue::IntValue(i) => Some(*i),
        _ => None,
    }
}

fn herd(endpoint: &str, workdir: &Path) -> Command {
    let mut cmd = crate::helpers::herd_command();
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_RESOURCE_ATTRIBUTES")
        .env_remove("TRACEPARENT")
        .env_remove("TRACESTATE")
        // Sparse leaves with leaf landing: they catch up on broadcasts
        // right before pushing, and those spans link to the push that
        // caused them (full leaves catch up before a task, `leaf.Update`).
        .args(["run", "--agents", "2", "--tasks", "2", "--landing", "leaf"])
        .args(["--leaf", "sparse"])
        .args(["--min-think-ms", "0", "--max-think-ms", "5"])
        .args(["--timeout", "120", "--json", "--workdir"])
        .arg(workdir);
    cmd
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_trial_is_one_trace_across_herd_hub_and_leaves() {
    let receiver = Receiver::start(Answer::Otlp);
    let dir = tempfile::tempdir().unwrap();
    let out = herd(&receiver.url, &dir.path().join("trial"))
        .output()
        .expect("run herd");
    assert!(out.status.success(), "{}", describe(&out));
    let report: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("a json report");
    assert!(
        receiver.undecodable.lock().unwrap().is_empty(),
        "{:?}",
        receiver.undecodable.lock().unwrap()
    );

    let spans = receiver.spans();
    assert!(!spans.is_empty(), "no spans exported\n{}", describe(&out));
    let trace_ids: HashSet<&[u8]> = spans.iter().map(|(_, s)| s.trace_id.as_slice()).collect();
    assert_eq!(trace_ids.len(), 1, "spans of more than one trace");

    let services: HashSet<String> = spans
        .iter()
        .filter_map(|(r, _)| string_attr(r, "service.name"))
        .collect();
    for service in ["herd", "hub", "leaf-agent"] {
        assert!(
            services.contains(service),
            "{service} missing: {services:?}"
        );
    }
    let slots: HashSet<i64> = spans
        .iter()
        .filter_map(|(r, _)| match r.get("herd.slot") {
            Some(AnyValue::IntValue(i)) => Some(*i),
            _ => None,
        })
        .collect();
    assert_eq!(slots, HashSet::from([0, 1]));

    let named = |name: &str| -> Vec<&Span> {
        spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.name == name)
            .collect()
    };
    assert_eq!(named("herd.run").len(), 1);
    assert_eq!(named("hub.run").len(), 1);
    assert_eq!(named("leaf.run").len(), 2);
    let tasks = named("leaf.task");
    assert_eq!(tasks.len(), 4);
    let slot_task: HashSet<(i64, i64)> = tasks
        .iter()
        .map(|t| (int_attr(t, "slot").unwrap(), int_attr(t, "task").unwrap()))
        .collect();
    assert_eq!(slot_task.len(), 4, "distinct (slot, task) pairs");
    let claims = named("coord.Claim");
    assert_eq!(claims.len(), 4);
    for claim in &claims {
        let outcome = string_attr(&attributes(&claim.attributes), "outcome");
        assert_eq!(outcome.as_deref(), Some("won"));
    }

    // Every commit's push reached the hub under the commit's span.
    let parent_of: HashMap<&[u8], &[u8]> = spans
        .iter()
        .map(|(_, s)| (s.span_id.as_slice(), s.parent_span_id.as_slice()))
        .collect();
    let under = |span: &Span, ancestor: &[u8]| {
        let mut id = span.parent_span_id.as_slice();
        for _ in 0..64 {
            if id == ancestor {
                return true;
            }
            match parent_of.get(id) {
                Some(p) if !p.is_empty() => id = p,
                _ => return false,
            }
        }
        false
    };
    let xfers = named("hub.xfer");
    let commits = named("coord.Commit");
    assert_eq!(commits.len(), 4);
    for commit in &commits {
        let pushes: Vec<&&Span> = xfers
            .iter()
            .filter(|x| under(x, commit.span_id.as_slice()))
            .collect();
        assert!(!pushes.is_empty(), "no hub.xfer under {commit:?}");
        let accepted = pushes
            .iter()
            .filter(|x| {
                string_attr(&attributes(&x.attributes), "outcome").as_deref() == Some("accepted")
            })
            .count();
        assert_eq!(accepted, 1, "one accepted push per commit");
        for push in &pushes {
            assert!(
                int_attr(push, "cards.in").is_some_and(|n| n > 0),
                "{push:?}"
            );
        }
        let uuid = string_attr(&attributes(&commit.attributes), "commit.uuid");
        assert!(uuid.is_some_and(|u| u.len() >= 40), "{commit:?}");
        assert!(string_attr(&attributes(&commit.attributes), "commit.parent").is_some());
    }

    // The spans' retries add up to the summary's fork retries.
    let mut retries = 0;
    for commit in &commits {
        let n = int_attr(commit, "commit.retries")
            .unwrap_or_else(|| panic!("commit.retries in {commit:?}"));
        let retried = bool_attr(commit, "commit.fork_retried").expect("commit.fork_retried");
        let succeeded = bool_attr(commit, "commit.fork_retried_succeeded")
            .expect("commit.fork_retried_succeeded");
        assert_eq!(retried, n > 0, "{commit:?}");
        assert_eq!(succeeded, n > 0, "every commit landed: {commit:?}");
        retries += n;
    }
    assert_eq!(
        Some(retries),
        report["fork_retries"].as_i64(),
        "spans vs summary"
    );
    // Catch-ups link to the push that caused the broadcast.
    let catch_ups = named("coord.SyncOnBroadcast");
    assert!(!catch_ups.is_empty(), "no broadcast was handled");
    // A catch-up still running when its leaf's last task ended is cut
    // short and carries no result: at most one per leaf.
    let unfinished = catch_ups
        .iter()
        .filter(|c| bool_attr(c, "pull.success").is_none())
        .count();
    assert!(unfinished <= 2, "{unfinished} catch-ups without a result");
    for c in &catch_ups {
        assert_eq!(
            bool_attr(c, "pull.success").is_some(),
            bool_attr(c, "pull.skipped_idempotent").is_some(),
            "{c:?}"
        );
        assert!(
            c.links
                .iter()
                .any(|l| xfers.iter().any(|x| x.span_id == l.span_id)),
            "a catch-up without a link to its push: {c:?}"
        );
    }
    let advances = named("hub.trunk_advance");
    assert_eq!(advances.len(), 4);
    for advance in advances {
        assert!(
            xfers.iter().any(|x| x.span_id == advance.parent_span_id),
            "trunk advance outside a hub.xfer: {advance:?}"
        );
    }
}

/// herd with an endpoint that is no OTLP receiver: exit 2, the endpoint
/// named, no leaf started.
fn assert_refused(endpoint: &str) {
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().join("trial");
    let out = herd(endpoint, &workdir).output().expect("run herd");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(endpoint), "{stderr}");
    assert!(stderr.contains("not an OTLP receiver"), "{stderr}");
    assert!(!workdir.join("slot-0").exists());
}

#[test]
fn preflight_refuses_a_web_page() {
    let receiver = Receiver::start(Answer::Html);
    assert_refused(&receiver.url);
}

#[test]
fn preflight_refuses_a_closed_port() {
    let port = crate::helpers::free_port();
    assert_refused(&format!("http://127.0.0.1:{port}"));
}

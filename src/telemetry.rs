//! Logs and traces for all three binaries.
//!
//! Logs go to stderr through `tracing-subscriber` (level from `RUST_LOG`).
//! When `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans are also exported over
//! OTLP (HTTP/protobuf unless `OTEL_EXPORTER_OTLP_PROTOCOL` says `http/json`
//! or `grpc`), with `service.name` from `OTEL_SERVICE_NAME` or the binary's
//! name and `OTEL_RESOURCE_ATTRIBUTES` honoured. Without the endpoint no
//! exporter runs, and spans cost what a disabled `tracing` span costs.
//!
//! One trial is one trace: herd's root span travels to its children as
//! `TRACEPARENT`/`TRACESTATE` environment variables, from leaf to hub as
//! HTTP headers, and from hub to leaves in the tip broadcast's NATS headers.
//! This module owns the W3C encoding at every one of those crossings.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, OTEL_EXPORTER_OTLP_ENDPOINT};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::TracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How long shutdown may spend flushing spans; a dead collector never
/// holds a process longer than this.
const FLUSH_BOUND: Duration = Duration::from_secs(3);
/// The exporter's own per-request timeout.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why telemetry could not start, or the endpoint is not an OTLP receiver.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The exporter could not be built.
    #[error("cannot build the OTLP exporter for {endpoint}")]
    Exporter {
        /// The configured endpoint.
        endpoint: String,
        /// The library's complaint.
        #[source]
        source: opentelemetry::trace::TraceError,
    },
    /// The async runtime the exporter runs on could not start.
    #[error("cannot start the exporter's runtime")]
    Runtime(#[source] std::io::Error),
    /// The endpoint did not answer like an OTLP receiver.
    #[error("{endpoint} is not an OTLP receiver: {why}")]
    NotOtlp {
        /// The endpoint tried.
        endpoint: String,
        /// What it answered instead.
        why: String,
    },
}

/// A W3C trace context in its two header values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct W3c {
    /// `traceparent`: `00-<trace id>-<span id>-<flags>`.
    pub traceparent: Option<String>,
    /// `tracestate`, vendor data, usually empty.
    pub tracestate: Option<String>,
}

impl W3c {
    /// The context handed down by the parent process, if any.
    pub fn from_env() -> W3c {
        let get = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        W3c {
            traceparent: get(crate::env::TRACEPARENT),
            tracestate: get(crate::env::TRACESTATE),
        }
    }

    /// The context of `span` (invalid, so empty, when no exporter runs).
    pub fn of(span: &tracing::Span) -> W3c {
        let cx = span.context();
        if !cx.span().span_context().is_valid() {
            return W3c::default();
        }
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        W3c {
            traceparent: carrier.remove("traceparent"),
            tracestate: carrier.remove("tracestate").filter(|s| !s.is_empty()),
        }
    }

    /// The OpenTelemetry context this names (empty when there is none).
    pub fn context(&self) -> opentelemetry::Context {
        let mut carrier = HashMap::new();
        if let Some(tp) = &self.traceparent {
            carrier.insert("traceparent".to_string(), tp.clone());
        }
        if let Some(ts) = &self.tracestate {
            carrier.insert("tracestate".to_string(), ts.clone());
        }
        TraceContextPropagator::new().extract(&carrier)
    }

    /// Makes `span` a child of this context, when there is one.
    pub fn adopt(&self, span: &tracing::Span) {
        if self.traceparent.is_some() {
            span.set_parent(self.context());
        }
    }

    /// Adds a link from `span` to this context, when there is one.
    pub fn link_from(&self, span: &tracing::Span) {
        let cx = self.context();
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            span.add_link(sc);
        }
    }
}

/// The OTLP endpoint, if one is configured.
pub fn endpoint() -> Option<String> {
    std::env::var(OTEL_EXPORTER_OTLP_ENDPOINT)
        .ok()
        .filter(|e| !e.trim().is_empty())
}

/// Keeps the exporter alive; dropping it flushes spans (bounded).
pub struct Telemetry {
    provider: Option<TracerProvider>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        // shutdown() blocks until the last batch is sent or fails; run it
        // aside so a dead collector cannot hold the process.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = provider.shutdown();
            let _ = tx.send(());
        });
        let _ = rx.recv_timeout(FLUSH_BOUND);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_millis(100));
        }
    }
}

/// Starts logging to stderr and, with an endpoint configured, span export.
/// `service` is the default `service.name`; `slot` becomes `herd.slot`.
pub fn init(service: &str, slot: Option<u32>) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let Some(endpoint) = endpoint() else {
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(fmt_layer())
            .try_init();
        return Ok(Telemetry {
            provider: None,
            runtime: None,
        });
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-export")
        .enable_all()
        .build()
        .map_err(TelemetryError::Runtime)?;
    let provider = {
        let _guard = runtime.enter();
        build_provider(&endpoint, service, slot)?
    };
    let tracer = provider.tracer("herd");
    // RUST_LOG filters the logs only: the trace gets herd's own spans at
    // info and above whatever the log level, and never the spans of the
    // libraries underneath (the exporter's own HTTP client among them).
    let ours = Targets::new()
        .with_target("herd", LevelFilter::INFO)
        .with_target("hub", LevelFilter::INFO)
        .with_target("leaf_agent", LevelFilter::INFO);
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(ours);
    let _ = tracing_subscriber::registry()
        .with(fmt_layer().with_filter(filter))
        .with(otel)
        .try_init();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(Telemetry {
        provider: Some(provider),
        runtime: Some(runtime),
    })
}

/// Log lines on stderr, without targets; coloured only for a person at a
/// terminal ([`colour_logs`]).
fn fmt_layer<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use std::io::IsTerminal;
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour_logs(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
}

/// Whether log lines get ANSI colours: only on a terminal, and never with
/// `NO_COLOR` set to anything but empty (no-color.org). A child's stderr is
/// a log file, where escapes are noise for `grep` and editors.
fn colour_logs(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && !matches!(no_color, Some(v) if !v.is_empty())
}

fn protocol() -> opentelemetry_otlp::Protocol {
    match std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
        Ok("grpc") => opentelemetry_otlp::Protocol::Grpc,
        Ok("http/json") => opentelemetry_otlp::Protocol::HttpJson,
        _ => opentelemetry_otlp::Protocol::HttpBinary,
    }
}

fn build_provider(
    endpoint: &str,
    service: &str,
    slot: Option<u32>,
) -> Result<TracerProvider, TelemetryError> {
    let err = |source| TelemetryError::Exporter {
        endpoint: endpoint.to_string(),
        source,
    };
    let exporter = match protocol() {
        opentelemetry_otlp::Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(err)?,
        p => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(p)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(err)?,
    };
    // Resource::default() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES;
    // our name applies only when the user set none.
    let mut ours = vec![];
    if std::env::var("OTEL_SERVICE_NAME").map_or(true, |s| s.is_empty()) {
        ours.push(KeyValue::new("service.name", service.to_string()));
    }
    if let Some(slot) = slot {
        ours.push(KeyValue::new("herd.slot", i64::from(slot)));
    }
    let resource = Resource::default().merge(&Resource::new(ours));
    Ok(TracerProvider::builder()
        .with_batch_exporter(exporter, opentelemetry_sdk::runtime::Tokio)
        .with_resource(resource)
        .build())
}

/// CPU time the calling thread has used so far, in microseconds (the
/// thread's own clock: time spent waiting is not counted); 0 where the
/// clock cannot be read.
pub fn thread_cpu_us() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(0, |t| {
        let us = i128::from(t.tv_sec()) * 1_000_000 + i128::from(t.tv_nsec()) / 1_000;
        u64::try_from(us).unwrap_or(0)
    })
}

/// User + system CPU, in ms, of this process alone (every thread, none of
/// its children).
pub fn own_cpu_ms() -> Option<f64> {
    rusage_ms(nix::sys::resource::UsageWho::RUSAGE_SELF)
}

/// User + system CPU, in ms, `getrusage` counts for `who`.
pub fn rusage_ms(who: nix::sys::resource::UsageWho) -> Option<f64> {
    nix::sys::resource::getrusage(who).ok().map(|u| {
        let t = |tv: nix::sys::time::TimeVal| {
            tv.tv_sec() as f64 * 1000.0 + tv.tv_usec() as f64 / 1000.0
        };
        t(u.user_time()) + t(u.system_time())
    })
}

/// This process's own memory in KiB: `Private_Dirty` of
/// `/proc/self/smaps_rollup`, the pages it wrote that no other process
/// maps (heap, stacks, its copy of the program's relocated data). Clean
/// pages are left out: the program's text, which every leaf maps once
/// for all, counts as private to whichever process maps it last.
pub fn private_kb() -> Option<u64> {
    kb_line(
        &std::fs::read_to_string("/proc/self/smaps_rollup").ok()?,
        "Private_Dirty:",
    )
}

/// This process's peak resident memory in KiB (`VmHWM`), where Linux tells.
pub fn peak_rss_kb() -> Option<u64> {
    status_kb("VmHWM:")
}

/// This process's resident memory now in KiB (`VmRSS`), where Linux tells.
pub fn current_rss_kb() -> Option<u64> {
    status_kb("VmRSS:")
}

/// A `kB` figure of `/proc/self/status`.
fn status_kb(field: &str) -> Option<u64> {
    kb_line(&std::fs::read_to_string("/proc/self/status").ok()?, field)
}

/// The `kB` figure on the line of `text` that starts with `field`.
fn kb_line(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Checks that `endpoint` answers like an OTLP/HTTP receiver: an empty
/// export request must get a success with an OTLP content type. A web page
/// answering 200, a refused connection or a wrong path all fail.
pub fn preflight(endpoint: &str) -> Result<(), TelemetryError> {
    let not = |why: String| TelemetryError::NotOtlp {
        endpoint: endpoint.to_string(),
        why,
    };
    if protocol() == opentelemetry_otlp::Protocol::Grpc {
        // A gRPC receiver cannot be asked over plain HTTP/1; check it listens.
        let authority = endpoint
            .split("://")
            .nth(1)
            .unwrap_or(endpoint)
            .trim_end_matches('/');
        let addrs = std::net::ToSocketAddrs::to_socket_addrs(authority)
            .map_err(|e| not(format!("cannot resolve {authority}: {e}")))?;
        for addr in addrs {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
                return Ok(());
            }
        }
        return Err(not("nothing accepts connections there".into()));
    }
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let (content_type, body): (&str, &[u8]) = match protocol() {
        opentelemetry_otlp::Protocol::HttpJson => ("application/json", b"{}"),
        _ => ("application/x-protobuf", b""),
    };
    let response = ureq::post(&url)
        .timeout(Duration::from_secs(3))
        .set("Content-Type", content_type)
        .send_bytes(body);
    match response {
        Ok(r) => {
            let got = r.content_type().to_string();
            if got.starts_with("application/x-protobuf") || got.starts_with("application/json") {
                Ok(())
            } else {
                Err(not(format!(
                    "POST {url} answered {} with content type {got:?}",
                    r.status()
                )))
            }
        }
        Err(ureq::Error::Status(code, _)) => Err(not(format!("POST {url} answered {code}"))),
        Err(e) => Err(not(format!("POST {url}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_coloured_only_at_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour_logs(true, None));
        assert!(colour_logs(true, Some(OsStr::new(""))));
        assert!(!colour_logs(true, Some(OsStr::new("1"))));
        assert!(!colour_logs(false, None));
    }

    #[test]
    fn w3c_context_round_trips_through_extract() {
        let w = W3c {
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            tracestate: None,
        };
        let cx = w.context();
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn garbage_traceparents_give_an_empty_context() {
        for tp in ["", "nonsense", "00-zz-yy-01"] {
            let w = W3c {
                traceparent: Some(tp.into()),
                tracestate: None,
            };
            assert!(!w.context().span().span_context().is_valid(), "{tp}");
        }
    }

    #[test]
    fn peak_rss_is_read_from_proc() {
        let kb = peak_rss_kb().expect("linux reports VmHWM");
        assert!(kb > 100 && kb < 10 << 20, "{kb} KiB");
    }

    #[test]
    fn preflight_refuses_a_closed_port() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = preflight(&format!("http://127.0.0.1:{port}")).unwrap_err();
        assert!(err.to_string().contains("is not an OTLP receiver"), "{err}");
    }
}

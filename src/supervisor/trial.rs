//! One trial: set up, run the slots, collect, count, tear down.
//!
//! One control loop owns all output and all decisions. Each slot is a task
//! that owns its child's stdout and reports typed [`SlotEvent`]s; the loop
//! also watches the shutdown future, the trial timeout and a progress tick.
//!
//! Each trial has its own secrets: a random password for the hub user every
//! leaf logs in as (the hub requires login) and, when herd starts the
//! nats-server, a random token it requires. Children get them in their
//! environment, never in argv (`/proc/PID/cmdline` is world-readable;
//! `/proc/PID/environ` is not).
//!
//! A leaf's stdout is untrusted input: lines are bounded ([`MAX_LINE`]),
//! need not be UTF-8, and anything that is not a [`LeafLine`] marks the slot
//! failed with the offending line quoted; nothing a leaf prints can crash
//! herd or make it grow without bound. For tests and for trying another
//! leaf implementation, `HERD_LEAF_AGENT` ([`LEAF_AGENT_ENV`]) names the
//! program herd starts per slot instead of the `leaf-agent` beside it; it
//! gets the same arguments.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::fossil_hub::{self, FossilHub};
use super::summary::{HubCount, SlotRecord, TrialReport, TrialShape};
use super::{nats, process, SupervisorError, TrialConfig};
use crate::coord::{Secret, NATS_TOKEN_ENV};
use crate::report::{HubKind, HubReady, LeafLine, TaskOutcome};
use crate::telemetry::{W3c, TRACEPARENT_ENV, TRACESTATE_ENV};
use crate::xfer::login::{HUB_SECRET_ENV, HUB_USER_ENV};

/// How long stopped children get between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long the hub gets to print its readiness line.
const HUB_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long herd waits for the hub's count to catch up with the leaves'.
const HUB_COUNT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest line herd takes from a leaf; a longer one is malformed and its
/// bytes are skipped, not kept.
pub const MAX_LINE: usize = 1 << 20;
/// Names the program to start per slot instead of `leaf-agent`.
pub const LEAF_AGENT_ENV: &str = "HERD_LEAF_AGENT";
/// Most errors kept per slot; later ones are dropped.
const MAX_ERRORS_KEPT: usize = 100;
/// How much of a malformed line a report quotes.
const QUOTE_CHARS: usize = 200;

/// The hub user every leaf of a trial logs in as.
pub const TRIAL_USER: &str = "herd";

/// One trial's credentials, handed to children through their environment.
struct TrialSecrets {
    /// The password of [`TRIAL_USER`] on the hub.
    hub_secret: Secret,
    /// The token of the nats-server herd started; `None` with `--nats-url`
    /// (children then inherit whatever `HERD_NATS_TOKEN` herd has).
    nats_token: Option<Secret>,
}

impl TrialSecrets {
    /// Sets the credentials in a child's environment.
    fn pass(&self, cmd: &mut Command) {
        cmd.env(HUB_USER_ENV, TRIAL_USER)
            .env(HUB_SECRET_ENV, self.hub_secret.expose());
        if let Some(token) = &self.nats_token {
            cmd.env(NATS_TOKEN_ENV, token.expose());
        }
    }
}

/// What a slot task tells the control loop.
#[derive(Debug)]
enum SlotEvent {
    /// A well-formed line.
    Line(u32, LeafLine),
    /// A line that is not one of [`LeafLine`]'s kinds.
    Malformed(u32, String),
    /// The child exited (stdout already at end of file).
    Exited(u32, std::io::Result<ExitStatus>),
}

/// Runs one trial to the end and reports it. Each message on `stop` is a
/// request to stop: the first asks the leaves to finish (SIGTERM, then
/// SIGKILL after a grace period), the second kills them at once.
///
/// An `Err` means the trial could not run; a trial that ran and failed a
/// check is an `Ok` report whose [`TrialReport::verdict`] says why.
pub async fn run(
    config: TrialConfig,
    stop: mpsc::Receiver<()>,
) -> Result<TrialReport, SupervisorError> {
    // Each leaf holds a few descriptors (pipes, a NATS and an HTTP socket,
    // SQLite files); herd holds its pipe ends.
    let _ = process::raise_nofile(u64::from(config.agents) * 8 + 256);
    // CPU spent before the trial (an earlier trial in this process) is not
    // the trial's.
    let cpu_before = process::cpu_ms().unwrap_or(0.0);

    let temp;
    let workdir: PathBuf = match &config.workdir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| SupervisorError::io(format!("create {}", dir.display()), e))?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("herd-")
                .tempdir()
                .map_err(|e| SupervisorError::io("create a temporary work directory", e))?;
            temp.path().to_path_buf()
        }
    };
    let logs = workdir.join("logs");
    std::fs::create_dir_all(&logs)
        .map_err(|e| SupervisorError::io(format!("create {}", logs.display()), e))?;

    let mut secrets = TrialSecrets {
        hub_secret: Secret::random(),
        nats_token: None,
    };
    let mut nats_child = None;
    let nats_url = match &config.nats_url {
        Some(url) => url.clone(),
        None => {
            let binary = nats::find(config.nats_server.as_deref())?;
            let token = Secret::random();
            let started = nats::start(
                &binary,
                &workdir.join("nats"),
                &logs.join("nats.log"),
                &token,
            )
            .await?;
            secrets.nats_token = Some(token);
            let url = started.url.clone();
            nats_child = Some(started.child);
            url
        }
    };

    let result = run_with_nats(&config, &workdir, &logs, &nats_url, &secrets, stop).await;
    if let Some(mut child) = nats_child {
        let _ = process::stop(&mut child, STOP_GRACE).await;
    }
    // Every child has been reaped by now, so its CPU is in the count.
    result.map(|mut report| {
        if let Some(ms) = process::cpu_ms().map(|now| now - cpu_before) {
            report.set_cpu_ms(ms);
        }
        report
    })
}

async fn run_with_nats(
    config: &TrialConfig,
    workdir: &Path,
    logs: &Path,
    nats_url: &str,
    secrets: &TrialSecrets,
    stop: mpsc::Receiver<()>,
) -> Result<TrialReport, SupervisorError> {
    match config.hub_kind {
        HubKind::Herd => {
            let (mut hub, ready) = start_hub(config, workdir, logs, nats_url, secrets).await?;
            let hub_ref = Hub::Herd(&ready);
            let result = run_slots(config, workdir, logs, nats_url, secrets, &hub_ref, stop).await;
            let _ = process::stop(&mut hub, STOP_GRACE).await;
            result
        }
        HubKind::Fossil => {
            let mut hub = fossil_hub::start(workdir, logs, TRIAL_USER, &secrets.hub_secret).await?;
            let result = run_slots(
                config,
                workdir,
                logs,
                nats_url,
                secrets,
                &Hub::Fossil(&hub),
                stop,
            )
            .await;
            hub.stop(STOP_GRACE).await;
            result
        }
    }
}

/// The trial's hub as the slots and the final count see it.
enum Hub<'a> {
    /// herd's hub, counted through `/stats`.
    Herd(&'a HubReady),
    /// A stock `fossil server`, counted with `fossil sql`.
    Fossil(&'a FossilHub),
}

impl Hub<'_> {
    fn ready(&self) -> &HubReady {
        match self {
            Hub::Herd(ready) => ready,
            Hub::Fossil(hub) => &hub.ready,
        }
    }

    /// The hub's own count once the leaves have `committed` check-ins.
    async fn count(&self, committed: u64) -> Result<HubCount, String> {
        match self {
            Hub::Herd(ready) => hub_count_settled(&ready.http, committed)
                .await
                .map_err(|e| format!("hub /stats: {e}")),
            // Every push was answered after fossil committed it, and every
            // leaf has exited: the repository is final.
            Hub::Fossil(hub) => hub
                .count()
                .await
                .map_err(|e| format!("fossil hub count: {e}")),
        }
    }
}

async fn start_hub(
    config: &TrialConfig,
    workdir: &Path,
    logs: &Path,
    nats_url: &str,
    secrets: &TrialSecrets,
) -> Result<(Child, HubReady), SupervisorError> {
    let binary = config.bin_dir.join("hub");
    let mut cmd = Command::new(&binary);
    cmd.arg("--repo")
        .arg(workdir.join("hub.fossil"))
        .args(["--listen", "127.0.0.1:0", "--nats-url", nats_url])
        .arg("--require-login")
        .stdout(Stdio::piped())
        .stderr(log_file(&logs.join("hub.log"))?);
    // The hub creates TRIAL_USER from these.
    secrets.pass(&mut cmd);
    pass_trace(&mut cmd, &config.trace);
    process::supervise(&mut cmd);
    let _span = tracing::info_span!("herd.start_process", process = "hub").entered();
    let mut child = cmd.spawn().map_err(|e| SupervisorError::Spawn {
        what: format!("hub ({})", binary.display()),
        source: e,
    })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(HUB_READY_TIMEOUT, lines.next_line()).await;
    let fail = |detail: String| SupervisorError::ChildFailed {
        what: "hub".into(),
        detail: format!("{detail}; see {}", logs.join("hub.log").display()),
    };
    let ready = match first {
        Ok(Ok(Some(line))) => serde_json::from_str::<HubReady>(&line)
            .map_err(|e| fail(format!("readiness line {line:?} is not valid: {e}")))?,
        Ok(Ok(None)) => {
            let status = child.wait().await.ok();
            return Err(fail(format!(
                "exited ({}) before it was ready",
                status.map_or("unknown status".into(), |s| s.to_string())
            )));
        }
        Ok(Err(e)) => return Err(fail(format!("reading its stdout: {e}"))),
        Err(_) => {
            let _ = process::stop(&mut child, STOP_GRACE).await;
            return Err(fail(format!(
                "not ready after {} s",
                HUB_READY_TIMEOUT.as_secs()
            )));
        }
    };
    // Drain the rest of the hub's stdout so it can never block on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, ready))
}

/// Hands the trial's trace context to a child through its environment.
fn pass_trace(cmd: &mut Command, trace: &W3c) {
    if let Some(tp) = &trace.traceparent {
        cmd.env(TRACEPARENT_ENV, tp);
    }
    if let Some(ts) = &trace.tracestate {
        cmd.env(TRACESTATE_ENV, ts);
    }
}

fn log_file(path: &Path) -> Result<Stdio, SupervisorError> {
    std::fs::File::create(path)
        .map(Stdio::from)
        .map_err(|e| SupervisorError::io(format!("create {}", path.display()), e))
}

fn leaf_command(
    config: &TrialConfig,
    slot: u32,
    workdir: &Path,
    hub: &HubReady,
    nats_url: &str,
) -> Command {
    let w = &config.workload;
    let program = std::env::var_os(LEAF_AGENT_ENV)
        .filter(|p| !p.is_empty())
        .map_or_else(|| config.bin_dir.join("leaf-agent"), PathBuf::from);
    let mut cmd = Command::new(program);
    cmd.arg("--hub")
        .arg(&hub.http)
        .arg("--nats-url")
        .arg(nats_url)
        .arg("--slot")
        .arg(slot.to_string())
        .arg("--workdir")
        .arg(workdir.join(format!("slot-{slot}")))
        .arg("--tasks")
        .arg(config.tasks.to_string())
        .arg("--seed")
        .arg(config.seed.to_string())
        .arg("--agents")
        .arg(config.agents.to_string())
        .arg("--mode")
        .arg(config.mode.as_str())
        .arg("--min-files")
        .arg(w.min_files.to_string())
        .arg("--max-files")
        .arg(w.max_files.to_string())
        .arg("--min-bytes")
        .arg(w.min_bytes.to_string())
        .arg("--max-bytes")
        .arg(w.max_bytes.to_string())
        .arg("--min-think-ms")
        .arg(w.min_think_ms.to_string())
        .arg("--max-think-ms")
        .arg(w.max_think_ms.to_string())
        .arg("--hold-ttl-ms")
        .arg(w.hold_ttl_ms.to_string())
        .arg("--hub-kind")
        .arg(config.hub_kind.as_str())
        .arg("--landing")
        .arg(config.landing.as_str())
        .arg("--leaf")
        .arg(config.leaf.as_str());
    cmd
}

async fn run_slots(
    config: &TrialConfig,
    workdir: &Path,
    logs: &Path,
    nats_url: &str,
    secrets: &TrialSecrets,
    hub: &Hub<'_>,
    mut stop: mpsc::Receiver<()>,
) -> Result<TrialReport, SupervisorError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut slots = vec![SlotRecord::default(); config.agents as usize];
    let mut pids: Vec<Option<u32>> = vec![None; config.agents as usize];
    let started = Instant::now();

    for slot in 0..config.agents {
        let mut cmd = leaf_command(config, slot, workdir, hub.ready(), nats_url);
        let log = logs.join(format!("slot-{slot}.log"));
        cmd.stdout(Stdio::piped());
        if config.verbose {
            cmd.stderr(Stdio::piped());
        } else {
            cmd.stderr(log_file(&log)?);
        }
        secrets.pass(&mut cmd);
        pass_trace(&mut cmd, &config.trace);
        process::supervise(&mut cmd);
        let span = tracing::info_span!("herd.start_process", process = "leaf-agent", slot);
        match span.in_scope(|| cmd.spawn()) {
            Ok(mut child) => {
                pids[slot as usize] = child.id();
                if let Some(stderr) = child.stderr.take() {
                    tokio::spawn(tee_stderr(slot, stderr, log));
                }
                tokio::spawn(watch_slot(slot, child, tx.clone()));
            }
            Err(e) => {
                slots[slot as usize].failure = Some(format!("cannot start leaf-agent: {e}"));
            }
        }
    }
    drop(tx);

    let total = u64::from(config.agents) * u64::from(config.tasks);
    let mut running = pids.iter().filter(|p| p.is_some()).count();
    let mut landed = 0u64;
    let mut slowest = None;
    let mut stopping: Option<(Instant, String)> = None;
    let deadline = config.timeout.map(|t| started + t);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut stop_open = true;

    while running > 0 {
        let escalate_at = stopping.as_ref().map(|(at, _)| *at + STOP_GRACE);
        tokio::select! {
            event = rx.recv() => match event {
                Some(SlotEvent::Line(slot, line)) => {
                    let rec = &mut slots[slot as usize];
                    match line {
                        LeafLine::Task(t) => {
                            if t.outcome == TaskOutcome::Committed {
                                landed += 1;
                            }
                            rec.tasks.push(t);
                        }
                        LeafLine::Summary(s) => rec.summary = Some(s),
                        LeafLine::Error(e) if rec.errors.len() < MAX_ERRORS_KEPT => {
                            tracing::warn!(slot, fatal = e.fatal, "{}", e.message);
                            rec.errors.push(e.message);
                        }
                        LeafLine::Error(_) | LeafLine::Ready(_) => {}
                    }
                }
                Some(SlotEvent::Malformed(slot, text)) => {
                    let rec = &mut slots[slot as usize];
                    // A leaf printing garbage forever must not grow herd.
                    if rec.errors.len() < MAX_ERRORS_KEPT {
                        tracing::warn!(slot, line = %text, "malformed line from leaf-agent");
                        rec.errors.push(format!("malformed line: {text}"));
                    }
                    rec.failure.get_or_insert_with(|| format!("printed a malformed line: {text}"));
                }
                Some(SlotEvent::Exited(slot, status)) => {
                    running -= 1;
                    slowest = Some(slot);
                    pids[slot as usize] = None;
                    let rec = &mut slots[slot as usize];
                    match status {
                        Ok(s) if s.success() => {}
                        Ok(s) => {
                            let last = rec.errors.last().map(|e| format!(": {e}")).unwrap_or_default();
                            rec.failure.get_or_insert_with(|| format!("leaf-agent exited with {s}{last}"));
                        }
                        Err(e) => {
                            rec.failure.get_or_insert_with(|| format!("cannot wait for leaf-agent: {e}"));
                        }
                    }
                }
                None => break,
            },
            request = stop.recv(), if stop_open => match request {
                Some(()) => {
                    if stopping.is_none() {
                        eprintln!("herd: stopping: asking leaf-agents to finish (again to kill at once)");
                    }
                    begin_stop(&pids, &mut stopping, "interrupted");
                }
                None => stop_open = false,
            },
            () = sleep_until_opt(deadline), if stopping.is_none() => {
                let secs = config.timeout.map_or(0, |t| t.as_secs());
                begin_stop(&pids, &mut stopping, &format!("timed out after {secs} s"));
            }
            () = sleep_until_opt(escalate_at) => {
                for pid in pids.iter().flatten() {
                    process::signal_pid_group(*pid, Signal::SIGKILL);
                }
                stopping = stopping.map(|(_, why)| (Instant::now() + Duration::from_secs(3600), why));
            }
            _ = tick.tick(), if config.progress => {
                let secs = started.elapsed().as_secs_f64().max(0.001);
                eprint!("\rherd: landed {landed}/{total}  {:.0} commits/s  {running} running   ", landed as f64 / secs);
                let _ = std::io::stderr().flush();
            }
        }
    }
    let runtime_s = started.elapsed().as_secs_f64();
    if config.progress {
        eprintln!();
    }

    if let Some((_, why)) = &stopping {
        for rec in &mut slots {
            let done = rec
                .summary
                .as_ref()
                .is_some_and(|s| s.tasks >= config.tasks);
            if !done {
                rec.failure.get_or_insert_with(|| why.clone());
            }
        }
    }

    let committed: u64 = slots
        .iter()
        .map(|r| {
            r.tasks
                .iter()
                .filter(|t| t.outcome == TaskOutcome::Committed)
                .count() as u64
        })
        .sum();
    let (hub_count, hub_error) = match hub.count(committed).await {
        Ok(c) => (c, None),
        Err(e) => (HubCount::default(), Some(e)),
    };
    let shape = TrialShape {
        hub_kind: config.hub_kind,
        landing: config.landing,
        leaf: config.leaf,
        agents: config.agents,
        tasks: config.tasks,
        mode: config.mode.to_string(),
        seed: config.seed,
        runtime_s,
        slowest_slot: slowest,
    };
    let mut report = TrialReport::build(shape, &slots, hub_count);
    if let Some(e) = hub_error {
        report.failed_slots.push(super::SlotFailure {
            slot: u32::MAX,
            reason: e,
        });
    }
    Ok(report)
}

fn begin_stop(pids: &[Option<u32>], stopping: &mut Option<(Instant, String)>, why: &str) {
    match stopping {
        None => {
            for pid in pids.iter().flatten() {
                process::signal_pid_group(*pid, Signal::SIGTERM);
            }
            *stopping = Some((Instant::now(), why.to_string()));
        }
        Some(_) => {
            // A second request: no more grace.
            for pid in pids.iter().flatten() {
                process::signal_pid_group(*pid, Signal::SIGKILL);
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn watch_slot(slot: u32, mut child: Child, tx: mpsc::UnboundedSender<SlotEvent>) {
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut out = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        let event = match next_line(&mut out, &mut line).await {
            Ok(Some(Line::Whole)) => {
                let text = String::from_utf8_lossy(&line);
                if text.trim().is_empty() {
                    continue;
                }
                match LeafLine::parse(&text) {
                    Ok(parsed) => SlotEvent::Line(slot, parsed),
                    Err(_) => SlotEvent::Malformed(slot, quote(&text)),
                }
            }
            Ok(Some(Line::TooLong { start })) => SlotEvent::Malformed(
                slot,
                format!(
                    "line over {MAX_LINE} bytes, starting {}",
                    quote(&String::from_utf8_lossy(&start))
                ),
            ),
            Ok(None) => break,
            Err(e) => {
                // The pipe broke: report it and wait for the exit.
                let _ = tx.send(SlotEvent::Malformed(
                    slot,
                    format!("unreadable output: {e}"),
                ));
                break;
            }
        };
        let _ = tx.send(event);
    }
    // Nobody reads stdout any more: a leaf still writing gets EPIPE rather
    // than blocking on a full pipe while herd waits for it.
    drop(out);
    let status = child.wait().await;
    let _ = tx.send(SlotEvent::Exited(slot, status));
}

/// The first [`QUOTE_CHARS`] characters of a line, escaped, for a report.
fn quote(text: &str) -> String {
    let head: String = text.chars().take(QUOTE_CHARS).collect();
    format!("{head:?}")
}

/// What [`next_line`] read.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line (without its newline) is in the buffer.
    Whole,
    /// A line over [`MAX_LINE`] bytes, skipped to its end; its first bytes.
    TooLong { start: Vec<u8> },
}

/// Reads one line into `line` (cleared first), never holding more than
/// [`MAX_LINE`] bytes of it; `None` at end of file. A last line without a
/// newline still counts.
async fn next_line(
    input: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> std::io::Result<Option<Line>> {
    line.clear();
    let mut too_long = false;
    loop {
        let chunk = input.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(match (too_long, line.is_empty()) {
                (true, _) => Some(Line::TooLong {
                    start: std::mem::take(line),
                }),
                (false, true) => None,
                (false, false) => Some(Line::Whole),
            });
        }
        let (part, used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        if !too_long {
            let room = MAX_LINE - line.len();
            if part.len() > room {
                too_long = true;
                line.truncate(QUOTE_CHARS);
            } else {
                line.extend_from_slice(part);
            }
        }
        input.consume(used);
        if done {
            return Ok(Some(if too_long {
                Line::TooLong {
                    start: std::mem::take(line),
                }
            } else {
                Line::Whole
            }));
        }
    }
}

async fn tee_stderr(slot: u32, stderr: impl AsyncRead + Unpin, log: PathBuf) {
    let mut file = std::fs::File::create(&log).ok();
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(f) = file.as_mut() {
            let _ = writeln!(f, "{line}");
        }
        eprintln!("[slot {slot}] {line}");
    }
}

/// Asks the hub for its counts until its trunk holds `committed` check-ins,
/// or the bound runs out (then the last answer stands).
async fn hub_count_settled(http: &str, committed: u64) -> Result<HubCount, String> {
    let deadline = Instant::now() + HUB_COUNT_TIMEOUT;
    loop {
        let url = format!("{http}/stats");
        let count = tokio::task::spawn_blocking(move || fetch_stats(&url))
            .await
            .map_err(|e| e.to_string())?;
        match count {
            Ok(c) if c.trunk_commits == committed || Instant::now() > deadline => return Ok(c),
            Err(e) if Instant::now() > deadline => return Err(e),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn fetch_stats(url: &str) -> Result<HubCount, String> {
    let response = ureq::get(url)
        .timeout(Duration::from_secs(5))
        .call()
        .map_err(|e| e.to_string())?;
    let body = response.into_string().map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let field = |name: &str| {
        v.get(name)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| format!("/stats has no numeric {name:?}"))
    };
    Ok(HubCount {
        trunk_commits: field("trunk_commits")?,
        trunk_leaves: field("trunk_leaves")?,
        requests: Some(field("requests")?),
        peak_rss_kb: field("peak_rss_kb").ok(),
        hub_rebases: field("hub_rebases").ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line of `input`: `Ok(bytes)` whole, `Err(first bytes)` too long.
    async fn lines_of(input: &[u8]) -> Vec<Result<Vec<u8>, Vec<u8>>> {
        let mut reader = BufReader::with_capacity(64, input);
        let mut line = Vec::new();
        let mut out = Vec::new();
        while let Some(l) = next_line(&mut reader, &mut line).await.unwrap() {
            out.push(match l {
                Line::Whole => Ok(line.clone()),
                Line::TooLong { start } => Err(start),
            });
        }
        out
    }

    #[tokio::test]
    async fn lines_are_bounded_and_need_not_be_utf8() {
        let mut input = b"one\n\xff\xfe binary\n".to_vec();
        input.extend(std::iter::repeat(b'x').take(MAX_LINE + 10));
        input.extend_from_slice(b"\nlast");
        let got = lines_of(&input).await;
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Ok(b"one".to_vec()));
        assert_eq!(got[1], Ok(b"\xff\xfe binary".to_vec()));
        assert_eq!(got[2], Err(vec![b'x'; QUOTE_CHARS]));
        assert_eq!(got[3], Ok(b"last".to_vec()));
    }

    #[tokio::test]
    async fn a_long_last_line_without_newline_is_flagged() {
        let got = lines_of(&vec![b'y'; MAX_LINE + 1]).await;
        assert_eq!(got, vec![Err(vec![b'y'; QUOTE_CHARS])]);
    }
}

//! The slots: starting one leaf-agent per slot, and the control loop that
//! hears every slot's lines and exit, the infrastructure watcher, stop
//! requests, the timeout, the faults and the progress tick, one handler
//! per kind of event; then the verdict over what the slots said and what
//! the hub counts.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::process::Command;
use tokio::sync::mpsc;

use super::acks::AckLog;
use super::faults::Faults;
use super::hub::Hub;
use super::lines::{tee_stderr, watch_slot, SlotEvent};
use super::{log_file, Finished, Setting, STOP_GRACE};
use crate::supervisor::infra::{InfraEvent, InfraKind, Watch};
use crate::supervisor::sampler::Ticks;
use crate::supervisor::summary::{HubCount, SlotRecord, TrialReport, TrialShape};
use crate::supervisor::{process, SupervisorError};
use crate::wire::{HubReady, LeafLine, ProcessKind, TaskOutcome};

/// Most errors kept per slot; later ones are dropped.
const MAX_ERRORS_KEPT: usize = 100;
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// How often the work directory's free space is read.
const DISK_EVERY: Duration = Duration::from_millis(500);
/// Free bytes below which the work directory's file system counts as full:
/// SQLite and JetStream fail their writes there, and the leaves would
/// otherwise retry until their deadlines.
const DISK_FULL_BYTES: u64 = 256 * 1024;
/// The grace every child gets after SIGTERM once the disk is full: what
/// it would still write cannot be stored, so there is no point waiting.
const FULL_DISK_GRACE: Duration = Duration::from_secs(1);

/// The command that starts slot `slot`'s leaf-agent, on its host.
fn leaf_command(run: &Setting<'_>, slot: u32, hub: &HubReady) -> Command {
    let config = run.config;
    let program = std::env::var_os(crate::env::LEAF_AGENT)
        .filter(|p| !p.is_empty())
        .map_or_else(|| config.bin_dir.join("leaf-agent"), PathBuf::from);
    let host = run.topology.host_of(slot);
    let place = crate::spec::LeafPlace {
        hub: hub.http.clone(),
        nats_url: run.topology.nats_urls(host, run.nats_url),
        slot,
        workdir: run.workdir.join(format!("slot-{slot}")),
    };
    let args: Vec<std::ffi::OsString> = place
        .to_args()
        .into_iter()
        .chain(config.spec.to_args())
        .map(Into::into)
        .collect();
    run.topology.command(host, Some(slot), &program, &args)
}

/// Starts every slot's leaf-agent; returns the pids (`None` for a slot
/// that could not start, whose record says why) and the channel their
/// events arrive on.
fn start_slots(
    t: &Setting<'_>,
    hub: &HubReady,
    slots: &mut [SlotRecord],
) -> Result<(Vec<Option<u32>>, mpsc::UnboundedReceiver<SlotEvent>), SupervisorError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut pids = vec![None; slots.len()];
    for slot in 0..t.config.spec.agents {
        let mut cmd = leaf_command(t, slot, hub);
        let log = t.logs.join(format!("slot-{slot}.log"));
        cmd.stdout(Stdio::piped());
        if t.config.verbose {
            cmd.stderr(Stdio::piped());
        } else {
            cmd.stderr(log_file(&log)?);
        }
        t.pass(&mut cmd);
        process::supervise(&mut cmd);
        let span = tracing::info_span!("herd.start_process", process = "leaf-agent", slot);
        match span.in_scope(|| cmd.spawn()) {
            Ok(mut child) => {
                pids[slot as usize] = child.id();
                if let Some(pid) = child.id() {
                    t.sampler.watch(ProcessKind::Leaf, pid);
                }
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
    Ok((pids, rx))
}

/// Why a trial is being stopped, and when its leaves' grace after SIGTERM
/// runs out (`None` once they were sent SIGKILL).
struct Stopping {
    why: String,
    escalate_at: Option<Instant>,
    /// Stopped on a full disk: every wait that follows is short.
    hurry: bool,
}

/// What the control loop keeps while the slots run.
struct Dispatch<'a> {
    t: &'a Setting<'a>,
    slots: Vec<SlotRecord>,
    pids: Vec<Option<u32>>,
    running: usize,
    landed: u64,
    slowest: Option<u32>,
    /// Why the trial is being stopped, and when the leaves' grace ends.
    stopping: Option<Stopping>,
    started: Instant,
    acks: AckLog,
}

impl Dispatch<'_> {
    fn on_line(&mut self, slot: u32, line: LeafLine) {
        let rec = &mut self.slots[slot as usize];
        match line {
            LeafLine::Task(t) => {
                if t.outcome == TaskOutcome::Committed {
                    self.landed += 1;
                    self.acks.record(&t);
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

    fn on_malformed(&mut self, slot: u32, text: String) {
        let rec = &mut self.slots[slot as usize];
        // A leaf printing garbage forever must not grow herd.
        if rec.errors.len() < MAX_ERRORS_KEPT {
            tracing::warn!(slot, line = %text, "malformed line from leaf-agent");
            rec.errors.push(format!("malformed line: {text}"));
        }
        rec.failure
            .get_or_insert_with(|| format!("printed a malformed line: {text}"));
    }

    fn on_exit(&mut self, slot: u32, status: std::io::Result<ExitStatus>, ticks: Option<Ticks>) {
        self.running -= 1;
        self.slowest = Some(slot);
        let rec = &mut self.slots[slot as usize];
        if let Some(pid) = self.pids[slot as usize].take() {
            let reported = rec.summary.as_ref().map_or(0, |s| s.cpu_us);
            self.t
                .sampler
                .exited(pid, ticks.map(|t| t.at_least_us(reported)));
        }
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                let last = rec
                    .errors
                    .last()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                rec.failure
                    .get_or_insert_with(|| format!("leaf-agent exited with {s}{last}"));
            }
            Err(e) => {
                rec.failure
                    .get_or_insert_with(|| format!("cannot wait for leaf-agent: {e}"));
            }
        }
    }

    fn on_infra(&mut self, event: InfraEvent) {
        let sentence = event.sentence();
        match event {
            InfraEvent::Died(_) => crate::say!("herd: {sentence}"),
            InfraEvent::Restarted { kind, pid, .. } => {
                crate::say!("herd: the {} {sentence}", kind.name());
                if let Some(pid) = pid {
                    let kind = match kind {
                        InfraKind::Hub => ProcessKind::Hub,
                        InfraKind::Nats => ProcessKind::Nats,
                    };
                    self.t.sampler.watch(kind, pid);
                }
            }
            InfraEvent::Lost { .. } => {
                crate::say!("herd: {sentence}; stopping the trial");
                self.begin_stop(&sentence);
            }
        }
    }

    /// Asks the leaves to finish (SIGTERM); asked again, kills them.
    fn begin_stop(&mut self, why: &str) {
        self.begin_stop_within(why, STOP_GRACE);
    }

    /// [`Self::begin_stop`] with `grace` before SIGKILL; a grace shorter
    /// than the usual one hurries the rest of the trial's end too.
    fn begin_stop_within(&mut self, why: &str, grace: Duration) {
        let signal = match self.stopping {
            None => {
                self.stopping = Some(Stopping {
                    why: why.to_string(),
                    escalate_at: Some(Instant::now() + grace),
                    hurry: grace < STOP_GRACE,
                });
                Signal::SIGTERM
            }
            // A second request: no more grace.
            Some(_) => Signal::SIGKILL,
        };
        for pid in self.pids.iter().flatten() {
            process::signal_pid_group(*pid, signal);
        }
    }

    /// The grace after SIGTERM ran out: SIGKILL, once.
    fn escalate(&mut self) {
        for pid in self.pids.iter().flatten() {
            process::signal_pid_group(*pid, Signal::SIGKILL);
        }
        if let Some(stopping) = &mut self.stopping {
            stopping.escalate_at = None;
        }
    }

    fn progress(&self) {
        let total = u64::from(self.t.config.spec.agents) * u64::from(self.t.config.spec.tasks);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        crate::say_partial!(
            "\rherd: landed {}/{total}  {:.0} commits/s  {} running   ",
            self.landed,
            self.landed as f64 / secs,
            self.running
        );
        let _ = std::io::stderr().flush();
    }
}

/// Runs every slot to its end and hands back the verdict.
pub(super) async fn run_slots(
    t: &Setting<'_>,
    hub: &Hub,
    infra: &mut Watch,
    mut stop: mpsc::Receiver<()>,
) -> Result<Finished, SupervisorError> {
    let config = t.config;
    let mut slots = vec![SlotRecord::default(); config.spec.agents as usize];
    // A git hub's bare repository was made with the hot files in it.
    if config.workload().hot.enabled() && !matches!(hub, Hub::Git(..)) {
        super::seed::seed_hot_files(t, hub.ready()).await?;
    }
    let acks = AckLog::create(config.acks.as_deref())?;
    let started = Instant::now();
    let (pids, mut rx) = start_slots(t, hub.ready(), &mut slots)?;
    let mut d = Dispatch {
        t,
        running: pids.iter().filter(|p| p.is_some()).count(),
        slots,
        pids,
        landed: 0,
        slowest: None,
        stopping: None,
        started,
        acks,
    };
    let deadline = config.timeout.map(|t| started + t);
    let mut faults = Faults::plan(config, started);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    let mut disk = tokio::time::interval(DISK_EVERY);
    let mut stop_open = true;

    while d.running > 0 {
        let escalate_at = d.stopping.as_ref().and_then(|s| s.escalate_at);
        let stopping = d.stopping.is_some();
        tokio::select! {
            event = rx.recv() => match event {
                Some(SlotEvent::Line(slot, line)) => d.on_line(slot, line),
                Some(SlotEvent::Malformed(slot, text)) => d.on_malformed(slot, text),
                Some(SlotEvent::Exited(slot, status, ticks)) => d.on_exit(slot, status, ticks),
                None => break,
            },
            event = infra.next() => d.on_infra(event),
            request = stop.recv(), if stop_open => match request {
                Some(()) => {
                    if !stopping {
                        crate::say!("herd: stopping: asking leaf-agents to finish (again to kill at once)");
                    }
                    d.begin_stop("interrupted");
                }
                None => stop_open = false,
            },
            () = sleep_until_opt(deadline), if !stopping => {
                let secs = config.timeout.map_or(0, |t| t.as_secs());
                d.begin_stop(&format!("timed out after {secs} s"));
            }
            () = sleep_until_opt(escalate_at) => d.escalate(),
            () = sleep_until_opt(faults.next_at()), if !stopping => {
                faults.inject(t.topology, started);
            }
            _ = tick.tick(), if config.progress => d.progress(),
            _ = disk.tick(), if !stopping => {
                if let Some(why) = disk_full(t.workdir) {
                    crate::say!("herd: {why}; stopping the trial");
                    // Nothing a child would still write can be stored.
                    d.begin_stop_within(&why, FULL_DISK_GRACE);
                    infra.hurry(FULL_DISK_GRACE);
                }
            }
        }
    }
    let runtime_s = started.elapsed().as_secs_f64();
    if config.progress {
        crate::say!();
    }
    faults.end(t.topology, started);
    verdict(d, hub, infra, runtime_s, faults.said()).await
}

/// Why the trial must stop when the file system holding `workdir` (the
/// hub's repository, the leaves', nats-server's store, the logs) is full:
/// naming it and its free space; `None` while there is room (or it cannot
/// be read).
fn disk_full(workdir: &std::path::Path) -> Option<String> {
    let stat = nix::sys::statvfs::statvfs(workdir).ok()?;
    let block = stat.fragment_size();
    let free = stat.blocks_available() * block;
    let total = stat.blocks() * block;
    (free < DISK_FULL_BYTES).then(|| {
        format!(
            "the file system holding {} is full ({free} bytes free of {total}): the hub's, the \
             leaves' and nats-server's writes fail there",
            workdir.display()
        )
    })
}

/// The trial's report: the slots' lines, the hub's own count (unless the
/// hub was lost), the shape of the trial.
async fn verdict(
    d: Dispatch<'_>,
    hub: &Hub,
    infra: &Watch,
    runtime_s: f64,
    faults: Vec<String>,
) -> Result<Finished, SupervisorError> {
    let (t, mut slots) = (d.t, d.slots);
    let config = t.config;
    if let Some(Stopping { why, .. }) = &d.stopping {
        for rec in &mut slots {
            let done = rec
                .summary
                .as_ref()
                .is_some_and(|s| s.tasks >= config.spec.tasks);
            if !done {
                rec.failure.get_or_insert_with(|| why.clone());
            }
        }
    }
    let hurried = d.stopping.as_ref().is_some_and(|s| s.hurry);
    let committed: u64 = slots
        .iter()
        .map(|r| {
            r.tasks
                .iter()
                .filter(|t| t.outcome == TaskOutcome::Committed)
                .count() as u64
        })
        .sum();
    // A hub herd could not keep running has nothing to count. The hot
    // files' seed check-in is herd's, not a task's: it is not counted.
    let seeded = u64::from(config.workload().hot.enabled());
    let counted = match infra.lost() {
        Some(_) => Err(None),
        None => hub
            .count(committed + seeded, hurried)
            .await
            .map(|mut c| {
                c.trunk_commits = c.trunk_commits.saturating_sub(seeded);
                c
            })
            .map_err(Some),
    };
    let (hub_count, hub_error) = match counted {
        Ok(c) => (c, None),
        Err(e) => (HubCount::default(), Some(e)),
    };
    let shape = TrialShape {
        slowest_slot: d.slowest,
        hosts: t.topology.host_count() as u32,
        nats_nodes: t.topology.cluster().map_or(1, |c| c.nodes().len() as u32),
        faults,
        ..TrialShape::of(config, runtime_s)
    };
    let mut report = TrialReport::build(shape, &slots, hub_count);
    if config.workload().hot.enabled() && infra.lost().is_none() {
        report.edits = Some(check_edits(t, &slots, &hub_count).await);
    }
    if let Some(e) = hub_error {
        report.hub_count_unknown();
        report.hub_count_error = e;
    }
    Ok((report, slots))
}

/// The set check over the hot files at the hub's trunk tip (read from its
/// repository, which the hub keeps in the work directory), with the
/// merges and conflicts behind it. A repository that cannot be read
/// counts every edit as lost, naming why.
async fn check_edits(
    t: &Setting<'_>,
    slots: &[SlotRecord],
    hub: &HubCount,
) -> crate::supervisor::edits::EditCheck {
    use crate::supervisor::edits::{expected_markers, markers_on_trunk, EditCheck};
    let config = t.config;
    let committed: Vec<(u32, u32)> = slots
        .iter()
        .flat_map(|r| &r.tasks)
        .filter(|t| t.outcome == TaskOutcome::Committed)
        .map(|t| (t.slot, t.task))
        .collect();
    let expected = expected_markers(
        &config.workload(),
        config.spec.seed,
        config.spec.tasks,
        committed,
    );
    let files = config.workload().hot.files;
    let git = config.spec.hub_kind == crate::wire::HubKind::Git;
    let repo = t.workdir.join(if git { "hub.git" } else { "hub.fossil" });
    let found = tokio::task::spawn_blocking(move || {
        if git {
            crate::supervisor::edits::markers_in_git(&repo, files)
        } else {
            markers_on_trunk(&repo, files).map_err(|e| crate::chain::chain(&e))
        }
    })
    .await;
    let mut check = match found {
        Ok(Ok(found)) => EditCheck::compare(&expected, &found),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read the hub's hot files");
            EditCheck::compare(&expected, &Default::default())
        }
        Err(_) => EditCheck::compare(&expected, &Default::default()),
    };
    check.overlap = config.workload().hot.overlap;
    check.hold_hot = config.workload().hot.hold;
    check.hub_merges = hub.hub_merges;
    check.conflicts = hub.conflicts;
    check.leaf_resolutions = slots
        .iter()
        .flat_map(|r| &r.tasks)
        .map(|t| u64::from(t.resolutions))
        .sum();
    check
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

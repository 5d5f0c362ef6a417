//! One trial under the nemesis: `herd run` started as a child (the faults
//! herd injects itself passed as its flags), the others injected from
//! outside by pid at their planned points, then the trial's verdict
//! checked: the trunk against the acknowledgements, no panic, nothing left
//! running, the trial ended by itself within its bound.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::Serialize;

use super::check::{self, TrunkCheck};
use super::plan::{Fault, FaultKind, TrialPlan};
use super::procs::{fill, Proc, Seen, SmallFs};
use super::SoakOptions;

/// How often the trial's processes are looked at.
const POLL: Duration = Duration::from_millis(10);
/// How long a trial may run past herd's own `--timeout` before it counts
/// as hung and is killed.
const HUNG_AFTER: Duration = Duration::from_secs(30);
/// How soon herd must stop a trial whose disk filled.
const DISK_STOP: Duration = Duration::from_secs(10);
/// The small file system a trial whose disk fills runs on, in MiB.
const SMALL_FS_MIB: u64 = 96;

/// A planned fault and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct Injected {
    /// The plan.
    #[serde(flatten)]
    pub fault: Fault,
    /// Whether it was done (its target was running at its point).
    pub done: bool,
    /// What was hit, or why nothing was.
    pub note: String,
}

/// One trial's result under the nemesis.
#[derive(Debug, Clone, Serialize)]
pub struct TrialOutcome {
    /// The plan.
    pub plan: TrialPlan,
    /// Each fault, done or not.
    pub faults: Vec<Injected>,
    /// herd's exit code (`None`: killed by a signal).
    pub exit: Option<i32>,
    /// Seconds from start to herd's exit.
    pub seconds: f64,
    /// Whether the trial outran its bound (or herd's own timeout).
    pub hung: bool,
    /// The trunk held against the acknowledgements (`None`: no hub).
    pub trunk: Option<TrunkCheck>,
    /// Log lines telling of a panic.
    pub panics: Vec<String>,
    /// Processes still running after herd exited.
    pub left_running: Vec<String>,
    /// Everything else found wrong.
    pub problems: Vec<String>,
}

impl TrialOutcome {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        !self.hung
            && self.panics.is_empty()
            && self.left_running.is_empty()
            && self.problems.is_empty()
            && self.trunk.as_ref().map_or(true, TrunkCheck::holds)
    }

    /// Everything wrong, one phrase each.
    pub fn failures(&self) -> Vec<String> {
        let mut why = self.problems.clone();
        if self.hung {
            why.push(format!("hung ({:.0} s)", self.seconds));
        }
        why.extend(self.panics.iter().map(|p| format!("panic: {p}")));
        why.extend(
            self.left_running
                .iter()
                .map(|p| format!("left running: {p}")),
        );
        if let Some(t) = &self.trunk {
            why.extend(t.lost.iter().map(|l| format!("lost: {l}")));
            why.extend(t.doubled.iter().map(|d| format!("doubled: {d}")));
            if t.forks > 0 {
                why.push(format!("trunk forked ({} forks)", t.forks));
            }
        }
        why
    }
}

/// Runs `plan` in `dir` (made empty) and checks it.
pub fn run(opts: &SoakOptions, plan: &TrialPlan, dir: &Path) -> std::io::Result<TrialOutcome> {
    std::fs::create_dir_all(dir)?;
    let mut problems = Vec::new();
    // Without a small file system (not root), the disk is not filled.
    let small = plan
        .small_disk()
        .then(|| SmallFs::mount(&dir.join("fs"), SMALL_FS_MIB));
    let small_dir = match &small {
        Some(Ok(fs)) => Ok(fs.dir.clone()),
        Some(Err(why)) => Err(format!("no small file system: {why}")),
        None => Err("no small file system".into()),
    };
    let workdir = small_dir
        .clone()
        .unwrap_or_else(|_| dir.to_path_buf())
        .join("w");
    let acks = dir.join("acks.jsonl");
    let mut cmd = herd_command(opts, plan, &workdir, &acks);
    cmd.stdout(std::fs::File::create(dir.join("herd.json"))?)
        .stderr(std::fs::File::create(dir.join("herd.stderr"))?);
    let mut watch = Watch::new(plan, small_dir);
    let started = Instant::now();
    let mut herd = cmd.spawn()?;
    let bound = opts.trial_timeout + HUNG_AFTER;
    let mut asked_to_stop = false;
    let status = loop {
        if let Some(status) = herd.try_wait()? {
            break Some(status);
        }
        if super::interrupted() && !asked_to_stop {
            asked_to_stop = true;
            watch.resume_all();
            // herd stops its trial on SIGTERM and removes what it made.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(herd.id() as i32),
                Signal::SIGTERM,
            );
        }
        if started.elapsed() > bound {
            break None;
        }
        watch.step(herd.id());
        std::thread::sleep(POLL);
    };
    let seconds = started.elapsed().as_secs_f64();
    let hung = status.is_none();
    if hung {
        let _ = herd.kill();
        let _ = herd.wait();
    }
    watch.resume_all();
    let left_running = watch.leftovers(herd.id());
    if let (Some(filled), Some(status)) = (watch.filled, status) {
        let took = started + Duration::from_secs_f64(seconds) - filled;
        if took > DISK_STOP && status.code() != Some(0) {
            problems.push(format!(
                "herd stopped {:.1} s after the disk filled",
                took.as_secs_f64()
            ));
        }
    }
    if let Some(Ok(fs)) = &small {
        let _ = std::fs::remove_file(fs.dir.join("nemesis-filler"));
    }
    let exit = status.and_then(|s| s.code());
    let stderr = std::fs::read_to_string(dir.join("herd.stderr")).unwrap_or_default();
    match (status, exit) {
        (None, _) | (_, Some(0 | 1)) => {}
        (_, Some(code)) => problems.push(format!(
            "herd exited with status {code}: {}",
            last_line(&stderr)
        )),
        (Some(s), None) => problems.push(format!("herd ended by {s}")),
    }
    // herd's own timeout stopped it: the verdict it prints says so.
    let timeout = format!("timed out after {} s", opts.trial_timeout.as_secs());
    let timed_out = stderr
        .lines()
        .any(|l| l.starts_with("herd: trial failed:") && l.contains(&timeout));
    let mut logs = vec![dir.join("herd.stderr")];
    logs.extend(log_files(&workdir.join("logs")));
    let panics = check::panics(&logs);
    let hub = workdir.join("hub.fossil");
    let trunk = if hub.exists() {
        let acked = crate::supervisor::read_acks(&acks).unwrap_or_default();
        match check::check_trunk(&hub, &acked) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        }
    } else {
        None
    };
    if let (true, Some(fossil)) = (hub.exists(), &opts.fossil) {
        if let Some(why) = check::integrity(fossil, &hub, dir) {
            problems.push(format!("fossil test-integrity: {why}"));
        }
    }
    let faults = watch.finish(&dir.join("herd.json"));
    Ok(TrialOutcome {
        plan: plan.clone(),
        faults,
        exit,
        seconds,
        hung: hung || timed_out,
        trunk,
        panics,
        left_running,
        problems,
    })
}

/// The faults herd injects itself: host cuts, slow links, and a cluster
/// member killed.
fn by_herd(plan: &TrialPlan, f: &Fault) -> bool {
    matches!(f.kind, FaultKind::CutHost | FaultKind::SlowLink)
        || (f.kind == FaultKind::KillNats && plan.hosts > 1)
}

/// `herd run` for `plan`.
fn herd_command(opts: &SoakOptions, plan: &TrialPlan, workdir: &Path, acks: &Path) -> Command {
    let mut cmd = Command::new(&opts.herd);
    cmd.arg("run")
        .args(["--agents", &plan.agents.to_string()])
        .args(["--tasks", &plan.tasks.to_string()])
        .args(["--seed", &plan.seed.to_string()])
        .args(["--timeout", &opts.trial_timeout.as_secs().to_string()])
        .arg("--json")
        .arg("--workdir")
        .arg(workdir)
        .arg("--acks")
        .arg(acks)
        .stdin(Stdio::null())
        .process_group(0);
    if plan.hosts > 1 {
        cmd.args(["--hosts", &plan.hosts.to_string()]);
    }
    for f in plan.faults.iter().filter(|f| by_herd(plan, f)) {
        let at = f.at.as_secs_f64();
        match f.kind {
            FaultKind::CutHost => cmd.arg("--partition-host").arg(format!(
                "{}:{at:.3}:{:.3}",
                f.target,
                f.hold.as_secs_f64()
            )),
            FaultKind::SlowLink => cmd.arg("--slow-host").arg(format!(
                "{}:{at:.3}:{:.3}:{}",
                f.target,
                f.hold.as_secs_f64(),
                f.extra_ms
            )),
            _ => cmd.arg("--kill-nats-node").arg(format!("{at:.3}")),
        };
    }
    cmd
}

/// The outside faults of one trial as it runs.
struct Watch<'a> {
    plan: &'a TrialPlan,
    seen: Seen,
    /// When the first leaf-agent was seen: faults are timed from there.
    leaves_at: Option<Instant>,
    /// Each fault's outcome, by the plan's order (`None`: not yet due).
    results: Vec<Option<(bool, String)>>,
    /// Stopped processes and when they go on.
    stopped: Vec<(Instant, Proc)>,
    /// The small file system to fill, or why there is none.
    small: Result<PathBuf, String>,
    filled: Option<Instant>,
}

impl<'a> Watch<'a> {
    fn new(plan: &'a TrialPlan, small: Result<PathBuf, String>) -> Watch<'a> {
        Watch {
            plan,
            seen: Seen::default(),
            leaves_at: None,
            results: vec![None; plan.faults.len()],
            stopped: Vec::new(),
            small,
            filled: None,
        }
    }

    /// Looks at herd's children, injects what is due, resumes what was
    /// stopped long enough.
    fn step(&mut self, herd: u32) {
        let now = Instant::now();
        let procs = self.seen.look(herd);
        if self.leaves_at.is_none() && procs.iter().any(|p| p.name == "leaf-agent") {
            self.leaves_at = Some(now);
        }
        let Some(leaves_at) = self.leaves_at else {
            return;
        };
        for (i, f) in self.plan.faults.iter().enumerate() {
            if self.results[i].is_none() && !by_herd(self.plan, f) && leaves_at + f.at <= now {
                self.results[i] = Some(self.inject(f, &procs, now));
            }
        }
        self.stopped.retain(|(until, p)| {
            let due = *until <= now;
            if due {
                p.signal(Signal::SIGCONT);
            }
            !due
        });
    }

    fn inject(&mut self, f: &Fault, procs: &[Proc], now: Instant) -> (bool, String) {
        let name = match f.kind {
            FaultKind::KillHub | FaultKind::StopHub => "hub",
            FaultKind::KillNats | FaultKind::StopNats => "nats-server",
            FaultKind::KillLeaf | FaultKind::StopLeaf => "leaf-agent",
            FaultKind::FillDisk => {
                let dir = match &self.small {
                    Ok(dir) => dir,
                    Err(why) => return (false, why.clone()),
                };
                let bytes = fill(dir);
                self.filled = Some(Instant::now());
                return (true, format!("{} MiB written", bytes >> 20));
            }
            FaultKind::CutHost | FaultKind::SlowLink => return (false, "herd's to inject".into()),
        };
        let mut of_kind: Vec<&Proc> = procs.iter().filter(|p| p.name == name).collect();
        of_kind.sort_by_key(|p| p.pid);
        if of_kind.is_empty() {
            return (false, format!("no {name} running"));
        }
        let p = of_kind[f.target as usize % of_kind.len()];
        let stop = f.kind.holds();
        let signal = if stop {
            Signal::SIGSTOP
        } else {
            Signal::SIGKILL
        };
        if !p.signal(signal) {
            return (false, format!("{name} {} already gone", p.pid));
        }
        if stop {
            self.stopped.push((now + f.hold, p.clone()));
        }
        (true, format!("{name} {} sent {signal}", p.pid))
    }

    /// Resumes whatever is still stopped.
    fn resume_all(&mut self) {
        for (_, p) in self.stopped.drain(..) {
            p.signal(Signal::SIGCONT);
        }
    }

    /// What herd left running (then ended), and simulated hosts it left.
    fn leftovers(&self, herd: u32) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(3);
        while !self.seen.running().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut left: Vec<String> = self
            .seen
            .running()
            .iter()
            .map(|p| format!("{} {}", p.name, p.pid))
            .collect();
        self.seen.kill_all();
        if let Ok(names) = crate::supervisor::hosts::left_by(herd) {
            left.extend(names.into_iter().map(|n| format!("network {n}")));
        }
        left
    }

    /// Every fault's outcome; herd's own are read from its report.
    fn finish(self, report: &Path) -> Vec<Injected> {
        let said: Vec<String> = std::fs::read_to_string(report)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| serde_json::from_value(v["faults"].clone()).ok())
            .unwrap_or_default();
        self.plan
            .faults
            .iter()
            .zip(self.results)
            .map(|(f, r)| {
                let (done, note) = match r {
                    Some(r) => r,
                    None if by_herd(self.plan, f) => herd_said(f, &said),
                    None => (false, "the trial ended first".into()),
                };
                Injected {
                    fault: f.clone(),
                    done,
                    note,
                }
            })
            .collect()
    }
}

/// Whether herd's report says it injected `f`.
fn herd_said(f: &Fault, said: &[String]) -> (bool, String) {
    let word = if f.kind == FaultKind::SlowLink {
        "link slowed by"
    } else if f.kind == FaultKind::CutHost {
        "cut off at"
    } else {
        "killed (SIGKILL)"
    };
    match said.iter().find(|s| s.contains(word)) {
        Some(s) => (true, s.clone()),
        None => (
            false,
            said.first()
                .cloned()
                .unwrap_or_else(|| "herd did not say".into()),
        ),
    }
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or_default()
}

/// The `*.log` files in `dir`.
fn log_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default()
}

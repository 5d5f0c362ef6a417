//! `herd soak`: a seeded nemesis. Trials run back to back, each with
//! faults a generator draws from the seed ([`plan`]): SIGKILL and SIGSTOP
//! of the hub, nats-server (or a cluster member) and leaves, a host cut
//! off, the disk filling; then a checker that can fail ([`check`]) holds
//! each trial's trunk against what its leaves were told landed. Jepsen's
//! nemesis and FoundationDB's simulation are the models: the faults come
//! from a generator, the verdict from a checker, and the same seed plays
//! the same faults at the same points.
//!
//! Files: `plan` draws trials and faults; `procs` finds and signals a
//! trial's processes from outside; `trial` runs one trial and checks it;
//! `check` reads the hub's repository.

pub mod check;
pub mod plan;
pub mod procs;
pub mod trial;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use plan::FaultKind;
use trial::TrialOutcome;

/// What a soak runs.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// Trials start until this much time has passed.
    pub duration: Duration,
    /// The nemesis's seed.
    pub seed: u64,
    /// Where trials.jsonl, summary.json and failed trials' files go.
    pub out: PathBuf,
    /// The herd binary the trials run.
    pub herd: PathBuf,
    /// The real `fossil`, for `test-integrity` on each hub.
    pub fossil: Option<PathBuf>,
    /// herd's `--timeout` for each trial.
    pub trial_timeout: Duration,
    /// Whether trials may run on simulated hosts (root, `ip`).
    pub hosts: bool,
    /// Run only this trial of the seed (to replay a failed one).
    pub only: Option<u64>,
}

/// A failed trial: its index and what was wrong.
#[derive(Debug, Clone, Serialize)]
pub struct FailedVerdict {
    /// The trial's index (replay it with the same seed).
    pub trial: u64,
    /// What was wrong.
    pub why: Vec<String>,
}

/// A soak's result, printed as one JSON line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakSummary {
    /// The seed.
    pub seed: u64,
    /// Trials run.
    pub trials: u64,
    /// Faults injected (planned ones whose target was running).
    pub faults: u64,
    /// Injected faults by kind.
    pub by_kind: BTreeMap<String, u64>,
    /// Acknowledged check-ins not on trunk.
    pub lost: u64,
    /// Tasks on trunk more than once.
    pub doubled: u64,
    /// Trials that did not end by themselves within their bound.
    pub hung: u64,
    /// Trials with a panic in any process.
    pub panics: u64,
    /// Processes or networks left after a trial's herd exited.
    pub left_running: u64,
    /// Acknowledged check-ins checked.
    pub acked: u64,
    /// Every trial whose checks failed.
    pub failed_verdicts: Vec<FailedVerdict>,
    /// Seconds the soak ran.
    pub seconds: f64,
    /// Whether SIGINT or SIGTERM ended the soak early (its running trial
    /// was stopped and checked first).
    pub interrupted: bool,
}

impl SoakSummary {
    /// Whether nothing was lost, doubled, hung, panicked or left, and
    /// every verdict held.
    pub fn passed(&self) -> bool {
        self.failed_verdicts.is_empty()
    }

    fn add(&mut self, t: &TrialOutcome) {
        self.trials += 1;
        for f in t.faults.iter().filter(|f| f.done) {
            self.faults += 1;
            *self.by_kind.entry(f.fault.kind.name().into()).or_default() += 1;
        }
        if let Some(trunk) = &t.trunk {
            self.lost += trunk.lost.len() as u64;
            self.doubled += trunk.doubled.len() as u64;
            self.acked += trunk.acked as u64;
        }
        self.hung += u64::from(t.hung);
        self.panics += u64::from(!t.panics.is_empty());
        self.left_running += t.left_running.len() as u64;
        if !t.passed() {
            self.failed_verdicts.push(FailedVerdict {
                trial: t.plan.index,
                why: t.failures(),
            });
        }
    }
}

/// Why a soak could not run.
#[derive(Debug, thiserror::Error)]
#[error("cannot {what}: {source}")]
pub struct SoakError {
    what: String,
    #[source]
    source: std::io::Error,
}

/// Set by SIGINT or SIGTERM: stop the running trial, check it, end.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Whether the soak was asked to stop.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Turns SIGINT and SIGTERM into [`interrupted`]: a trial's herd runs in a
/// process group of its own (so that the nemesis's signals reach only
/// whom they are meant for), so a Ctrl-C would not reach it; the soak
/// stops it instead, and leaves nothing running.
fn catch_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        let _ = unsafe { sigaction(signal, &action) };
    }
}

/// Runs trials until `opts.duration` has passed; `each` hears every
/// trial's outcome. Trials that passed leave only their line in
/// `trials.jsonl`; a failed one keeps its files in `work/trial-N`.
pub fn run(
    opts: &SoakOptions,
    mut each: impl FnMut(&TrialOutcome),
) -> Result<SoakSummary, SoakError> {
    let io = |what: String| move |source| SoakError { what, source };
    let work = opts.out.join("work");
    std::fs::create_dir_all(&work).map_err(io(format!("create {}", work.display())))?;
    let lines = opts.out.join("trials.jsonl");
    let mut log =
        std::fs::File::create(&lines).map_err(io(format!("create {}", lines.display())))?;
    let mut summary = SoakSummary {
        seed: opts.seed,
        by_kind: FaultKind::ALL
            .iter()
            .map(|k| (k.name().into(), 0))
            .collect(),
        ..SoakSummary::default()
    };
    catch_signals();
    let started = Instant::now();
    let mut index = opts.only.unwrap_or(0);
    while started.elapsed() < opts.duration || opts.only.is_some() {
        let plan = plan::plan(opts.seed, index, opts.hosts);
        let dir = work.join(format!("trial-{index}"));
        let outcome = trial::run(opts, &plan, &dir).map_err(io(format!("run trial {index}")))?;
        summary.add(&outcome);
        let line = serde_json::to_string(&outcome).unwrap_or_default() + "\n";
        log.write_all(line.as_bytes())
            .map_err(io(format!("write {}", lines.display())))?;
        if outcome.passed() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        each(&outcome);
        if opts.only.is_some() || interrupted() {
            break;
        }
        index += 1;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    summary.interrupted = interrupted();
    if std::fs::read_dir(&work).is_ok_and(|mut d| d.next().is_none()) {
        let _ = std::fs::remove_dir(&work);
    }
    let json = serde_json::to_string(&summary).unwrap_or_default() + "\n";
    let path = opts.out.join("summary.json");
    std::fs::write(&path, json).map_err(io(format!("write {}", path.display())))?;
    Ok(summary)
}

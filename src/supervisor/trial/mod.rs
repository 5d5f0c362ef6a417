//! One trial: set up, run the slots, collect, count, tear down.
//!
//! Files: this one runs the trial (work directory, the infrastructure's
//! one owner, the environment every child gets, the report); `start`
//! starts NATS and the hub, handing each to that owner ([`TrialInfra`],
//! which stops them all on every path); `slots` starts the leaf-agents
//! and runs the control loop and the verdict; `lines` reads a leaf's
//! output; `hub` is the hub as the slots see it and its count; `faults`
//! injects faults across hosts. Starting again and watching the hub and
//! nats-server is `infra`'s; how any child starts, with which
//! environment, is `child`'s.
//!
//! One control loop owns all output and all decisions. Each slot is a task
//! that owns its child's stdout and reports typed [`SlotEvent`]s; the loop
//! also watches the shutdown future, the trial timeout and a progress tick.
//!
//! Each trial has its own secrets: a random password for the hub user every
//! leaf logs in as (the hub requires login) and, when herd starts the
//! nats-server, a random token it requires; children get them in their
//! environment (`child`).
//!
//! A leaf's stdout is untrusted input: lines are bounded ([`MAX_LINE`]),
//! need not be UTF-8, and anything that is not a [`LeafLine`] marks the slot
//! failed with the offending line quoted; nothing a leaf prints can crash
//! herd or make it grow without bound. For tests and for trying another
//! leaf implementation, `HERD_LEAF_AGENT` ([`crate::env::LEAF_AGENT`]) names the
//! program herd starts per slot instead of the `leaf-agent` beside it; it
//! gets the same arguments.

pub mod acks;
mod faults;
mod hub;
mod lines;
mod seed;
mod slots;
mod start;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::mpsc;

use super::child::{log_file, ChildEnv, Place, TrialSecrets, TRIAL_USER};
use super::infra::TrialInfra;
use super::sampler::Sampler;
use super::summary::{CpuByKind, SlotRecord, TrialReport};
use super::topology::Topology;
use super::{page, process, SupervisorError, TrialConfig};
use crate::coord::Secret;
use crate::env;
use crate::wire::{ProcessKind, TrialClock};

use slots::run_slots;
use start::{start_hub, start_nats};

/// How long stopped children get between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
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
    super::preflight::admit(&config)?;
    // Each leaf holds a few descriptors (pipes, a NATS and an HTTP socket,
    // SQLite files); herd holds its pipe ends.
    let _ = process::raise_nofile(u64::from(config.spec.agents) * 8 + 256);
    // CPU spent before the trial (an earlier trial in this process) is not
    // the trial's.
    let cpu_before = CpuBefore {
        all: process::cpu_ms().unwrap_or(0.0),
        herd: crate::telemetry::own_cpu_ms().unwrap_or(0.0),
    };
    // The trial's clock starts now; every child gets it.
    let sampler = Sampler::start(TrialClock::starting_now());

    let mut temp = None;
    let workdir: PathBuf = match &config.workdir {
        Some(dir) => {
            super::preflight::check_workdir(dir)?;
            std::fs::create_dir_all(dir)
                .map_err(|e| SupervisorError::io(format!("create {}", dir.display()), e))?;
            dir.clone()
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix("herd-")
                .tempdir()
                .map_err(|e| SupervisorError::io("create a temporary work directory", e))?;
            temp.insert(dir).path().to_path_buf()
        }
    };
    let result = run_in(&config, &workdir, sampler, cpu_before, stop).await;
    // A temporary work directory goes with a trial that ran; after a failed
    // start it is kept, so that the logs an error points to are there.
    if let (Err(_), Some(dir)) = (&result, temp) {
        let kept = dir.keep();
        crate::say!(
            "herd: the failed start's files are kept in {}",
            kept.display()
        );
    }
    result
}

/// The CPU, in ms, herd's `getrusage` counted before the trial: with its
/// reaped children, and its own.
#[derive(Debug, Clone, Copy)]
struct CpuBefore {
    all: f64,
    herd: f64,
}

/// [`run`] in its work directory, once the directory exists: the trial's
/// infrastructure is made, the trial runs on it, and whatever of it
/// started is stopped, on every path, before the report is made.
async fn run_in(
    config: &TrialConfig,
    workdir: &Path,
    sampler: Sampler,
    cpu_before: CpuBefore,
    stop: mpsc::Receiver<()>,
) -> Result<TrialReport, SupervisorError> {
    let logs = workdir.join("logs");
    std::fs::create_dir_all(&logs)
        .map_err(|e| SupervisorError::io(format!("create {}", logs.display()), e))?;

    let mut infra = TrialInfra::new(config)?;
    let result = start_and_run(config, workdir, &logs, &sampler, &mut infra, stop).await;
    let (restarts, events, lost) = infra.stop().await;
    let by_kind = sampler.cpu_ms_by_kind();
    let samples = sampler.finish().await;
    let (mut report, slots) = result?;
    report.set_infra(restarts, events, lost);
    // Every child has been reaped by now, so its CPU is in the count.
    if let Some(ms) = process::cpu_ms().map(|now| now - cpu_before.all) {
        report.set_cpu_ms(ms);
    }
    let kind = |k| by_kind.get(&k).copied().unwrap_or(0.0);
    report.set_cpu_by_kind(CpuByKind {
        hub: kind(ProcessKind::Hub),
        nats: kind(ProcessKind::Nats),
        leaves: kind(ProcessKind::Leaf),
        herd: crate::telemetry::own_cpu_ms().map_or(0.0, |now| now - cpu_before.herd),
    });
    if let Some(path) = &config.report {
        let trial = page::Trial {
            config,
            report: &report,
            slots: &slots,
            samples: &samples,
        };
        // The trial's verdict stands whatever happens to its page.
        match page::write(path, &trial) {
            Ok(()) => crate::say!("herd: report written to {}", path.display()),
            Err(e) => crate::say!("herd: {}", crate::chain::chain(&e)),
        }
    }
    Ok(report)
}

/// Starts NATS and the hub on `infra` (which owns each from its start) and
/// runs the slots. Stops nothing: [`run_in`] stops `infra` afterwards.
async fn start_and_run(
    config: &TrialConfig,
    workdir: &Path,
    logs: &Path,
    sampler: &Sampler,
    infra: &mut TrialInfra,
    stop: mpsc::Receiver<()>,
) -> Result<Finished, SupervisorError> {
    let (nats_url, nats_token) = start_nats(config, workdir, logs, sampler, infra).await?;
    let secrets = TrialSecrets {
        hub_secret: Secret::random(),
        nats_token,
    };
    let t = Setting {
        config,
        workdir,
        logs,
        nats_url: &nats_url,
        secrets: &secrets,
        sampler,
        topology: &infra.topology,
    };
    let hub = start_hub(&t, &mut infra.children).await?;
    let result = run_slots(&t, &hub, infra.children.watch(), stop).await;
    // The leaves are gone; the hub and nats-server's CPU totals are read
    // once more before they are stopped.
    sampler.settle().await;
    result
}

/// A finished trial's report and what each slot said.
pub(super) type Finished = (TrialReport, Vec<SlotRecord>);

/// What every step of a trial reads.
struct Setting<'a> {
    config: &'a TrialConfig,
    workdir: &'a Path,
    logs: &'a Path,
    nats_url: &'a str,
    secrets: &'a TrialSecrets,
    sampler: &'a Sampler,
    topology: &'a Topology,
}

impl Setting<'_> {
    /// Hands a child what every child of the trial gets in its environment:
    /// the credentials, the trace context, the trial clock's start and the
    /// NATS deployment.
    fn pass(&self, cmd: &mut Command) {
        self.child_env().apply(cmd);
    }

    /// What every child of the trial gets in its environment.
    fn child_env(&self) -> ChildEnv {
        let mut vars = vec![(env::TRIAL_START, self.sampler.clock().env_value())];
        vars.extend(self.topology.env());
        ChildEnv {
            secrets: self.secrets.clone(),
            trace: self.config.trace.clone(),
            vars,
        }
    }

    /// Where the hub starts: host 0, with the trial's environment.
    fn hub_place(&self) -> Place {
        Place {
            prefix: self.topology.prefix(0),
            env: self.child_env(),
        }
    }
}

//! One trial: set up, run the slots, collect, count, tear down.
//!
//! Files: this one starts the trial (work directory, NATS, the hub, the
//! environment every child gets); `slots` starts the leaf-agents and runs
//! the control loop and the verdict; `lines` reads a leaf's output; `hub`
//! asks herd's hub for its count; `faults` injects faults across hosts.
//! Starting and watching the hub and nats-server is `infra`'s; how any
//! child starts, with which environment, is `child`'s.
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

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio::sync::mpsc;

use super::child::{log_file, ChildEnv, Place, TrialSecrets, TRIAL_USER};
use super::fossil_hub::{self, FossilHub};
use super::infra::{HubLaunch, HubWatch, NatsWatch, Watch};
use super::sampler::Sampler;
use super::summary::{CpuByKind, HubCount, SlotRecord, TrialReport};
use super::topology::Topology;
use super::{nats, page, process, SupervisorError, TrialConfig};
use crate::coord::Secret;
use crate::env;
use crate::wire::{HubKind, HubReady, ProcessKind, TrialClock};

use hub::hub_count_settled;
use slots::run_slots;

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

/// [`run`] in its work directory, once the directory exists.
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

    let origin = Instant::now();
    let mut secrets = TrialSecrets {
        hub_secret: Secret::random(),
        nats_token: None,
    };
    let mut topology = Topology::new(config)?;
    let mut nats_watch = None;
    let nats_url = match &config.nats_url {
        Some(url) => url.clone(),
        // On several hosts NATS is a cluster of its own (not restarted by
        // the watcher: losing a member is what a cluster is for).
        None if topology.has_hosts() => {
            let binary = nats::find(config.nats_server.as_deref())?;
            let token = Secret::random();
            let size = config.cluster_size() as usize;
            let urls = topology
                .start_nats(&binary, size, workdir, &logs, &token)
                .await?;
            secrets.nats_token = Some(token);
            for node in topology.cluster().map_or(&[][..], |c| c.nodes()) {
                if let Some(pid) = node.pid() {
                    sampler.watch(ProcessKind::Nats, pid);
                }
            }
            urls
        }
        None => {
            let binary = nats::find(config.nats_server.as_deref())?;
            let token = Secret::random();
            let (store, log) = (workdir.join("nats"), logs.join("nats.log"));
            let started = nats::start(&binary, &store, &log, &token).await?;
            secrets.nats_token = Some(token.clone());
            if let Some(pid) = started.child.id() {
                sampler.watch(ProcessKind::Nats, pid);
            }
            let url = started.url.clone();
            nats_watch = Some(NatsWatch {
                child: started.child,
                binary,
                store,
                log,
                token,
                port: started.port,
            });
            url
        }
    };

    let trial = Setting {
        config,
        workdir,
        logs: &logs,
        nats_url: &nats_url,
        secrets: &secrets,
        origin,
        sampler: &sampler,
        topology: &topology,
    };
    // The watcher stops nats-server at the end (or run_with_nats does, when
    // the hub never started).
    let result = run_with_nats(&trial, nats_watch, stop).await;
    topology.stop(STOP_GRACE).await;
    let by_kind = sampler.cpu_ms_by_kind();
    let samples = sampler.finish().await;
    let (mut report, slots) = result?;
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

/// A finished trial's report and what each slot said.
pub(super) type Finished = (TrialReport, Vec<SlotRecord>);

/// What every step of a trial reads.
struct Setting<'a> {
    config: &'a TrialConfig,
    workdir: &'a Path,
    logs: &'a Path,
    nats_url: &'a str,
    secrets: &'a TrialSecrets,
    /// When the trial began: deaths of its processes are timed from here.
    origin: Instant,
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

async fn run_with_nats(
    t: &Setting<'_>,
    nats: Option<NatsWatch>,
    stop: mpsc::Receiver<()>,
) -> Result<Finished, SupervisorError> {
    let (config, workdir, logs, nats_url, secrets) =
        (t.config, t.workdir, t.logs, t.nats_url, t.secrets);
    let stop_nats = |nats: Option<NatsWatch>| async move {
        if let Some(mut n) = nats {
            let _ = process::stop(&mut n.child, STOP_GRACE).await;
        }
    };
    match config.spec.hub_kind {
        HubKind::Herd => {
            let launch = HubLaunch::new(config, workdir, logs, nats_url, t.hub_place());
            let (mut hub, ready) = match launch.start(&t.topology.hub_listen()).await {
                Ok(started) => started,
                Err(e) => {
                    stop_nats(nats).await;
                    return Err(e);
                }
            };
            if let Err(e) = t
                .topology
                .prepare(&ready.project_code, secrets.nats_token.as_ref())
                .await
            {
                let _ = process::stop(&mut hub, STOP_GRACE).await;
                stop_nats(nats).await;
                return Err(e);
            }
            if let Some(pid) = hub.id() {
                t.sampler.watch(ProcessKind::Hub, pid);
            }
            t.sampler.hub(&ready.http);
            // A hub started again listens where the leaves already point.
            let listen = ready.http.trim_start_matches("http://").to_string();
            let hub_watch = HubWatch {
                child: hub,
                listen,
                launch,
            };
            let mut watch = Watch::start(nats, Some(hub_watch), t.origin);
            let hub_ref = Hub::Herd(&ready);
            let result = run_slots(t, &hub_ref, &mut watch, stop).await;
            // The leaves are gone; the hub and nats-server's CPU totals are
            // read once more before they are stopped.
            t.sampler.settle().await;
            with_infra(result, watch).await
        }
        HubKind::Fossil => {
            let mut hub =
                match fossil_hub::start(workdir, logs, TRIAL_USER, &secrets.hub_secret).await {
                    Ok(hub) => hub,
                    Err(e) => {
                        stop_nats(nats).await;
                        return Err(e);
                    }
                };
            if let Some(pid) = hub.pid() {
                t.sampler.watch(ProcessKind::Hub, pid);
            }
            let mut watch = Watch::start(nats, None, t.origin);
            let result = run_slots(t, &Hub::Fossil(&hub), &mut watch, stop).await;
            t.sampler.settle().await;
            hub.stop(STOP_GRACE).await;
            with_infra(result, watch).await
        }
        HubKind::Git => {
            let started = start_git(t).await;
            let (hub, ready, bare, listen) = match started {
                Ok(started) => started,
                Err(e) => {
                    stop_nats(nats).await;
                    return Err(e);
                }
            };
            if let Some(pid) = hub.id() {
                t.sampler.watch(ProcessKind::Hub, pid);
            }
            let launch = HubLaunch::Git {
                bare: bare.clone(),
                logs: logs.to_path_buf(),
            };
            let hub_watch = HubWatch {
                child: hub,
                listen,
                launch,
            };
            let mut watch = Watch::start(nats, Some(hub_watch), t.origin);
            let result = run_slots(t, &Hub::Git(&ready, &bare), &mut watch, stop).await;
            t.sampler.settle().await;
            with_infra(result, watch).await
        }
    }
}

/// Makes the trial's bare repository (with the hot files, when tasks edit
/// them) and serves it with `git daemon` on a free loopback port.
async fn start_git(
    t: &Setting<'_>,
) -> Result<(tokio::process::Child, HubReady, PathBuf, String), SupervisorError> {
    let workload = t.config.workload();
    let hot = &workload.hot;
    let seed = if hot.enabled() {
        crate::workload::seed_files(hot.files)
    } else {
        Vec::new()
    };
    let bare = super::git_hub::create(t.workdir, &seed).await?;
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| SupervisorError::io("find a free loopback port", e))?;
    let (child, ready) = super::git_hub::serve(&bare, t.logs, port).await?;
    Ok((child, ready, bare, format!("127.0.0.1:{port}")))
}

/// The trial's hub as the slots and the final count see it.
enum Hub<'a> {
    /// herd's hub, counted through `/stats`.
    Herd(&'a HubReady),
    /// A stock `fossil server`, counted with `fossil sql`.
    Fossil(&'a FossilHub),
    /// `git daemon` over the bare repository (its path), counted with
    /// `git rev-list`.
    Git(&'a HubReady, &'a Path),
}

impl Hub<'_> {
    fn ready(&self) -> &HubReady {
        match self {
            Hub::Herd(ready) | Hub::Git(ready, _) => ready,
            Hub::Fossil(hub) => &hub.ready,
        }
    }

    /// The hub's own count once the leaves have `committed` check-ins.
    /// `hurry`: the trial stopped on a full disk; herd's hub gets a short
    /// bound to answer.
    async fn count(&self, committed: u64, hurry: bool) -> Result<HubCount, String> {
        match self {
            Hub::Herd(ready) => hub_count_settled(&ready.http, committed, hurry)
                .await
                .map_err(|e| format!("hub /stats: {e}")),
            // Every push was answered after fossil committed it, and every
            // leaf has exited: the repository is final.
            Hub::Fossil(hub) => hub
                .count()
                .await
                .map_err(|e| format!("fossil hub count: {e}")),
            // Likewise: every push was answered after git updated `main`.
            Hub::Git(_, bare) => super::git_hub::count(bare, &bare.with_file_name("logs"))
                .await
                .map_err(|e| format!("git hub count: {e}")),
        }
    }
}

/// Stops the watched processes and adds their restarts (and a loss) to
/// the report.
pub(super) async fn with_infra(
    result: Result<Finished, SupervisorError>,
    watch: Watch,
) -> Result<Finished, SupervisorError> {
    let (restarts, events, lost) = watch.stop().await;
    result.map(|(mut report, slots)| {
        report.set_infra(restarts, events, lost);
        (report, slots)
    })
}

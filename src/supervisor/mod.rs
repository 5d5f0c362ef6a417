//! The `herd` supervisor: spawns nats-server, the hub and one leaf-agent per
//! slot, reads their JSON lines over pipes, and aggregates a trial's summary.
//!
//! herd knows processes and their lines, nothing else: it never runs leaf
//! code in its own process and never opens a leaf's repository. It talks to
//! its own hub only through `/stats`. With `--hub-kind fossil` a stock
//! `fossil server` plays the hub instead (`fossil_hub`), and herd counts its
//! check-ins with `fossil sql`.

mod child;
pub mod cli;
mod cluster;
pub mod edits;
mod fossil_hub;
pub mod git_hub;
pub mod hosts;
pub mod infra;
pub mod links;
mod nats;
mod page;
mod preflight;
pub mod process;
mod sampler;
pub mod summary;
mod topology;
mod trial;

use std::path::PathBuf;
use std::time::Duration;

pub use summary::{CpuByKind, HubCount, SlotFailure, TrialReport};
pub use trial::acks::{read_acks, Ack};
pub use trial::run;

use crate::spec::TrialSpec;
use crate::wire::HubKind;
use crate::workload::WorkloadConfig;

/// Everything a trial needs, validated.
#[derive(Debug, Clone)]
pub struct TrialConfig {
    /// The trial's shape: agents, tasks, seed, modes, workload (the flags
    /// every leaf-agent gets too).
    pub spec: TrialSpec,
    /// Keep the work directory here; `None` uses a temporary one.
    pub workdir: Option<PathBuf>,
    /// Use this NATS server instead of starting one.
    pub nats_url: Option<String>,
    /// The nats-server binary to start.
    pub nats_server: Option<PathBuf>,
    /// Abort the trial after this long.
    pub timeout: Option<Duration>,
    /// Copy children's stderr to the terminal with a prefix.
    pub verbose: bool,
    /// Show a progress line on stderr.
    pub progress: bool,
    /// Write the trial's HTML report here.
    pub report: Option<PathBuf>,
    /// Append every acknowledged check-in here (`--acks`).
    pub acks: Option<PathBuf>,
    /// Simulated hosts (network namespaces); 1 runs everything on loopback.
    pub hosts: u32,
    /// Members of the NATS cluster across the hosts (the rest run leaf
    /// nodes); `None` picks 3 with 3 hosts or more, else 1.
    pub nats_cluster: Option<u32>,
    /// Kill one NATS cluster member this long into the trial.
    pub kill_nats_node: Option<Duration>,
    /// Take a host's link down for a while.
    pub partition: Option<Partition>,
    /// Every host's outgoing link (shaped by herd's switch when it delays
    /// or drops anything).
    pub links: links::LinkShape,
    /// Slow one host's link for a while.
    pub slow_host: Option<links::SlowHost>,
    /// Start each leaf-agent through this shell command template.
    pub leaf_launcher: Option<String>,
    /// Directory holding the `hub` and `leaf-agent` binaries.
    pub bin_dir: PathBuf,
    /// The trace context children start their root spans from (passed as
    /// `TRACEPARENT`/`TRACESTATE`); empty when no spans are exported.
    pub trace: crate::telemetry::W3c,
}

impl TrialConfig {
    /// The NATS cluster's size: as asked, else 3 with 3 hosts or more.
    pub fn cluster_size(&self) -> u32 {
        self.nats_cluster
            .unwrap_or(if self.hosts >= 3 { 3 } else { 1 })
    }

    /// The workload, from the spec's flags.
    pub fn workload(&self) -> WorkloadConfig {
        self.spec.workload.config()
    }

    /// Whether the hub publishes landed batches with their files
    /// (`hub --broadcast-files`): only for herd's hub with full leaves
    /// catching up from the stream, the only readers of those files.
    pub fn broadcast_files(&self) -> bool {
        self.spec.hub_kind == HubKind::Herd && self.spec.catch_up.from_stream(self.spec.leaf)
    }

    /// Checks the settings against each other before anything starts: the
    /// workload, the hot files against the leaves and the mode, the hosts,
    /// the cluster, the faults and the links. `Err` is one line saying
    /// what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let workload = self.workload();
        workload
            .validate()
            .and_then(|()| {
                workload.check_hot(
                    self.spec.mode,
                    self.spec.leaf == crate::wire::LeafMode::Full,
                )
            })
            .map_err(|e| format!("invalid workload: {e}"))?;
        let size = self.cluster_size();
        if size == 0 || size > self.hosts {
            return Err(format!(
                "--nats-cluster {size} needs as many hosts (--hosts {}): one member per host",
                self.hosts
            ));
        }
        if self.hosts > 1 && self.spec.hub_kind != HubKind::Herd {
            return Err(format!(
                "--hosts runs herd's hub on host 0; --hub-kind {} runs on loopback only",
                self.spec.hub_kind
            ));
        }
        if self.hosts > 1 && self.nats_url.is_some() {
            return Err("--hosts starts its own NATS servers on the hosts; drop --nats-url".into());
        }
        if self.hosts > hosts::MAX_HOSTS {
            return Err(format!("--hosts is at most {}", hosts::MAX_HOSTS));
        }
        if self.kill_nats_node.is_some() && size < 3 {
            return Err(format!(
                "--kill-nats-node needs a NATS cluster of 3 or more (it has {size}): \
                 with fewer, JetStream loses its quorum"
            ));
        }
        if let Some(p) = &self.partition {
            if p.host >= self.hosts as usize {
                return Err(format!(
                    "--partition-host {}: there are only hosts 0..{}",
                    p.host, self.hosts
                ));
            }
        }
        if let Some(template) = &self.leaf_launcher {
            topology::launcher_ok(template)?;
        }
        if (self.links.shapes() || self.slow_host.is_some()) && self.hosts < 2 {
            return Err(
                "--link-delay, --link-loss and --slow-host shape the links between hosts: \
                 add --hosts 2 or more"
                    .into(),
            );
        }
        if let Some(s) = &self.slow_host {
            if s.host >= self.hosts as usize {
                return Err(format!(
                    "--slow-host {}: there are only hosts 0..{}",
                    s.host, self.hosts
                ));
            }
        }
        Ok(())
    }

    /// The shaped links in words, for the summary and the report page.
    pub fn links_text(&self) -> Option<String> {
        self.shaping()
            .map(|_| format!("{}, each host's packets out", self.links))
    }

    /// The shaped links' settings, when herd's switch carries the hosts'
    /// packets: with a delay, a loss or a slow host.
    pub fn shaping(&self) -> Option<hosts::Shaping> {
        (self.hosts > 1 && (self.links.shapes() || self.slow_host.is_some())).then(|| {
            hosts::Shaping {
                shapes: vec![self.links; self.hosts as usize],
                seed: self.spec.seed,
            }
        })
    }
}

/// A host cut off for a while: `--partition-host I:SECS:DURATION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// The host.
    pub host: usize,
    /// When its link goes down, from the leaves' start.
    pub at: Duration,
    /// How long it stays down.
    pub duration: Duration,
}

impl std::str::FromStr for Partition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad = || format!("{s:?} is not HOST:SECS:DURATION (e.g. 2:5:5)");
        let [host, at, duration] = parts.as_slice() else {
            return Err(bad());
        };
        let secs = |v: &str| v.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0);
        Ok(Partition {
            host: host.parse().map_err(|_| bad())?,
            at: Duration::from_secs_f64(secs(at).ok_or_else(bad)?),
            duration: Duration::from_secs_f64(secs(duration).filter(|d| *d > 0.0).ok_or_else(bad)?),
        })
    }
}

/// Why a trial could not run (as opposed to ran and failed a check).
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// No nats-server binary was found.
    #[error("nats-server not found (looked in {looked}); run scripts/install-deps or pass --nats-server PATH")]
    NatsNotFound {
        /// Where herd looked.
        looked: String,
    },
    /// A child could not be started.
    #[error("cannot start {what}")]
    Spawn {
        /// Which child.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A child started but did not become ready.
    #[error("{what} failed: {detail}")]
    ChildFailed {
        /// Which child.
        what: String,
        /// What happened.
        detail: String,
    },
    /// Simulated hosts could not be made.
    #[error(transparent)]
    Hosts(hosts::HostsError),
    /// The machine cannot hold this many agents.
    #[error("{agents} agents {detail}")]
    TooBig {
        /// Agents asked for.
        agents: u32,
        /// Which limit, and the figures.
        detail: String,
    },
    /// `--nats-url` names no server that accepts connections.
    #[error("cannot reach NATS at {url}: {why}; check --nats-url, or leave it out and herd starts a nats-server")]
    NatsUnreachable {
        /// The URL (list) given.
        url: String,
        /// What each server said.
        why: String,
    },
    /// The trial's estimated bytes exceed the work directory's free space.
    #[error(
        "the trial needs about {need_mib} MiB on disk ({detail}), but the file system holding {} \
         has {free_mib} MiB free; free some space, pick a --workdir elsewhere, or run fewer \
         agents or tasks",
        path.display()
    )]
    NoRoom {
        /// The work directory (or where it will be made).
        path: PathBuf,
        /// The estimate, in MiB.
        need_mib: u64,
        /// The estimate by part.
        detail: String,
        /// Free space there, in MiB.
        free_mib: u64,
    },
    /// `--workdir` names a directory that already holds something.
    #[error("work directory {path} is not empty (it holds {holds}); a work directory holds one trial, so name a new or empty one")]
    WorkdirInUse {
        /// The directory.
        path: PathBuf,
        /// One entry found in it.
        holds: String,
    },
    /// A file-system or OS step failed.
    #[error("cannot {what}")]
    Io {
        /// The step.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl SupervisorError {
    fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        SupervisorError::Io {
            what: what.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{CatchUp, LeafMode};

    #[test]
    fn the_hub_broadcasts_files_only_for_full_leaves_catching_up_from_the_stream() {
        let mut config = page::tests::config(2, 2);
        assert_eq!(config.spec.catch_up, CatchUp::Stream);
        assert!(config.broadcast_files());
        config.spec.catch_up = CatchUp::Pull;
        assert!(!config.broadcast_files());
        config.spec.catch_up = CatchUp::Stream;
        config.spec.leaf = LeafMode::Sparse;
        assert!(!config.broadcast_files());
        config.spec.leaf = LeafMode::Full;
        config.spec.hub_kind = HubKind::Fossil;
        assert!(!config.broadcast_files());
    }

    #[test]
    fn stock_hubs_run_on_loopback_only() {
        let mut config = page::tests::config(2, 2);
        config.hosts = 2;
        config.nats_cluster = Some(1);
        assert_eq!(config.check(), Ok(()));
        for kind in [HubKind::Fossil, HubKind::Git] {
            config.spec.hub_kind = kind;
            let why = config.check().unwrap_err();
            assert!(
                why.contains(&format!("--hub-kind {kind} runs on loopback only")),
                "{why}"
            );
        }
    }
}

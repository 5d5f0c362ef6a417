//! The faults a trial injects across hosts: a NATS member killed, a host's
//! link cut for a while, a host's link slowed for a while. Timers in the
//! control loop; what was done goes into the summary.

use std::time::Instant;

use crate::supervisor::links::SlowHost;
use crate::supervisor::topology::Topology;
use crate::supervisor::TrialConfig;

/// The faults a trial injects (`--kill-nats-node`, `--partition-host`),
/// when they are due, and what was done.
pub(super) struct Faults {
    kill_at: Option<Instant>,
    cut_at: Option<Instant>,
    restore_at: Option<Instant>,
    partition: Option<crate::supervisor::Partition>,
    slow_at: Option<Instant>,
    unslow_at: Option<Instant>,
    slow: Option<SlowHost>,
    /// What was injected, with when, for the summary.
    pub(super) injected: Vec<String>,
}

impl Faults {
    pub(super) fn plan(config: &TrialConfig, started: Instant) -> Faults {
        Faults {
            kill_at: config.kill_nats_node.map(|d| started + d),
            cut_at: config.partition.map(|p| started + p.at),
            restore_at: None,
            partition: config.partition,
            slow_at: config.slow_host.map(|s| started + s.at),
            unslow_at: None,
            slow: config.slow_host,
            injected: Vec::new(),
        }
    }

    pub(super) fn next_at(&self) -> Option<Instant> {
        [
            self.kill_at,
            self.cut_at,
            self.restore_at,
            self.slow_at,
            self.unslow_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Injects whatever is due now.
    pub(super) fn inject(&mut self, topology: &Topology, started: Instant) {
        let now = Instant::now();
        let secs = now.duration_since(started).as_secs_f64();
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if due(self.kill_at) {
            self.kill_at = None;
            let what = topology.cluster().and_then(|c| c.kill_one());
            self.injected.push(match what {
                Some(node) => format!("nats node {node} killed (SIGKILL) at {secs:.1} s"),
                None => format!("no nats node to kill at {secs:.1} s"),
            });
        }
        if let (true, Some(p)) = (due(self.cut_at), self.partition) {
            self.cut_at = None;
            self.restore_at = Some(now + p.duration);
            self.injected.push(match topology.cut(p.host) {
                Ok(()) => format!(
                    "host {} cut off at {secs:.1} s for {:.1} s",
                    p.host,
                    p.duration.as_secs_f64()
                ),
                Err(e) => format!("host {} could not be cut off: {e}", p.host),
            });
        }
        if due(self.restore_at) {
            self.restore_at = None;
            self.restore(topology);
        }
        if let (true, Some(s)) = (due(self.slow_at), self.slow) {
            self.slow_at = None;
            self.unslow_at = Some(now + s.duration);
            self.injected.push(match topology.slow(s.host, s.extra) {
                Ok(()) => format!(
                    "host {}'s link slowed by {} ms at {secs:.1} s for {:.1} s",
                    s.host,
                    s.extra.as_millis(),
                    s.duration.as_secs_f64()
                ),
                Err(e) => format!("host {}'s link could not be slowed: {e}", s.host),
            });
        }
        if due(self.unslow_at) {
            self.unslow_at = None;
            self.unslow(topology);
        }
    }

    fn unslow(&mut self, topology: &Topology) {
        if let Some(s) = self.slow {
            if let Err(e) = topology.unslow(s.host) {
                self.injected
                    .push(format!("host {}'s link could not be sped up: {e}", s.host));
            }
        }
    }

    fn restore(&mut self, topology: &Topology) {
        if let Some(p) = self.partition {
            if let Err(e) = topology.restore(p.host) {
                self.injected
                    .push(format!("host {}'s link could not be restored: {e}", p.host));
            }
        }
    }

    /// A link still down when the trial ends comes back up.
    pub(super) fn end(&mut self, topology: &Topology, started: Instant) {
        if self.restore_at.take().is_some() {
            self.restore(topology);
        }
        if self.unslow_at.take().is_some() {
            self.unslow(topology);
        }
        let pending = [self.cut_at.take(), self.kill_at.take(), self.slow_at.take()];
        if pending.iter().any(Option::is_some) {
            let secs = started.elapsed().as_secs_f64();
            self.injected.push(format!(
                "the trial ended at {secs:.1} s before every fault was due"
            ));
        }
    }
}

//! The faults a trial injects across hosts: a NATS member killed, a host's
//! link cut for a while, a host's link slowed for a while. Timers in the
//! control loop; what was done is recorded as [`Injected`] and said in
//! the summary.

use std::fmt;
use std::time::{Duration, Instant};

use crate::supervisor::links::SlowHost;
use crate::supervisor::topology::Topology;
use crate::supervisor::{Partition, TrialConfig};

/// What a fault did, with when (from the leaves' start).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Injected {
    /// A NATS cluster member was killed with SIGKILL.
    NatsKilled { node: String, at: Duration },
    /// No member could be killed.
    NoNatsNode { at: Duration },
    /// A host's link went down.
    Cut {
        host: usize,
        at: Duration,
        lasts: Duration,
    },
    /// A host's link slowed.
    Slowed { slow: SlowHost, at: Duration },
    /// A step on a host's link failed: "cut off", "restored", "slowed",
    /// "sped up".
    LinkFailed {
        host: usize,
        step: &'static str,
        error: String,
    },
    /// The trial ended before every fault was due.
    EndedFirst { at: Duration },
}

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |d: &Duration| d.as_secs_f64();
        match self {
            Injected::NatsKilled { node, at } => {
                write!(f, "nats node {node} killed (SIGKILL) at {:.1} s", s(at))
            }
            Injected::NoNatsNode { at } => write!(f, "no nats node to kill at {:.1} s", s(at)),
            Injected::Cut { host, at, lasts } => write!(
                f,
                "host {host} cut off at {:.1} s for {:.1} s",
                s(at),
                s(lasts)
            ),
            Injected::Slowed { slow, at } => write!(
                f,
                "host {}'s link slowed by {} ms at {:.1} s for {:.1} s",
                slow.host,
                slow.extra.as_millis(),
                s(at),
                s(&slow.duration)
            ),
            Injected::LinkFailed { host, step, error } => {
                write!(f, "host {host}'s link could not be {step}: {error}")
            }
            Injected::EndedFirst { at } => write!(
                f,
                "the trial ended at {:.1} s before every fault was due",
                s(at)
            ),
        }
    }
}

/// The faults a trial injects (`--kill-nats-node`, `--partition-host`,
/// `--slow-host`), when they are due, and what was done.
pub(super) struct Faults {
    kill_at: Option<Instant>,
    cut_at: Option<Instant>,
    restore_at: Option<Instant>,
    partition: Option<Partition>,
    slow_at: Option<Instant>,
    unslow_at: Option<Instant>,
    slow: Option<SlowHost>,
    /// What was injected, in order.
    pub(super) injected: Vec<Injected>,
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
        let at = now.duration_since(started);
        let due = |when: Option<Instant>| when.is_some_and(|when| when <= now);
        if due(self.kill_at) {
            self.kill_at = None;
            self.injected
                .push(match topology.cluster().and_then(|c| c.kill_one()) {
                    Some(node) => Injected::NatsKilled { node, at },
                    None => Injected::NoNatsNode { at },
                });
        }
        if let (true, Some(p)) = (due(self.cut_at), self.partition) {
            self.cut_at = None;
            self.restore_at = Some(now + p.duration);
            self.injected.push(match topology.cut(p.host) {
                Ok(()) => Injected::Cut {
                    host: p.host,
                    at,
                    lasts: p.duration,
                },
                Err(e) => failed(p.host, "cut off", e),
            });
        }
        if due(self.restore_at) {
            self.restore_at = None;
            self.restore(topology);
        }
        if let (true, Some(slow)) = (due(self.slow_at), self.slow) {
            self.slow_at = None;
            self.unslow_at = Some(now + slow.duration);
            self.injected
                .push(match topology.slow(slow.host, slow.extra) {
                    Ok(()) => Injected::Slowed { slow, at },
                    Err(e) => failed(slow.host, "slowed", e),
                });
        }
        if due(self.unslow_at) {
            self.unslow_at = None;
            self.unslow(topology);
        }
    }

    fn restore(&mut self, topology: &Topology) {
        if let Some(p) = self.partition {
            if let Err(e) = topology.restore(p.host) {
                self.injected.push(failed(p.host, "restored", e));
            }
        }
    }

    fn unslow(&mut self, topology: &Topology) {
        if let Some(s) = self.slow {
            if let Err(e) = topology.unslow(s.host) {
                self.injected.push(failed(s.host, "sped up", e));
            }
        }
    }

    /// A link still down or slow when the trial ends is given back.
    pub(super) fn end(&mut self, topology: &Topology, started: Instant) {
        if self.restore_at.take().is_some() {
            self.restore(topology);
        }
        if self.unslow_at.take().is_some() {
            self.unslow(topology);
        }
        let pending = [self.cut_at.take(), self.kill_at.take(), self.slow_at.take()];
        if pending.iter().any(Option::is_some) {
            self.injected.push(Injected::EndedFirst {
                at: started.elapsed(),
            });
        }
    }

    /// What was done, as the summary says it.
    pub(super) fn said(&self) -> Vec<String> {
        self.injected.iter().map(ToString::to_string).collect()
    }
}

fn failed(host: usize, step: &'static str, e: impl fmt::Display) -> Injected {
    Injected::LinkFailed {
        host,
        step,
        error: e.to_string(),
    }
}

//! The nemesis's generator: from the soak's seed and a trial's index, the
//! trial's shape and the faults it gets, each at a fixed point after the
//! leaves start. A pure function of (seed, index), so the same seed
//! replays the same faults at the same points, whatever the machine.

use std::fmt;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde::Serialize;

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL the hub (herd starts it again).
    KillHub,
    /// SIGSTOP the hub, SIGCONT after the hold.
    StopHub,
    /// SIGKILL nats-server; on a cluster, one member through herd's
    /// `--kill-nats-node` (never the hub's host's).
    KillNats,
    /// SIGSTOP a nats-server (a cluster member, any), SIGCONT after the
    /// hold.
    StopNats,
    /// SIGKILL one leaf-agent (its slot fails; what it landed stays).
    KillLeaf,
    /// SIGSTOP one leaf-agent, SIGCONT after the hold.
    StopLeaf,
    /// Cut one host's link for the hold (herd's `--partition-host`).
    CutHost,
    /// Slow one host's link for the hold by 100–500 ms a packet (herd's
    /// `--slow-host`).
    SlowLink,
    /// Fill the work directory's file system (a small tmpfs) to the brim.
    FillDisk,
}

impl FaultKind {
    /// Every kind, in the order summaries list them.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::KillHub,
        FaultKind::StopHub,
        FaultKind::KillNats,
        FaultKind::StopNats,
        FaultKind::KillLeaf,
        FaultKind::StopLeaf,
        FaultKind::CutHost,
        FaultKind::SlowLink,
        FaultKind::FillDisk,
    ];

    /// The kind's name in summaries and JSON.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillHub => "kill-hub",
            FaultKind::StopHub => "stop-hub",
            FaultKind::KillNats => "kill-nats",
            FaultKind::StopNats => "stop-nats",
            FaultKind::KillLeaf => "kill-leaf",
            FaultKind::StopLeaf => "stop-leaf",
            FaultKind::CutHost => "cut-host",
            FaultKind::SlowLink => "slow-link",
            FaultKind::FillDisk => "fill-disk",
        }
    }

    /// Whether the fault lasts a while (and is then undone).
    pub fn holds(self) -> bool {
        matches!(
            self,
            FaultKind::StopHub
                | FaultKind::StopNats
                | FaultKind::StopLeaf
                | FaultKind::CutHost
                | FaultKind::SlowLink
        )
    }

    /// Kinds that need simulated hosts.
    fn needs_hosts(self) -> bool {
        matches!(self, FaultKind::CutHost | FaultKind::SlowLink)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One planned fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// What it does.
    pub kind: FaultKind,
    /// When, after the trial's first leaf-agent starts.
    #[serde(rename = "at_ms", serialize_with = "as_ms")]
    pub at: Duration,
    /// How long a stop or a cut lasts (zero for the others).
    #[serde(rename = "hold_ms", serialize_with = "as_ms")]
    pub hold: Duration,
    /// Which one of its kind: a slot for leaves, a host for cuts and
    /// slow links, a pick among the running processes otherwise (taken
    /// modulo their count).
    pub target: u32,
    /// The delay a slow link adds to each packet, in ms (0 otherwise).
    #[serde(skip_serializing_if = "is_zero")]
    pub extra_ms: u32,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{:.1}s", self.kind, self.at.as_secs_f64())?;
        if self.kind.holds() {
            write!(f, "+{:.1}s", self.hold.as_secs_f64())?;
        }
        Ok(())
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// One trial of the soak: its shape and its faults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrialPlan {
    /// The trial's index in the soak, from 0.
    pub index: u64,
    /// Leaf-agents.
    pub agents: u32,
    /// Tasks per agent.
    pub tasks: u32,
    /// Simulated hosts (1: loopback; 3: a NATS cluster of 3).
    pub hosts: u32,
    /// The workload seed.
    pub seed: u64,
    /// The faults, by time.
    pub faults: Vec<Fault>,
}

impl TrialPlan {
    /// Whether the trial's work directory sits on a small file system.
    pub fn small_disk(&self) -> bool {
        self.faults.iter().any(|f| f.kind == FaultKind::FillDisk)
    }
}

/// Faults a trial gets at most; the first is always there.
const MOST_FAULTS: usize = 3;
/// The window faults fall in, after the first leaf starts: a trial's
/// leaves run for about 2–4 s without faults.
const WINDOW_MS: (u64, u64) = (200, 2_500);

/// The trial `index` of the soak seeded `seed`. `hosts_ok` is whether the
/// machine can make simulated hosts; without them no trial asks for any.
pub fn plan(seed: u64, index: u64, hosts_ok: bool) -> TrialPlan {
    // Neighbouring seeds and indices must not give neighbouring streams.
    let mixed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
        ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(mixed);
    let hosts = if hosts_ok && rng.gen_ratio(1, 4) {
        3
    } else {
        1
    };
    let agents = rng.gen_range(4..=8);
    let tasks = rng.gen_range(20..=40);
    let count = rng.gen_range(1..=MOST_FAULTS);
    let mut faults: Vec<Fault> = Vec::with_capacity(count);
    while faults.len() < count {
        let kind = FaultKind::ALL[rng.gen_range(0..FaultKind::ALL.len())];
        if (kind.needs_hosts() && hosts == 1) || !allowed(kind, hosts, &faults) {
            continue;
        }
        let hold = if kind.holds() {
            Duration::from_millis(rng.gen_range(1_000..=6_000))
        } else {
            Duration::ZERO
        };
        let target = match kind {
            FaultKind::KillLeaf | FaultKind::StopLeaf => rng.gen_range(0..agents),
            FaultKind::CutHost | FaultKind::SlowLink => rng.gen_range(0..hosts),
            _ => rng.gen_range(0..16),
        };
        let extra_ms = if kind == FaultKind::SlowLink {
            rng.gen_range(100..=500)
        } else {
            0
        };
        faults.push(Fault {
            kind,
            at: Duration::from_millis(rng.gen_range(WINDOW_MS.0..=WINDOW_MS.1)),
            hold,
            target,
            extra_ms,
        });
    }
    faults.sort_by_key(|f| f.at);
    TrialPlan {
        index,
        agents,
        tasks,
        hosts,
        seed: rng.gen_range(1..=1_000_000),
        faults,
    }
}

/// Whether a fault of `kind` may join `so_far` in a trial on `hosts`
/// hosts: herd injects one host cut, one slow link and one cluster kill
/// per trial; a
/// small disk is filled once and only on one host (the cluster's stores
/// would need one file system each); a single nats-server killed twice
/// could use up herd's restarts with the hub's.
fn allowed(kind: FaultKind, hosts: u32, so_far: &[Fault]) -> bool {
    let already = so_far.iter().filter(|f| f.kind == kind).count();
    match kind {
        FaultKind::CutHost | FaultKind::SlowLink | FaultKind::FillDisk | FaultKind::KillNats => {
            already == 0 && (kind != FaultKind::FillDisk || hosts == 1)
        }
        FaultKind::KillHub => already < 2,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_plans_the_same_faults_at_the_same_points() {
        for index in 0..50 {
            assert_eq!(plan(7, index, true), plan(7, index, true));
        }
        let differ = (0..50)
            .filter(|&i| plan(7, i, true) != plan(8, i, true))
            .count();
        assert!(
            differ > 45,
            "another seed, other trials ({differ} of 50 differ)"
        );
    }

    #[test]
    fn every_kind_is_drawn_and_each_plan_keeps_the_rules() {
        let mut seen = std::collections::BTreeSet::new();
        for index in 0..400 {
            let p = plan(1, index, true);
            assert!(!p.faults.is_empty() && p.faults.len() <= MOST_FAULTS);
            assert!(p.faults.windows(2).all(|w| w[0].at <= w[1].at));
            for f in &p.faults {
                seen.insert(f.kind);
                assert!(f.kind.holds() == (f.hold > Duration::ZERO));
                if matches!(f.kind, FaultKind::CutHost | FaultKind::SlowLink) {
                    assert!(p.hosts > 1 && f.target < p.hosts);
                }
                assert_eq!(f.kind == FaultKind::SlowLink, f.extra_ms > 0);
                if f.kind == FaultKind::FillDisk {
                    assert_eq!(p.hosts, 1);
                }
                if matches!(f.kind, FaultKind::KillLeaf | FaultKind::StopLeaf) {
                    assert!(f.target < p.agents);
                }
            }
        }
        assert_eq!(seen.len(), FaultKind::ALL.len(), "{seen:?}");
        assert!((0..100).all(|i| plan(1, i, false).hosts == 1));
    }
}

//! Turning the leaves' lines and the hub's count into a trial's summary.
//!
//! Pure functions over collected data, so the arithmetic and the printed
//! format are tested without processes.
//!
//! A figure herd could not get is `None`: `n/a` in the summary block,
//! `null` in JSON, never a zero. The hub's figures are unknown when its
//! count could not be read; the figures only the leaves' summary lines
//! carry (broadcasts, lost claims, think time, leaf memory) are unknown
//! unless every slot sent one; latencies are unknown with no commit.

use std::fmt::Write as _;

use serde::Serialize;

use super::infra::Restarts;
use crate::report::{HubKind, LandingStrategy, LeafMode, LeafSummary, TaskLine, TaskOutcome};

/// A figure to three decimals (a ms figure to the microsecond), so JSON
/// carries no float noise such as `1.0666666666666669`.
fn thousandths(x: f64) -> f64 {
    crate::report::round_us(x)
}

/// Why a slot counts as failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotFailure {
    /// The slot.
    pub slot: u32,
    /// What went wrong, in one line.
    pub reason: String,
}

/// Everything herd learned about one slot.
#[derive(Debug, Clone, Default)]
pub struct SlotRecord {
    /// Task lines, in arrival order.
    pub tasks: Vec<TaskLine>,
    /// The final summary line, if one arrived.
    pub summary: Option<LeafSummary>,
    /// Error lines (and malformed lines) the slot produced.
    pub errors: Vec<String>,
    /// Why the slot failed, if it did.
    pub failure: Option<String>,
}

/// What the hub itself says after the trial.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubCount {
    /// Check-ins on trunk, not counting the initial empty check-in.
    pub trunk_commits: u64,
    /// Leaves of trunk; 1 means linear.
    pub trunk_leaves: u64,
    /// Requests the hub served; `None` when the hub does not say (a stock
    /// `fossil server` keeps no such count).
    pub requests: Option<u64>,
    /// The hub's peak resident memory, in KiB; `None` when unknown.
    pub peak_rss_kb: Option<u64>,
    /// Check-ins the hub wrote anew on a newer tip; `None` when the hub
    /// does not say.
    pub hub_rebases: Option<u64>,
}

/// The trial's figures, printed as the summary block or as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct TrialReport {
    /// What served as the hub: `herd` or `fossil`.
    pub hub_kind: HubKind,
    /// Who landed contended check-ins: `hub` or `leaf`.
    pub landing: LandingStrategy,
    /// What leaves kept: `full` or `sparse`.
    pub leaf: LeafMode,
    /// Leaf-agents started.
    pub agents: u32,
    /// Tasks per agent.
    pub tasks: u32,
    /// agents × tasks.
    pub total: u64,
    /// `disjoint` or `shared`.
    pub mode: String,
    /// The workload seed.
    pub seed: u64,
    /// Trunk check-ins the hub reports; `null` when its count could not be
    /// read.
    pub hub_commits: Option<u64>,
    /// Tasks the leaves report as committed.
    pub committed: u64,
    /// Pushes refused because trunk moved.
    pub fork_retries: u64,
    /// Check-ins the hub wrote anew on a newer tip (hub landing); `null`
    /// when the hub keeps no such count.
    pub hub_rebases: Option<u64>,
    /// Rebases that found a conflict; `null` unless every slot sent its
    /// summary line (as for the other figures only summaries carry).
    pub fork_unrecoverable: Option<u64>,
    /// Claims won.
    pub claims_won: u64,
    /// Claims lost.
    pub claims_lost: Option<u64>,
    /// Broadcasts that led to a pull.
    pub broadcasts_pulled: Option<u64>,
    /// Broadcasts for a tip the leaf already had.
    pub broadcasts_skipped: Option<u64>,
    /// Bytes of the hub's replies to the leaves' pulls, all leaves; `null`
    /// unless every slot sent its summary.
    pub bytes_pulled: Option<u64>,
    /// Worktree files the leaves' updates wrote or removed, all leaves;
    /// `null` unless every slot sent its summary.
    pub files_updated: Option<u64>,
    /// Median commit latency; `null` with no commit.
    pub p50_commit_ms: Option<f64>,
    /// 99th percentile commit latency; `null` with no commit.
    pub p99_commit_ms: Option<f64>,
    /// Wall time from the first leaf's start to the last leaf's exit.
    pub runtime_s: f64,
    /// The longest slot's total think time.
    pub think_floor_s: Option<f64>,
    /// Hub requests (from the hub's own count) per landed commit; `null`
    /// when the hub keeps no count (a stock `fossil server`).
    pub hub_requests_per_commit: Option<f64>,
    /// Leaves of the hub's trunk; 1 means linear. herd's hub keeps exactly
    /// one; a stock `fossil server` accepts forks.
    pub trunk_leaves: Option<u64>,
    /// Forks on the hub's trunk: `trunk_leaves − 1`.
    pub forks: Option<u64>,
    /// Slots that failed, with the reason.
    pub failed_slots: Vec<SlotFailure>,
    /// The slot that finished last, and when.
    pub slowest_slot: Option<u32>,
    /// Hub commits per second of runtime.
    pub commits_per_s: Option<f64>,
    /// The hub's peak resident memory, in KiB; `null` when unknown (a
    /// stock `fossil server` forks a process per request).
    pub hub_peak_rss_kb: Option<u64>,
    /// The largest leaf's peak resident memory, in KiB.
    pub leaf_peak_rss_kb: Option<u64>,
    /// NATS requests the leaves sent in their task loops per committed
    /// task; `null` with no committed task.
    pub nats_ops_per_task: Option<f64>,
    /// Simulated hosts (`--hosts`).
    pub hosts: u32,
    /// NATS servers the trial ran (1 without hosts).
    pub nats_nodes: u32,
    /// Faults injected (`--kill-nats-node`, `--partition-host`), with when.
    pub faults: Vec<String>,
    /// Tasks committed by the slots of each host, by host.
    pub committed_per_host: Vec<u64>,
    /// User + system CPU of every process of the trial (herd, the hub, the
    /// nats-server herd started, every leaf) per hub commit, in ms; `null`
    /// until the processes have been reaped, or with no commit.
    pub cpu_ms_per_commit: Option<f64>,
    /// Times herd started the hub and its nats-server again during the
    /// trial: `{"hub":1,"nats":0}`.
    pub restarts: Restarts,
    /// Each death of the hub or nats-server and how it ended, one line
    /// each: "the hub died (SIGKILL) at 12.4 s; restarted in 0.2 s (1 of 3)".
    pub infra_events: Vec<String>,
    /// Why herd stopped the trial when a process could not be kept
    /// running; `null` otherwise.
    pub infra_failure: Option<String>,
}

/// The inputs of a report besides the slots.
pub struct TrialShape {
    /// What served as the hub.
    pub hub_kind: HubKind,
    /// Who landed contended check-ins.
    pub landing: LandingStrategy,
    /// What leaves kept.
    pub leaf: LeafMode,
    /// Leaf-agents.
    pub agents: u32,
    /// Tasks per agent.
    pub tasks: u32,
    /// Mode name.
    pub mode: String,
    /// Seed.
    pub seed: u64,
    /// Runtime in seconds.
    pub runtime_s: f64,
    /// The slot that exited last.
    pub slowest_slot: Option<u32>,
    /// Simulated hosts; slot i ran on host i mod hosts.
    pub hosts: u32,
    /// NATS servers (cluster members and leaf nodes).
    pub nats_nodes: u32,
    /// The faults injected, with when.
    pub faults: Vec<String>,
}

impl TrialReport {
    /// Adds up the slots and the hub's count.
    pub fn build(shape: TrialShape, slots: &[SlotRecord], hub: HubCount) -> TrialReport {
        let mut r = TrialReport {
            hub_kind: shape.hub_kind,
            landing: shape.landing,
            leaf: shape.leaf,
            agents: shape.agents,
            tasks: shape.tasks,
            total: u64::from(shape.agents) * u64::from(shape.tasks),
            mode: shape.mode,
            seed: shape.seed,
            hub_commits: Some(hub.trunk_commits),
            committed: 0,
            fork_retries: 0,
            hub_rebases: hub.hub_rebases,
            fork_unrecoverable: None,
            claims_won: 0,
            claims_lost: None,
            broadcasts_pulled: None,
            broadcasts_skipped: None,
            bytes_pulled: None,
            files_updated: None,
            p50_commit_ms: None,
            p99_commit_ms: None,
            runtime_s: shape.runtime_s,
            think_floor_s: None,
            hub_requests_per_commit: None,
            trunk_leaves: Some(hub.trunk_leaves),
            forks: Some(hub.trunk_leaves.saturating_sub(1)),
            failed_slots: Vec::new(),
            slowest_slot: shape.slowest_slot,
            commits_per_s: None,
            hub_peak_rss_kb: hub.peak_rss_kb,
            leaf_peak_rss_kb: None,
            cpu_ms_per_commit: None,
            nats_ops_per_task: None,
            hosts: shape.hosts.max(1),
            nats_nodes: shape.nats_nodes,
            faults: shape.faults,
            committed_per_host: vec![0; shape.hosts.max(1) as usize],
            restarts: Restarts::default(),
            infra_events: Vec::new(),
            infra_failure: None,
        };
        // Totals of what only the summary lines carry.
        let mut from_summaries = SummaryTotals::default();
        let every_summary = slots.iter().all(|rec| rec.summary.is_some());
        let mut nats_ops = 0u64;
        let mut latencies = Vec::new();
        let mut think_max_ms = 0u64;
        for (slot, rec) in slots.iter().enumerate() {
            latencies.extend(
                rec.tasks
                    .iter()
                    .filter(|t| t.outcome == TaskOutcome::Committed)
                    .filter_map(|t| t.commit_ms),
            );
            match &rec.summary {
                Some(s) => {
                    r.committed += u64::from(s.committed);
                    r.fork_retries += u64::from(s.fork_retries);
                    r.claims_won += u64::from(s.claims_won);
                    from_summaries.add(s);
                    think_max_ms = think_max_ms.max(s.think_ms);
                    nats_ops += s.nats_ops;
                }
                None => {
                    // Without a summary, count what the task lines show.
                    let committed = rec
                        .tasks
                        .iter()
                        .filter(|t| t.outcome == TaskOutcome::Committed)
                        .count() as u64;
                    r.committed += committed;
                    r.claims_won += committed;
                    r.fork_retries += rec
                        .tasks
                        .iter()
                        .map(|t| u64::from(t.fork_retries))
                        .sum::<u64>();
                }
            }
            let host = slot % r.committed_per_host.len();
            r.committed_per_host[host] += rec
                .tasks
                .iter()
                .filter(|t| t.outcome == TaskOutcome::Committed)
                .count() as u64;
            let slot = slot as u32;
            if let Some(reason) = &rec.failure {
                r.failed_slots.push(SlotFailure {
                    slot,
                    reason: reason.clone(),
                });
            } else if rec.summary.is_none() {
                r.failed_slots.push(SlotFailure {
                    slot,
                    reason: "exited without a summary line".into(),
                });
            }
        }
        latencies.sort_by(f64::total_cmp);
        if !latencies.is_empty() {
            r.p50_commit_ms = Some(percentile(&latencies, 50.0));
            r.p99_commit_ms = Some(percentile(&latencies, 99.0));
        }
        if every_summary {
            let t = from_summaries;
            r.fork_unrecoverable = Some(t.fork_unrecoverable);
            r.claims_lost = Some(t.claims_lost);
            r.broadcasts_pulled = Some(t.broadcasts_pulled);
            r.broadcasts_skipped = Some(t.broadcasts_skipped);
            r.leaf_peak_rss_kb = Some(t.leaf_peak_rss_kb);
            r.bytes_pulled = Some(t.bytes_pulled);
            r.files_updated = Some(t.files_updated);
            r.think_floor_s = Some(think_max_ms as f64 / 1000.0);
        }
        if hub.trunk_commits > 0 {
            r.hub_requests_per_commit = hub
                .requests
                .map(|n| thousandths(n as f64 / hub.trunk_commits as f64));
        }
        if r.runtime_s > 0.0 {
            r.commits_per_s = Some(thousandths(hub.trunk_commits as f64 / r.runtime_s));
        }
        r.runtime_s = (r.runtime_s * 1e6).round() / 1e6;
        if r.committed > 0 && every_summary {
            r.nats_ops_per_task = Some(thousandths(nats_ops as f64 / r.committed as f64));
        }
        r
    }

    /// Records the CPU the trial's processes spent in all, `cpu_ms`.
    pub fn set_cpu_ms(&mut self, cpu_ms: f64) {
        self.cpu_ms_per_commit = self
            .hub_commits
            .filter(|&n| n > 0)
            .map(|n| thousandths(cpu_ms / n as f64));
    }

    /// Forgets the hub's figures: its count could not be read.
    pub fn hub_count_unknown(&mut self) {
        self.hub_commits = None;
        self.trunk_leaves = None;
        self.forks = None;
        self.commits_per_s = None;
        self.hub_requests_per_commit = None;
        self.hub_rebases = None;
        self.hub_peak_rss_kb = None;
    }

    /// Records what became of the hub and nats-server: restarts, one line
    /// per death, and why herd stopped the trial if one was lost.
    pub fn set_infra(&mut self, restarts: Restarts, events: Vec<String>, lost: Option<String>) {
        if restarts.hub > 0 {
            // A hub started again counts requests, rebases and memory
            // from zero: the trial's totals are unknown.
            self.hub_requests_per_commit = None;
            self.hub_rebases = None;
            self.hub_peak_rss_kb = None;
        }
        self.restarts = restarts;
        self.infra_events = events;
        self.infra_failure = lost;
    }

    /// Why the trial failed, or `None` when every count agrees, trunk is
    /// linear and no slot failed. Against a stock `fossil server` forks are
    /// what is measured, not a failure: there every task's check-in must
    /// reach the server, however many trunk leaves that makes.
    pub fn verdict(&self) -> Option<String> {
        // A process herd could not keep running is the cause; the counts
        // that follow from it are not.
        if let Some(cause) = &self.infra_failure {
            return Some(format!(
                "{cause}; herd stopped the trial with {} of {} tasks committed",
                self.committed, self.total
            ));
        }
        let mut why = Vec::new();
        match self.hub_commits {
            Some(n) if n != self.committed => why.push(format!(
                "hub has {n} trunk commits but leaves committed {}",
                self.committed
            )),
            Some(_) => {}
            None => why.push("the hub's count of trunk commits is unknown".into()),
        }
        if self.committed != self.claims_won {
            why.push(format!(
                "{} claims won but {} tasks committed",
                self.claims_won, self.committed
            ));
        }
        if self.committed != self.total {
            why.push(format!(
                "{} of {} tasks committed",
                self.committed, self.total
            ));
        }
        if self.hub_kind == HubKind::Herd {
            if let Some(n) = self.trunk_leaves.filter(|&n| n != 1) {
                why.push(format!("trunk has {n} leaves, not 1"));
            }
        }
        why.extend(failed_groups(&self.failed_slots));
        if why.is_empty() {
            return None;
        }
        // What happened to the infrastructure comes first: it is the likely
        // cause of what follows.
        Some(
            self.infra_events
                .iter()
                .chain(why.iter())
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    /// The summary block (DESIGN.md's format, line for line, then extras).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "herd-hub-leaf trial: agents={} tasks={} total={}",
            self.agents, self.tasks, self.total
        );
        let _ = writeln!(s, "  hub commits:        {}", or_na(self.hub_commits));
        let _ = writeln!(s, "  fork retries:       {}", self.fork_retries);
        let _ = writeln!(
            s,
            "  fork unrecoverable: {}",
            or_na(self.fork_unrecoverable)
        );
        let _ = writeln!(s, "  claims won:         {}", self.claims_won);
        let _ = writeln!(s, "  claims lost:        {}", or_na(self.claims_lost));
        let _ = writeln!(s, "  broadcasts pulled:  {}", or_na(self.broadcasts_pulled));
        let _ = writeln!(
            s,
            "  broadcasts skipped (idempotent): {}",
            or_na(self.broadcasts_skipped)
        );
        let _ = writeln!(
            s,
            "  P50/P99 commit ms:  {} / {}",
            self.p50_commit_ms.map_or("n/a".into(), fmt_ms),
            self.p99_commit_ms.map_or("n/a".into(), fmt_ms)
        );
        let _ = writeln!(s, "  total runtime:      {:.1}s", self.runtime_s);
        let _ = writeln!(
            s,
            "  hub requests/commit: {}",
            self.hub_requests_per_commit
                .map_or("n/a".into(), |n| format!("{n:.2}"))
        );
        let _ = writeln!(s, "  trunk leaves:       {}", or_na(self.trunk_leaves));
        let _ = writeln!(s, "  hub kind:           {}", self.hub_kind);
        let _ = writeln!(s, "  landing:            {}", self.landing);
        let _ = writeln!(s, "  leaf:               {}", self.leaf);
        let _ = writeln!(
            s,
            "  bytes pulled:       {} ({} per commit)",
            or_na(self.bytes_pulled),
            per(self.bytes_pulled, self.hub_commits)
        );
        let _ = writeln!(s, "  files updated:      {}", or_na(self.files_updated));
        let _ = writeln!(
            s,
            "  hub rebases:        {}",
            self.hub_rebases.map_or("n/a".into(), |n| n.to_string())
        );
        let _ = writeln!(
            s,
            "  nats ops/task:      {}",
            self.nats_ops_per_task
                .map_or("n/a".into(), |n| format!("{n:.1}"))
        );
        let _ = writeln!(
            s,
            "  cpu ms/commit:      {}",
            self.cpu_ms_per_commit
                .map_or("n/a".into(), |ms| format!("{ms:.2}"))
        );
        let _ = writeln!(s, "  forks:              {}", or_na(self.forks));
        if self.hosts > 1 {
            let per_host: Vec<String> =
                self.committed_per_host.iter().map(u64::to_string).collect();
            let _ = writeln!(
                s,
                "  hosts:              {} (nats servers {}; committed per host {})",
                self.hosts,
                self.nats_nodes,
                per_host.join(" / ")
            );
        }
        for fault in &self.faults {
            let _ = writeln!(s, "  fault injected:     {fault}");
        }
        let (floor, ratio) = match self.think_floor_s {
            Some(f) if f > 0.0 => (format!("{f:.1}s"), format!("{:.2}x", self.runtime_s / f)),
            Some(f) => (format!("{f:.1}s"), "n/a".into()),
            None => ("n/a".into(), "n/a".into()),
        };
        let _ = writeln!(s, "  think floor:        {floor} (runtime/floor {ratio})");
        let _ = writeln!(
            s,
            "  commits/s:          {}",
            self.commits_per_s
                .map_or("n/a".into(), |c| format!("{c:.1}"))
        );
        let mib = |kb: Option<u64>| {
            kb.map_or("n/a".into(), |kb| format!("{:.1} MiB", kb as f64 / 1024.0))
        };
        let _ = writeln!(
            s,
            "  peak memory:        hub {}, largest leaf {}",
            mib(self.hub_peak_rss_kb),
            mib(self.leaf_peak_rss_kb)
        );
        let _ = writeln!(
            s,
            "  restarts:           hub {}, nats {}",
            self.restarts.hub, self.restarts.nats
        );
        for event in &self.infra_events {
            let _ = writeln!(s, "  infra:              {event}");
        }
        if let Some(slot) = self.slowest_slot {
            let _ = writeln!(s, "  slowest slot:       {slot}");
        }
        s
    }
}

/// A figure, or `n/a` when herd could not get it.
fn or_na(n: Option<u64>) -> String {
    n.map_or("n/a".into(), |n| n.to_string())
}

/// Sums of the figures only leaves' summary lines carry.
#[derive(Default)]
struct SummaryTotals {
    fork_unrecoverable: u64,
    claims_lost: u64,
    broadcasts_pulled: u64,
    broadcasts_skipped: u64,
    leaf_peak_rss_kb: u64,
    bytes_pulled: u64,
    files_updated: u64,
}

impl SummaryTotals {
    fn add(&mut self, s: &LeafSummary) {
        self.fork_unrecoverable += u64::from(s.fork_unrecoverable);
        self.claims_lost += u64::from(s.claims_lost);
        self.broadcasts_pulled += u64::from(s.broadcasts_pulled);
        self.broadcasts_skipped += u64::from(s.broadcasts_skipped);
        self.leaf_peak_rss_kb = self.leaf_peak_rss_kb.max(s.peak_rss_kb);
        self.bytes_pulled += s.bytes_pulled;
        self.files_updated += s.files_updated;
    }
}

/// `n / d` with no decimals, `n/a` when either is unknown or `d` is 0.
fn per(n: Option<u64>, d: Option<u64>) -> String {
    match (n, d) {
        (Some(n), Some(d)) if d > 0 => format!("{:.0}", n as f64 / d as f64),
        _ => "n/a".into(),
    }
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms:.2}")
    }
}

/// The `p`th percentile of sorted values, by the nearest-rank method.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Slots listed per failure reason before the rest are counted.
const SLOTS_NAMED: usize = 8;

/// One clause per failure reason, naming its slots: a trial of 128 agents
/// that times out reads as a few lines, not 128 clauses.
fn failed_groups(failed: &[SlotFailure]) -> Vec<String> {
    let mut groups: Vec<(&str, Vec<u32>)> = Vec::new();
    for f in failed {
        match groups.iter_mut().find(|(reason, _)| *reason == f.reason) {
            Some((_, slots)) => slots.push(f.slot),
            None => groups.push((&f.reason, vec![f.slot])),
        }
    }
    groups
        .into_iter()
        .map(|(reason, slots)| {
            let named: Vec<String> = slots.iter().take(SLOTS_NAMED).map(u32::to_string).collect();
            let more = slots.len().saturating_sub(SLOTS_NAMED);
            let (noun, tail) = match (slots.len(), more) {
                (1, _) => ("slot", String::new()),
                (_, 0) => ("slots", String::new()),
                (_, n) => ("slots", format!(" and {n} more")),
            };
            format!("{noun} {}{tail} failed: {reason}", named.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ClaimOutcome;

    fn slot(slot: u32, commits: &[f64], retries: u32) -> SlotRecord {
        let tasks: Vec<TaskLine> = commits
            .iter()
            .enumerate()
            .map(|(i, &ms)| TaskLine {
                slot,
                task: i as u32,
                task_id: format!("t{slot}-{i}"),
                claim: ClaimOutcome::Won,
                commit_ms: Some(ms),
                fork_retries: 0,
                checkin: None,
                outcome: TaskOutcome::Committed,
                timeline: None,
                trace: None,
            })
            .collect();
        SlotRecord {
            summary: Some(LeafSummary {
                slot,
                tasks: tasks.len() as u32,
                committed: tasks.len() as u32,
                claims_won: tasks.len() as u32,
                fork_retries: retries,
                think_ms: 1500,
                ..LeafSummary::default()
            }),
            tasks,
            ..SlotRecord::default()
        }
    }

    fn shape() -> TrialShape {
        TrialShape {
            hub_kind: HubKind::Herd,
            landing: LandingStrategy::Hub,
            leaf: LeafMode::Full,
            agents: 2,
            tasks: 2,
            mode: "disjoint".into(),
            seed: 1,
            runtime_s: 2.0,
            slowest_slot: Some(1),
            hosts: 1,
            nats_nodes: 1,
            faults: Vec::new(),
        }
    }

    #[test]
    fn adds_up_slots_and_passes_when_counts_agree() {
        let slots = [slot(0, &[1.0, 3.0], 1), slot(1, &[2.0, 4.0], 2)];
        let hub = HubCount {
            trunk_commits: 4,
            trunk_leaves: 1,
            requests: Some(6),
            peak_rss_kb: Some(20_000),
            hub_rebases: None,
        };
        let r = TrialReport::build(shape(), &slots, hub);
        assert_eq!((r.committed, r.fork_retries, r.claims_won), (4, 3, 4));
        assert_eq!((r.p50_commit_ms, r.p99_commit_ms), (Some(2.0), Some(4.0)));
        assert_eq!(r.hub_requests_per_commit, Some(1.5));
        assert_eq!((r.trunk_leaves, r.forks), (Some(1), Some(0)));
        assert_eq!(r.verdict(), None);
        let text = r.render();
        assert!(text.starts_with(
            "herd-hub-leaf trial: agents=2 tasks=2 total=4\n  hub commits:        4\n"
        ));
        assert!(text.contains("  P50/P99 commit ms:  2.00 / 4.00\n"));
        assert!(text.contains("  total runtime:      2.0s\n"));
    }

    #[test]
    fn a_missing_summary_or_a_short_hub_fails_the_trial() {
        let mut silent = slot(1, &[2.0], 0);
        silent.summary = None;
        let slots = [slot(0, &[1.0, 3.0], 0), silent];
        let hub = HubCount {
            trunk_commits: 2,
            trunk_leaves: 2,
            requests: Some(3),
            peak_rss_kb: None,
            hub_rebases: None,
        };
        let r = TrialReport::build(shape(), &slots, hub);
        let why = r.verdict().expect("must fail");
        assert!(
            why.contains("slot 1 failed: exited without a summary line"),
            "{why}"
        );
        assert!(why.contains("trunk has 2 leaves"), "{why}");
        assert!(
            why.contains("hub has 2 trunk commits but leaves committed 3"),
            "{why}"
        );
    }

    #[test]
    fn forks_on_a_fossil_hub_are_reported_not_failed() {
        let slots = [slot(0, &[1.0, 3.0], 0), slot(1, &[2.0, 4.0], 0)];
        let hub = HubCount {
            trunk_commits: 4,
            trunk_leaves: 3,
            requests: None,
            peak_rss_kb: None,
            hub_rebases: None,
        };
        let fossil = TrialShape {
            hub_kind: HubKind::Fossil,
            ..shape()
        };
        let r = TrialReport::build(fossil, &slots, hub);
        assert_eq!(r.verdict(), None);
        assert_eq!((r.trunk_leaves, r.forks), (Some(3), Some(2)));
        assert_eq!(r.hub_requests_per_commit, None);
        let text = r.render();
        assert!(text.contains("  hub kind:           fossil\n"), "{text}");
        assert!(text.contains("  forks:              2\n"), "{text}");
        assert!(text.contains("  hub requests/commit: n/a\n"), "{text}");
        assert!(text.contains("peak memory:        hub n/a,"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["hub_kind"], "fossil");
        assert!(json["hub_requests_per_commit"].is_null());
        assert!(json["hub_peak_rss_kb"].is_null());

        // Still a failure: a check-in that did not reach the server.
        let short = HubCount {
            trunk_commits: 3,
            ..hub
        };
        let r = TrialReport::build(
            TrialShape {
                hub_kind: HubKind::Fossil,
                ..shape()
            },
            &slots,
            short,
        );
        let why = r.verdict().expect("must fail");
        assert!(why.contains("hub has 3 trunk commits"), "{why}");
        assert!(!why.contains("leaves, not 1"), "{why}");

        // The same forks on herd's hub fail the trial.
        let r = TrialReport::build(shape(), &slots, hub);
        assert!(r.verdict().unwrap().contains("trunk has 3 leaves, not 1"));
    }

    #[test]
    fn unknown_figures_are_na_and_null_never_zero() {
        let mut silent = slot(1, &[], 0);
        silent.summary = None;
        let slots = [slot(0, &[1.0], 0), silent];
        let mut r = TrialReport::build(shape(), &slots, HubCount::default());
        r.hub_count_unknown();
        let text = r.render();
        for line in [
            "  hub commits:        n/a\n",
            "  broadcasts pulled:  n/a\n",
            "  claims lost:        n/a\n",
            "  trunk leaves:       n/a\n",
            "  think floor:        n/a (runtime/floor n/a)\n",
            "  commits/s:          n/a\n",
            "  peak memory:        hub n/a, largest leaf n/a\n",
            "  restarts:           hub 0, nats 0\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        let json = serde_json::to_value(&r).unwrap();
        for field in [
            "hub_commits",
            "broadcasts_pulled",
            "broadcasts_skipped",
            "think_floor_s",
            "leaf_peak_rss_kb",
            "trunk_leaves",
            "nats_ops_per_task",
        ] {
            assert!(json[field].is_null(), "{field}: {json}");
        }
        let why = r.verdict().unwrap();
        assert!(why.contains("count of trunk commits is unknown"), "{why}");
        assert!(!why.contains("hub has"), "{why}");

        // No commit at all: no latency to show.
        let r = TrialReport::build(shape(), &[slot(0, &[], 0)], HubCount::default());
        assert!(r.render().contains("P50/P99 commit ms:  n/a / n/a"));
    }

    #[test]
    fn a_lost_process_is_the_verdict_and_restarts_are_counted() {
        let slots = [slot(0, &[1.0, 3.0], 0), slot(1, &[2.0, 4.0], 0)];
        let hub = HubCount {
            trunk_commits: 4,
            trunk_leaves: 1,
            requests: Some(6),
            peak_rss_kb: Some(1024),
            hub_rebases: Some(1),
        };
        let mut r = TrialReport::build(shape(), &slots, hub);
        let restarts = Restarts { hub: 1, nats: 0 };
        let died = "the hub died (SIGKILL) at 1.5 s; restarted in 0.10 s (1 of 3)";
        r.set_infra(restarts, vec![died.into()], None);
        // The restarted hub's own counters are not the trial's.
        assert_eq!(r.hub_requests_per_commit, None);
        assert_eq!(r.hub_peak_rss_kb, None);
        let text = r.render();
        assert!(
            text.contains("  restarts:           hub 1, nats 0\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!("  infra:              {died}\n")),
            "{text}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["restarts"], serde_json::json!({"hub": 1, "nats": 0}));
        assert_eq!(r.verdict(), None, "a restart alone fails nothing");
        // A trial that fails after a restart says so first.
        let mut short = r.clone();
        short.hub_commits = Some(1);
        let why = short.verdict().unwrap();
        assert!(why.starts_with(died), "{why}");
        assert!(why.contains("hub has 1 trunk commits"), "{why}");

        let cause = "the hub died (SIGKILL) at 12.4 s; restarting it failed 3 time(s)";
        r.set_infra(Restarts::default(), vec![cause.into()], Some(cause.into()));
        r.hub_count_unknown();
        let why = r.verdict().unwrap();
        assert!(why.starts_with(cause), "{why}");
        assert!(why.ends_with("with 4 of 4 tasks committed"), "{why}");
    }

    #[test]
    fn failed_slots_are_grouped_by_reason() {
        let fail = |slot, reason: &str| SlotFailure {
            slot,
            reason: reason.to_string(),
        };
        let mut failed = vec![fail(3, "exit 1")];
        failed.extend((10..30).map(|s| fail(s, "killed")));
        let groups = failed_groups(&failed);
        assert_eq!(
            groups,
            [
                "slot 3 failed: exit 1".to_string(),
                "slots 10, 11, 12, 13, 14, 15, 16, 17 and 12 more failed: killed".to_string(),
            ]
        );
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }
}

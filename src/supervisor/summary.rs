//! Turning the leaves' lines and the hub's count into a trial's summary.
//!
//! Pure functions over collected data, so the arithmetic and the printed
//! format are tested without processes.

use std::fmt::Write as _;

use serde::Serialize;

use crate::report::{HubKind, LandingStrategy, LeafMode, LeafSummary, TaskLine, TaskOutcome};

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
    /// Trunk check-ins the hub reports.
    pub hub_commits: u64,
    /// Tasks the leaves report as committed.
    pub committed: u64,
    /// Pushes refused because trunk moved.
    pub fork_retries: u64,
    /// Check-ins the hub wrote anew on a newer tip (hub landing); `null`
    /// when the hub keeps no such count.
    pub hub_rebases: Option<u64>,
    /// Rebases that found a conflict.
    pub fork_unrecoverable: u64,
    /// Claims won.
    pub claims_won: u64,
    /// Claims lost.
    pub claims_lost: u64,
    /// Broadcasts that led to a pull.
    pub broadcasts_pulled: u64,
    /// Broadcasts for a tip the leaf already had.
    pub broadcasts_skipped: u64,
    /// Bytes of the hub's replies to the leaves' pulls, all leaves.
    pub bytes_pulled: u64,
    /// Worktree files the leaves' updates wrote or removed, all leaves.
    pub files_updated: u64,
    /// Median commit latency.
    pub p50_commit_ms: f64,
    /// 99th percentile commit latency.
    pub p99_commit_ms: f64,
    /// Wall time from the first leaf's start to the last leaf's exit.
    pub runtime_s: f64,
    /// The longest slot's total think time.
    pub think_floor_s: f64,
    /// Hub requests (from the hub's own count) per landed commit; `null`
    /// when the hub keeps no count (a stock `fossil server`).
    pub hub_requests_per_commit: Option<f64>,
    /// Leaves of the hub's trunk; 1 means linear. herd's hub keeps exactly
    /// one; a stock `fossil server` accepts forks.
    pub trunk_leaves: u64,
    /// Forks on the hub's trunk: `trunk_leaves − 1`.
    pub forks: u64,
    /// Slots that failed, with the reason.
    pub failed_slots: Vec<SlotFailure>,
    /// The slot that finished last, and when.
    pub slowest_slot: Option<u32>,
    /// Hub commits per second of runtime.
    pub commits_per_s: f64,
    /// The hub's peak resident memory, in KiB; `null` when unknown (a
    /// stock `fossil server` forks a process per request).
    pub hub_peak_rss_kb: Option<u64>,
    /// The largest leaf's peak resident memory, in KiB.
    pub leaf_peak_rss_kb: u64,
    /// NATS requests the leaves sent in their task loops per committed
    /// task; `null` with no committed task.
    pub nats_ops_per_task: Option<f64>,
    /// User + system CPU of every process of the trial (herd, the hub, the
    /// nats-server herd started, every leaf) per hub commit, in ms; `null`
    /// until the processes have been reaped, or with no commit.
    pub cpu_ms_per_commit: Option<f64>,
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
            hub_commits: hub.trunk_commits,
            committed: 0,
            fork_retries: 0,
            hub_rebases: hub.hub_rebases,
            fork_unrecoverable: 0,
            claims_won: 0,
            claims_lost: 0,
            broadcasts_pulled: 0,
            broadcasts_skipped: 0,
            bytes_pulled: 0,
            files_updated: 0,
            p50_commit_ms: 0.0,
            p99_commit_ms: 0.0,
            runtime_s: shape.runtime_s,
            think_floor_s: 0.0,
            hub_requests_per_commit: None,
            trunk_leaves: hub.trunk_leaves,
            forks: hub.trunk_leaves.saturating_sub(1),
            failed_slots: Vec::new(),
            slowest_slot: shape.slowest_slot,
            commits_per_s: 0.0,
            hub_peak_rss_kb: hub.peak_rss_kb,
            leaf_peak_rss_kb: 0,
            cpu_ms_per_commit: None,
            nats_ops_per_task: None,
        };
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
                    r.fork_unrecoverable += u64::from(s.fork_unrecoverable);
                    r.claims_won += u64::from(s.claims_won);
                    r.claims_lost += u64::from(s.claims_lost);
                    r.broadcasts_pulled += u64::from(s.broadcasts_pulled);
                    r.broadcasts_skipped += u64::from(s.broadcasts_skipped);
                    r.bytes_pulled += s.bytes_pulled;
                    r.files_updated += s.files_updated;
                    think_max_ms = think_max_ms.max(s.think_ms);
                    r.leaf_peak_rss_kb = r.leaf_peak_rss_kb.max(s.peak_rss_kb);
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
        r.p50_commit_ms = percentile(&latencies, 50.0);
        r.p99_commit_ms = percentile(&latencies, 99.0);
        r.think_floor_s = think_max_ms as f64 / 1000.0;
        if r.hub_commits > 0 {
            r.hub_requests_per_commit = hub.requests.map(|n| n as f64 / r.hub_commits as f64);
        }
        if r.runtime_s > 0.0 {
            r.commits_per_s = r.hub_commits as f64 / r.runtime_s;
        }
        if r.committed > 0 {
            r.nats_ops_per_task = Some(nats_ops as f64 / r.committed as f64);
        }
        r
    }

    /// Records the CPU the trial's processes spent in all, `cpu_ms`.
    pub fn set_cpu_ms(&mut self, cpu_ms: f64) {
        self.cpu_ms_per_commit = (self.hub_commits > 0).then(|| cpu_ms / self.hub_commits as f64);
    }

    /// Why the trial failed, or `None` when every count agrees, trunk is
    /// linear and no slot failed. Against a stock `fossil server` forks are
    /// what is measured, not a failure: there every task's check-in must
    /// reach the server, however many trunk leaves that makes.
    pub fn verdict(&self) -> Option<String> {
        let mut why = Vec::new();
        if self.hub_commits != self.committed {
            why.push(format!(
                "hub has {} trunk commits but leaves committed {}",
                self.hub_commits, self.committed
            ));
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
        if self.hub_kind == HubKind::Herd && self.trunk_leaves != 1 {
            why.push(format!("trunk has {} leaves, not 1", self.trunk_leaves));
        }
        why.extend(failed_groups(&self.failed_slots));
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// The summary block (DESIGN.md's format, line for line, then extras).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "herd-hub-leaf trial: agents={} tasks={} total={}",
            self.agents, self.tasks, self.total
        );
        let _ = writeln!(s, "  hub commits:        {}", self.hub_commits);
        let _ = writeln!(s, "  fork retries:       {}", self.fork_retries);
        let _ = writeln!(s, "  fork unrecoverable: {}", self.fork_unrecoverable);
        let _ = writeln!(s, "  claims won:         {}", self.claims_won);
        let _ = writeln!(s, "  claims lost:        {}", self.claims_lost);
        let _ = writeln!(s, "  broadcasts pulled:  {}", self.broadcasts_pulled);
        let _ = writeln!(
            s,
            "  broadcasts skipped (idempotent): {}",
            self.broadcasts_skipped
        );
        let _ = writeln!(
            s,
            "  P50/P99 commit ms:  {} / {}",
            fmt_ms(self.p50_commit_ms),
            fmt_ms(self.p99_commit_ms)
        );
        let _ = writeln!(s, "  total runtime:      {:.1}s", self.runtime_s);
        let _ = writeln!(
            s,
            "  hub requests/commit: {}",
            self.hub_requests_per_commit
                .map_or("n/a".into(), |n| format!("{n:.2}"))
        );
        let _ = writeln!(s, "  trunk leaves:       {}", self.trunk_leaves);
        let _ = writeln!(s, "  hub kind:           {}", self.hub_kind);
        let _ = writeln!(s, "  landing:            {}", self.landing);
        let _ = writeln!(s, "  leaf:               {}", self.leaf);
        let _ = writeln!(
            s,
            "  bytes pulled:       {} ({} per commit)",
            self.bytes_pulled,
            per(self.bytes_pulled, self.hub_commits)
        );
        let _ = writeln!(s, "  files updated:      {}", self.files_updated);
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
        let _ = writeln!(s, "  forks:              {}", self.forks);
        let ratio = if self.think_floor_s > 0.0 {
            format!("{:.2}x", self.runtime_s / self.think_floor_s)
        } else {
            "n/a".into()
        };
        let _ = writeln!(
            s,
            "  think floor:        {:.1}s (runtime/floor {ratio})",
            self.think_floor_s
        );
        let _ = writeln!(s, "  commits/s:          {:.1}", self.commits_per_s);
        let hub_mib = self
            .hub_peak_rss_kb
            .map_or("n/a".into(), |kb| format!("{:.1} MiB", kb as f64 / 1024.0));
        let _ = writeln!(
            s,
            "  peak memory:        hub {hub_mib}, largest leaf {:.1} MiB",
            self.leaf_peak_rss_kb as f64 / 1024.0
        );
        if let Some(slot) = self.slowest_slot {
            let _ = writeln!(s, "  slowest slot:       {slot}");
        }
        s
    }
}

/// `n / d` with no decimals, `n/a` when `d` is 0.
fn per(n: u64, d: u64) -> String {
    if d == 0 {
        "n/a".into()
    } else {
        format!("{:.0}", n as f64 / d as f64)
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
        assert_eq!((r.p50_commit_ms, r.p99_commit_ms), (2.0, 4.0));
        assert_eq!(r.hub_requests_per_commit, Some(1.5));
        assert_eq!((r.trunk_leaves, r.forks), (1, 0));
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
        assert_eq!((r.trunk_leaves, r.forks), (3, 2));
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

//! Adding up a trial's report: the slots' lines and the hub's count into a
//! [`TrialReport`], and the figures herd learns only after (CPU, what became
//! of the hub and nats-server).

use super::{CpuByKind, HubCount, SlotFailure, SlotRecord, TrialReport, TrialShape};
use crate::supervisor::infra::Restarts;
use crate::wire::{LeafMode, LeafSummary, TaskLine, TaskOutcome};

/// A figure to three decimals (a ms figure to the microsecond), so JSON
/// carries no float noise such as `1.0666666666666669`.
fn thousandths(x: f64) -> f64 {
    crate::wire::round_us(x)
}

impl TrialReport {
    /// Adds up the slots and the hub's count.
    pub fn build(shape: TrialShape, slots: &[SlotRecord], hub: HubCount) -> TrialReport {
        let mut r = TrialReport::empty(shape, &hub);
        // Totals of what only the summary lines carry.
        let mut from_summaries = SummaryTotals::default();
        let mut latencies = Vec::new();
        for (slot, rec) in slots.iter().enumerate() {
            latencies.extend(committed(rec).filter_map(|t| t.commit_ms));
            r.add_slot(slot, rec, &mut from_summaries);
        }
        r.set_latencies(latencies);
        if slots.iter().all(|rec| rec.summary.is_some()) {
            r.set_summary_totals(&from_summaries);
        }
        r.set_rates(&hub);
        r
    }

    /// The report before any slot is counted: the trial's shape, the hub's
    /// count, and every figure the slots feed at zero or unknown.
    fn empty(shape: TrialShape, hub: &HubCount) -> TrialReport {
        let spec = &shape.spec;
        TrialReport {
            hub_kind: spec.hub_kind,
            landing: spec.landing,
            leaf: spec.leaf,
            catch_up: spec.catch_up,
            agents: spec.agents,
            tasks: spec.tasks,
            total: u64::from(spec.agents) * u64::from(spec.tasks),
            mode: spec.mode,
            seed: spec.seed,
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
            apply_us_per_checkin: None,
            files_updated: None,
            p50_commit_ms: None,
            p99_commit_ms: None,
            runtime_s: shape.runtime_s,
            think_floor_s: None,
            hub_requests_per_commit: None,
            hub_bytes_out_per_commit: None,
            trunk_leaves: Some(hub.trunk_leaves),
            forks: Some(hub.trunk_leaves.saturating_sub(1)),
            failed_slots: Vec::new(),
            slowest_slot: shape.slowest_slot,
            commits_per_s: None,
            hub_peak_rss_kb: hub.peak_rss_kb,
            leaf_peak_rss_kb: None,
            leaf_private_kb: None,
            leaf_start_cpu_ms: None,
            cpu_ms_per_commit: None,
            cpu_ms_per_commit_by_kind: None,
            edits: None,
            hub_count_error: None,
            nats_ops_per_task: None,
            git_processes_per_commit: None,
            hosts: shape.hosts.max(1),
            nats_nodes: shape.nats_nodes,
            faults: shape.faults,
            links: shape.links,
            committed_per_host: vec![0; shape.hosts.max(1) as usize],
            restarts: Restarts::default(),
            infra_events: Vec::new(),
            infra_failure: None,
        }
    }

    /// Counts one slot: from its summary line when it sent one, else from
    /// what its task lines show; its host's tally; and why it failed.
    fn add_slot(&mut self, slot: usize, rec: &SlotRecord, from_summaries: &mut SummaryTotals) {
        match &rec.summary {
            Some(s) => {
                self.committed += u64::from(s.committed);
                self.fork_retries += u64::from(s.fork_retries);
                self.claims_won += u64::from(s.claims_won);
                from_summaries.add(s);
            }
            None => {
                // Without a summary, count what the task lines show.
                let committed = committed(rec).count() as u64;
                self.committed += committed;
                self.claims_won += committed;
                self.fork_retries += rec
                    .tasks
                    .iter()
                    .map(|t| u64::from(t.fork_retries))
                    .sum::<u64>();
            }
        }
        let host = slot % self.committed_per_host.len();
        self.committed_per_host[host] += committed(rec).count() as u64;
        if let Some(failure) = slot_failure(slot as u32, rec) {
            self.failed_slots.push(failure);
        }
    }

    /// The commit latency percentiles; unknown with no commit.
    fn set_latencies(&mut self, mut latencies: Vec<f64>) {
        latencies.sort_by(f64::total_cmp);
        if !latencies.is_empty() {
            self.p50_commit_ms = Some(percentile(&latencies, 50.0));
            self.p99_commit_ms = Some(percentile(&latencies, 99.0));
        }
    }

    /// The figures only summary lines carry, once every slot sent one.
    fn set_summary_totals(&mut self, t: &SummaryTotals) {
        self.fork_unrecoverable = Some(t.fork_unrecoverable);
        self.claims_lost = Some(t.claims_lost);
        self.broadcasts_pulled = Some(t.broadcasts_pulled);
        self.broadcasts_skipped = Some(t.broadcasts_skipped);
        self.leaf_peak_rss_kb = Some(t.leaf_peak_rss_kb);
        self.leaf_private_kb = Some(t.leaf_private_kb).filter(|&kb| kb > 0);
        let mut start: Vec<f64> = t.start_cpu_us.iter().map(|&us| us as f64).collect();
        start.sort_by(f64::total_cmp);
        if !start.is_empty() {
            self.leaf_start_cpu_ms = Some(thousandths(percentile(&start, 50.0) / 1000.0));
        }
        self.bytes_pulled = Some(t.bytes_pulled);
        self.files_updated = Some(t.files_updated);
        if self.leaf == LeafMode::Full && t.checkins_applied > 0 {
            self.apply_us_per_checkin =
                Some(thousandths(t.apply_us as f64 / t.checkins_applied as f64));
        }
        self.think_floor_s = Some(t.think_max_ms as f64 / 1000.0);
        if self.committed > 0 {
            self.nats_ops_per_task = Some(thousandths(t.nats_ops as f64 / self.committed as f64));
            if t.git_processes > 0 {
                self.git_processes_per_commit =
                    Some(thousandths(t.git_processes as f64 / self.committed as f64));
            }
        }
    }

    /// The hub's figures per commit and per second, then the runtime
    /// rounded to the microsecond (after the rate is taken from it).
    fn set_rates(&mut self, hub: &HubCount) {
        if hub.trunk_commits > 0 {
            self.hub_requests_per_commit = hub
                .requests
                .map(|n| thousandths(n as f64 / hub.trunk_commits as f64));
            self.hub_bytes_out_per_commit = hub
                .bytes_out
                .map(|n| thousandths(n as f64 / hub.trunk_commits as f64));
        }
        if self.runtime_s > 0.0 {
            self.commits_per_s = Some(thousandths(hub.trunk_commits as f64 / self.runtime_s));
        }
        self.runtime_s = (self.runtime_s * 1e6).round() / 1e6;
    }

    /// Records the CPU the trial's processes spent in all, `cpu_ms`.
    pub fn set_cpu_ms(&mut self, cpu_ms: f64) {
        self.cpu_ms_per_commit = self
            .hub_commits
            .filter(|&n| n > 0)
            .map(|n| thousandths(cpu_ms / n as f64));
    }

    /// Records the CPU ms each kind of process spent over the trial.
    pub fn set_cpu_by_kind(&mut self, total: CpuByKind) {
        self.cpu_ms_per_commit_by_kind = self.hub_commits.filter(|&n| n > 0).map(|n| {
            let per = |ms: f64| thousandths(ms / n as f64);
            CpuByKind {
                hub: per(total.hub),
                nats: per(total.nats),
                leaves: per(total.leaves),
                herd: per(total.herd),
            }
        });
    }

    /// Forgets the hub's figures: its count could not be read.
    pub fn hub_count_unknown(&mut self) {
        self.hub_commits = None;
        self.trunk_leaves = None;
        self.forks = None;
        self.commits_per_s = None;
        self.hub_requests_per_commit = None;
        self.hub_bytes_out_per_commit = None;
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
            self.hub_bytes_out_per_commit = None;
            self.hub_rebases = None;
            self.hub_peak_rss_kb = None;
        }
        self.restarts = restarts;
        self.infra_events = events;
        self.infra_failure = lost;
    }
}

/// A slot's committed tasks, from its task lines.
fn committed(rec: &SlotRecord) -> impl Iterator<Item = &TaskLine> {
    rec.tasks
        .iter()
        .filter(|t| t.outcome == TaskOutcome::Committed)
}

/// Why a slot counts as failed: the reason herd recorded, else a slot that
/// exited without its summary line.
fn slot_failure(slot: u32, rec: &SlotRecord) -> Option<SlotFailure> {
    let reason = match &rec.failure {
        Some(reason) => reason.clone(),
        None if rec.summary.is_none() => "exited without a summary line".into(),
        None => return None,
    };
    Some(SlotFailure { slot, reason })
}

/// Sums of the figures only leaves' summary lines carry.
#[derive(Default)]
struct SummaryTotals {
    fork_unrecoverable: u64,
    claims_lost: u64,
    broadcasts_pulled: u64,
    broadcasts_skipped: u64,
    leaf_peak_rss_kb: u64,
    /// The largest leaf's own memory at its end.
    leaf_private_kb: u64,
    /// Each leaf's start-up CPU.
    start_cpu_us: Vec<u64>,
    bytes_pulled: u64,
    files_updated: u64,
    /// The longest slot's think time.
    think_max_ms: u64,
    /// NATS requests in the leaves' task loops.
    nats_ops: u64,
    /// `git` processes the leaves ran.
    git_processes: u64,
    /// Other slots' check-ins the leaves stored.
    checkins_applied: u64,
    /// CPU µs the leaves spent applying them.
    apply_us: u64,
}

impl SummaryTotals {
    fn add(&mut self, s: &LeafSummary) {
        self.fork_unrecoverable += u64::from(s.fork_unrecoverable);
        self.claims_lost += u64::from(s.claims_lost);
        self.broadcasts_pulled += u64::from(s.broadcasts_pulled);
        self.broadcasts_skipped += u64::from(s.broadcasts_skipped);
        self.leaf_peak_rss_kb = self.leaf_peak_rss_kb.max(s.peak_rss_kb);
        self.leaf_private_kb = self.leaf_private_kb.max(s.private_kb);
        self.start_cpu_us.push(s.start_cpu_us);
        self.bytes_pulled += s.bytes_pulled;
        self.files_updated += s.files_updated;
        self.think_max_ms = self.think_max_ms.max(s.think_ms);
        self.nats_ops += s.nats_ops;
        self.git_processes += s.git_processes;
        self.checkins_applied += s.checkins_applied;
        self.apply_us += s.apply_us;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }
}

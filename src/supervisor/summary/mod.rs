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
//!
//! This file holds the types; adding up is in `build`, the pass or fail
//! in `verdict`, the printed block in `render`.

mod build;
mod render;
mod verdict;

use serde::Serialize;

use super::infra::Restarts;
use crate::spec::TrialSpec;
use crate::wire::{CatchUp, HubKind, LandingStrategy, LeafMode, LeafSummary, TaskLine};
use crate::workload::Mode;

pub use build::percentile;

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
    /// Hub landings that merged a file by lines; `None` when the hub does
    /// not say.
    pub hub_merges: Option<u64>,
    /// Hub landings refused for conflicting lines; `None` when the hub
    /// does not say.
    pub conflicts: Option<u64>,
    /// Bytes of HTTP response bodies the hub sent (`/stats` `bytes_out`);
    /// `None` when the hub does not say (a stock `fossil server`).
    pub bytes_out: Option<u64>,
}

/// CPU milliseconds of each kind of process: totals over the trial, or
/// (in the report) those per hub commit. JSON:
/// `{"hub":1.2,"nats":0.4,"leaves":9.8,"herd":0.1}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuByKind {
    /// herd's hub, or the `fossil server` with the request processes it
    /// reaped.
    pub hub: f64,
    /// Every nats-server herd started (none with `--nats-url`).
    pub nats: f64,
    /// Every leaf-agent, together.
    pub leaves: f64,
    /// herd itself.
    pub herd: f64,
}

/// The trial's figures, printed as the summary block or as JSON. Its
/// first fields are the trial's shape, typed as in its [`TrialSpec`] and
/// written as its flags spell them.
#[derive(Debug, Clone, Serialize)]
pub struct TrialReport {
    /// What served as the hub: `herd` or `fossil`.
    pub hub_kind: HubKind,
    /// Who landed contended check-ins: `hub` or `leaf`.
    pub landing: LandingStrategy,
    /// What leaves kept: `full` or `sparse`.
    pub leaf: LeafMode,
    /// How full leaves caught up: `stream` or `pull`. Reported as asked
    /// also when the leaves ignored it (sparse leaves, a fossil hub).
    pub catch_up: CatchUp,
    /// Leaf-agents started.
    pub agents: u32,
    /// Tasks per agent.
    pub tasks: u32,
    /// agents × tasks.
    pub total: u64,
    /// `disjoint` or `shared`.
    pub mode: Mode,
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
    /// CPU µs a full leaf spent applying one other slot's check-in
    /// (storing, crosslinking, writing it out): Σ `apply_us` ÷ Σ
    /// `checkins_applied` over the leaves' summary lines, so a weighted
    /// average over every applied check-in, not a mean of the leaves'
    /// averages. `null` with sparse leaves, when no check-in was applied,
    /// or unless every slot sent its summary.
    pub apply_us_per_checkin: Option<f64>,
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
    /// Bytes of HTTP response bodies the hub sent over the trial (every
    /// request: pulls, push replies, `/stats`, `/counters`; from the hub's
    /// final `/stats` `bytes_out`) per hub commit; `null` for a stock
    /// `fossil server`, a restarted hub, or with no commit.
    pub hub_bytes_out_per_commit: Option<f64>,
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
    /// The largest leaf's own memory at its end, in KiB (the pages it
    /// wrote that no other process maps; the program's text, shared by
    /// every leaf, is not in it): what one more leaf costs the machine. `null` unless
    /// every slot sent its summary, or where Linux does not tell.
    pub leaf_private_kb: Option<u64>,
    /// The median leaf's CPU, in ms, from its start to its `ready` line
    /// (clone, NATS connect, open); `null` unless every slot sent its
    /// summary.
    pub leaf_start_cpu_ms: Option<f64>,
    /// NATS requests the leaves sent in their task loops per committed
    /// task; `null` with no committed task.
    pub nats_ops_per_task: Option<f64>,
    /// `git` processes the leaves ran per committed task (`--hub-kind
    /// git`; their CPU is in the leaves' CPU); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_processes_per_commit: Option<f64>,
    /// Simulated hosts (`--hosts`).
    pub hosts: u32,
    /// NATS servers the trial ran (1 without hosts).
    pub nats_nodes: u32,
    /// Faults injected (`--kill-nats-node`, `--partition-host`,
    /// `--slow-host`), with when.
    pub faults: Vec<String>,
    /// The hosts' links when shaped (`--link-delay`, `--link-loss`):
    /// delay, jitter and loss of each host's outgoing packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<String>,
    /// Tasks committed by the slots of each host, by host.
    pub committed_per_host: Vec<u64>,
    /// User + system CPU of every process of the trial (herd, the hub, the
    /// nats-server herd started, every leaf) per hub commit, in ms; `null`
    /// until the processes have been reaped, or with no commit.
    pub cpu_ms_per_commit: Option<f64>,
    /// `cpu_ms_per_commit` by kind of process: the CPU ms each kind used
    /// over the trial ÷ hub commits. Children's totals are read from
    /// `/proc` (with what they reaped) at the end of their life: a leaf's
    /// after it exited and before herd reaped it (exact), the hub's and
    /// nats-servers' after the leaves exited and before they were stopped
    /// (their shutdown left out; a process that died mid-trial counts
    /// until its last 250 ms sample); herd's own is `getrusage`. So the
    /// four add up to a little under `cpu_ms_per_commit`. `null` with no
    /// commit or before the trial's processes are gone.
    pub cpu_ms_per_commit_by_kind: Option<CpuByKind>,
    /// Times herd started the hub and its nats-server again during the
    /// trial: `{"hub":1,"nats":0}`.
    pub restarts: Restarts,
    /// Each death of the hub or nats-server and how it ended, one line
    /// each: "the hub died (SIGKILL) at 12.4 s; restarted in 0.2 s (1 of 3)".
    pub infra_events: Vec<String>,
    /// Why herd stopped the trial when a process could not be kept
    /// running; `null` otherwise.
    pub infra_failure: Option<String>,
    /// With `--overlap`: the set check over hot-file edits and the merges
    /// and conflicts behind it (its fields at the top level of `--json`);
    /// absent otherwise.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub edits: Option<crate::supervisor::edits::EditCheck>,
    /// Why the hub's own count could not be read, when herd asked and
    /// failed (a lost hub is named in `infra_failure` instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_count_error: Option<String>,
}

/// The inputs of a report besides the slots.
pub struct TrialShape {
    /// The trial's shape as asked: agents, tasks, seed, the modes.
    pub spec: TrialSpec,
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
    /// The hosts' links when shaped.
    pub links: Option<String>,
}

impl TrialShape {
    /// The shape `config` asks for, on one host with one NATS server and
    /// no fault; the caller fills in what the trial found (the slowest
    /// slot, the topology it ran on, the faults it injected).
    pub fn of(config: &super::TrialConfig, runtime_s: f64) -> TrialShape {
        TrialShape {
            spec: config.spec.clone(),
            runtime_s,
            slowest_slot: None,
            hosts: 1,
            nats_nodes: 1,
            faults: Vec::new(),
            links: config.links_text(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ClaimOutcome, TaskOutcome};

    /// A slot that committed a task per entry of `commits` (its latency)
    /// and sent its summary line.
    pub(super) fn slot(slot: u32, commits: &[f64], retries: u32) -> SlotRecord {
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
                resolutions: 0,
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

    /// Two agents of two tasks on herd's hub, with hub landing and full
    /// leaves catching up from the stream.
    pub(super) fn shape() -> TrialShape {
        TrialShape {
            spec: crate::supervisor::page::tests::config(2, 2).spec,
            runtime_s: 2.0,
            slowest_slot: Some(1),
            hosts: 1,
            nats_nodes: 1,
            faults: Vec::new(),
            links: None,
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
            hub_merges: None,
            conflicts: None,
            bytes_out: Some(8000),
        };
        let r = TrialReport::build(shape(), &slots, hub);
        assert_eq!((r.committed, r.fork_retries, r.claims_won), (4, 3, 4));
        assert_eq!((r.p50_commit_ms, r.p99_commit_ms), (Some(2.0), Some(4.0)));
        assert_eq!(r.hub_requests_per_commit, Some(1.5));
        assert_eq!(r.hub_bytes_out_per_commit, Some(2000.0));
        assert_eq!((r.trunk_leaves, r.forks), (Some(1), Some(0)));
        assert_eq!(r.verdict(), None);
        let text = r.render();
        assert!(text.starts_with(
            "herd-hub-leaf trial: agents=2 tasks=2 total=4\n  hub commits:        4\n"
        ));
        assert!(text.contains("  P50/P99 commit ms:  2.00 / 4.00\n"));
        assert!(text.contains("  total runtime:      2.0s\n"));
        assert!(text.contains("  catch-up:           stream\n"), "{text}");
        assert!(text.contains("  hub bytes out/commit: 2000\n"), "{text}");
        assert!(text.contains("  cpu ms/commit by kind: n/a\n"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["catch_up"], "stream");
        let mut pull = shape();
        pull.spec.catch_up = CatchUp::Pull;
        let json = serde_json::to_value(TrialReport::build(pull, &slots, hub)).unwrap();
        assert_eq!(json["catch_up"], "pull");
    }

    #[test]
    fn cpu_by_kind_is_per_hub_commit_and_null_without_one() {
        let slots = [slot(0, &[1.0, 3.0], 0), slot(1, &[2.0, 4.0], 0)];
        let hub = HubCount {
            trunk_commits: 4,
            trunk_leaves: 1,
            ..HubCount::default()
        };
        let mut r = TrialReport::build(shape(), &slots, hub);
        r.set_cpu_ms(100.0);
        r.set_cpu_by_kind(CpuByKind {
            hub: 40.0,
            nats: 10.0,
            leaves: 46.0,
            herd: 1.0,
        });
        assert_eq!(r.cpu_ms_per_commit, Some(25.0));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["cpu_ms_per_commit_by_kind"],
            serde_json::json!({"hub": 10.0, "nats": 2.5, "leaves": 11.5, "herd": 0.25})
        );
        let text = r.render();
        assert!(
            text.contains(
                "  cpu ms/commit by kind: hub 10.00, nats 2.50, leaves 11.50, herd 0.25\n"
            ),
            "{text}"
        );
        // Thirds are rounded to the microsecond, as every ms figure.
        r.hub_commits = Some(3);
        r.set_cpu_by_kind(CpuByKind {
            hub: 1.0,
            ..CpuByKind::default()
        });
        assert_eq!(r.cpu_ms_per_commit_by_kind.unwrap().hub, 0.333);
        // No commit: nothing to divide by.
        r.hub_commits = Some(0);
        r.set_cpu_by_kind(CpuByKind::default());
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["cpu_ms_per_commit_by_kind"].is_null(), "{json}");
    }

    #[test]
    fn apply_us_per_checkin_is_weighted_by_check_ins_and_only_for_full_leaves() {
        let mut slots = [slot(0, &[1.0, 3.0], 0), slot(1, &[2.0, 4.0], 0)];
        let hub = HubCount {
            trunk_commits: 4,
            trunk_leaves: 1,
            ..HubCount::default()
        };
        let r = TrialReport::build(shape(), &slots, hub);
        assert_eq!(r.apply_us_per_checkin, None, "nothing applied");
        assert!(r.render().contains("  apply µs/check-in:  n/a\n"));
        // 1 check-in at 100 µs and 3 at 300 µs each: 1000 µs over 4, not
        // the mean of 100 and 300.
        for (rec, (applied, us)) in slots.iter_mut().zip([(1, 100), (3, 900)]) {
            let s = rec.summary.as_mut().unwrap();
            s.checkins_applied = applied;
            s.apply_us = us;
        }
        let r = TrialReport::build(shape(), &slots, hub);
        assert_eq!(r.apply_us_per_checkin, Some(250.0));
        assert!(r.render().contains("  apply µs/check-in:  250.0\n"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["apply_us_per_checkin"], 250.0);
        let mut sparse = shape();
        sparse.spec.leaf = LeafMode::Sparse;
        let json = serde_json::to_value(TrialReport::build(sparse, &slots, hub)).unwrap();
        assert!(json["apply_us_per_checkin"].is_null(), "{json}");
        // A slot without its summary: the leaves' totals are unknown.
        slots[1].summary = None;
        let r = TrialReport::build(shape(), &slots, hub);
        assert_eq!(r.apply_us_per_checkin, None);
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
            hub_merges: None,
            conflicts: None,
            bytes_out: None,
        };
        let fossil = || {
            let mut shape = shape();
            shape.spec.hub_kind = HubKind::Fossil;
            shape
        };
        let r = TrialReport::build(fossil(), &slots, hub);
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
        assert!(json["hub_bytes_out_per_commit"].is_null());
        assert!(text.contains("  hub bytes out/commit: n/a\n"), "{text}");

        // Still a failure: a check-in that did not reach the server.
        let short = HubCount {
            trunk_commits: 3,
            ..hub
        };
        let r = TrialReport::build(fossil(), &slots, short);
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
            "leaf_private_kb",
            "leaf_start_cpu_ms",
            "trunk_leaves",
            "nats_ops_per_task",
        ] {
            assert!(json[field].is_null(), "{field}: {json}");
        }
        let why = r.verdict().unwrap();
        assert!(why.contains("count of trunk commits is unknown"), "{why}");
        assert!(!why.contains("hub has"), "{why}");
        // Why the count is unknown is said once, as the hub's, never as a
        // slot's failure.
        r.hub_count_error = Some("hub /stats: connection refused".into());
        let why = r.verdict().unwrap();
        assert!(
            why.contains("count of trunk commits is unknown (hub /stats: connection refused)"),
            "{why}"
        );
        assert!(!why.contains("4294967295"), "{why}");

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
            hub_merges: None,
            conflicts: None,
            bytes_out: Some(4000),
        };
        let mut r = TrialReport::build(shape(), &slots, hub);
        let restarts = Restarts { hub: 1, nats: 0 };
        let died = "the hub died (SIGKILL) at 1.5 s; restarted in 0.10 s (1 of 3)";
        assert_eq!(r.hub_bytes_out_per_commit, Some(1000.0));
        r.set_infra(restarts, vec![died.into()], None);
        // The restarted hub's own counters are not the trial's.
        assert_eq!(r.hub_requests_per_commit, None);
        assert_eq!(r.hub_bytes_out_per_commit, None);
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
}

//! The series herd samples while a trial runs: every ~250 ms, the CPU and
//! memory of each kind of process (from `/proc`) and the hub's live
//! counters (`GET /counters`, [`HubCounters`]). The trial report draws them
//! over time.
//!
//! The hub answers `/counters` from atomics only (no repository read), so
//! sampling it four times a second costs the hub next to nothing:
//!
//! ```text
//! {"requests":495,"writes":480,"batches":160,"batched_pushes":480,"pushes_accepted":480,
//!  "pushes_refused":0,"hub_rebases":430,"backlog":3,"pushes_waiting":0,"bytes_out":5120400,
//!  "rss_kb":21400}
//! ```

use serde::{Deserialize, Serialize};

/// The hub's counters at one moment: totals since the hub started, except
/// the gauges `backlog`, `pushes_waiting` and `rss_kb`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubCounters {
    /// Sync requests received.
    pub requests: u64,
    /// Sync requests that carried a push.
    pub writes: u64,
    /// Write transactions committed.
    pub batches: u64,
    /// Pushes handled in those transactions (a batch's size is the
    /// difference of this over the difference of `batches`).
    pub batched_pushes: u64,
    /// Pushed check-ins that landed on trunk.
    pub pushes_accepted: u64,
    /// Pushed check-ins refused (stale parent or conflict).
    pub pushes_refused: u64,
    /// Check-ins the hub wrote anew on a newer tip.
    pub hub_rebases: u64,
    /// Pushes handed to the writer and not yet answered: its queue depth.
    pub backlog: u64,
    /// Pushes held in the push queue waiting for a turn (leaf landing).
    pub pushes_waiting: u64,
    /// Bytes of HTTP response bodies the hub has sent, every request.
    #[serde(default)]
    pub bytes_out: u64,
    /// The hub's resident memory now, in KiB.
    pub rss_kb: u64,
}

/// Which kind of process a figure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessKind {
    /// herd itself.
    Herd,
    /// The hub (herd's, or the `fossil server` parent).
    Hub,
    /// The nats-server herd started.
    Nats,
    /// Every leaf-agent, together.
    Leaf,
}

impl ProcessKind {
    /// Every kind, in the order a report lists them.
    pub const ALL: [ProcessKind; 4] = [
        ProcessKind::Hub,
        ProcessKind::Leaf,
        ProcessKind::Nats,
        ProcessKind::Herd,
    ];

    /// The kind's name in a legend.
    pub fn label(self) -> &'static str {
        match self {
            ProcessKind::Herd => "herd",
            ProcessKind::Hub => "hub",
            ProcessKind::Nats => "nats-server",
            ProcessKind::Leaf => "leaf-agents",
        }
    }
}

/// One kind's processes over one sampling interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KindSample {
    /// The kind.
    pub kind: ProcessKind,
    /// Processes of the kind alive at the sample.
    pub processes: u32,
    /// CPU (user + system) they used since the previous sample, in ms.
    pub cpu_ms: f64,
    /// Their resident memory at the sample, summed, in KiB.
    pub rss_kb: u64,
}

/// Everything sampled at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When, in ms on the trial clock.
    pub at_ms: f64,
    /// Length of the interval the CPU figures cover, in ms.
    pub interval_ms: f64,
    /// Per kind of process.
    pub processes: Vec<KindSample>,
    /// The hub's counters, when the hub answered (herd's hub only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<HubCounters>,
}

impl Sample {
    /// The figures of one kind, if any process of it was sampled.
    pub fn of(&self, kind: ProcessKind) -> Option<&KindSample> {
        self.processes.iter().find(|k| k.kind == kind)
    }
}

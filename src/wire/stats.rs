//! The hub's `/stats` document, as the hub writes it and herd reads it.

use serde::{Deserialize, Serialize};

/// The `/stats` document. Field names are read by scripts and by herd.
///
/// ```text
/// {"tip":"6b1e…","trunk_commits":480,"artifacts":2071,"trunk_leaves":1,"requests":495,
///  "http_requests":497,"writes":480,"batches":160,"pushes_accepted":480,"pushes_refused":0,
///  "hub_rebases":430,
///  "broadcasts_published":160,"broadcasts_dropped":0,"project_code":"…","peak_rss_kb":21400,
///  "bytes_out":5120400}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubStats {
    /// The trunk tip (the initial empty check-in on a new repository).
    pub tip: String,
    /// Check-ins on trunk, not counting the root (the initial empty
    /// check-in); equals the number of tasks committed.
    pub trunk_commits: u64,
    /// Artifacts held (blob rows that are not phantoms).
    pub artifacts: u64,
    /// Leaves of trunk: 1 while trunk is linear.
    pub trunk_leaves: u64,
    /// Sync requests received (not counting `/stats` and `/healthz`), so
    /// that requests per commit is the leaves' cost.
    pub requests: u64,
    /// HTTP requests received, any path.
    pub http_requests: u64,
    /// Sync requests that carried a push.
    pub writes: u64,
    /// Write transactions committed.
    pub batches: u64,
    /// Pushed check-ins accepted onto trunk.
    pub pushes_accepted: u64,
    /// Pushed check-ins refused (stale parent).
    pub pushes_refused: u64,
    /// Pushed check-ins the hub landed by writing them anew on a newer tip
    /// (`pragma herd-land`); included in `pushes_accepted`.
    #[serde(default)]
    pub hub_rebases: u64,
    /// Hub landings that merged a file changed on trunk too by lines;
    /// included in `hub_rebases`.
    #[serde(default)]
    pub hub_merges: u64,
    /// Hub landings refused because lines both sides changed met (the
    /// pusher redoes its edit); included in `pushes_refused`.
    #[serde(default)]
    pub conflicts: u64,
    /// Tips broadcast on NATS.
    pub broadcasts_published: u64,
    /// Tips not broadcast because NATS was unavailable.
    pub broadcasts_dropped: u64,
    /// Pushes held in the push queue at this moment.
    #[serde(default)]
    pub pushes_waiting: u64,
    /// Push-queue turns handed out (each one a refusal that reserved the
    /// trunk for its pusher).
    #[serde(default)]
    pub turns_granted: u64,
    /// Turns whose lease ran out unused.
    #[serde(default)]
    pub turns_expired: u64,
    /// The repository's project code.
    pub project_code: String,
    /// The hub process's peak resident memory, in KiB (VmHWM).
    #[serde(default)]
    pub peak_rss_kb: u64,
    /// Bytes of HTTP response bodies the hub sent, every request (the
    /// leaves' pulls and push replies dominate).
    #[serde(default)]
    pub bytes_out: u64,
}

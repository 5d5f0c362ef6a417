//! The hub's counters and the `/stats` document. Counters are atomics shared
//! by the HTTP front end, the writer and the broadcaster; the repository
//! figures are read on a pool thread's own connection, in one read
//! transaction so they describe one committed state.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::repo::{RepoError, Repository};
use crate::wire::{HubCounters, HubStats};

/// Counters shared by the hub's threads.
#[derive(Debug, Default)]
pub struct Counters {
    /// HTTP requests received, any path.
    pub http_requests: AtomicU64,
    /// Sync requests (clone, pull, push) received.
    pub requests: AtomicU64,
    /// Sync requests that carried a `push` card.
    pub writes: AtomicU64,
    /// Write transactions committed (several pushes each when batching).
    pub batches: AtomicU64,
    /// Pushed check-ins that landed on trunk.
    pub pushes_accepted: AtomicU64,
    /// Pushed check-ins refused because their parent was not the tip.
    pub pushes_refused: AtomicU64,
    /// Pushed check-ins the writer wrote anew on a newer tip (hub landing).
    pub hub_rebases: AtomicU64,
    /// Hub landings that merged a file by lines (changed on trunk too).
    pub hub_merges: AtomicU64,
    /// Hub landings refused because lines both sides changed met.
    pub conflicts: AtomicU64,
    /// Tips published on NATS and acknowledged by the stream.
    pub broadcasts_published: AtomicU64,
    /// Tips not published because NATS was unavailable (a later tip, or a
    /// republish of the latest after reconnect, superseded them).
    pub broadcasts_dropped: AtomicU64,
    /// Pushes held in the push queue right now.
    pub pushes_waiting: AtomicU64,
    /// Pushes sent to the writer and not yet taken into a batch.
    pub backlog: AtomicU64,
    /// Pushes handled in write transactions, over all batches.
    pub batched_pushes: AtomicU64,
    /// Push-queue turns handed out.
    pub turns_granted: AtomicU64,
    /// Turns whose lease ran out before their holder pushed.
    pub turns_expired: AtomicU64,
    /// Bytes of HTTP response bodies the hub produced, every request and
    /// status (sync replies, `/stats`, `/counters`, refusals); heads are
    /// not counted.
    pub bytes_out: AtomicU64,
}

impl Counters {
    /// Adds `n` to one counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes `n` from a gauge.
    pub fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }

    /// The live figures `GET /counters` answers, read from the atomics
    /// alone.
    pub fn live(&self) -> HubCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HubCounters {
            requests: get(&self.requests),
            writes: get(&self.writes),
            batches: get(&self.batches),
            batched_pushes: get(&self.batched_pushes),
            pushes_accepted: get(&self.pushes_accepted),
            pushes_refused: get(&self.pushes_refused),
            hub_rebases: get(&self.hub_rebases),
            backlog: get(&self.backlog),
            pushes_waiting: get(&self.pushes_waiting),
            bytes_out: get(&self.bytes_out),
            rss_kb: crate::telemetry::current_rss_kb().unwrap_or(0),
        }
    }

    /// Copies the push queue's figures.
    pub(crate) fn set_queue(&self, queue: &super::queue::PushQueue) {
        let set = |c: &AtomicU64, v: u64| c.store(v, Ordering::Relaxed);
        set(&self.pushes_waiting, queue.len() as u64);
        set(&self.turns_granted, queue.granted);
        set(&self.turns_expired, queue.expired);
    }
}

/// The figures of a repository the `/stats` document and the readiness
/// line share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFigures {
    /// Trunk tip, empty when the repository holds no check-in.
    pub tip: String,
    /// The trunk tip's position ([`Repository::trunk_position`]): the
    /// check-ins after the root.
    pub trunk_commits: u64,
    /// Non-phantom artifacts.
    pub artifacts: u64,
    /// Trunk leaves.
    pub trunk_leaves: u64,
    /// Project code.
    pub project_code: String,
}

impl RepoFigures {
    /// Reads the figures from `repo`. Call inside a read transaction when
    /// the four queries must agree with each other.
    pub fn read(repo: &Repository) -> Result<RepoFigures, RepoError> {
        Ok(RepoFigures {
            tip: repo.trunk_tip()?.map(|h| h.to_string()).unwrap_or_default(),
            trunk_commits: repo.trunk_position()?,
            artifacts: repo.artifact_count()?,
            trunk_leaves: repo.trunk_leaves()?,
            project_code: repo.project_code()?,
        })
    }
}

impl HubStats {
    /// Combines repository figures and counters.
    pub fn new(figures: RepoFigures, counters: &Counters) -> HubStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HubStats {
            tip: figures.tip,
            trunk_commits: figures.trunk_commits,
            artifacts: figures.artifacts,
            trunk_leaves: figures.trunk_leaves,
            requests: get(&counters.requests),
            http_requests: get(&counters.http_requests),
            writes: get(&counters.writes),
            batches: get(&counters.batches),
            pushes_accepted: get(&counters.pushes_accepted),
            pushes_refused: get(&counters.pushes_refused),
            hub_rebases: get(&counters.hub_rebases),
            hub_merges: get(&counters.hub_merges),
            conflicts: get(&counters.conflicts),
            broadcasts_published: get(&counters.broadcasts_published),
            broadcasts_dropped: get(&counters.broadcasts_dropped),
            pushes_waiting: get(&counters.pushes_waiting),
            turns_granted: get(&counters.turns_granted),
            turns_expired: get(&counters.turns_expired),
            project_code: figures.project_code,
            peak_rss_kb: crate::telemetry::peak_rss_kb().unwrap_or(0),
            bytes_out: get(&counters.bytes_out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_repository_has_no_commits_and_one_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::scratch(dir.path());
        let figures = RepoFigures::read(&repo).unwrap();
        assert_eq!(figures.trunk_commits, 0);
        assert_eq!(figures.trunk_leaves, 1);
        assert_eq!(figures.tip.len(), 64);
        assert_eq!(figures.artifacts, 1);
        let counters = Counters::default();
        Counters::add(&counters.requests, 3);
        Counters::add(&counters.bytes_out, 700);
        let stats = HubStats::new(figures, &counters);
        let json = serde_json::to_value(&stats).unwrap();
        for name in [
            "tip",
            "trunk_commits",
            "artifacts",
            "trunk_leaves",
            "requests",
            "pushes_accepted",
            "pushes_refused",
            "bytes_out",
        ] {
            assert!(json.get(name).is_some(), "/stats lacks {name}");
        }
        assert_eq!(json["requests"], 3);
        assert_eq!(json["bytes_out"], 700);
        let live = serde_json::to_value(counters.live()).unwrap();
        assert_eq!(live["bytes_out"], 700);
    }
}

//! A leaf's counters, in one place: every count behind its summary line
//! ([`LeafSummary`]), whichever part of the leaf sees what it counts. The
//! task loop counts tasks, claims and errors (through the
//! [`Reporter`](super::Reporter)); the tip loop and the repository thread
//! count broadcasts, pulls and what catching up cost; the repository
//! thread its requests to the hub, or a git leaf its `git` processes. They
//! run on different threads, so every count is an atomic; the summary line
//! is made from them once, by [`LeafCounters::summary`].

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::wire::{ClaimOutcome, LeafSummary, TaskLine, TaskOutcome};

/// Every count a leaf keeps over its run.
#[derive(Debug, Default)]
pub struct LeafCounters {
    /// Tasks attempted.
    pub tasks: AtomicU32,
    /// Tasks whose check-in landed on trunk.
    pub committed: AtomicU32,
    /// Claims won.
    pub claims_won: AtomicU32,
    /// Claims lost.
    pub claims_lost: AtomicU32,
    /// Pushes refused because trunk moved.
    pub fork_retries: AtomicU32,
    /// Rebases that found a conflict.
    pub fork_unrecoverable: AtomicU32,
    /// Tasks that ended failed or abandoned: the run is incomplete (not
    /// on the summary line; it decides the exit code).
    pub incomplete: AtomicU32,
    /// Non-fatal errors.
    pub errors: AtomicU32,
    /// Think time slept, in milliseconds.
    pub think_ms: AtomicU64,
    /// Broadcasts that brought a tip (bundle applied or pulled).
    pub broadcasts_pulled: AtomicU64,
    /// Broadcasts that needed nothing: already held, or superseded by a
    /// newer one before they were used.
    pub broadcasts_skipped: AtomicU64,
    /// Pulls a stream catch-up still needed (a gap in the stream; logged,
    /// not on the summary line).
    pub gap_pulls: AtomicU64,
    /// Reply bytes of the pulls that caught up (full leaves).
    pub bytes_pulled: AtomicU64,
    /// Worktree files written or removed by updates (full leaves).
    pub files_updated: AtomicU64,
    /// Trunk check-ins caught up over (pulled or applied from the stream).
    pub checkins_applied: AtomicU64,
    /// Repository-thread CPU microseconds spent catching up and updating
    /// the worktree.
    pub apply_us: AtomicU64,
    /// Requests the repository thread sent to the hub, as of its last
    /// answer.
    pub hub_requests: AtomicU64,
    /// `git` processes run (`--hub-kind git`).
    pub git_processes: AtomicU64,
    /// NATS requests of the task loop.
    pub nats_ops: AtomicU64,
    /// CPU microseconds start-up took, read when the leaf is ready.
    pub start_cpu_us: AtomicU64,
    /// The leaf's own memory at the end of its work, in KiB.
    pub private_kb: AtomicU64,
}

impl LeafCounters {
    /// Counts a task as its line says it ended.
    pub fn task(&self, task: &TaskLine) {
        let one = |n: &AtomicU32| n.fetch_add(1, Ordering::Relaxed);
        one(&self.tasks);
        self.fork_retries
            .fetch_add(task.fork_retries, Ordering::Relaxed);
        one(match task.outcome {
            TaskOutcome::Committed => &self.committed,
            TaskOutcome::ClaimLost => &self.claims_lost,
            TaskOutcome::Unrecoverable => &self.fork_unrecoverable,
            TaskOutcome::Failed | TaskOutcome::Abandoned => &self.incomplete,
        });
        if task.claim == ClaimOutcome::Won {
            one(&self.claims_won);
        }
    }

    /// The summary line of slot `slot` as the counts stand, with the
    /// process's CPU and peak memory as of now.
    pub fn summary(&self, slot: u32) -> LeafSummary {
        let u32_of = |n: &AtomicU32| n.load(Ordering::Relaxed);
        let u64_of = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let clamped = |n: &AtomicU64| u32::try_from(u64_of(n)).unwrap_or(u32::MAX);
        LeafSummary {
            slot,
            tasks: u32_of(&self.tasks),
            committed: u32_of(&self.committed),
            claims_won: u32_of(&self.claims_won),
            claims_lost: u32_of(&self.claims_lost),
            fork_retries: u32_of(&self.fork_retries),
            fork_unrecoverable: u32_of(&self.fork_unrecoverable),
            broadcasts_pulled: clamped(&self.broadcasts_pulled),
            broadcasts_skipped: clamped(&self.broadcasts_skipped),
            hub_requests: u64_of(&self.hub_requests),
            nats_ops: u64_of(&self.nats_ops),
            git_processes: u64_of(&self.git_processes),
            errors: u32_of(&self.errors),
            think_ms: u64_of(&self.think_ms),
            peak_rss_kb: crate::telemetry::peak_rss_kb().unwrap_or(0),
            bytes_pulled: u64_of(&self.bytes_pulled),
            files_updated: u64_of(&self.files_updated),
            checkins_applied: u64_of(&self.checkins_applied),
            apply_us: u64_of(&self.apply_us),
            start_cpu_us: u64_of(&self.start_cpu_us),
            cpu_us: crate::telemetry::own_cpu_ms().map_or(0, |ms| (ms * 1000.0) as u64),
            private_kb: u64_of(&self.private_kb),
        }
    }
}

//! The newest broadcast tip not yet acted on, and the counts of what the
//! broadcasts brought.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::coord::{Tip, TraceHeaders};

/// The newest broadcast tip not yet acted on, shared by the tip loop (which
/// only records it) and the repository thread (which catches up on it right
/// before it commits or pushes). Lazy on purpose: catching up on every
/// broadcast as it arrives costs every leaf a store and a crosslink per
/// check-in anyone makes, N times the hub's own work, while a leaf needs
/// only the tip it builds on.
#[derive(Default)]
pub(in crate::leaf) struct PendingTip {
    newest: Mutex<Option<(Tip, TraceHeaders)>>,
    /// Broadcasts that brought a tip (bundle applied or pulled).
    pub(in crate::leaf) pulled: AtomicU64,
    /// Broadcasts that needed nothing: already held, or superseded by a
    /// newer one before they were used.
    pub(in crate::leaf) skipped: AtomicU64,
    /// Reply bytes of the pulls that caught up (full leaves).
    pub(in crate::leaf) bytes_pulled: AtomicU64,
    /// Worktree files written or removed by updates (full leaves).
    pub(in crate::leaf) files_updated: AtomicU64,
}

impl PendingTip {
    /// Records broadcast tips (oldest first); older pending ones count as
    /// skipped.
    pub(in crate::leaf) fn note(&self, tips: impl IntoIterator<Item = (Tip, TraceHeaders)>) {
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        for (tip, trace) in tips {
            let superseded = match &*newest {
                Some((held, _)) if held.seq >= tip.seq => {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Some(_) => 1,
                None => 0,
            };
            self.skipped.fetch_add(superseded, Ordering::Relaxed);
            *newest = Some((tip, trace));
        }
    }

    pub(in crate::leaf) fn take(&self) -> Option<(Tip, TraceHeaders)> {
        self.newest.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// (pulled, skipped) so far, counting a tip still pending as skipped.
    pub(in crate::leaf) fn counts(&self) -> (u64, u64) {
        let pending = u64::from(self.newest.lock().is_ok_and(|n| n.is_some()));
        (
            self.pulled.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed) + pending,
        )
    }
}

//! The newest broadcast tip not yet acted on, and the batches a full leaf
//! catching up from the stream has yet to apply (what the broadcasts
//! brought is counted in the leaf's counters).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::coord::Tip;
use crate::leaf::LeafCounters;
use crate::telemetry::W3c;

/// The newest broadcast tip not yet acted on, shared by the tip loop (which
/// only records it) and the repository thread (which catches up on it right
/// before it commits or pushes). Lazy on purpose: catching up on every
/// broadcast as it arrives costs every leaf a store and a crosslink per
/// check-in anyone makes, N times the hub's own work, while a leaf needs
/// only the tip it builds on.
///
/// A full leaf that catches up from the stream (`--catch-up stream`) also
/// keeps every broadcast whose bundle carries the batch's files, in stream
/// order, until the repository thread applies them before its next task;
/// one without them (a hub not run with `--broadcast-files`) is noted, and
/// the leaf pulls instead.
pub(in crate::leaf) struct PendingTip {
    newest: Mutex<Option<(Tip, W3c)>>,
    /// Whether broadcasts' bundles are kept for [`PendingTip::take_bundles`],
    /// and up to how many bytes.
    keep_bundles: Option<usize>,
    bundles: Mutex<Buffered>,
    /// A broadcast came without the batch's files (a hub not run with
    /// `--broadcast-files`): the stream cannot bring what it announced.
    bare: std::sync::atomic::AtomicBool,
    /// The leaf's counters: broadcasts superseded here count as skipped.
    counters: Arc<LeafCounters>,
}

/// Bundled broadcasts not yet applied, oldest first, and their bytes.
#[derive(Default)]
struct Buffered {
    tips: VecDeque<Tip>,
    bytes: usize,
}

impl PendingTip {
    /// A record that keeps bundles, up to `keep_bundles` bytes, when set
    /// (stream catch-up); past it the oldest are dropped, and the gap they
    /// leave costs one pull. What it skips is counted in `counters`.
    pub(in crate::leaf) fn new(
        keep_bundles: Option<usize>,
        counters: Arc<LeafCounters>,
    ) -> PendingTip {
        PendingTip {
            newest: Mutex::default(),
            keep_bundles,
            bundles: Mutex::default(),
            bare: Default::default(),
            counters,
        }
    }

    /// The bundled broadcasts received since the last call, oldest first.
    pub(in crate::leaf) fn take_bundles(&self) -> Vec<Tip> {
        let mut buffered = self.bundles.lock().unwrap_or_else(|e| e.into_inner());
        buffered.bytes = 0;
        buffered.tips.drain(..).collect()
    }

    /// Whether a broadcast without files came since the last call.
    pub(in crate::leaf) fn take_bare(&self) -> bool {
        self.bare.swap(false, Ordering::Relaxed)
    }

    /// Puts back `tips` (the parts of a batch not all here yet) ahead of
    /// anything received since they were taken.
    pub(in crate::leaf) fn put_back(&self, tips: Vec<Tip>) {
        let mut buffered = self.bundles.lock().unwrap_or_else(|e| e.into_inner());
        for tip in tips.into_iter().rev() {
            buffered.bytes += tip.bundle.len();
            buffered.tips.push_front(tip);
        }
    }

    fn buffer(&self, tip: &Tip) {
        let Some(limit) = self.keep_bundles else {
            return;
        };
        if !tip.files {
            self.bare.store(true, Ordering::Relaxed);
            return;
        }
        let mut buffered = self.bundles.lock().unwrap_or_else(|e| e.into_inner());
        buffered.bytes += tip.bundle.len();
        buffered.tips.push_back(tip.clone());
        while buffered.bytes > limit {
            let Some(dropped) = buffered.tips.pop_front() else {
                break;
            };
            buffered.bytes -= dropped.bundle.len();
        }
    }

    /// Records broadcast tips (oldest first); older pending ones count as
    /// skipped.
    pub(in crate::leaf) fn note(&self, tips: impl IntoIterator<Item = (Tip, W3c)>) {
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        for (tip, trace) in tips {
            self.buffer(&tip);
            if !tip.is_last_part() {
                // A batch counts once, as its last part.
                continue;
            }
            let skipped = &self.counters.broadcasts_skipped;
            let superseded = match &*newest {
                Some((held, _)) if held.seq >= tip.seq => {
                    skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Some(_) => 1,
                None => 0,
            };
            skipped.fetch_add(superseded, Ordering::Relaxed);
            *newest = Some((tip, trace));
        }
    }

    pub(in crate::leaf) fn take(&self) -> Option<(Tip, W3c)> {
        self.newest.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// At the run's end: a tip still pending was never used, so it counts
    /// as skipped.
    pub(in crate::leaf) fn skip_pending(&self) {
        if self.take().is_some() {
            let skipped = &self.counters.broadcasts_skipped;
            skipped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

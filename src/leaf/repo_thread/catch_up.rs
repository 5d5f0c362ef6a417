//! Catching up with the hub: the newest broadcast tip (its bundle, or one
//! pull), pulls, and what the thread knows of the hub's tip.

use std::sync::atomic::Ordering;

use crate::coord::Tip;
use crate::repo::ArtifactHash;
use crate::telemetry::W3c;

use super::super::error::LeafError;
use super::connect::set_trace;
use super::{retry_until, CatchUp, SyncState};

impl SyncState {
    /// Catches up on the newest broadcast tip, if one came since the last
    /// look, so that a check-in or push goes out on the newest parent this
    /// leaf has heard of. Its span links to the push that caused it.
    pub(super) fn absorb_tips(&mut self) {
        let Some((tip, trace)) = self.tips.take() else {
            return;
        };
        let span = tracing::info_span!(
            "coord.SyncOnBroadcast",
            "manifest.hash" = %tip.hash,
            "pull.success" = tracing::field::Empty,
            "pull.skipped_idempotent" = tracing::field::Empty,
        );
        self.config.trace.adopt(&span);
        trace.link_from(&span);
        set_trace(&self.client, &W3c::of(&span));
        let result = span.in_scope(|| self.catch_up(&tip));
        span.record("pull.success", result.is_ok());
        span.record(
            "pull.skipped_idempotent",
            matches!(result, Ok(CatchUp::AlreadyHeld)),
        );
        let counters = &self.config.counters;
        let counter = match &result {
            Ok(CatchUp::AlreadyHeld) => &counters.broadcasts_skipped,
            Ok(CatchUp::Applied | CatchUp::Pulled) => &counters.broadcasts_pulled,
            Err(e) => {
                tracing::warn!(error = %crate::chain::chain(e), tip = %tip.hash, "cannot catch up on a broadcast tip");
                &counters.broadcasts_skipped
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the hub's tip and, when known, its trunk position.
    pub(super) fn saw_tip(&mut self, tip: ArtifactHash, seq: Option<u64>) {
        self.hub_tip = tip;
        if let Some(seq) = seq {
            self.hub_seq = seq;
            self.heard_seq = self.heard_seq.max(seq);
        }
    }

    /// Handles one broadcast.
    fn catch_up(&mut self, tip: &Tip) -> Result<CatchUp, LeafError> {
        // A tip no newer than one already seen (the sparse fast path skips
        // the check-ins in between, so they are not held): nothing to do.
        if tip.seq <= self.hub_seq {
            return Ok(CatchUp::AlreadyHeld);
        }
        if let Ok(hash) = ArtifactHash::parse(&tip.hash) {
            if self.holds(&hash)? {
                return Ok(CatchUp::AlreadyHeld);
            }
        }
        // The bundle is the tip's manifest: enough whenever its baseline is
        // held (a sparse leaf skips the check-ins in between).
        if let (false, Ok(hash), Some(Ok(parent))) = (
            tip.bundle.is_empty(),
            ArtifactHash::parse(&tip.hash),
            tip.parent.as_deref().map(ArtifactHash::parse),
        ) {
            match self
                .client
                .apply_bundle(&self.repo, &tip.bundle, &hash, &parent)
            {
                Ok(_) => {
                    self.saw_tip(hash, Some(tip.seq));
                    return Ok(CatchUp::Applied);
                }
                Err(e) => tracing::debug!(error = %e, "tip bundle not applied; pulling"),
            }
        }
        self.pull()?;
        Ok(CatchUp::Pulled)
    }

    pub(in crate::leaf) fn pull(&mut self) -> Result<(), LeafError> {
        let url = &self.config.hub_url;
        let outcome = retry_until(self.config.hub_retry, || self.client.pull(&self.repo)).map_err(
            |gave_up| {
                gave_up.into_leaf_error(url, "pull".into(), |source| LeafError::Pull {
                    url: url.clone(),
                    source,
                })
            },
        )?;
        match outcome.tip {
            Some((tip, seq)) => self.saw_tip(tip, Some(seq)),
            None => {
                if let Some(tip) = self
                    .repo
                    .trunk_tip()
                    .map_err(self.repo_err("find the trunk tip"))?
                {
                    self.saw_tip(tip, None);
                }
            }
        }
        Ok(())
    }

    pub(super) fn holds(&self, hash: &ArtifactHash) -> Result<bool, LeafError> {
        Ok(self
            .repo
            .rid_of(hash)
            .map_err(self.repo_err("look up an artifact"))?
            .is_some_and(|(_, phantom)| !phantom))
    }
}

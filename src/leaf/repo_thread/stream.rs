//! Catching up from the stream (`--catch-up stream`): the hub publishes
//! each landed batch once, its artifacts in the bundle, and NATS hands it
//! to every full leaf; the tip loop buffers the bundles ([`PendingTip`]),
//! and before each task the repository thread applies every buffered batch
//! that continues the trunk it holds, all in one transaction, with no
//! request to the hub.
//!
//! A batch continues the trunk when its parent (the tip before the batch)
//! is held here. That is enough: a full leaf only ever holds whole trunk
//! lines (it stores a check-in the hub landed for it only when it holds
//! the parent), so holding the parent means holding everything before it.
//! A batch whose parent is missing is a gap (the stream dropped it, or the
//! leaf subscribed after it went by): one pull brings the hub's trunk, and
//! the batches after it apply as before.
//!
//! [`PendingTip`]: super::PendingTip

use crate::coord::Tip;
use crate::repo::ArtifactHash;

use super::super::error::LeafError;
use super::SyncState;

/// What applying the buffered batches found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(in crate::leaf) struct StreamApplied {
    /// Batches applied.
    pub batches: usize,
    /// A batch did not continue the trunk held here: a pull is needed.
    pub gap: bool,
}

/// One batch's parts, in order, once all have arrived.
struct Batch {
    parts: Vec<Tip>,
}

impl Batch {
    fn tip(&self) -> &Tip {
        &self.parts[0]
    }
}

/// Splits buffered messages into whole batches, oldest first; the parts of
/// a batch still arriving (the last, incomplete one) are returned apart to
/// be kept for the next look. A malformed run of parts is dropped (it can
/// only be a gap, which the next batch reveals).
fn whole_batches(tips: Vec<Tip>) -> (Vec<Batch>, Vec<Tip>) {
    let mut batches = Vec::new();
    let mut current: Vec<Tip> = Vec::new();
    for tip in tips {
        if let Some(first) = current.first() {
            let continues = first.hash == tip.hash && tip.part as usize == current.len();
            if !continues {
                current.clear();
            }
        }
        if current.is_empty() && tip.part != 0 {
            continue; // the start of this batch was lost
        }
        let last = tip.is_last_part();
        current.push(tip);
        if last {
            batches.push(Batch {
                parts: std::mem::take(&mut current),
            });
        }
    }
    (batches, current)
}

impl SyncState {
    /// Applies every buffered batch that continues the trunk held here, in
    /// one transaction, and moves the hub tip to the newest of them.
    pub(in crate::leaf) fn apply_stream(&mut self) -> Result<StreamApplied, LeafError> {
        let (batches, unfinished) = whole_batches(self.tips.take_bundles());
        if !unfinished.is_empty() {
            self.tips.put_back(unfinished);
        }
        let mut run: Vec<&Batch> = Vec::new();
        let mut applied = StreamApplied::default();
        let mut parent = None;
        for batch in &batches {
            let tip = batch.tip();
            let newest_seq = run.last().map_or(self.hub_seq, |b| b.tip().seq);
            if tip.seq <= newest_seq {
                continue; // held already
            }
            let Some(from) = tip
                .parent
                .as_deref()
                .and_then(|p| ArtifactHash::parse(p).ok())
            else {
                applied.gap = true;
                break;
            };
            let continues = match run.last() {
                Some(previous) => from.as_str() == previous.tip().hash,
                None => self.holds(&from)?,
            };
            if !continues {
                applied.gap = true;
                break;
            }
            if run.is_empty() {
                parent = Some(from); // where the run starts
            }
            run.push(batch);
        }
        let (Some(parent), Some(newest)) = (parent, run.last()) else {
            return Ok(applied);
        };
        let tip = newest.tip();
        let hash = ArtifactHash::parse(&tip.hash).map_err(|_| LeafError::Repo {
            step: "read a batch broadcast",
            path: self.config.repo_path.clone(),
            source: Box::new(crate::repo::RepoError::MissingArtifact {
                hash: tip.hash.clone(),
            }),
        })?;
        let bundles: Vec<&[u8]> = run
            .iter()
            .flat_map(|b| b.parts.iter().map(|p| &p.bundle[..]))
            .collect();
        match self
            .client
            .apply_bundles(&self.repo, &bundles, &hash, &parent)
        {
            Ok(_) => {
                applied.batches = run.len();
                self.saw_tip(hash, Some(tip.seq));
            }
            Err(e) => {
                tracing::warn!(error = %crate::chain::chain(&e), tip = %tip.hash, "cannot apply the stream's batches; pulling");
                applied.gap = true;
            }
        }
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(hash: &str, seq: u64, part: u32, parts: u32) -> Tip {
        Tip {
            hash: hash.into(),
            seq,
            part,
            parts,
            bundle: bytes::Bytes::from_static(b"x"),
            ..Tip::default()
        }
    }

    #[test]
    fn batches_are_whole_or_kept_for_later() {
        let (batches, rest) = whole_batches(vec![
            part("a", 1, 0, 1),
            part("b", 3, 0, 2),
            part("b", 3, 1, 2),
            part("c", 4, 0, 3),
            part("c", 4, 1, 3),
        ]);
        let tips: Vec<_> = batches.iter().map(|b| b.tip().hash.as_str()).collect();
        assert_eq!(tips, ["a", "b"]);
        assert_eq!(batches[1].parts.len(), 2);
        assert_eq!(
            rest.len(),
            2,
            "the unfinished batch waits for its last part"
        );
    }

    #[test]
    fn a_batch_missing_a_part_is_dropped() {
        let (batches, rest) = whole_batches(vec![
            part("b", 3, 1, 2), // its first part was lost
            part("c", 4, 0, 2),
            part("d", 5, 0, 1), // c's second part never came
            part("e", 6, 0, 1),
        ]);
        let tips: Vec<_> = batches.iter().map(|b| b.tip().hash.as_str()).collect();
        assert_eq!(tips, ["d", "e"]);
        assert!(rest.is_empty());
    }
}

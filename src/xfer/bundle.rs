//! Tip bundles: the artifacts of one write transaction's trunk advances,
//! packed to ride with its NATS broadcast (one per transaction) so that a
//! leaf at the tip before it catches up without an HTTP request. A bundle
//! is a plain (uncompressed) card stream, oldest check-in first: with
//! [`Artifacts::Manifests`] the check-ins' manifests as `file` cards (what
//! leaf landing needs), with [`Artifacts::All`] their new files too, in the
//! hub's stored form (`cfile`, zlib), for full leaves that catch up from
//! the stream (`hub --broadcast-files`).
//!
//! A bundle larger than one NATS message is split into parts at card
//! boundaries, each part a whole card stream; the receiver applies a batch
//! once it holds every part.
//!
//! The hub builds it ([`build`]); the leaf applies it with
//! [`Client::apply_bundle`](super::Client::apply_bundle) when it can, and
//! pulls otherwise.

use super::fastpath::{checkin_cards, Artifacts};
use super::server::ServerError;
use crate::repo::{ArtifactHash, Repository};

/// A manifests-only bundle larger than this is not sent; leaves pull
/// instead. Well under NATS's default 1 MiB message limit.
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;

/// A bundle with files larger than this, all parts together, is not sent
/// (the batch is broadcast without it and full leaves pull): a bound on
/// what one batch may add to the stream and to every leaf's buffer.
pub const MAX_FILES_BUNDLE_BYTES: usize = 64 * 1024 * 1024;

/// The bundle for consecutive trunk check-ins `checkins` (oldest first:
/// the advances of one write transaction), as parts of at most `max_part`
/// bytes each; empty when it would exceed its bound
/// ([`MAX_BUNDLE_BYTES`] for manifests, [`MAX_FILES_BUNDLE_BYTES`] with
/// files) or a single artifact exceeds `max_part`.
pub fn build(
    repo: &Repository,
    checkins: &[ArtifactHash],
    artifacts: Artifacts,
    max_part: usize,
) -> Result<Vec<Vec<u8>>, ServerError> {
    let cards = checkin_cards(repo, checkins, artifacts)?;
    let (limit, max_part) = match artifacts {
        Artifacts::All => (MAX_FILES_BUNDLE_BYTES, max_part),
        Artifacts::Manifests | Artifacts::Tip => (MAX_BUNDLE_BYTES, max_part.min(MAX_BUNDLE_BYTES)),
    };
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut total = 0;
    let mut card_bytes = Vec::new();
    for card in &cards {
        card_bytes.clear();
        card.write_to(&mut card_bytes);
        total += card_bytes.len();
        if card_bytes.len() > max_part || total > limit {
            return Ok(Vec::new());
        }
        match parts.last_mut() {
            Some(part) if part.len() + card_bytes.len() <= max_part => {
                part.extend_from_slice(&card_bytes)
            }
            _ => parts.push(card_bytes.clone()),
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xfer::card::parse;
    use crate::xfer::Client;

    /// `n` lowercase letters from a small LCG seeded with `seed`.
    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                b'a' + ((x >> 33) % 26) as u8
            })
            .collect()
    }

    fn commit(repo: &Repository, parent: &ArtifactHash, k: usize) -> ArtifactHash {
        // Distinct, poorly compressible text: about 2 KiB stored a file.
        let changes = (0..3)
            .map(|j| {
                (
                    format!("task-{k}/file-{j}.txt"),
                    Some(noise(3000, (k * 3 + j) as u64)),
                )
            })
            .collect();
        repo.scratch_commit(parent, changes)
    }

    /// A batch larger than one message goes as parts of whole cards; a
    /// leaf that holds the batch's parent applies all parts as one, and a
    /// part alone changes nothing.
    #[test]
    fn a_batch_larger_than_a_message_is_split_and_applied_whole() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Repository::scratch(dir.path());
        let parent = hub.trunk_tip().unwrap().unwrap();
        let leaf_path = dir.path().join("leaf.fossil");
        hub.conn
            .execute("VACUUM INTO ?1", [leaf_path.to_str().unwrap()])
            .unwrap();
        let mut tip = parent.clone();
        let mut batch = Vec::new();
        for k in 0..4 {
            tip = commit(&hub, &tip, k);
            batch.push(tip.clone());
        }
        let max_part = 8 * 1024;
        let parts = build(&hub, &batch, Artifacts::All, max_part).unwrap();
        assert!(parts.len() >= 3, "{} parts", parts.len());
        for part in &parts {
            assert!(part.len() <= max_part);
            assert!(!parse(part).unwrap().is_empty(), "each part is whole cards");
        }
        let leaf = Repository::open(&leaf_path).unwrap();
        let client = Client::new("http://127.0.0.1:1");
        let first: Vec<&[u8]> = vec![&parts[0]];
        assert!(client.apply_bundles(&leaf, &first, &tip, &parent).is_err());
        assert!(leaf.rid_of(&batch[0]).unwrap().is_none(), "nothing kept");
        let all: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        client.apply_bundles(&leaf, &all, &tip, &parent).unwrap();
        assert!(leaf.is_checkin(&tip).unwrap());
        assert_eq!(leaf.trunk_tip().unwrap(), Some(tip));

        // A card that cannot fit one message: no bundle (leaves pull).
        assert!(build(&hub, &batch, Artifacts::All, 1024)
            .unwrap()
            .is_empty());
        // Manifests only stay within their own bound, in one part here.
        assert_eq!(
            build(&hub, &batch, Artifacts::Manifests, 1 << 20)
                .unwrap()
                .len(),
            1
        );
    }
}

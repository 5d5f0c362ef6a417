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
        Artifacts::Manifests | Artifacts::Tip => {
            (MAX_BUNDLE_BYTES, max_part.min(MAX_BUNDLE_BYTES))
        }
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

//! Tip bundles: the artifacts of one write transaction's trunk advances,
//! packed to ride with its NATS broadcast (one per transaction) so that a
//! leaf at the tip before it catches up without an HTTP request. A bundle
//! is a plain (uncompressed) card stream holding the check-ins' manifests
//! as `file` cards, oldest first. Leaves, the only readers, keep manifests
//! and no other slot's files.
//!
//! The hub builds it ([`build`]); the leaf applies it with
//! [`Client::apply_bundle`](super::Client::apply_bundle) when it can, and
//! pulls otherwise.

use super::card::encode;
use super::fastpath::{checkin_cards, Artifacts};
use super::server::ServerError;
use crate::repo::{ArtifactHash, Repository};

/// Bundles larger than this are not sent; leaves pull instead. Well under
/// NATS's default 1 MiB message limit.
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;

/// The bundle for consecutive trunk check-ins `checkins` (oldest first:
/// the advances of one write transaction), or `None` when it would exceed
/// [`MAX_BUNDLE_BYTES`].
pub fn build(repo: &Repository, checkins: &[ArtifactHash]) -> Result<Option<Vec<u8>>, ServerError> {
    let cards = checkin_cards(repo, checkins, Artifacts::Manifests)?;
    let bytes = encode(&cards);
    Ok((bytes.len() <= MAX_BUNDLE_BYTES).then_some(bytes))
}

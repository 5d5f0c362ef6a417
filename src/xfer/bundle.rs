//! Tip bundles: the artifacts of one trunk advance, packed to ride with its
//! NATS broadcast so that a leaf one check-in behind catches up without an
//! HTTP request. A bundle is a plain (uncompressed) card stream holding the
//! check-in's manifest as a `file` card: what a sparse fast pull (see
//! `fastpath`) would send for that one check-in. Leaves, the only readers,
//! keep manifests and no other slot's files.
//!
//! The hub builds it ([`build`]); the leaf applies it with
//! [`Client::apply_bundle`](super::Client::apply_bundle) only when the
//! advance's parent is its own tip, and pulls otherwise.

use super::card::encode;
use super::fastpath::{checkin_cards, Artifacts};
use super::server::ServerError;
use crate::repo::{ArtifactHash, Repository};

/// Bundles larger than this are not sent; leaves pull instead. Well under
/// NATS's default 1 MiB message limit.
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;

/// The bundle for trunk check-in `checkin`, or `None` when it would exceed
/// [`MAX_BUNDLE_BYTES`].
pub fn build(repo: &Repository, checkin: &ArtifactHash) -> Result<Option<Vec<u8>>, ServerError> {
    let cards = checkin_cards(repo, std::slice::from_ref(checkin), Artifacts::Manifests)?;
    let bytes = encode(&cards);
    Ok((bytes.len() <= MAX_BUNDLE_BYTES).then_some(bytes))
}

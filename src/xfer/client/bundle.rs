//! Applying tip bundles (see `xfer::bundle`) without a request.

use super::error::ClientError;
use super::http::Client;
use crate::repo::{ArtifactHash, Repository};
use crate::xfer::card::parse_with;

impl Client {
    /// Stores and crosslinks the artifacts of `bundle`, which announces
    /// trunk tip `tip` on top of `parent`: [`Client::apply_bundles`] with
    /// one bundle.
    pub fn apply_bundle(
        &self,
        repo: &Repository,
        bundle: &[u8],
        tip: &ArtifactHash,
        parent: &ArtifactHash,
    ) -> Result<usize, ClientError> {
        self.apply_bundles(repo, &[bundle], tip, parent)
    }

    /// Stores and crosslinks the artifacts of `bundles` (consecutive
    /// batches, or the parts of one, oldest first), which together take
    /// trunk from `parent` to `tip`, in one transaction. `parent` must be
    /// held here (else nothing is stored: the bundles would leave a gap)
    /// unless this client is sparse (gaps are its normal state), and
    /// afterwards `tip` must be a crosslinked check-in (its baseline held),
    /// or this is an error and nothing is kept. Returns how many artifacts
    /// were new.
    pub fn apply_bundles(
        &self,
        repo: &Repository,
        bundles: &[&[u8]],
        tip: &ArtifactHash,
        parent: &ArtifactHash,
    ) -> Result<usize, ClientError> {
        let held = |r: &Repository, h: &ArtifactHash| {
            r.rid_of(h)
                .map(|found| found.is_some_and(|(_, phantom)| !phantom))
                .map_err(self.repo_err())
        };
        if !self.sparse && !held(repo, parent)? {
            return Err(self.protocol(format!(
                "tip bundle for {tip} needs its parent {parent}, which is not here"
            )));
        }
        let mut cards = Vec::new();
        for bundle in bundles {
            cards.extend(parse_with(bundle, &self.limits).map_err(|source| {
                ClientError::Codec {
                    url: self.url.clone(),
                    source,
                }
            })?);
        }
        let stored = self.in_transaction(repo, |r| {
            let stored = self.store_received(r, cards, None)?;
            if !held(r, tip)? || !r.is_checkin(tip).map_err(self.repo_err())? {
                return Err(
                    self.protocol(format!("tip bundle for {tip} did not bring that check-in"))
                );
            }
            Ok(stored)
        })?;
        self.set_known_tip(Some(tip.clone()));
        Ok(stored)
    }
}

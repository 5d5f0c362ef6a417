//! Applying a tip bundle (see `xfer::bundle`) without a request.

use super::error::ClientError;
use super::http::Client;
use crate::repo::{ArtifactHash, Repository};
use crate::xfer::card::parse_with;

impl Client {
    /// Stores and crosslinks the artifacts of `bundle`, which announces
    /// trunk tip `tip`, in one transaction. The caller applies a bundle only
    /// when the advance's parent is its own trunk tip; afterwards the local
    /// tip must be `tip`, or this is an error (and nothing is kept).
    pub fn apply_bundle(
        &self,
        repo: &Repository,
        bundle: &[u8],
        tip: &ArtifactHash,
    ) -> Result<usize, ClientError> {
        let cards = parse_with(bundle, &self.limits).map_err(|source| ClientError::Codec {
            url: self.url.clone(),
            source,
        })?;
        let stored = self.in_transaction(repo, |r| {
            let stored = self.store_received(r, cards, None)?;
            let now = r.trunk_tip().map_err(self.repo_err())?;
            if now.as_ref() != Some(tip) {
                return Err(self.protocol(format!(
                    "tip bundle for {tip} left the local trunk at {}",
                    now.map_or("nothing".to_string(), |t| t.to_string())
                )));
            }
            Ok(stored)
        })?;
        self.set_known_tip(Some(tip.clone()));
        Ok(stored)
    }
}

//! Parsed manifests and full file lists by row, with small caches: check-ins
//! on a trunk share one baseline for many commits, and the next check-in is
//! usually made on the one just stored, so neither is read back and parsed.

use std::sync::Arc;

use crate::repo::error::{ManifestError, RepoError};
use crate::repo::hash::{ArtifactHash, Rid};
use crate::repo::manifest::Manifest;
use crate::repo::store::{FileList, Repository};

/// Parsed baseline lists kept in memory.
const BASELINES_CACHED: usize = 4;
/// Parsed manifests kept by row (the tip, its baseline, a leaf's own).
const MANIFESTS_CACHED: usize = 4;
/// Manifests naming more files than this are not kept parsed.
pub(super) const MANIFEST_CACHE_MAX_FILES: usize = 512;

impl Repository {
    /// The full file list of the check-in in row `rid`; the last few
    /// baselines are cached (a leaf reads through its own and the hub's).
    pub(crate) fn list_of_rid(&self, rid: Rid) -> Result<Arc<FileList>, RepoError> {
        if let Some((_, list)) = self.baseline_cache.borrow().iter().find(|(r, _)| *r == rid) {
            return Ok(Arc::clone(list));
        }
        let hash = self.row_hash(rid)?;
        let m = self.manifest_of_rid(rid, &hash)?;
        self.list_of_parsed(rid, &hash, &m)
    }

    /// The file list of baseline row `rid` if it is among the cached ones
    /// (`None` for a delta manifest or a baseline not cached).
    pub(crate) fn cached_baseline(&self, rid: Rid) -> Option<Arc<FileList>> {
        let cache = self.baseline_cache.borrow();
        cache
            .iter()
            .find(|(r, _)| *r == rid)
            .map(|(_, l)| Arc::clone(l))
    }

    /// [`list_of_rid`](Self::list_of_rid) for a caller holding the parsed
    /// manifest `m` of row `rid` (named `hash`): no read, no parse.
    pub(crate) fn list_of_parsed(
        &self,
        rid: Rid,
        hash: &ArtifactHash,
        m: &Manifest,
    ) -> Result<Arc<FileList>, RepoError> {
        if let Some((_, list)) = self.baseline_cache.borrow().iter().find(|(r, _)| *r == rid) {
            return Ok(Arc::clone(list));
        }
        let list = Arc::new(self.full_list(hash, m)?);
        if m.baseline.is_none() {
            let mut cache = self.baseline_cache.borrow_mut();
            if cache.len() >= BASELINES_CACHED {
                cache.remove(0);
            }
            cache.push((rid, Arc::clone(&list)));
        }
        Ok(list)
    }

    /// The parsed manifest in row `rid` (named `hash`), from the cache of
    /// recent ones when there.
    pub(crate) fn manifest_of_rid(
        &self,
        rid: Rid,
        hash: &ArtifactHash,
    ) -> Result<Arc<Manifest>, RepoError> {
        if let Some((_, m)) = self.manifest_cache.borrow().iter().find(|(r, _)| *r == rid) {
            return Ok(Arc::clone(m));
        }
        let bytes = self.content_of(rid)?;
        let m = Arc::new(
            Manifest::parse(&bytes).map_err(|source| RepoError::BadManifest {
                hash: hash.clone(),
                source,
            })?,
        );
        self.remember_manifest(rid, Arc::clone(&m));
        Ok(m)
    }

    /// Keeps `m`, the parsed content of row `rid`, among the recent
    /// manifests (for a caller that stored and parsed it just now).
    pub(crate) fn remember_manifest(&self, rid: Rid, m: Arc<Manifest>) {
        let mut cache = self.manifest_cache.borrow_mut();
        // A large baseline is kept as its file list (`list_of_rid`), not
        // twice: a leaf's memory would grow with the tree.
        if m.files.len() > MANIFEST_CACHE_MAX_FILES || cache.iter().any(|(r, _)| *r == rid) {
            return;
        }
        if cache.len() >= MANIFESTS_CACHED {
            cache.remove(0);
        }
        cache.push((rid, m));
    }

    /// Expands `m` (named `hash`) through its baseline into a full file list.
    pub(crate) fn full_list(
        &self,
        hash: &ArtifactHash,
        m: &Manifest,
    ) -> Result<FileList, RepoError> {
        let mut list = match &m.baseline {
            None => FileList::new(),
            Some(b) => {
                let base = self.list_of_rid(self.held_rid(b)?)?;
                (*base).clone()
            }
        };
        for f in &m.files {
            match &f.hash {
                Some(h) => {
                    list.insert(f.name.clone(), (h.clone(), f.perm));
                }
                None if m.baseline.is_some() => {
                    list.remove(&f.name);
                }
                None => {
                    return Err(RepoError::BadManifest {
                        hash: hash.clone(),
                        source: ManifestError::BadCard {
                            line: 0,
                            what: "F card without hash in a baseline",
                        },
                    })
                }
            }
        }
        Ok(list)
    }
}

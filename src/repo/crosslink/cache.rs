//! Parsed manifests and full file lists by row, with small caches: check-ins
//! on a trunk share one baseline for many commits, and the next check-in is
//! usually made on the one just stored, so neither is read back and parsed.

use std::sync::Arc;

use crate::repo::error::{ManifestError, RepoError};
use crate::repo::hash::{ArtifactHash, Rid};
use crate::repo::manifest::Manifest;
use crate::repo::store::{FileList, Repository};

/// File entries (summed over the lists) of the parsed baseline lists kept
/// in memory, about 130 bytes each: 256 Ki entries are some 32 MiB. The
/// least recently used list goes first; the two most recent stay
/// whatever their size. A hub serving many sparse leaves needs many: each
/// commits on the check-in it last kept, whose baseline can be far behind
/// the tip's, and an old baseline is read back through a chain of deltas
/// against newer ones (with 128 leaves and four lists, reading them was
/// most of the writer's time).
const BASELINE_CACHE_ENTRIES: usize = 256 * 1024;
/// Baseline lists kept whatever their size.
const BASELINES_ALWAYS_CACHED: usize = 2;
/// Parsed manifests kept by row (the tip, its baseline, a leaf's own).
const MANIFESTS_CACHED: usize = 4;
/// Manifests naming more files than this are not kept parsed.
pub(super) const MANIFEST_CACHE_MAX_FILES: usize = 512;

impl Repository {
    /// The full file list of the check-in in row `rid`; the last few
    /// baselines are cached (a leaf reads through its own and the hub's).
    pub(crate) fn list_of_rid(&self, rid: Rid) -> Result<Arc<FileList>, RepoError> {
        if let Some(list) = self.cached_baseline(rid) {
            return Ok(list);
        }
        let hash = self.row_hash(rid)?;
        let m = self.manifest_of_rid(rid, &hash)?;
        self.list_of_parsed(rid, &hash, &m)
    }

    /// The file list of baseline row `rid` if it is among the cached ones
    /// (`None` for a delta manifest or a baseline not cached); a hit
    /// becomes the most recently used.
    pub(crate) fn cached_baseline(&self, rid: Rid) -> Option<Arc<FileList>> {
        let mut cache = self.baseline_cache.borrow_mut();
        let i = cache.iter().position(|(r, _)| *r == rid)?;
        let hit = cache.remove(i);
        let list = Arc::clone(&hit.1);
        cache.push(hit);
        Some(list)
    }

    /// Keeps `list`, baseline row `rid`'s, as the most recently used,
    /// evicting the least recently used past the budget.
    fn cache_baseline(&self, rid: Rid, list: &Arc<FileList>) {
        let mut cache = self.baseline_cache.borrow_mut();
        cache.push((rid, Arc::clone(list)));
        let mut entries: usize = cache.iter().map(|(_, l)| l.len()).sum();
        while cache.len() > BASELINES_ALWAYS_CACHED && entries > BASELINE_CACHE_ENTRIES {
            entries -= cache.remove(0).1.len();
        }
    }

    /// [`list_of_rid`](Self::list_of_rid) for a caller holding the parsed
    /// manifest `m` of row `rid` (named `hash`): no read, no parse.
    pub(crate) fn list_of_parsed(
        &self,
        rid: Rid,
        hash: &ArtifactHash,
        m: &Manifest,
    ) -> Result<Arc<FileList>, RepoError> {
        if let Some(list) = self.cached_baseline(rid) {
            return Ok(list);
        }
        let list = Arc::new(self.full_list(hash, m)?);
        if m.baseline.is_none() {
            self.cache_baseline(rid, &list);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::store::{CreateOptions, FileList};
    use crate::repo::Perm;

    fn list(files: usize) -> Arc<FileList> {
        let hash = ArtifactHash::sha3_of(b"x");
        Arc::new(
            (0..files)
                .map(|i| (format!("f{i}"), (hash.clone(), Perm::Regular)))
                .collect(),
        )
    }

    #[test]
    fn baselines_are_kept_least_recently_used_first_out_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let repo =
            Repository::create(&dir.path().join("r.fossil"), &CreateOptions::for_tests()).unwrap();
        let quarter = BASELINE_CACHE_ENTRIES / 4;
        for rid in 1..=4 {
            repo.cache_baseline(Rid(rid), &list(quarter));
        }
        // A hit makes row 1 the most recent; the fifth list pushes out the
        // least recent, row 2.
        assert!(repo.cached_baseline(Rid(1)).is_some());
        repo.cache_baseline(Rid(5), &list(quarter));
        assert!(repo.cached_baseline(Rid(2)).is_none());
        for rid in [1, 3, 4, 5] {
            assert!(repo.cached_baseline(Rid(rid)).is_some(), "row {rid}");
        }
        // Lists larger than the budget: the two most recent stay.
        repo.cache_baseline(Rid(6), &list(BASELINE_CACHE_ENTRIES));
        repo.cache_baseline(Rid(7), &list(BASELINE_CACHE_ENTRIES));
        assert!(repo.cached_baseline(Rid(6)).is_some());
        assert!(repo.cached_baseline(Rid(7)).is_some());
        assert!(repo.cached_baseline(Rid(5)).is_none());
    }
}

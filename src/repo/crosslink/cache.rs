//! Parsed manifests and full file lists by row, with small caches: check-ins
//! on a trunk share one baseline for many commits, and the next check-in is
//! usually made on the one just stored, so neither is read back and parsed.

use std::sync::Arc;

use crate::repo::error::{ManifestError, RepoError};
use crate::repo::hash::{ArtifactHash, Rid};
use crate::repo::manifest::Manifest;
use crate::repo::store::{FileList, Repository};

/// File entries (summed over the lists) of the parsed baseline lists a hub
/// keeps in memory, some 200 bytes each with the map's own: 128 Ki entries
/// are some 25 MiB (a 128-leaf herd's hub peaked at 74 MiB with these two
/// budgets, 110 MiB with twice them, landing no faster). The least
/// recently used list goes first; the two most recent stay whatever their
/// size. A hub serving many sparse leaves needs many: each
/// commits on the check-in it last kept, whose baseline can be far behind
/// the tip's, and an old baseline is read back through a chain of deltas
/// against newer ones (with 128 leaves and four lists, reading them was
/// most of the writer's time).
const HUB_BASELINE_ENTRIES: usize = 128 * 1024;
/// A leaf's: it reads through the one its next check-in's parent names.
const LEAF_BASELINE_ENTRIES: usize = 8 * 1024;
/// Baseline lists a hub keeps whatever their size (the tip's and the one
/// before it, which leaves behind the tip still commit on).
const HUB_BASELINES_ALWAYS_CACHED: usize = 2;
/// A leaf's: the one its next check-in reads through. A second whole-tree
/// list was most of the largest leaves' own memory in a herd of a thousand
/// (some 3 MB each at 12,700 files).
const LEAF_BASELINES_ALWAYS_CACHED: usize = 1;
/// F cards (summed) of the parsed manifests kept by row in a hub, for the
/// same reason: each of many sparse leaves pushes on the check-in the hub
/// last landed for it, and an old manifest is read back through the deltas
/// of every check-in since. 32 Ki cards are some 6 MiB.
const HUB_MANIFEST_CARDS: usize = 32 * 1024;
/// F cards of the parsed manifests a leaf keeps: the tip it rebases onto
/// and its own check-in are all it reads back.
const LEAF_MANIFEST_CARDS: usize = 2 * 1024;
/// Manifests kept whatever their size (the tip, its baseline, a leaf's own).
const MANIFESTS_ALWAYS_CACHED: usize = 4;
/// Rows a cache holds at most, so a lookup (a scan) stays cheap.
const HUB_CACHED_ROWS: usize = 1024;
const LEAF_CACHED_ROWS: usize = 16;
/// Manifests naming more files than this are not kept parsed by a leaf (a
/// large baseline is kept as its file list, not twice); a hub keeps up to a
/// quarter of its budget, so a baseline many leaves commit on stays parsed.
const LEAF_MANIFEST_MAX_FILES: usize = 512;

/// Who holds a repository's caches, which sizes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheRole {
    /// A leaf: the tip and its own check-in.
    Leaf,
    /// A hub: the old check-ins many leaves commit on.
    Hub,
}

/// Parsed artifacts by row, least recently used out first once their
/// weights (summed) pass a budget or their count passes a bound; the most
/// recent few stay regardless of weight.
#[derive(Debug)]
pub(crate) struct RowLru<T> {
    items: Vec<(Rid, Arc<T>, usize)>,
    weight: usize,
    budget: usize,
    keep: usize,
    rows: usize,
    /// Items heavier than this are not kept.
    heaviest: usize,
}

impl<T> RowLru<T> {
    fn new(budget: usize, keep: usize, rows: usize) -> RowLru<T> {
        RowLru {
            items: Vec::new(),
            weight: 0,
            budget,
            keep,
            rows,
            heaviest: usize::MAX,
        }
    }

    /// The baseline lists' cache, sized for a leaf or for a hub.
    pub(crate) fn for_baselines(role: CacheRole) -> RowLru<T> {
        if role == CacheRole::Hub {
            RowLru::new(
                HUB_BASELINE_ENTRIES,
                HUB_BASELINES_ALWAYS_CACHED,
                HUB_CACHED_ROWS,
            )
        } else {
            RowLru::new(
                LEAF_BASELINE_ENTRIES,
                LEAF_BASELINES_ALWAYS_CACHED,
                LEAF_CACHED_ROWS,
            )
        }
    }

    /// The parsed manifests' cache, sized for a leaf or for a hub.
    pub(crate) fn for_manifests(role: CacheRole) -> RowLru<T> {
        if role == CacheRole::Hub {
            RowLru {
                heaviest: HUB_MANIFEST_CARDS / 4,
                ..RowLru::new(HUB_MANIFEST_CARDS, MANIFESTS_ALWAYS_CACHED, HUB_CACHED_ROWS)
            }
        } else {
            RowLru {
                heaviest: LEAF_MANIFEST_MAX_FILES,
                ..RowLru::new(
                    LEAF_MANIFEST_CARDS,
                    MANIFESTS_ALWAYS_CACHED,
                    LEAF_CACHED_ROWS,
                )
            }
        }
    }

    /// Whether an item weighing `weight` would be kept.
    pub(crate) fn admits(&self, weight: usize) -> bool {
        weight <= self.heaviest
    }

    /// Row `rid`'s, now the most recently used.
    pub(crate) fn get(&mut self, rid: Rid) -> Option<Arc<T>> {
        let i = self.items.iter().position(|(r, _, _)| *r == rid)?;
        let hit = self.items.remove(i);
        let value = Arc::clone(&hit.1);
        self.items.push(hit);
        Some(value)
    }

    /// Keeps `value`, row `rid`'s, weighing `weight`, as the most recent
    /// (unless it is heavier than this cache admits).
    pub(crate) fn put(&mut self, rid: Rid, value: Arc<T>, weight: usize) {
        if !self.admits(weight) {
            return;
        }
        if let Some(i) = self.items.iter().position(|(r, _, _)| *r == rid) {
            self.weight -= self.items.remove(i).2;
        }
        self.items.push((rid, value, weight));
        self.weight += weight;
        while self.items.len() > self.rows
            || (self.items.len() > self.keep && self.weight > self.budget)
        {
            self.weight -= self.items.remove(0).2;
        }
    }

    /// Evicts, least recently used first, what putting an item weighing
    /// `weight` would evict, so a caller about to build that item (a new
    /// baseline's list, the whole tree) never holds it beside them.
    pub(crate) fn make_room(&mut self, weight: usize) {
        while self.items.len() >= self.keep.max(1) && self.weight + weight > self.budget {
            self.weight -= self.items.remove(0).2;
        }
    }

    /// Forgets everything (a rolled-back transaction's rows may be reused).
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.weight = 0;
    }
}

/// A parsed manifest's weight in its cache: its F cards (at least one).
fn manifest_weight(m: &Manifest) -> usize {
    m.files.len().max(1)
}

impl Repository {
    /// Widens the artifact caches for a hub, which reads the old check-ins
    /// many leaves commit on (a leaf reads only the tip and its own).
    pub fn cache_for_many_leaves(&self) {
        *self.manifest_cache.borrow_mut() = RowLru::for_manifests(CacheRole::Hub);
        *self.baseline_cache.borrow_mut() = RowLru::for_baselines(CacheRole::Hub);
    }

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
        self.baseline_cache.borrow_mut().get(rid)
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
            let files = list.len();
            self.baseline_cache
                .borrow_mut()
                .put(rid, Arc::clone(&list), files);
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
        if let Some(m) = self.manifest_cache.borrow_mut().get(rid) {
            return Ok(m);
        }
        let bytes = self.content_of(rid)?;
        let m = Arc::new(
            Manifest::parse(&bytes).map_err(|source| RepoError::BadManifest {
                hash: Box::new(hash.clone()),
                source,
            })?,
        );
        self.remember_manifest(rid, Arc::clone(&m));
        Ok(m)
    }

    /// Keeps `m`, the parsed content of row `rid`, among the recent
    /// manifests (for a caller that stored and parsed it just now).
    pub(crate) fn remember_manifest(&self, rid: Rid, m: Arc<Manifest>) {
        let cards = manifest_weight(&m);
        self.manifest_cache.borrow_mut().put(rid, m, cards);
    }

    /// Whether [`remember_manifest`](Self::remember_manifest) would keep
    /// `m` (so a caller need not copy one it would not).
    pub(super) fn would_remember(&self, m: &Manifest) -> bool {
        self.manifest_cache.borrow().admits(manifest_weight(m))
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
                        hash: Box::new(hash.clone()),
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
        repo.cache_for_many_leaves();
        let quarter = HUB_BASELINE_ENTRIES / 4;
        let cache = |rid, files| {
            let l = list(files);
            let n = l.len();
            repo.baseline_cache.borrow_mut().put(Rid(rid), l, n);
        };
        for rid in 1..=4 {
            cache(rid, quarter);
        }
        // A hit makes row 1 the most recent; the fifth list pushes out the
        // least recent, row 2.
        assert!(repo.cached_baseline(Rid(1)).is_some());
        cache(5, quarter);
        assert!(repo.cached_baseline(Rid(2)).is_none());
        for rid in [1, 3, 4, 5] {
            assert!(repo.cached_baseline(Rid(rid)).is_some(), "row {rid}");
        }
        // Lists larger than the budget: the two most recent stay.
        cache(6, HUB_BASELINE_ENTRIES);
        cache(7, HUB_BASELINE_ENTRIES);
        assert!(repo.cached_baseline(Rid(6)).is_some());
        assert!(repo.cached_baseline(Rid(7)).is_some());
        assert!(repo.cached_baseline(Rid(5)).is_none());
    }

    #[test]
    fn a_cache_holds_at_most_its_rows_and_a_leaf_keeps_little() {
        let mut lru: RowLru<u32> = RowLru::for_manifests(CacheRole::Leaf);
        for rid in 0..100 {
            lru.put(Rid(rid), Arc::new(0), 1);
        }
        assert_eq!(lru.items.len(), LEAF_CACHED_ROWS);
        assert!(lru.get(Rid(99)).is_some() && lru.get(Rid(0)).is_none());
        // At the weight budget the most recent stay, nothing older; an item
        // heavier than a leaf keeps is not kept at all.
        let heavy = LEAF_MANIFEST_CARDS / MANIFESTS_ALWAYS_CACHED;
        for rid in 100..110 {
            lru.put(Rid(rid), Arc::new(0), heavy);
        }
        assert_eq!(lru.items.len(), MANIFESTS_ALWAYS_CACHED);
        assert_eq!(lru.weight, LEAF_MANIFEST_CARDS);
        lru.put(Rid(200), Arc::new(0), LEAF_MANIFEST_MAX_FILES + 1);
        assert!(lru.get(Rid(200)).is_none() && lru.get(Rid(109)).is_some());
    }
}

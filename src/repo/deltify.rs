//! Storing older versions as deltas of newer ones, as Fossil does
//! (`content_deltify` in src/content.c, called from `manifest_crosslink` in
//! src/manifest.c): every artifact arrives whole, and when a check-in is
//! crosslinked against its primary parent
//! - the parent manifest becomes a delta of the child's when both are
//!   baselines or both are delta manifests (B card);
//! - the parent's baseline becomes a delta of the child's when the child is a
//!   new baseline and the parent a delta manifest;
//! - each file the check-in changes (an mlink row with an old and a new
//!   version) has its old version stored as a delta of the new one.
//!
//! So the newest version of each is whole: reading the tip, its baseline or
//! a current file costs one decompression, and older versions cost one
//! delta application per newer version between them and a whole one. An
//! artifact that is already a delta is left as it is (Fossil's rule too), so
//! a version is re-encoded at most once. Chains are bounded by
//! [`MAX_CHAIN_LINKS`]: a version whose chain would grow past it stays whole
//! and the next chain starts there.
//!
//! Deltas point from older rows to newer ones, so a clone page can carry a
//! delta before its source; receivers (Fossil's and ours) resolve a delta
//! once its source arrives.
//!
//! Why it matters beyond read cost: `fossil rebuild` scans the rows that are
//! not deltas and, while crosslinking, makes each parent a delta of its
//! child. A forward delta (child stored against its parent) is undone there
//! (`content_undelta` breaks the loop), which turns a row rebuild has already
//! processed into a chain root that the same scan visits a second time:
//! rebuild's progress then passes 100 %.

use std::sync::Arc;

use super::error::{RepoError, SqlContext};
use super::hash::{ArtifactHash, Rid};
use super::store::Repository;

/// Links allowed in one delta chain (from the oldest version reading
/// through it to the whole version it starts from). A version that would
/// lengthen a chain past this stays whole. Reading the newest version never
/// walks a chain; reading a version this many check-ins old applies this many
/// deltas, while a whole version costs one full manifest (a baseline of a
/// 15,000-file tree is a megabyte) per this many.
pub const MAX_CHAIN_LINKS: usize = 256;

/// Artifacts shorter than this stay whole, Fossil's threshold: their delta
/// would save nothing.
const MIN_DELTA_TARGET: usize = 50;

/// A delta is kept only if it is under this fraction of the target (as
/// numerator, denominator), Fossil's threshold too.
const KEEP_BELOW: (usize, usize) = (3, 4);

/// Recently stored or rebuilt manifest texts by name. Names are content
/// addresses, so an entry never goes stale, not even across a rollback.
#[derive(Default)]
pub(crate) struct TextCache {
    /// Most recently used last.
    entries: Vec<(ArtifactHash, Arc<[u8]>)>,
}

impl TextCache {
    /// Entries kept: the latest baseline and a few manifests after it.
    const MAX_ENTRIES: usize = 8;
    /// Bytes kept: a baseline's text grows with the tree (about 1 MB for
    /// 10,000 files), and a leaf should not hold eight of them.
    const MAX_BYTES: usize = 3 << 20;

    /// The text of `hash`, if cached (and marks it used).
    pub(crate) fn get(&mut self, hash: &str) -> Option<Arc<[u8]>> {
        let i = self.entries.iter().position(|(h, _)| h.as_str() == hash)?;
        let entry = self.entries.remove(i);
        let text = Arc::clone(&entry.1);
        self.entries.push(entry);
        Some(text)
    }

    /// Remembers `text` as the content of `hash`, evicting the least used
    /// until both bounds hold (the newest entry is always kept).
    pub(crate) fn put(&mut self, hash: ArtifactHash, text: Arc<[u8]>) {
        self.entries.retain(|(h, _)| *h != hash);
        self.entries.push((hash, text));
        let mut bytes: usize = self.entries.iter().map(|(_, t)| t.len()).sum();
        while self.entries.len() > 1
            && (self.entries.len() > Self::MAX_ENTRIES || bytes > Self::MAX_BYTES)
        {
            bytes -= self.entries.remove(0).1.len();
        }
    }
}

/// Whether a manifest's text is a delta manifest: its first card is B.
fn is_delta_manifest(text: &[u8]) -> bool {
    text.starts_with(b"B ")
}

/// The baseline a delta manifest's B card names.
fn baseline_of(text: &[u8]) -> Option<ArtifactHash> {
    let rest = text.strip_prefix(b"B ")?;
    let end = rest.iter().position(|&b| b == b'\n')?;
    ArtifactHash::parse(std::str::from_utf8(&rest[..end]).ok()?).ok()
}

impl Repository {
    /// Applies Fossil's rule for check-in `child` (named `hash`, delta
    /// manifest if `child_is_delta`) and its primary parent `parent`: the
    /// parent, or the parent's baseline when a baseline follows a delta
    /// manifest, becomes a delta of the child (see the module docs).
    pub(crate) fn deltify_parent(
        &self,
        child: Rid,
        hash: &ArtifactHash,
        child_is_delta: bool,
        parent: Rid,
    ) -> Result<(), RepoError> {
        // A delta manifest's target is its parent, or nothing: when the
        // parent is a delta already (it came as one), there is nothing to
        // read.
        if child_is_delta && self.is_delta(parent)? {
            return Ok(());
        }
        // The child's text first: it was cached when stored, and reading
        // the older texts below may evict it.
        let Some(ctext) = self.text_of(child, hash)? else {
            return Ok(());
        };
        let Some(phash) = self.hash_of(parent)? else {
            return Ok(());
        };
        let Some(ptext) = self.text_of(parent, &phash)? else {
            return Ok(());
        };
        let target = match (child_is_delta, is_delta_manifest(&ptext)) {
            (true, true) | (false, false) => Some((parent, phash, ptext)),
            (false, true) => match baseline_of(&ptext) {
                Some(b) => match self.rid_of(&b)? {
                    Some((brid, false)) => self.text_of(brid, &b)?.map(|t| (brid, b, t)),
                    _ => None,
                },
                None => None,
            },
            (true, false) => None,
        };
        let Some((trid, _, ttext)) = target else {
            return Ok(());
        };
        self.deltify(trid, &ttext, child, &ctext)
    }

    /// Fossil's `add_mlink` step: the old version `old` of a file the
    /// check-in changed becomes a delta of the new version `new`, when both
    /// are held. File texts bypass the manifest text cache.
    pub(crate) fn deltify_file(&self, old: Rid, new: Rid) -> Result<(), RepoError> {
        if old == new
            || self.is_delta(old)?
            || self.is_phantom_row(old)?
            || self.is_phantom_row(new)?
        {
            return Ok(());
        }
        let target = self.content_of(old)?;
        if target.len() < MIN_DELTA_TARGET {
            return Ok(());
        }
        let source = self.content_of(new)?;
        self.deltify(old, &target, new, &source)
    }

    /// Stores row `target` (whose content is `target_text`) as a delta of
    /// row `source` (`source_text`), unless it is a delta already, the delta
    /// would not save a quarter, `source` reads through `target` (a loop),
    /// or the longest chain through the new link would pass
    /// [`MAX_CHAIN_LINKS`]. The delta is checked by applying it first.
    fn deltify(
        &self,
        target: Rid,
        target_text: &[u8],
        source: Rid,
        source_text: &[u8],
    ) -> Result<(), RepoError> {
        if target == source || target_text.len() < MIN_DELTA_TARGET || self.is_delta(target)? {
            return Ok(());
        }
        let bound = self.chain_bound.get();
        let Some(above) = self.links_above(source, target, bound)? else {
            return Ok(());
        };
        let below = self.chain_height(target)?;
        if below + 1 + above > bound {
            return Ok(());
        }
        // Measured before the new link exists: a new row has nothing below
        // it yet, so this is one lookup, not a walk down the chain.
        let source_below = self.chain_height(source)?;
        let delta = crate::delta::encode(source_text, target_text);
        if delta.len() * KEEP_BELOW.1 >= target_text.len() * KEEP_BELOW.0 {
            return Ok(());
        }
        // The encoder is exact by construction; checking costs one copy and
        // guards the only stored form of this version.
        if !crate::delta::reproduces(source_text, &delta, target_text) {
            return Ok(());
        }
        let stored = super::blob::compress(&delta);
        self.note_work(|w| {
            w.blobs_written += 1;
            w.bytes_written += stored.len() as u64;
        });
        self.exec(
            "UPDATE blob SET content=?1 WHERE rid=?2",
            rusqlite::params![stored, target.0],
        )
        .ctx("storing an older version as a delta")?;
        self.exec(
            "REPLACE INTO delta(rid, srcid) VALUES(?1, ?2)",
            [target.0, source.0],
        )
        .ctx("recording a delta source")?;
        if above > 0 {
            // The rows `source` reads through now hold longer chains too.
            self.chain_heights.borrow_mut().clear();
        }
        self.remember_chain_height(source, source_below.max(below + 1));
        Ok(())
    }

    /// Whether row `rid` is stored as a delta.
    pub(crate) fn is_delta(&self, rid: Rid) -> Result<bool, RepoError> {
        self.conn
            .prepare_cached("SELECT 1 FROM delta WHERE rid=?1")
            .and_then(|mut st| st.exists([rid.0]))
            .ctx("checking the delta table")
    }

    fn is_phantom_row(&self, rid: Rid) -> Result<bool, RepoError> {
        let size: Option<i64> = self
            .query_row("SELECT size FROM blob WHERE rid=?1", [rid.0], |r| r.get(0))
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .ctx("checking for a phantom")?;
        Ok(size.map_or(true, |s| s < 0))
    }

    /// Deltas between row `rid` and the whole version its chain starts
    /// from, or `None` if the chain passes through `avoid` or is longer
    /// than `bound`.
    pub(crate) fn links_above(
        &self,
        rid: Rid,
        avoid: Rid,
        bound: usize,
    ) -> Result<Option<usize>, RepoError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT srcid FROM delta WHERE rid=?1")
            .ctx("measuring a delta chain")?;
        let mut links = 0;
        let mut cur = rid.0;
        loop {
            if cur == avoid.0 || links > bound {
                return Ok(None);
            }
            let src: Option<i64> = st
                .query_row([cur], |r| r.get(0))
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
                .ctx("measuring a delta chain")?;
            match src {
                Some(s) => {
                    links += 1;
                    cur = s;
                }
                None => return Ok(Some(links)),
            }
        }
    }

    /// The longest chain of deltas that reads through row `rid` before
    /// reaching it (0 when no row is a delta of it), counted up to one past
    /// the bound; remembered per connection.
    pub(crate) fn chain_height(&self, rid: Rid) -> Result<usize, RepoError> {
        if let Some(&h) = self.chain_heights.borrow().get(&rid.0) {
            return Ok(h);
        }
        let limit = i64::try_from(self.chain_bound.get()).unwrap_or(i64::MAX);
        let height: i64 = self
            .query_row(
                "WITH RECURSIVE below(rid, n) AS (SELECT ?1, 0 UNION ALL \
                 SELECT delta.rid, n+1 FROM delta JOIN below ON delta.srcid=below.rid WHERE n<=?2) \
                 SELECT max(n) FROM below",
                [rid.0, limit],
                |r| r.get(0),
            )
            .ctx("measuring the chains below a row")?;
        let height = usize::try_from(height).unwrap_or(0);
        self.remember_chain_height(rid, height);
        Ok(height)
    }

    /// Records that the longest chain through row `rid` holds `height`
    /// links below it.
    fn remember_chain_height(&self, rid: Rid, height: usize) {
        /// Rows remembered before the memo starts over.
        const MAX_REMEMBERED: usize = 1 << 16;
        let mut heights = self.chain_heights.borrow_mut();
        if heights.len() >= MAX_REMEMBERED {
            heights.clear();
        }
        heights.insert(rid.0, height);
    }

    /// The content of row `rid` (named `hash`), from the text cache if
    /// there; `None` for a phantom or a missing row.
    fn text_of(&self, rid: Rid, hash: &ArtifactHash) -> Result<Option<Arc<[u8]>>, RepoError> {
        if let Some(text) = self.text_cache.borrow_mut().get(hash.as_str()) {
            return Ok(Some(text));
        }
        if self.is_phantom_row(rid)? {
            return Ok(None);
        }
        let text: Arc<[u8]> = self.content_of(rid)?.into();
        // An older text read back is about to become a delta of a newer
        // one; a large one (a baseline, the whole tree) is not read again.
        if text.len() <= TextCache::MAX_BYTES {
            self.text_cache
                .borrow_mut()
                .put(hash.clone(), Arc::clone(&text));
        }
        Ok(Some(text))
    }

    /// Caches `text` as the content of `hash`: a check-in manifest just
    /// stored is read again when it is crosslinked and when its child is.
    pub(crate) fn remember_text(&self, hash: &ArtifactHash, text: &[u8]) {
        self.text_cache
            .borrow_mut()
            .put(hash.clone(), Arc::from(text));
    }

    /// The cached text of the artifact named `uuid`, if any.
    pub(crate) fn cached_text(&self, uuid: &str) -> Option<Arc<[u8]>> {
        self.text_cache.borrow_mut().get(uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(dir: &tempfile::TempDir) -> Repository {
        Repository::scratch(dir.path())
    }

    /// Check-in `i`: `files` changes among a tree of `tree` names.
    fn commit(
        r: &Repository,
        parent: ArtifactHash,
        i: usize,
        files: usize,
        tree: usize,
    ) -> ArtifactHash {
        let changes = (0..files)
            .map(|j| (i * 13 + j) % tree)
            .map(|k| crate::repo::FileChange {
                path: format!("dir-{}/file-{k}.txt", k % 7),
                content: Some(format!("{i} {k}\n").into_bytes()),
            })
            .collect();
        let spec = crate::repo::CheckinSpec {
            parent,
            changes,
            comment: format!("commit {i}"),
            user: "u".into(),
            time: std::time::SystemTime::now(),
        };
        r.commit(&spec).unwrap().hash
    }

    /// Deltas between row `rid` and the whole version it reads from.
    fn links(r: &Repository, rid: Rid) -> usize {
        r.links_above(rid, Rid(-1), usize::MAX).unwrap().unwrap()
    }

    /// (check-in rid, stored bytes, chain links) of every check-in.
    fn stored(r: &Repository) -> Vec<(Rid, usize, usize)> {
        let rows: Vec<(i64, i64)> = r
            .conn
            .prepare(
                "SELECT objid, length(content) FROM event JOIN blob ON rid=objid ORDER BY objid",
            )
            .unwrap()
            .query_map([], |x| Ok((x.get(0)?, x.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.into_iter()
            .map(|(rid, len)| (Rid(rid), len as usize, links(r, Rid(rid))))
            .collect()
    }

    fn source_of(r: &Repository, rid: Rid) -> Option<Rid> {
        r.conn
            .query_row("SELECT srcid FROM delta WHERE rid=?1", [rid.0], |x| {
                x.get(0)
            })
            .ok()
            .map(Rid)
    }

    #[test]
    fn older_manifests_are_deltas_of_newer_ones_and_the_tip_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let r = repo(&dir);
        let mut tip = r.trunk_tip().unwrap().unwrap();
        // A 400-file baseline, then small check-ins of 4 files each.
        tip = commit(&r, tip, 0, 400, 400);
        let mut names = vec![tip.clone()];
        for i in 1..12 {
            tip = commit(&r, tip, i, 4, 400);
            names.push(tip.clone());
        }
        let rows = stored(&r);
        // Rows: the initial check-in, the 400-file baseline, delta
        // manifests 1..=8, a new baseline (MAX_DELTA_CARD_BYTES), two delta
        // manifests after it. Each delta manifest but the last of its run is
        // a delta of its child; the first baseline is a delta of the second
        // (a baseline after a delta manifest); the newest of each is whole.
        let links: Vec<usize> = rows.iter().map(|(_, _, l)| *l).collect();
        assert_eq!(links, [0, 1, 7, 6, 5, 4, 3, 2, 1, 0, 0, 1, 0]);
        assert_eq!(source_of(&r, rows[1].0), Some(rows[10].0), "old baseline");
        assert_eq!(source_of(&r, rows[2].0), Some(rows[3].0), "parent of child");
        assert_eq!(source_of(&r, rows[12].0), None, "the tip is whole");
        assert_eq!(source_of(&r, rows[10].0), None, "its baseline is whole");
        let texts: Vec<Vec<u8>> = names
            .iter()
            .map(|h| r.content(h).unwrap().unwrap())
            .collect();
        drop(r);
        // A fresh handle (cold cache) reads the same bytes.
        let r = Repository::open(&dir.path().join("r.fossil")).unwrap();
        for (h, t) in names.iter().zip(&texts) {
            assert_eq!(&r.content(h).unwrap().unwrap(), t);
        }
        assert_eq!(r.file_list(&tip).unwrap().len(), 400);
    }

    #[test]
    fn baseline_chains_stop_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let r = repo(&dir);
        let mut tip = r.trunk_tip().unwrap().unwrap();
        tip = commit(&r, tip, 0, 150, 150);
        // 36 changed files pass MAX_DELTA_CARD_BYTES: every check-in is a
        // baseline of 150 files, and the one before becomes its delta.
        // A short bound, so that the test crosses it.
        let bound = 16;
        r.chain_bound.set(bound);
        let n = 2 * bound + 6;
        for i in 1..=n {
            tip = commit(&r, tip, i, 36, 150);
        }
        let rows = stored(&r);
        let full_size = r.content(&tip).unwrap().unwrap().len();
        assert!(full_size > 12_000, "{full_size}");
        let links: Vec<usize> = rows.iter().map(|(_, _, l)| *l).collect();
        assert!(links.iter().all(|&l| l <= bound), "{links:?}");
        assert_eq!(*links.last().unwrap(), 0, "the tip is whole");
        // Baselines 0..=n after the initial check-in: chains of `bound`
        // links, each ending in a whole one, the newest chain shorter.
        let mut want = vec![0];
        for start in (0..=n).step_by(bound + 1) {
            let len = (n + 1 - start).min(bound + 1);
            want.extend((0..len).rev());
        }
        assert_eq!(links, want);
        for (_, bytes, l) in &rows[1..] {
            if *l > 0 {
                assert!(*bytes < full_size / 4, "a delta of {bytes} bytes");
            } else {
                assert!(*bytes > full_size / 4, "a whole one of {bytes} bytes");
            }
        }
        drop(r);
        let r = Repository::open(&dir.path().join("r.fossil")).unwrap();
        let first = r.hash_of(rows[1].0).unwrap().unwrap();
        assert_eq!(r.file_list(&first).unwrap().len(), 150);
        assert_eq!(r.content(&tip).unwrap().unwrap().len(), full_size);
        // A cold handle measures the chains from the table and keeps the bound.
        r.chain_bound.set(bound);
        for i in n + 1..=n + 4 {
            tip = commit(&r, tip, i, 36, 150);
        }
        let links: Vec<usize> = stored(&r).iter().map(|(_, _, l)| *l).collect();
        assert!(links.iter().all(|&l| l <= bound), "{links:?}");
    }

    #[test]
    fn an_old_file_version_is_a_delta_of_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let r = repo(&dir);
        let tip = r.trunk_tip().unwrap().unwrap();
        let v1 = "the first version of a line\n".repeat(40);
        let v2 = format!("{v1}one more line\n");
        let mut parent = tip;
        for v in [&v1, &v2] {
            let spec = crate::repo::CheckinSpec {
                parent,
                changes: vec![crate::repo::FileChange {
                    path: "a.txt".into(),
                    content: Some(v.clone().into_bytes()),
                }],
                comment: "edit".into(),
                user: "u".into(),
                time: std::time::SystemTime::now(),
            };
            parent = r.commit(&spec).unwrap().hash;
        }
        let rid = |t: &str| {
            r.rid_of(&ArtifactHash::sha3_of(t.as_bytes()))
                .unwrap()
                .unwrap()
                .0
        };
        assert_eq!(source_of(&r, rid(&v1)), Some(rid(&v2)));
        assert_eq!(source_of(&r, rid(&v2)), None);
        drop(r);
        let r = Repository::open(&dir.path().join("r.fossil")).unwrap();
        let back = r.content(&ArtifactHash::sha3_of(v1.as_bytes())).unwrap();
        assert_eq!(back.as_deref(), Some(v1.as_bytes()));
    }

    #[test]
    fn text_cache_keeps_the_most_recently_used() {
        let mut c = TextCache::default();
        let name = |i: usize| ArtifactHash::sha3_of(&i.to_be_bytes());
        for i in 0..TextCache::MAX_ENTRIES {
            c.put(name(i), Arc::from(vec![i as u8]));
        }
        assert!(c.get(name(0).as_str()).is_some());
        c.put(name(100), Arc::from(vec![1]));
        assert!(c.get(name(0).as_str()).is_some(), "used, so kept");
        assert!(c.get(name(1).as_str()).is_none(), "least used, evicted");
        assert_eq!(c.get(name(100).as_str()).as_deref(), Some(&[1u8][..]));
    }

    #[test]
    fn text_cache_holds_a_bounded_number_of_bytes() {
        let mut c = TextCache::default();
        let name = |i: usize| ArtifactHash::sha3_of(&i.to_be_bytes());
        let big = TextCache::MAX_BYTES / 2 + 1;
        for i in 0..3 {
            c.put(name(i), Arc::from(vec![0u8; big]));
        }
        assert!(c.get(name(0).as_str()).is_none(), "over the byte bound");
        assert!(
            c.get(name(1).as_str()).is_none(),
            "two halves are over it too"
        );
        assert!(c.get(name(2).as_str()).is_some(), "the newest is kept");
        c.put(name(9), Arc::from(vec![0u8; TextCache::MAX_BYTES * 2]));
        assert!(
            c.get(name(9).as_str()).is_some(),
            "even when alone over the bound"
        );
        assert!(c.get(name(2).as_str()).is_none());
    }
}

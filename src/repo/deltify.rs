//! Storing check-in manifests as deltas, as Fossil's `delta` table allows:
//! which earlier manifest a new one is encoded against, how long a chain may
//! grow, and the small cache of manifest texts that makes both the encoding
//! and the reading of chains cheap. `blob.rs` calls in here when it stores
//! and reads rows; everything else sees full content only.
//!
//! Sources, always an *older* artifact, so that clone pages (sent in row
//! order) carry a delta's source before the delta itself:
//! - a baseline manifest (no B card) is stored against the previous
//!   baseline, i.e. its parent's baseline or its parent if that is one; the
//!   two differ only in the files changed since, so a baseline listing every
//!   file of a large tree is stored as the few new F cards and copies;
//! - a delta manifest is stored against its parent when both name the same
//!   baseline: the parent's F cards are a subset of its own.
//!
//! Chains are forward (each link is newer than its source), so reading an
//! artifact applies every link from the chain's full-text root. A chain may
//! hold [`MAX_CHAIN_LINKS`] deltas; the next artifact is stored in full and
//! roots a new chain. That bounds a cold read of a baseline to that many
//! applications of a delta the size of the manifest, at the price of one
//! full manifest per that many baselines.

use std::sync::Arc;

use super::error::{RepoError, SqlContext};
use super::hash::{ArtifactHash, Rid};
use super::store::Repository;

/// Deltas allowed in one chain; an artifact whose source already sits this
/// deep is stored in full instead. Long on purpose: a chain root is a whole
/// baseline in full (a megabyte on a tree of 15,000 files), while reading
/// through a chain costs one copy per link, paid once and then cached
/// (a 5,000-check-in trunk has under 500 baselines).
pub const MAX_CHAIN_LINKS: usize = 1024;

/// Artifacts shorter than this are stored in full: their delta would save
/// less than the bookkeeping costs.
const MIN_DELTA_TARGET: usize = 512;

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

/// What a check-in manifest's text says about where it could be deltified
/// from: its baseline (B card) and its first parent (P card).
#[derive(Debug, PartialEq, Eq)]
struct ManifestShape {
    baseline: Option<ArtifactHash>,
    parent: ArtifactHash,
}

/// Reads the B and first P card of what looks like a check-in manifest,
/// without parsing it: the B card is first when present, otherwise the C
/// card is; the P card follows the F cards, so it is found from the end. A
/// file that merely looks like this is harmless: it is stored as a delta of
/// some artifact, which reads back the same.
fn manifest_shape(text: &[u8]) -> Option<ManifestShape> {
    let baseline = if let Some(rest) = text.strip_prefix(b"B ") {
        let end = rest.iter().position(|&b| b == b'\n')?;
        Some(parse_hash(&rest[..end])?)
    } else if text.starts_with(b"C ") {
        None
    } else {
        return None;
    };
    // Card values escape newlines, so "\nP " can only start the P card.
    let at = text.windows(3).rposition(|w| w == b"\nP ")? + 3;
    let line = &text[at..];
    let end = line
        .iter()
        .position(|&b| b == b' ' || b == b'\n')
        .unwrap_or(line.len());
    Some(ManifestShape {
        baseline,
        parent: parse_hash(&line[..end])?,
    })
}

fn parse_hash(text: &[u8]) -> Option<ArtifactHash> {
    ArtifactHash::parse(std::str::from_utf8(text).ok()?).ok()
}

/// A delta source: its row and its full text.
type Source = (Rid, Arc<[u8]>);

/// How [`Repository::store`] should write an artifact.
pub(crate) enum Encoding {
    /// As a delta (not yet compressed) against the row `source`.
    Delta { source: Rid, delta: Vec<u8> },
    /// In full.
    Full,
}

impl Repository {
    /// Chooses how to store `content`: a delta against an older manifest
    /// (see the module docs) when one applies, is held, leaves the chain
    /// within [`MAX_CHAIN_LINKS`] and saves at least a quarter; in full otherwise.
    /// The delta is checked by applying it before it is returned.
    pub(crate) fn encoding_for(
        &self,
        hash: &ArtifactHash,
        content: &[u8],
    ) -> Result<Encoding, RepoError> {
        if content.len() < MIN_DELTA_TARGET {
            return Ok(Encoding::Full);
        }
        let Some(shape) = manifest_shape(content) else {
            return Ok(Encoding::Full);
        };
        self.remember_text(hash, content);
        let Some((source, text)) = self.delta_source(&shape)? else {
            return Ok(Encoding::Full);
        };
        if self.chain_links(source)? >= self.chain_bound.get() {
            return Ok(Encoding::Full);
        }
        let delta = crate::delta::encode(&text, content);
        if delta.len() * KEEP_BELOW.1 >= content.len() * KEEP_BELOW.0 {
            return Ok(Encoding::Full);
        }
        // The encoder is exact by construction; checking costs one copy of
        // the target and guards the only stored form of this artifact.
        match crate::delta::apply(&text, &delta, content.len() as u64) {
            Ok(back) if back == content => Ok(Encoding::Delta { source, delta }),
            _ => Ok(Encoding::Full),
        }
    }

    /// The row and text a manifest of `shape` is deltified against, if held.
    fn delta_source(&self, shape: &ManifestShape) -> Result<Option<Source>, RepoError> {
        let Some((prid, false)) = self.rid_of(&shape.parent)? else {
            return Ok(None);
        };
        let source = match &shape.baseline {
            // A delta manifest right after its baseline: the baseline is the
            // whole tree and shares little with a few F cards.
            Some(b) if *b == shape.parent => return Ok(None),
            Some(b) => {
                let parent = self.text_of(prid, &shape.parent)?;
                if manifest_shape(&parent).and_then(|s| s.baseline).as_ref() != Some(b) {
                    return Ok(None);
                }
                return Ok(Some((prid, parent)));
            }
            None => {
                let parent = self.text_of(prid, &shape.parent)?;
                match manifest_shape(&parent) {
                    Some(ManifestShape {
                        baseline: Some(b), ..
                    }) => b,
                    Some(ManifestShape { baseline: None, .. }) => return Ok(Some((prid, parent))),
                    None => return Ok(None),
                }
            }
        };
        let Some((brid, false)) = self.rid_of(&source)? else {
            return Ok(None);
        };
        Ok(Some((brid, self.text_of(brid, &source)?)))
    }

    /// Deltas between row `rid` and the full text its chain starts from,
    /// walking the `delta` table only as far as the first row whose depth
    /// this connection already knows.
    pub(crate) fn chain_links(&self, rid: Rid) -> Result<usize, RepoError> {
        if let Some(&depth) = self.chain_depths.borrow().get(&rid.0) {
            return Ok(depth);
        }
        let mut st = self
            .conn
            .prepare_cached("SELECT srcid FROM delta WHERE rid=?1")
            .ctx("measuring a delta chain")?;
        let mut links = 0;
        let mut cur = rid.0;
        while links <= self.chain_bound.get() {
            if let Some(&depth) = self.chain_depths.borrow().get(&cur) {
                links += depth;
                break;
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
                None => break,
            }
        }
        self.remember_chain_depth(rid, links);
        Ok(links)
    }

    /// Records that row `rid` sits `depth` deltas from its chain's root.
    pub(crate) fn remember_chain_depth(&self, rid: Rid, depth: usize) {
        /// Rows remembered before the memo starts over.
        const MAX_REMEMBERED: usize = 1 << 16;
        let mut depths = self.chain_depths.borrow_mut();
        if depths.len() >= MAX_REMEMBERED {
            depths.clear();
        }
        depths.insert(rid.0, depth);
    }

    /// The content of row `rid` (named `hash`), from the text cache if there.
    fn text_of(&self, rid: Rid, hash: &ArtifactHash) -> Result<Arc<[u8]>, RepoError> {
        if let Some(text) = self.text_cache.borrow_mut().get(hash.as_str()) {
            return Ok(text);
        }
        let text: Arc<[u8]> = self.content_of(rid)?.into();
        self.remember_text(hash, &text);
        Ok(text)
    }

    /// Caches `text` as the content of `hash`: the next manifest is likely
    /// to be deltified against it.
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

    const H1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const H2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn reads_baseline_and_parent_from_the_text() {
        let delta =
            format!("B {H1}\nC c\nD 2024-01-01T00:00:00\nF a {H2}\nP {H2} {H1}\nU u\nZ 0\n");
        assert_eq!(
            manifest_shape(delta.as_bytes()),
            Some(ManifestShape {
                baseline: Some(ArtifactHash::parse(H1).unwrap()),
                parent: ArtifactHash::parse(H2).unwrap(),
            })
        );
        let base = format!("C c\\nP\\sx\nD 2024\nP {H1}\nT *branch * trunk\nU u\nZ 0\n");
        assert_eq!(
            manifest_shape(base.as_bytes()).map(|s| (s.baseline, s.parent)),
            Some((None, ArtifactHash::parse(H1).unwrap()))
        );
        for other in [
            &b"plain file\nP 12\n"[..],
            b"C no parent\nD 2024\nU u\nZ 0\n",
            b"B short\nC c\nP x\n",
            b"",
        ] {
            assert_eq!(manifest_shape(other), None, "{:?}", other);
        }
    }

    fn repo(dir: &tempfile::TempDir) -> Repository {
        let opts = crate::repo::CreateOptions {
            project_name: None,
            admin_user: "admin".into(),
            nobody_caps: "gio".into(),
        };
        Repository::create(&dir.path().join("r.fossil"), &opts).unwrap()
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
            .map(|(rid, len)| (Rid(rid), len as usize, r.chain_links(Rid(rid)).unwrap()))
            .collect()
    }

    #[test]
    fn delta_manifests_are_stored_against_their_parent() {
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
        // The initial check-in, the baseline and the first delta manifest
        // are full; later delta manifests are deltas of their parent, up to
        // the next baseline (after eight, by MAX_DELTA_CARD_BYTES), which
        // is a delta of the first.
        let links: Vec<usize> = rows.iter().map(|(_, _, l)| *l).collect();
        assert_eq!(links, [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 1, 0, 1]);
        let prev = rows[1].0;
        let src: i64 = r
            .conn
            .query_row(
                "SELECT srcid FROM delta WHERE rid=?1",
                [rows[10].0 .0],
                |x| x.get(0),
            )
            .unwrap();
        assert_eq!(Rid(src), prev, "the new baseline is a delta of the old");
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
    fn baselines_are_deltas_of_the_previous_one_within_the_chain_bound() {
        let dir = tempfile::tempdir().unwrap();
        let r = repo(&dir);
        let mut tip = r.trunk_tip().unwrap().unwrap();
        tip = commit(&r, tip, 0, 150, 150);
        // 36 changed files pass MAX_DELTA_CARD_BYTES: every check-in is a
        // baseline of 150 files, stored as a delta of the one before.
        // A short bound, so that the test crosses it.
        let bound = 64;
        r.chain_bound.set(bound);
        let n = bound + 6;
        for i in 1..=n {
            tip = commit(&r, tip, i, 36, 150);
        }
        let rows = stored(&r);
        let full_size = r.content(&tip).unwrap().unwrap().len();
        assert!(full_size > 12_000, "{full_size}");
        let links: Vec<usize> = rows.iter().map(|(_, _, l)| *l).collect();
        // initial, first baseline (root), then 1..=64, then a new root, 1..
        let mut want = vec![0, 0];
        want.extend(1..=bound);
        want.push(0);
        want.extend(1..=n - bound - 1);
        assert_eq!(links, want);
        for (_, bytes, l) in &rows[2..] {
            if *l > 0 {
                assert!(*bytes < full_size / 4, "a delta of {bytes} bytes");
            } else {
                assert!(*bytes > full_size / 4, "a root of {bytes} bytes");
            }
        }
        drop(r);
        let r = Repository::open(&dir.path().join("r.fossil")).unwrap();
        assert_eq!(r.content(&tip).unwrap().unwrap().len(), full_size);
        assert_eq!(r.file_list(&tip).unwrap().len(), 150);
    }

    #[test]
    fn a_phantom_filled_late_is_not_a_delta_of_a_newer_row() {
        let dir = tempfile::tempdir().unwrap();
        let a = repo(&dir);
        let mut names = vec![commit(&a, a.trunk_tip().unwrap().unwrap(), 0, 400, 400)];
        for i in 1..4 {
            names.push(commit(&a, names[i - 1].clone(), i, 4, 400));
        }
        // In `a`, the third manifest is a delta of the second.
        let (rid3, _) = a.rid_of(&names[3]).unwrap().unwrap();
        assert_eq!(a.chain_links(rid3).unwrap(), 2);
        let texts: Vec<Vec<u8>> = names
            .iter()
            .map(|h| a.content(h).unwrap().unwrap())
            .collect();
        let other = tempfile::tempdir().unwrap();
        let b = repo(&other);
        let early = b.store_phantom(&names[3]).unwrap();
        for (h, t) in names.iter().zip(&texts) {
            let s = b.store(t, Some(h), None).unwrap();
            assert!(s.is_new);
        }
        assert_eq!(
            b.chain_links(early).unwrap(),
            0,
            "its source is a newer row"
        );
        let (rid2, _) = b.rid_of(&names[2]).unwrap().unwrap();
        assert_eq!(b.chain_links(rid2).unwrap(), 1);
        assert_eq!(b.content(&names[3]).unwrap().unwrap(), texts[3]);
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

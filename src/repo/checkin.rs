//! Making check-ins: storing file blobs, building a delta (or baseline)
//! manifest with a correct R card, storing and crosslinking it, in one
//! savepoint.
//!
//! Baseline rule: a check-in is written as a delta manifest against its
//! parent's baseline unless the delta would list `D` entries with
//! `D*D >= 3*B - 9` (`B` = files in the baseline), in which case it is written
//! as a new baseline. This is Fossil's own heuristic (src/checkin.c): a delta
//! manifest grows by the files changed since the last baseline, a baseline by
//! the whole tree, and rebaselining when `D` reaches about `sqrt(3B)` keeps
//! the total of manifest bytes per check-in near its minimum, `O(sqrt B)`,
//! instead of `O(B)` for full manifests every time.
//!
//! On top of that, a delta manifest's F cards may take at most
//! [`MAX_DELTA_CARD_BYTES`], so its text stays a few kilobytes however large
//! the tree: on a big tree Fossil's rule alone would let it list hundreds
//! of files. The more frequent baselines this causes cost little to store,
//! since each is kept as a delta against the previous one (`deltify.rs`).
//! A check-in on a parent whose delta is already past the cap (one the
//! hub landed) follows Fossil's rule alone too: a new baseline there would
//! be the whole tree for one task's files.
//! The hub's landings (`CheckinMeta::by_hub`) follow Fossil's rule alone:
//! with hub landing no leaf fetches baselines, and a baseline costs the hub
//! the whole tree, so fewer of them keep its cost per commit near the
//! square root of the tree instead of a fixed fraction of it.

use std::sync::Arc;
use std::time::SystemTime;

use md5::{Digest, Md5};

use super::error::{RepoError, SqlContext};
use super::hash::{ArtifactHash, Rid};
use super::manifest::{check_file_name, parse_artifact, Artifact, FileCard, Manifest, Perm};
use super::store::{FileList, Repository};
use super::time;
use super::view::{Entry, ListView};

/// One file change of a check-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Relative `/`-separated path.
    pub path: String,
    /// New content, or `None` to delete the file.
    pub content: Option<Vec<u8>>,
}

/// What to commit.
#[derive(Debug, Clone)]
pub struct CheckinSpec {
    /// The parent check-in (the repository always has the initial one).
    pub parent: ArtifactHash,
    /// Files to add, change or delete.
    pub changes: Vec<FileChange>,
    /// Check-in comment.
    pub comment: String,
    /// Login recorded in the U card.
    pub user: String,
    /// Check-in time (the D card, millisecond precision).
    pub time: SystemTime,
}

/// A check-in made here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkin {
    /// Its blob row.
    pub rid: Rid,
    /// Its manifest's name.
    pub hash: ArtifactHash,
    /// The manifest bytes (shared with the text cache).
    pub manifest: Arc<[u8]>,
}

/// The non-file parts of a check-in being written.
pub(crate) struct CheckinMeta<'a> {
    /// C card.
    pub comment: &'a str,
    /// U card.
    pub user: &'a str,
    /// D card, Unix milliseconds.
    pub ms: i64,
    /// The rcvfrom row the new blobs belong to.
    pub rcvid: i64,
    /// Written by the hub for a pushed check-in (a hub landing). Such a
    /// check-in carries no R card (an MD5 over every file of the tree), and
    /// a new baseline is due by Fossil's own rule alone, without the
    /// [`MAX_DELTA_CARD_BYTES`] cap: no leaf fetches the hub's baselines
    /// in hub landing, so the cap would only make the hub write the whole
    /// tree's list more often (a cost per commit that grows with the tree,
    /// where Fossil's rule keeps it near the square root of the tree).
    pub by_hub: bool,
}

/// Whether a delta of `delta` entries against a baseline of `base` files is
/// preferable to a new baseline (Fossil's `D*D < 3B-9`).
pub fn prefer_delta(delta: usize, base: usize) -> bool {
    let (d, b) = (delta as i128, base as i128);
    d * d < 3 * b - 9
}

/// Most bytes of F cards a delta manifest may carry (about 60 files with
/// SHA3 names); past this a new baseline is written. Below about 1,300 files
/// Fossil's own rule starts baselines first; the cap only bounds delta
/// manifests of large trees. Set lower, every writer pays for more
/// baselines (each lists the whole tree) and every leaf must fetch them.
pub const MAX_DELTA_CARD_BYTES: usize = 6 * 1024;

/// A baseline's F cards: every file of `list`, in name order.
pub(crate) fn baseline_cards(list: &FileList) -> Vec<FileCard> {
    list.iter()
        .map(|(name, (h, perm))| FileCard {
            name: name.clone(),
            hash: Some(h.clone()),
            perm: *perm,
            oldname: None,
        })
        .collect()
}

/// The bytes `cards` add to a manifest (see [`card_bytes`]).
fn cards_bytes(cards: &[FileCard]) -> usize {
    cards
        .iter()
        .map(|f| card_bytes(&f.name, f.hash.as_ref()))
        .sum()
}

/// The bytes an F card adds to a manifest: `F NAME HASH PERM\n`, counting
/// the permission field whether present or not (escaping is not counted).
fn card_bytes(name: &str, hash: Option<&ArtifactHash>) -> usize {
    2 + name.len() + hash.map_or(0, |h| 1 + h.as_str().len()) + 2 + 1
}

fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

impl Repository {
    /// Commits `spec` on top of its parent; see the module docs for the
    /// baseline rule. Atomic (savepoint); the new artifacts go into `unsent`.
    pub fn commit(&self, spec: &CheckinSpec) -> Result<Checkin, RepoError> {
        for c in &spec.changes {
            check_file_name(&c.path).map_err(|reason| RepoError::InvalidPath {
                path: c.path.clone(),
                reason,
            })?;
        }
        // The contents are kept for the R card, which reads every file of
        // the tree; a repository that writes none (a leaf) keeps none, or
        // its memory would grow to the cache's bound.
        let r_cards = !matches!(
            self.config_get("repo-cksum")?.as_deref(),
            Some("0") | Some("off")
        );
        self.savepoint(|| {
            let parent = self.list_view(&spec.parent)?;
            let rcvid = self.new_rcvid(&spec.user, None, None)?;
            let mut new_rids = Vec::new();
            let mut changes = Vec::with_capacity(spec.changes.len());
            for c in &spec.changes {
                let entry = match &c.content {
                    Some(bytes) => {
                        let s = self.store(bytes, None, Some(rcvid))?;
                        if r_cards {
                            self.file_cache
                                .borrow_mut()
                                .put(s.hash.clone(), Arc::from(bytes.as_slice()));
                        }
                        if s.is_new {
                            new_rids.push(s.rid);
                        }
                        let perm = parent.entry(&c.path).map_or(Perm::Regular, |(_, p)| p);
                        Some((s.hash, perm))
                    }
                    None => None,
                };
                changes.push((c.path.clone(), entry));
            }
            let meta = CheckinMeta {
                comment: &spec.comment,
                user: &spec.user,
                ms: unix_ms(spec.time),
                rcvid,
                by_hub: false,
            };
            self.commit_changes(&spec.parent, changes, &meta, &new_rids)
        })
    }

    /// Writes, stores and crosslinks a check-in that makes `changes` (path
    /// and new entry, `None` deleting) on top of `parent`. The file
    /// artifacts must already be stored. The delta against the parent's
    /// baseline is the parent's own delta cards with `changes` laid over
    /// them, so this costs O(changes) unless a new baseline is due.
    pub(crate) fn commit_changes(
        &self,
        parent: &ArtifactHash,
        changes: Vec<(String, Entry)>,
        meta: &CheckinMeta<'_>,
        new_rids: &[Rid],
    ) -> Result<Checkin, RepoError> {
        let (base_hash, pv) = self.based_view(parent)?;
        // A parent already over the cap was landed by the hub (Fossil's
        // rule alone): a check-in on it follows the same rule, since a
        // new baseline would be the whole tree for one task's files (a
        // sparse leaf joining a long trunk would push one per commit).
        let parent_over_cap = cards_bytes(&pv.delta) > MAX_DELTA_CARD_BYTES;
        let ListView {
            base,
            delta: mut cards,
            ..
        } = pv;
        // The parent's cards differ from the baseline already (that is how
        // they were written); only the changed files need looking up there.
        for (name, entry) in changes {
            let at = cards.binary_search_by(|f| f.name.as_str().cmp(&name));
            let card = FileCard {
                hash: entry.as_ref().map(|(h, _)| h.clone()),
                perm: entry.as_ref().map_or(Perm::Regular, |(_, p)| *p),
                oldname: None,
                name,
            };
            match (at, base.get(&card.name) == entry.as_ref()) {
                (Ok(i), true) => {
                    cards.remove(i);
                }
                (Ok(i), false) => cards[i] = card,
                (Err(i), false) => cards.insert(i, card),
                (Err(_), true) => {}
            }
        }
        for c in &mut cards {
            // A rename is told once, by the check-in that makes it.
            c.oldname = None;
        }
        let full = |cards: &[FileCard]| {
            let mut list = (*base).clone();
            for f in cards {
                match &f.hash {
                    Some(h) => list.insert(f.name.clone(), (h.clone(), f.perm)),
                    None => list.remove(&f.name),
                };
            }
            list
        };
        let mut list = None;
        let small = meta.by_hub || parent_over_cap || cards_bytes(&cards) <= MAX_DELTA_CARD_BYTES;
        let (baseline, files) = if small && prefer_delta(cards.len(), base.len()) {
            (Some(base_hash), cards)
        } else {
            self.baseline_cache.borrow_mut().make_room(base.len());
            (None, baseline_cards(list.insert(full(&cards))))
        };
        let repo_cksum = match self.config_get("repo-cksum")?.as_deref() {
            _ if meta.by_hub => None,
            Some("0") | Some("off") => None,
            _ => Some(self.r_card(list.get_or_insert_with(|| full(&files)))?),
        };
        let manifest = Manifest {
            baseline,
            comment: meta.comment.to_owned(),
            date: time::format_date(meta.ms),
            files,
            parents: vec![parent.clone()],
            repo_cksum,
            user: meta.user.to_owned(),
            ..Manifest::default()
        };
        let bytes: Arc<[u8]> = manifest.to_bytes().into();
        let stored = self.store_manifest(&bytes, meta.rcvid)?;
        if let (None, Some(list)) = (&manifest.baseline, list) {
            // A new baseline's list is in hand: crosslinking it (and the
            // next check-ins on it) need not build it again from the cards.
            let files = list.len();
            self.baseline_cache
                .borrow_mut()
                .put(stored.rid, Arc::new(list), files);
        }
        // The manifest in hand is what parsing its text gives back (files
        // in name order, the comment as given), so crosslink takes it as it
        // is: parsing again would cost a pass and an MD5 over the text, a
        // whole tree's worth for a baseline. An empty comment reads back as
        // Fossil's placeholder, so that case is parsed.
        let artifact = if manifest.comment.is_empty() {
            parse_artifact(&bytes)
        } else {
            Artifact::Checkin(Box::new(manifest))
        };
        debug_assert_eq!(artifact, parse_artifact(&bytes));
        self.crosslink_parsed(stored.rid, &artifact)?;
        let mut st = self
            .conn
            .prepare_cached("INSERT OR IGNORE INTO unsent(rid) VALUES(?1)")
            .ctx("marking unsent")?;
        for rid in new_rids.iter().chain(std::iter::once(&stored.rid)) {
            st.execute([rid.0]).ctx("marking unsent")?;
        }
        Ok(Checkin {
            rid: stored.rid,
            hash: stored.hash,
            manifest: bytes,
        })
    }

    /// The R card: MD5 over `name SP size LF content` of every file in order.
    pub(crate) fn r_card(&self, list: &FileList) -> Result<String, RepoError> {
        let mut md5 = Md5::new();
        for (name, (h, _)) in list {
            let cached = self.file_cache.borrow().get(h);
            let content = match cached {
                Some(c) => c,
                None => {
                    let c: Arc<[u8]> = self
                        .content(h)?
                        .ok_or_else(|| RepoError::MissingArtifact {
                            hash: h.to_string(),
                        })?
                        .into();
                    self.file_cache.borrow_mut().put(h.clone(), Arc::clone(&c));
                    c
                }
            };
            md5.update(name.as_bytes());
            md5.update(format!(" {}\n", content.len()).as_bytes());
            md5.update(&content);
        }
        Ok(hex::encode(md5.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::Crosslinked;

    fn repo(dir: &tempfile::TempDir) -> Repository {
        Repository::scratch(dir.path())
    }

    fn change(path: &str, content: Option<&str>) -> FileChange {
        FileChange {
            path: path.into(),
            content: content.map(|c| c.as_bytes().to_vec()),
        }
    }

    #[test]
    fn commits_chain_on_trunk_with_one_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let r = repo(&dir);
        let mut tip = r.trunk_tip().unwrap().unwrap();
        let root = tip.clone();
        for i in 0..20 {
            let spec = CheckinSpec {
                parent: tip.clone(),
                changes: vec![
                    change(&format!("d/f {i}.txt"), Some(&format!("content {i}\n"))),
                    change("d/f 0.txt", (i % 5 != 4).then_some("x")),
                ],
                comment: format!("commit {i}"),
                user: "alice".into(),
                time: SystemTime::now(),
            };
            let ci = r.commit(&spec).unwrap();
            assert_eq!(r.trunk_tip().unwrap().as_ref(), Some(&ci.hash));
            tip = ci.hash;
        }
        assert_eq!(r.trunk_commits().unwrap(), 21);
        assert_eq!(r.trunk_position().unwrap(), 20, "the root is position 0");
        assert_eq!(r.trunk_leaves().unwrap(), 1);
        assert_eq!(r.trunk_after(Some(&root)).unwrap().len(), 20);
        assert_eq!(r.trunk_after(None).unwrap().len(), 21);
        let list = r.file_list(&tip).unwrap();
        assert_eq!(list.len(), 19);
        assert!(
            !list.contains_key("d/f 0.txt"),
            "deleted in the last commit"
        );
        assert!(r.config_get("seen-delta-manifest").unwrap().is_some());
        // Crosslinking again changes nothing.
        let (rid, _) = r.rid_of(&tip).unwrap().unwrap();
        let before: i64 = r
            .conn
            .query_row("SELECT count(*) FROM mlink", [], |x| x.get(0))
            .unwrap();
        assert!(matches!(
            r.crosslink(rid).unwrap(),
            Crosslinked::Checkin { .. }
        ));
        let after: i64 = r
            .conn
            .query_row("SELECT count(*) FROM mlink", [], |x| x.get(0))
            .unwrap();
        assert_eq!(before, after);
        let arts = r.checkin_artifacts(&tip).unwrap();
        assert_eq!(arts.last(), Some(&tip));
    }

    #[test]
    fn rejects_bad_paths() {
        let dir = tempfile::tempdir().unwrap();
        let r = repo(&dir);
        let tip = r.trunk_tip().unwrap().unwrap();
        for bad in ["../x", "/abs", "a//b", "a\\b", "", "a/./b"] {
            let spec = CheckinSpec {
                parent: tip.clone(),
                changes: vec![change(bad, Some("x"))],
                comment: "c".into(),
                user: "u".into(),
                time: SystemTime::now(),
            };
            assert!(
                matches!(r.commit(&spec), Err(RepoError::InvalidPath { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn baseline_rule_matches_fossil() {
        assert!(!prefer_delta(3, 0));
        assert!(!prefer_delta(3, 6));
        assert!(prefer_delta(3, 7));
        assert!(prefer_delta(100, 3400));
        assert!(!prefer_delta(101, 3400));
    }
}

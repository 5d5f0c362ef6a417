//! Crosslinking: filling Fossil's derived tables (event, plink, leaf,
//! filename, mlink, tag/tagxref, orphan, phantoms) from a stored structural
//! artifact, as `manifest_crosslink` in Fossil's src/manifest.c does for
//! check-ins and clusters. Trunk queries live in `trunk.rs`.
//!
//! Every derived row is keyed so that crosslinking twice changes nothing.

use std::collections::VecDeque;
use std::sync::Arc;

use rusqlite::{params, OptionalExtension};

use super::error::{RepoError, SqlContext};
use super::hash::{ArtifactHash, Rid};
use super::manifest::{parse_artifact, Artifact, Manifest, Perm, TagKind};
use super::store::{now_ms, FileList, Repository};
use super::time;

/// Parsed baseline lists kept in memory.
const BASELINES_CACHED: usize = 4;
/// Parsed manifests kept by row (the tip, its baseline, a leaf's own).
const MANIFESTS_CACHED: usize = 4;
/// Manifests naming more files than this are not kept parsed.
const MANIFEST_CACHE_MAX_FILES: usize = 512;

/// Tag ids `fossil new` seeds.
const TAG_CLUSTER: i64 = 7;

/// (file name, old artifact, new artifact and permission); `None` = absent.
type MlinkRow = (String, Option<ArtifactHash>, Option<(ArtifactHash, Perm)>);

/// What [`Repository::crosslink`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Crosslinked {
    /// A check-in manifest, now in the timeline.
    Checkin {
        /// The manifest's name.
        hash: ArtifactHash,
        /// Its primary parent.
        parent: Option<ArtifactHash>,
    },
    /// A delta manifest whose baseline is not held yet; recorded in `orphan`
    /// and crosslinked when the baseline is.
    Orphan {
        /// The manifest's name.
        hash: ArtifactHash,
        /// The missing baseline.
        baseline: ArtifactHash,
    },
    /// A cluster; its members left `unclustered`.
    Cluster,
    /// Anything else (file content, control artifacts we do not index).
    NotStructural,
}

impl Repository {
    /// Fills the derived tables for the artifact in row `rid`. Atomic alone
    /// (a savepoint) and idempotent.
    pub fn crosslink(&self, rid: Rid) -> Result<Crosslinked, RepoError> {
        self.savepoint(|| self.crosslink_row(rid))
    }

    fn crosslink_row(&self, rid: Rid) -> Result<Crosslinked, RepoError> {
        let content = self.content_of(rid)?;
        self.crosslink_artifact(rid, &parse_artifact(&content))
    }

    /// [`crosslink`](Self::crosslink) for a caller that has just stored and
    /// parsed the artifact: `artifact` must be [`parse_artifact`] of row
    /// `rid`'s content. Saves reading a baseline back (inflating and
    /// parsing its whole file list) right after storing it.
    pub fn crosslink_parsed(
        &self,
        rid: Rid,
        artifact: &Artifact,
    ) -> Result<Crosslinked, RepoError> {
        let crosslinked = self.savepoint(|| self.crosslink_artifact(rid, artifact))?;
        // The next check-in is likely made on this one (the hub lands the
        // next push on it): keep it parsed rather than read it back.
        if let Artifact::Checkin(m) = artifact {
            if m.files.len() <= MANIFEST_CACHE_MAX_FILES {
                self.remember_manifest(rid, Arc::new((**m).clone()));
            }
        }
        Ok(crosslinked)
    }

    fn crosslink_artifact(&self, rid: Rid, artifact: &Artifact) -> Result<Crosslinked, RepoError> {
        match artifact {
            Artifact::Checkin(m) => {
                let hash = self
                    .hash_of(rid)?
                    .ok_or_else(|| RepoError::MissingArtifact {
                        hash: format!("rid {}", rid.0),
                    })?;
                self.crosslink_checkin(rid, hash, m)
            }
            Artifact::Cluster(members) => self.crosslink_cluster(rid, members),
            Artifact::Other => Ok(Crosslinked::NotStructural),
        }
    }

    /// The row of `hash`, creating a phantom if it is unknown.
    pub(crate) fn rid_or_phantom(&self, hash: &ArtifactHash) -> Result<Rid, RepoError> {
        match self.rid_of(hash)? {
            Some((rid, _)) => Ok(rid),
            None => self.store_phantom(hash),
        }
    }

    fn is_phantom(&self, rid: Rid) -> Result<bool, RepoError> {
        self.conn
            .prepare_cached("SELECT size<0 FROM blob WHERE rid=?1")
            .and_then(|mut st| st.query_row([rid.0], |r| r.get(0)))
            .ctx("checking for a phantom")
    }

    /// Whether row `rid` has been crosslinked as a check-in.
    fn has_event(&self, rid: Rid) -> Result<bool, RepoError> {
        self.conn
            .prepare_cached("SELECT 1 FROM event WHERE objid=?1")
            .and_then(|mut st| st.exists([rid.0]))
            .ctx("checking the event table")
    }

    fn crosslink_checkin(
        &self,
        rid: Rid,
        hash: ArtifactHash,
        m: &Manifest,
    ) -> Result<Crosslinked, RepoError> {
        let parent = m.parents.first().cloned();
        if self.has_event(rid)? {
            return Ok(Crosslinked::Checkin { hash, parent });
        }
        let base_rid = match &m.baseline {
            Some(b) => {
                let brid = self.rid_or_phantom(b)?;
                if self.is_phantom(brid)? {
                    self.exec(
                        "REPLACE INTO orphan(rid, baseline) VALUES(?1, ?2)",
                        [rid.0, brid.0],
                    )
                    .ctx("recording an orphan")?;
                    return Ok(Crosslinked::Orphan {
                        hash,
                        baseline: b.clone(),
                    });
                }
                Some(brid)
            }
            None => None,
        };
        let ms = m.unix_ms().ok_or_else(|| RepoError::BadManifest {
            hash: hash.clone(),
            source: super::error::ManifestError::MissingCard { card: 'D' },
        })?;
        let mtime = time::julian_of_ms(ms);

        let mut parent_rids = Vec::with_capacity(m.parents.len());
        for (i, p) in m.parents.iter().enumerate() {
            let prid = self.rid_or_phantom(p)?;
            self.exec(
                    "INSERT OR IGNORE INTO plink(pid, cid, isprim, mtime, baseid) VALUES(?1, ?2, ?3, ?4, ?5)",
                    params![prid.0, rid.0, i == 0, mtime, base_rid.map(|b| b.0)],
                )
                .ctx("inserting plink")?;
            parent_rids.push(prid);
        }
        // Every file a crosslinked parent names already has a row, and the
        // files this check-in changed get theirs with its mlink rows: only
        // a check-in without such a parent needs a pass over all its files
        // (a delta manifest names hundreds on a large tree).
        let parent_linked = match parent_rids.first() {
            Some(&p) => !self.is_phantom(p)? && self.has_event(p)?,
            None => false,
        };
        if self.file_phantoms.get() && !parent_linked {
            for f in &m.files {
                if let Some(h) = &f.hash {
                    self.rid_or_phantom(h)?;
                }
            }
        }
        self.insert_mlinks(rid, m, parent_rids.first().copied())?;
        if let Some(&p) = parent_rids.first() {
            self.deltify_parent(rid, &hash, m.baseline.is_some(), p)?;
        }
        self.exec(
                "REPLACE INTO event(type, mtime, objid, user, comment, omtime) VALUES('ci', ?1, ?2, ?3, ?4, ?1)",
                params![mtime, rid.0, m.user, m.comment],
            )
            .ctx("inserting the event")?;
        if let Some((v, n)) = self.checkin_count.get() {
            self.checkin_count.set(Some((v, n + 1)));
        }
        self.fill_child_mlinks(rid)?;
        self.apply_tags(rid, m, mtime, parent_rids.first().copied())?;
        self.leaf_check(rid)?;
        for p in &parent_rids {
            self.leaf_check(*p)?;
        }
        if m.baseline.is_some() && self.config_get("seen-delta-manifest")?.as_deref() != Some("1") {
            self.config_set("seen-delta-manifest", "1")?;
        }
        if m.baseline.is_none() {
            self.crosslink_orphans_of(rid)?;
        }
        Ok(Crosslinked::Checkin { hash, parent })
    }

    /// The first column of `sql` (one integer parameter) as a list of rids.
    fn rids(&self, sql: &str, param: i64, step: &'static str) -> Result<Vec<i64>, RepoError> {
        let mut st = self.conn.prepare_cached(sql).ctx(step)?;
        let rows = st.query_map([param], |r| r.get(0)).ctx(step)?;
        rows.collect::<Result<_, _>>().ctx(step)
    }

    fn crosslink_orphans_of(&self, baseline: Rid) -> Result<(), RepoError> {
        let waiting = self.rids(
            "SELECT rid FROM orphan WHERE baseline=?1",
            baseline.0,
            "listing orphans",
        )?;
        for o in waiting {
            self.exec("DELETE FROM orphan WHERE rid=?1", [o])
                .ctx("clearing an orphan")?;
            self.crosslink_row(Rid(o))?;
        }
        Ok(())
    }

    fn fnid(&self, name: &str) -> Result<i64, RepoError> {
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO filename(name) VALUES(?1)")
            .and_then(|mut st| st.execute([name]))
            .ctx("inserting a filename")?;
        self.conn
            .prepare_cached("SELECT fnid FROM filename WHERE name=?1")
            .and_then(|mut st| st.query_row([name], |r| r.get(0)))
            .ctx("looking up a filename")
    }

    /// The mlink rows of check-in `rid` against its primary parent, computed
    /// as Fossil's `add_mlink` does (src/manifest.c), so `fossil rebuild`
    /// derives the same rows:
    /// 1. each F card of the child itself is compared with the parent's entry
    ///    (a name-only card counts as "deleted");
    /// 2. if both are delta manifests, each F card of the parent the child
    ///    does not repeat is compared with the child's full entry, when the
    ///    child has one (Fossil records no row for a file added after the
    ///    baseline and deleted again, and neither do we);
    /// 3. if the child is a baseline, parent files it lacks are deletions.
    ///
    /// All three walk only F cards, so a trunk check-in costs O(delta).
    fn insert_mlinks(&self, rid: Rid, m: &Manifest, parent: Option<Rid>) -> Result<(), RepoError> {
        let parent_view = match parent {
            // A parent held but not crosslinked (an orphan waiting for its
            // baseline) has no file list yet either.
            Some(p) if !self.is_phantom(p)? && self.has_event(p)? => {
                let ph = self.hash_of(p)?.ok_or_else(|| RepoError::MissingArtifact {
                    hash: format!("rid {}", p.0),
                })?;
                let pm = self.manifest_of_rid(p, &ph)?;
                Some(self.view_of(p, &pm)?)
            }
            // Filled in when the parent is crosslinked (`fill_child_mlinks`).
            Some(_) => return Ok(()),
            None => None,
        };
        let child = self.view_of(rid, m)?;
        let pmid = parent.map_or(0, |p| p.0);
        // (name, old, new) triples; `None` hash = absent/deleted.
        let mut rows: Vec<MlinkRow> = Vec::new();
        let Some(pv) = parent_view else {
            for f in &m.files {
                if let Some(h) = &f.hash {
                    rows.push((f.name.clone(), None, Some((h.clone(), f.perm))));
                }
            }
            return self.write_mlinks(rid, pmid, rows);
        };
        for f in &m.files {
            let new = f.hash.clone().map(|h| (h, f.perm));
            match pv.lookup(&f.name) {
                None if new.is_some() => rows.push((f.name.clone(), None, new)),
                Some(old) if old != new => rows.push((f.name.clone(), old.map(|(h, _)| h), new)),
                _ => {}
            }
        }
        let child_is_delta = m.baseline.is_some();
        if child_is_delta && pv.is_delta {
            for pf in &pv.delta {
                if child.own(&pf.name).is_some() {
                    continue;
                }
                if let Some(Some(new)) = child.lookup(&pf.name) {
                    rows.push((pf.name.clone(), pf.hash.clone(), Some(new)));
                }
            }
        } else if !child_is_delta {
            for name in pv.names() {
                if let Some(Some((old, _))) = pv.lookup(&name) {
                    if child.lookup(&name).is_none() {
                        rows.push((name, Some(old), None));
                    }
                }
            }
        }
        self.write_mlinks(rid, pmid, rows)
    }

    fn write_mlinks(&self, rid: Rid, pmid: i64, rows: Vec<MlinkRow>) -> Result<(), RepoError> {
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT INTO mlink(mid, fid, pmid, pid, fnid, pfnid, mperm, isaux) VALUES(?1, ?2, ?3, ?4, ?5, 0, ?6, 0)",
            )
            .ctx("preparing mlink")?;
        for (name, old, new) in rows {
            let pid = match &old {
                Some(h) => self.rid_or_phantom(h)?.0,
                None => 0,
            };
            let (fid, mperm) = match &new {
                Some((h, perm)) => (self.rid_or_phantom(h)?.0, perm.mperm()),
                None => (0, 0),
            };
            st.execute(params![rid.0, fid, pmid, pid, self.fnid(&name)?, mperm])
                .ctx("inserting mlink")?;
            if pid != 0 && fid != 0 {
                self.deltify_file(Rid(pid), Rid(fid))?;
            }
        }
        Ok(())
    }

    /// Children crosslinked while `rid` was a phantom got no mlink rows; add them now.
    fn fill_child_mlinks(&self, rid: Rid) -> Result<(), RepoError> {
        let children: Vec<i64> = {
            let step = "listing children without mlinks";
            let mut st = self
                .conn
                .prepare_cached(
                    "SELECT cid FROM plink WHERE pid=?1 AND isprim=1 AND EXISTS (SELECT 1 FROM event WHERE objid=plink.cid) \
                     AND NOT EXISTS (SELECT 1 FROM mlink WHERE mid=plink.cid AND pmid=?1)",
                )
                .ctx(step)?;
            let rows = st.query_map([rid.0], |r| r.get(0)).ctx(step)?;
            rows.collect::<Result<_, _>>().ctx(step)?
        };
        for c in children {
            let ch = self
                .hash_of(Rid(c))?
                .ok_or_else(|| RepoError::MissingArtifact {
                    hash: format!("rid {c}"),
                })?;
            let cm = self.manifest_of_rid(Rid(c), &ch)?;
            self.insert_mlinks(Rid(c), &cm, Some(rid))?;
        }
        Ok(())
    }

    fn tag_id(&self, name: &str) -> Result<i64, RepoError> {
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO tag(tagname) VALUES(?1)")
            .and_then(|mut st| st.execute([name]))
            .ctx("inserting a tag")?;
        self.conn
            .prepare_cached("SELECT tagid FROM tag WHERE tagname=?1")
            .and_then(|mut st| st.query_row([name], |r| r.get(0)))
            .ctx("looking up a tag")
    }

    /// Own T cards, then the primary parent's propagating tags not overridden,
    /// then (for out-of-order arrival) push propagating tags to children.
    fn apply_tags(
        &self,
        rid: Rid,
        m: &Manifest,
        mtime: f64,
        parent: Option<Rid>,
    ) -> Result<(), RepoError> {
        let mut own = Vec::new();
        for t in &m.tags {
            let tagid = self.tag_id(&t.name)?;
            own.push(tagid);
            self.exec(
                    "REPLACE INTO tagxref(tagid, tagtype, srcid, origid, value, mtime, rid) VALUES(?1, ?2, ?3, ?3, ?4, ?5, ?3)",
                    params![tagid, t.kind.tagtype(), rid.0, t.value, mtime],
                )
                .ctx("inserting a tag reference")?;
            if t.kind == TagKind::Cancel {
                own.push(tagid);
            }
        }
        if let Some(p) = parent {
            self.inherit_tags(p, rid, &own)?;
        }
        let mut queue = VecDeque::from([rid]);
        let mut steps = 0usize;
        while let Some(from) = queue.pop_front() {
            steps += 1;
            if steps > 1_000_000 {
                break;
            }
            let children = self.rids(
                "SELECT cid FROM plink WHERE pid=?1 AND isprim=1 AND EXISTS (SELECT 1 FROM event WHERE objid=plink.cid)",
                from.0,
                "listing children",
            )?;
            for c in children {
                if self.inherit_tags(from, Rid(c), &[])? > 0 {
                    queue.push_back(Rid(c));
                }
            }
        }
        Ok(())
    }

    /// Copies `from`'s propagating tags to `to` where `to` has no own entry
    /// (srcid>0) and the tag is not in `skip`. Returns rows changed.
    fn inherit_tags(&self, from: Rid, to: Rid, skip: &[i64]) -> Result<usize, RepoError> {
        let rows: Vec<(i64, i64, Option<String>, f64)> = {
            let mut st = self
                .conn
                .prepare_cached(
                    "SELECT tagid, origid, value, mtime FROM tagxref WHERE rid=?1 AND tagtype=2",
                )
                .ctx("reading propagating tags")?;
            let rows = st
                .query_map([from.0], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .ctx("reading propagating tags")?;
            rows.collect::<Result<_, _>>()
                .ctx("reading propagating tags")?
        };
        let mut changed = 0;
        for (tagid, origid, value, mtime) in rows {
            if skip.contains(&tagid) {
                continue;
            }
            let own: Option<i64> = self
                .conn
                .prepare_cached("SELECT srcid FROM tagxref WHERE rid=?1 AND tagid=?2")
                .and_then(|mut st| st.query_row([to.0, tagid], |r| r.get(0)).optional())
                .ctx("reading a tag reference")?;
            if own.is_some_and(|s| s > 0) {
                continue;
            }
            changed += self
                .conn
                .prepare_cached(
                    "INSERT INTO tagxref(tagid, tagtype, srcid, origid, value, mtime, rid) VALUES(?1, 2, 0, ?2, ?3, ?4, ?5) \
                     ON CONFLICT(rid, tagid) DO UPDATE SET origid=excluded.origid, value=excluded.value, mtime=excluded.mtime \
                     WHERE origid IS NOT excluded.origid OR value IS NOT excluded.value",
                )
                .and_then(|mut st| st.execute(params![tagid, origid, value, mtime, to.0]))
                .ctx("propagating a tag")?;
        }
        Ok(changed)
    }

    /// Fossil's leaf rule: a check-in is a leaf if no child is on its branch.
    fn leaf_check(&self, rid: Rid) -> Result<(), RepoError> {
        let is_checkin: bool = self
            .conn
            .prepare_cached("SELECT count(*) FROM event WHERE objid=?1 AND type='ci'")
            .and_then(|mut st| st.query_row([rid.0], |r| r.get::<_, i64>(0)))
            .ctx("checking a check-in")?
            > 0;
        // EXISTS stops at the first child on the same branch: a check-in
        // with many children (a leaf's clone root, under every check-in it
        // made with hub landing) costs one probe, not one per child.
        let has_child: bool = self
            .conn
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM plink WHERE pid=?1 AND \
                 coalesce((SELECT value FROM tagxref WHERE tagid=8 AND rid=plink.cid),'trunk') = \
                 coalesce((SELECT value FROM tagxref WHERE tagid=8 AND rid=?1),'trunk'))",
            )
            .and_then(|mut st| st.query_row([rid.0], |r| r.get::<_, bool>(0)))
            .ctx("checking for children")?;
        let sql = if is_checkin && !has_child {
            "INSERT OR IGNORE INTO leaf(rid) VALUES(?1)"
        } else {
            "DELETE FROM leaf WHERE rid=?1"
        };
        self.conn
            .prepare_cached(sql)
            .and_then(|mut st| st.execute([rid.0]))
            .ctx("updating leaf")?;
        Ok(())
    }

    fn crosslink_cluster(
        &self,
        rid: Rid,
        members: &[ArtifactHash],
    ) -> Result<Crosslinked, RepoError> {
        let done: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM tagxref WHERE rid=?1 AND tagid=?2",
                [rid.0, TAG_CLUSTER],
                |r| r.get(0),
            )
            .ctx("checking a cluster")?;
        if done > 0 {
            return Ok(Crosslinked::Cluster);
        }
        for h in members {
            let m = self.rid_or_phantom(h)?;
            self.exec("DELETE FROM unclustered WHERE rid=?1", [m.0])
                .ctx("clustering")?;
        }
        self.exec(
                "INSERT OR IGNORE INTO tagxref(tagid, tagtype, srcid, origid, value, mtime, rid) VALUES(?1, 1, ?2, ?2, NULL, ?3, ?2)",
                params![TAG_CLUSTER, rid.0, time::julian_of_ms(now_ms())],
            )
            .ctx("tagging a cluster")?;
        Ok(Crosslinked::Cluster)
    }

    /// The full file list of the check-in in row `rid`; the last few
    /// baselines are cached (a leaf reads through its own and the hub's).
    pub(crate) fn list_of_rid(&self, rid: Rid) -> Result<Arc<FileList>, RepoError> {
        if let Some((_, list)) = self.baseline_cache.borrow().iter().find(|(r, _)| *r == rid) {
            return Ok(Arc::clone(list));
        }
        let hash = self
            .hash_of(rid)?
            .ok_or_else(|| RepoError::MissingArtifact {
                hash: format!("rid {}", rid.0),
            })?;
        let m = self.manifest_of_rid(rid, &hash)?;
        self.list_of_parsed(rid, &hash, &m)
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
                        source: super::error::ManifestError::BadCard {
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

//! Crosslinking a check-in manifest: its parent links (plink), its timeline
//! row (event), the leaf table, and delta manifests that wait in `orphan`
//! for their baseline. File changes and tags are steps of their own
//! (`mlink.rs`, `tags.rs`).

use rusqlite::params;

use super::artifact::Crosslinked;
use crate::repo::error::{ManifestError, RepoError, SqlContext};
use crate::repo::hash::{ArtifactHash, Rid};
use crate::repo::manifest::Manifest;
use crate::repo::store::Repository;
use crate::repo::time;

/// Where a check-in's baseline stands.
enum Baseline {
    /// The check-in is a baseline manifest itself.
    Own,
    /// A delta manifest whose baseline is held, in this row.
    Held(Rid),
    /// A delta manifest whose baseline is a phantom: recorded as an orphan.
    Missing(ArtifactHash),
}

impl Repository {
    pub(super) fn crosslink_checkin(
        &self,
        rid: Rid,
        hash: ArtifactHash,
        m: &Manifest,
    ) -> Result<Crosslinked, RepoError> {
        let parent = m.parents.first().cloned();
        if self.has_event(rid)? {
            return Ok(Crosslinked::Checkin { hash, parent });
        }
        let base_rid = match self.baseline_or_orphan(rid, m)? {
            Baseline::Own => None,
            Baseline::Held(b) => Some(b),
            Baseline::Missing(baseline) => return Ok(Crosslinked::Orphan { hash, baseline }),
        };
        let ms = m.unix_ms().ok_or_else(|| RepoError::BadManifest {
            hash: Box::new(hash.clone()),
            source: ManifestError::MissingCard { card: 'D' },
        })?;
        let mtime = time::julian_of_ms(ms);
        let parent_rids = self.insert_plinks(rid, m, mtime, base_rid)?;
        let primary = parent_rids.first().copied();
        self.phantom_files(m, primary)?;
        self.insert_mlinks(rid, m, primary)?;
        if let Some(p) = primary {
            self.deltify_parent(rid, &hash, m.baseline.is_some(), p)?;
        }
        self.insert_event(rid, m, mtime)?;
        self.fill_child_mlinks(rid)?;
        self.apply_tags(rid, m, mtime, primary)?;
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

    /// Finds the baseline of check-in `rid`, recording the check-in in
    /// `orphan` when the baseline is only a phantom.
    fn baseline_or_orphan(&self, rid: Rid, m: &Manifest) -> Result<Baseline, RepoError> {
        let Some(b) = &m.baseline else {
            return Ok(Baseline::Own);
        };
        let brid = self.rid_or_phantom(b)?;
        if self.is_phantom(brid)? {
            self.exec(
                "REPLACE INTO orphan(rid, baseline) VALUES(?1, ?2)",
                [rid.0, brid.0],
            )
            .ctx("recording an orphan")?;
            return Ok(Baseline::Missing(b.clone()));
        }
        Ok(Baseline::Held(brid))
    }

    /// One plink row per parent (the first is primary); returns the parents'
    /// rows, phantoms made for those not held.
    fn insert_plinks(
        &self,
        rid: Rid,
        m: &Manifest,
        mtime: f64,
        base_rid: Option<Rid>,
    ) -> Result<Vec<Rid>, RepoError> {
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
        Ok(parent_rids)
    }

    /// Makes a phantom for each file `m` names, where they may lack a row.
    fn phantom_files(&self, m: &Manifest, primary: Option<Rid>) -> Result<(), RepoError> {
        // Every file a crosslinked parent names already has a row, and the
        // files this check-in changed get theirs with its mlink rows: only
        // a check-in without such a parent needs a pass over all its files
        // (a delta manifest names hundreds on a large tree).
        let parent_linked = match primary {
            Some(p) => !self.is_phantom(p)? && self.has_event(p)?,
            None => false,
        };
        if self.file_phantoms.get() && !parent_linked {
            for f in &m.files {
                if let Some(h) = &f.hash {
                    self.rid_or_phantom(h)?;
                }
            }
        }
        Ok(())
    }

    /// The check-in's timeline row, counted in the kept check-in count.
    fn insert_event(&self, rid: Rid, m: &Manifest, mtime: f64) -> Result<(), RepoError> {
        self.exec(
                "REPLACE INTO event(type, mtime, objid, user, comment, omtime) VALUES('ci', ?1, ?2, ?3, ?4, ?1)",
                params![mtime, rid.0, m.user, m.comment],
            )
            .ctx("inserting the event")?;
        if let Some((v, n)) = self.checkin_count.get() {
            self.checkin_count.set(Some((v, n + 1)));
        }
        Ok(())
    }

    /// Crosslinks the delta manifests that waited for baseline `baseline`.
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
}

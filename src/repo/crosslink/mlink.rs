//! The mlink rows of a check-in: which files it added, changed or deleted
//! against its primary parent, computed as Fossil's `add_mlink` does
//! (src/manifest.c) so that `fossil rebuild` derives the same rows.

use rusqlite::params;

use crate::repo::error::{RepoError, SqlContext};
use crate::repo::hash::{ArtifactHash, Rid};
use crate::repo::manifest::{Manifest, Perm};
use crate::repo::store::{FileList, Repository};
use crate::repo::view::{delta_differences, ListView};

/// (file name, old artifact, new artifact and permission); `None` = absent.
type MlinkRow = (String, Option<ArtifactHash>, Option<(ArtifactHash, Perm)>);

impl Repository {
    /// Writes the mlink rows of check-in `rid` (manifest `m`) against its
    /// primary parent `parent`; see [`mlink_rows`]. A parent held but not
    /// crosslinked gets them later, from [`Self::fill_child_mlinks`].
    pub(super) fn insert_mlinks(
        &self,
        rid: Rid,
        m: &Manifest,
        parent: Option<Rid>,
    ) -> Result<(), RepoError> {
        let parent_view = match parent {
            // A parent held but not crosslinked (an orphan waiting for its
            // baseline) has no file list yet either.
            Some(p) if !self.is_phantom(p)? && self.has_event(p)? => {
                match self.cached_baseline(p) {
                    // A baseline parent's list is at hand: no read, no parse
                    // of the whole tree's manifest.
                    Some(base) => Some(ListView {
                        is_delta: false,
                        base,
                        delta: Vec::new(),
                    }),
                    None => {
                        let pm = self.manifest_of_rid(p, &self.row_hash(p)?)?;
                        if let (Some(b), true) = (&m.baseline, pm.baseline == m.baseline) {
                            // A trunk's usual case, two delta manifests on
                            // one baseline: one pass over their cards.
                            let base = self.list_of_rid(self.held_rid(b)?)?;
                            let rows = shared_base_rows(m, &pm, &base);
                            return self.write_mlinks(rid, p.0, rows);
                        }
                        Some(self.view_of(p, &pm)?)
                    }
                }
            }
            // Filled in when the parent is crosslinked (`fill_child_mlinks`).
            Some(_) => return Ok(()),
            None => None,
        };
        let child = self.view_of(rid, m)?;
        let pmid = parent.map_or(0, |p| p.0);
        self.write_mlinks(rid, pmid, mlink_rows(m, &child, parent_view.as_ref()))
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

    /// The filename row of `name`, made if new.
    fn fnid(&self, name: &str) -> Result<i64, RepoError> {
        self.name_id(
            "INSERT OR IGNORE INTO filename(name) VALUES(?1)",
            "SELECT fnid FROM filename WHERE name=?1",
            name,
            ["inserting a filename", "looking up a filename"],
        )
    }

    /// Children crosslinked while `rid` was a phantom got no mlink rows; add them now.
    pub(super) fn fill_child_mlinks(&self, rid: Rid) -> Result<(), RepoError> {
        let children = self.rids(
            "SELECT cid FROM plink WHERE pid=?1 AND isprim=1 AND EXISTS (SELECT 1 FROM event WHERE objid=plink.cid) \
             AND NOT EXISTS (SELECT 1 FROM mlink WHERE mid=plink.cid AND pmid=?1)",
            rid.0,
            "listing children without mlinks",
        )?;
        for c in children {
            let cm = self.manifest_of_rid(Rid(c), &self.row_hash(Rid(c))?)?;
            self.insert_mlinks(Rid(c), &cm, Some(rid))?;
        }
        Ok(())
    }
}

/// The mlink rows of a check-in (manifest `m`, file list `child`) against
/// its primary parent's list `parent`, as Fossil's `add_mlink` computes them:
/// 1. each F card of the child itself is compared with the parent's entry
///    (a name-only card counts as "deleted");
/// 2. if both are delta manifests, each F card of the parent the child
///    does not repeat is compared with the child's full entry, when the
///    child has one (Fossil records no row for a file added after the
///    baseline and deleted again, and neither do we);
/// 3. if the child is a baseline, parent files it lacks are deletions.
///
/// All three walk only F cards, so a trunk check-in costs O(delta). With no
/// parent, every file the child names is an addition.
/// [`mlink_rows`] for a child and parent that are delta manifests on the
/// same baseline list `base`: the files whose entries differ, except a
/// file only the parent lists that the child lacks altogether (as there).
fn shared_base_rows(child: &Manifest, parent: &Manifest, base: &FileList) -> Vec<MlinkRow> {
    let listed = |name: &str| {
        child
            .files
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .is_ok()
    };
    delta_differences(&child.files, &parent.files, base)
        .into_iter()
        .filter(|(name, new, _)| new.is_some() || listed(name))
        .map(|(name, new, old)| (name.to_owned(), old.map(|(h, _)| h), new))
        .collect()
}

fn mlink_rows(m: &Manifest, child: &ListView, parent: Option<&ListView>) -> Vec<MlinkRow> {
    // (name, old, new) triples; `None` hash = absent/deleted.
    let mut rows: Vec<MlinkRow> = Vec::new();
    let Some(pv) = parent else {
        for f in &m.files {
            if let Some(h) = &f.hash {
                rows.push((f.name.clone(), None, Some((h.clone(), f.perm))));
            }
        }
        return rows;
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
    rows
}

//! A check-in's tags in `tagxref`: its own T cards, the propagating tags it
//! inherits from its primary parent, and those it passes on to children
//! that arrived before it.

use std::collections::VecDeque;

use rusqlite::{params, OptionalExtension};

use crate::repo::error::{RepoError, SqlContext};
use crate::repo::hash::Rid;
use crate::repo::manifest::{Manifest, TagKind};
use crate::repo::store::Repository;

impl Repository {
    /// The tag row of `name`, made if new.
    fn tag_id(&self, name: &str) -> Result<i64, RepoError> {
        self.name_id(
            "INSERT OR IGNORE INTO tag(tagname) VALUES(?1)",
            "SELECT tagid FROM tag WHERE tagname=?1",
            name,
            ["inserting a tag", "looking up a tag"],
        )
    }

    /// Own T cards, then the primary parent's propagating tags not overridden,
    /// then (for out-of-order arrival) push propagating tags to children.
    pub(super) fn apply_tags(
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
        self.propagate_to_children(rid)
    }

    /// Passes propagating tags down from `rid` through children already
    /// crosslinked, breadth first, as far as anything changes.
    fn propagate_to_children(&self, rid: Rid) -> Result<(), RepoError> {
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
}

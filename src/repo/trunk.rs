//! Read-side queries over the derived tables: full file lists of check-ins,
//! the trunk tip and line, and what a peer needs to receive one check-in
//! (the sync fast path).

use rusqlite::OptionalExtension;

use super::error::{RepoError, SqlContext};
use super::hash::{ArtifactHash, Rid};
use super::store::{FileList, Repository};

/// Tag id of `branch` (seeded by `fossil new`).
const TAG_BRANCH: i64 = 8;

impl Repository {
    /// The full file list of check-in `hash`.
    pub fn file_list(&self, hash: &ArtifactHash) -> Result<FileList, RepoError> {
        Ok((*self.list_of_rid(self.held_rid(hash)?)?).clone())
    }

    /// The trunk check-in with no trunk child (the latest by time if several).
    pub fn trunk_tip(&self) -> Result<Option<ArtifactHash>, RepoError> {
        let text: Option<String> = self
            .conn
            .prepare_cached(
                // From the leaf table (one row on a linear trunk), not from
                // tagxref, which holds a row for every trunk check-in.
                "SELECT blob.uuid FROM leaf CROSS JOIN event ON event.objid=leaf.rid \
                 CROSS JOIN blob ON blob.rid=leaf.rid WHERE event.type='ci' AND EXISTS( \
                 SELECT 1 FROM tagxref WHERE tagxref.rid=leaf.rid AND tagxref.tagid=?1 \
                 AND tagxref.value='trunk') ORDER BY event.mtime DESC, leaf.rid DESC LIMIT 1",
            )
            .and_then(|mut st| st.query_row([TAG_BRANCH], |r| r.get(0)).optional())
            .ctx("finding the trunk tip")?;
        text.map(|t| ArtifactHash::parse(&t)).transpose()
    }

    /// Every leaf of trunk, newest first (the first is [`Self::trunk_tip`]):
    /// one on a linear trunk, more where a server took forks.
    pub fn trunk_leaf_list(&self) -> Result<Vec<ArtifactHash>, RepoError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT blob.uuid FROM leaf CROSS JOIN event ON event.objid=leaf.rid \
                 CROSS JOIN blob ON blob.rid=leaf.rid WHERE event.type='ci' AND EXISTS( \
                 SELECT 1 FROM tagxref WHERE tagxref.rid=leaf.rid AND tagxref.tagid=?1 \
                 AND tagxref.value='trunk') ORDER BY event.mtime DESC, leaf.rid DESC",
            )
            .ctx("listing trunk leaves")?;
        let names = st
            .query_map([TAG_BRANCH], |r| r.get::<_, String>(0))
            .ctx("listing trunk leaves")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("listing trunk leaves")?;
        names.iter().map(|t| ArtifactHash::parse(t)).collect()
    }

    /// Whether `hash` is a crosslinked check-in (has a `ci` event).
    pub fn is_checkin(&self, hash: &ArtifactHash) -> Result<bool, RepoError> {
        self.conn
            .prepare_cached(
                "SELECT 1 FROM event JOIN blob ON blob.rid=event.objid \
                 WHERE blob.uuid=?1 AND event.type='ci'",
            )
            .and_then(|mut st| st.exists([hash.as_str()]))
            .ctx("looking up a check-in")
    }

    /// Count of crosslinked check-ins (`event` rows of type `ci`), the root
    /// included: on a linear trunk, [`Repository::trunk_position`] + 1.
    pub fn trunk_commits(&self) -> Result<u64, RepoError> {
        // Counting scans the event table, once per reply on the fast path;
        // the count is kept instead, recounted only after another
        // connection (the hub's writer, for a reader) has committed.
        let version: i64 = self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .ctx("reading the data version")?;
        if let Some((v, n)) = self.checkin_count.get() {
            if v == version {
                return Ok(n);
            }
        }
        let n = self
            .query_row("SELECT count(*) FROM event WHERE type='ci'", [], |r| {
                r.get::<_, i64>(0)
            })
            .ctx("counting check-ins")? as u64;
        self.checkin_count.set(Some((version, n)));
        Ok(n)
    }

    /// The trunk tip's **trunk position**, the one way herd numbers trunk
    /// check-ins: the root (the initial empty check-in every repository
    /// starts with) is 0, the first check-in after it 1, and so on, so a
    /// trial's position is its count of landed commits. The sync pragmas'
    /// `SEQ`, `xfer::TrunkAdvance::seq`, broadcast tips' `seq`, the
    /// hub's `/stats` `trunk_commits` and a leaf's notion of where the hub
    /// stands all count this way. 0 too for a repository with no check-in.
    pub fn trunk_position(&self) -> Result<u64, RepoError> {
        Ok(self.trunk_commits()?.saturating_sub(1))
    }

    /// Count of leaves on trunk (1 on a linear history).
    pub fn trunk_leaves(&self) -> Result<u64, RepoError> {
        self.query_row(
                "SELECT count(*) FROM leaf JOIN tagxref ON tagxref.rid=leaf.rid AND tagxref.tagid=?1 AND tagxref.value='trunk'",
                [TAG_BRANCH],
                |r| r.get::<_, i64>(0),
            )
            .ctx("counting trunk leaves")
            .map(|n| n as u64)
    }

    /// Trunk check-ins after `tip` along primary parents, oldest first. With
    /// `None`, or a `tip` not on the trunk line, the whole line from the root.
    pub fn trunk_after(&self, tip: Option<&ArtifactHash>) -> Result<Vec<ArtifactHash>, RepoError> {
        let Some(head) = self.trunk_tip()? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut cur = self.rid_of(&head)?.map(|(r, _)| r);
        while let Some(rid) = cur {
            let Some(h) = self.hash_of(rid)? else { break };
            if Some(&h) == tip {
                break;
            }
            out.push(h);
            cur = self
                .conn
                .prepare_cached("SELECT pid FROM plink WHERE cid=?1 AND isprim=1")
                .and_then(|mut st| st.query_row([rid.0], |r| r.get(0)).optional())
                .ctx("walking primary parents")?
                .map(Rid);
        }
        out.reverse();
        Ok(out)
    }

    /// What a peer needs to receive check-in `hash`, dependencies first: the
    /// file artifacts it introduced (per mlink), its baseline if any, then the
    /// manifest itself.
    pub fn checkin_artifacts(&self, hash: &ArtifactHash) -> Result<Vec<ArtifactHash>, RepoError> {
        let (rid, _) = self
            .rid_of(hash)?
            .ok_or_else(|| RepoError::MissingArtifact {
                hash: hash.to_string(),
            })?;
        let mut out: Vec<ArtifactHash> = self
            .hashes_sql(
                "SELECT DISTINCT blob.uuid FROM mlink JOIN blob ON blob.rid=mlink.fid WHERE mlink.mid=?1 AND mlink.fid>0 ORDER BY blob.rid",
                rid,
            )?;
        out.extend(self.hashes_sql("SELECT blob.uuid FROM plink JOIN blob ON blob.rid=plink.baseid WHERE plink.cid=?1 AND plink.isprim=1", rid)?);
        out.push(hash.clone());
        Ok(out)
    }

    /// The baseline check-in `hash` (a crosslinked check-in) reads through,
    /// `None` for a baseline manifest or an unknown check-in.
    pub fn baseline_of(&self, hash: &ArtifactHash) -> Result<Option<ArtifactHash>, RepoError> {
        let Some((rid, _)) = self.rid_of(hash)? else {
            return Ok(None);
        };
        Ok(self
            .hashes_sql(
                "SELECT blob.uuid FROM plink JOIN blob ON blob.rid=plink.baseid \
                 WHERE plink.cid=?1 AND plink.isprim=1",
                rid,
            )?
            .pop())
    }

    fn hashes_sql(&self, sql: &str, rid: Rid) -> Result<Vec<ArtifactHash>, RepoError> {
        let step = "listing a check-in's artifacts";
        let mut st = self.conn.prepare_cached(sql).ctx(step)?;
        let rows: Vec<String> = st
            .query_map([rid.0], |r| r.get(0))
            .ctx(step)?
            .collect::<Result<_, _>>()
            .ctx(step)?;
        rows.iter().map(|t| ArtifactHash::parse(t)).collect()
    }
}

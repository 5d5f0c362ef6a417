//! The crosslinking entry points: read or take a parsed artifact, classify
//! it and hand it to the check-in or cluster step, atomically. Also the small
//! row checks (phantom, crosslinked, row names) every step uses.

use std::sync::Arc;

use crate::repo::error::{RepoError, SqlContext};
use crate::repo::hash::{ArtifactHash, Rid};
use crate::repo::manifest::{parse_artifact, Artifact};
use crate::repo::store::Repository;

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

    /// [`crosslink`](Self::crosslink) inside the caller's savepoint.
    pub(super) fn crosslink_row(&self, rid: Rid) -> Result<Crosslinked, RepoError> {
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
            if self.would_remember(m) {
                self.remember_manifest(rid, Arc::new((**m).clone()));
            }
        }
        Ok(crosslinked)
    }

    fn crosslink_artifact(&self, rid: Rid, artifact: &Artifact) -> Result<Crosslinked, RepoError> {
        match artifact {
            Artifact::Checkin(m) => self.crosslink_checkin(rid, self.row_hash(rid)?, m),
            Artifact::Cluster(members) => self.crosslink_cluster(rid, members),
            Artifact::Other => Ok(Crosslinked::NotStructural),
        }
    }

    /// The name of row `rid`, which must exist.
    pub(super) fn row_hash(&self, rid: Rid) -> Result<ArtifactHash, RepoError> {
        self.hash_of(rid)?
            .ok_or_else(|| RepoError::MissingArtifact {
                hash: format!("rid {}", rid.0),
            })
    }

    /// The row of `hash`, creating a phantom if it is unknown.
    pub(crate) fn rid_or_phantom(&self, hash: &ArtifactHash) -> Result<Rid, RepoError> {
        match self.rid_of(hash)? {
            Some((rid, _)) => Ok(rid),
            None => self.store_phantom(hash),
        }
    }

    pub(super) fn is_phantom(&self, rid: Rid) -> Result<bool, RepoError> {
        self.conn
            .prepare_cached("SELECT size<0 FROM blob WHERE rid=?1")
            .and_then(|mut st| st.query_row([rid.0], |r| r.get(0)))
            .ctx("checking for a phantom")
    }

    /// Whether row `rid` has been crosslinked as a check-in.
    pub(super) fn has_event(&self, rid: Rid) -> Result<bool, RepoError> {
        self.conn
            .prepare_cached("SELECT 1 FROM event WHERE objid=?1")
            .and_then(|mut st| st.exists([rid.0]))
            .ctx("checking the event table")
    }

    /// The id of `name` in a table of names (filename, tag): `insert` adds
    /// it if new, `select` reads its id; `steps` name the two for errors.
    pub(super) fn name_id(
        &self,
        insert: &str,
        select: &str,
        name: &str,
        steps: [&'static str; 2],
    ) -> Result<i64, RepoError> {
        self.conn
            .prepare_cached(insert)
            .and_then(|mut st| st.execute([name]))
            .ctx(steps[0])?;
        self.conn
            .prepare_cached(select)
            .and_then(|mut st| st.query_row([name], |r| r.get(0)))
            .ctx(steps[1])
    }

    /// The first column of `sql` (one integer parameter) as a list of rids.
    pub(super) fn rids(
        &self,
        sql: &str,
        param: i64,
        step: &'static str,
    ) -> Result<Vec<i64>, RepoError> {
        let mut st = self.conn.prepare_cached(sql).ctx(step)?;
        let rows = st.query_map([param], |r| r.get(0)).ctx(step)?;
        rows.collect::<Result<_, _>>().ctx(step)
    }
}

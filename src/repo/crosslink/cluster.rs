//! Crosslinking a cluster: its members leave `unclustered`, and the cluster
//! is tagged so that doing it again is a no-op. Parsing clusters is in
//! `manifest/cluster.rs`.

use rusqlite::params;

use super::artifact::Crosslinked;
use crate::repo::error::{RepoError, SqlContext};
use crate::repo::hash::{ArtifactHash, Rid};
use crate::repo::store::{now_ms, Repository};
use crate::repo::time;

/// Tag ids `fossil new` seeds.
const TAG_CLUSTER: i64 = 7;

impl Repository {
    pub(super) fn crosslink_cluster(
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
}

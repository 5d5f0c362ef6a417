//! Deltas whose source the repository does not hold ("dangling" deltas).
//!
//! A Fossil client may push an artifact as a delta against one it believes
//! it sent earlier: its parent check-in's manifest, an earlier version of a
//! file (xfer.c `send_delta_parent`). When that earlier push failed on the
//! server, the source is not there. Fossil's server keeps such a delta
//! against a phantom of its source and asks for the source with `gimme`
//! (xfer.c `xfer_accept_file`); the client sends it in its next round.
//!
//! Here the delta is kept the same way, against a phantom source, and the
//! artifact itself stays a phantom (`size` -1, a row in `phantom`) until
//! its source arrives, so every reader that skips phantoms (content,
//! clone paging, igots, `cfile`) never meets content it cannot rebuild.
//! [`Repository::dangling_on`] hands back the deltas waiting for a source
//! that just arrived; the caller applies them, checks their hashes and
//! stores them whole with [`Repository::store`], which clears the delta row.

use rusqlite::params;

use super::blob::compress;
use super::error::{RepoError, SqlContext};
use super::hash::ArtifactHash;
use super::store::Repository;

impl Repository {
    /// Keeps `delta` (the artifact `hash` as a delta against `source`,
    /// which is not held) until `source` arrives: `source` becomes a
    /// phantom, `hash` a phantom carrying the delta. Nothing when `hash`
    /// is already held.
    pub fn store_dangling(
        &self,
        hash: &ArtifactHash,
        source: &ArtifactHash,
        delta: &[u8],
        rcvid: Option<i64>,
    ) -> Result<(), RepoError> {
        if self.rid_of(hash)?.is_some_and(|(_, phantom)| !phantom) {
            return Ok(());
        }
        let src = self.store_phantom(source)?;
        let rid = self.store_phantom(hash)?;
        let stored = compress(delta);
        self.note_work(|w| {
            w.blobs_written += 1;
            w.bytes_written += stored.len() as u64;
        });
        self.exec(
            "UPDATE blob SET rcvid=?1, content=?2 WHERE rid=?3 AND size<0",
            params![rcvid.unwrap_or(0), stored, rid.0],
        )
        .ctx("keeping a delta against a phantom")?;
        self.exec(
            "REPLACE INTO delta(rid, srcid) VALUES(?1, ?2)",
            [rid.0, src.0],
        )
        .ctx("recording a phantom delta source")?;
        Ok(())
    }

    /// Whether any delta waits for its source (one probe of the small
    /// phantom table, so callers skip [`Repository::dangling_on`] when
    /// none does).
    pub fn has_dangling(&self) -> Result<bool, RepoError> {
        self.query_row(
            "SELECT EXISTS(SELECT 1 FROM phantom CROSS JOIN blob ON blob.rid=phantom.rid \
             WHERE blob.content IS NOT NULL)",
            [],
            |r| r.get(0),
        )
        .ctx("looking for deltas against phantoms")
    }

    /// The deltas waiting for `source`: (artifact, delta bytes).
    pub fn dangling_on(
        &self,
        source: &ArtifactHash,
    ) -> Result<Vec<(ArtifactHash, Vec<u8>)>, RepoError> {
        let step = "reading deltas against a phantom";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT b.uuid, b.content FROM delta d CROSS JOIN blob b ON b.rid=d.rid \
                 WHERE d.srcid=(SELECT rid FROM blob WHERE uuid=?1) \
                 AND b.size<0 AND b.content IS NOT NULL",
            )
            .ctx(step)?;
        let rows = st
            .query_map([source.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .ctx(step)?
            .collect::<Result<Vec<_>, _>>()
            .ctx(step)?;
        rows.into_iter()
            .map(|(uuid, stored)| {
                let delta =
                    super::blob::decompress(&stored).map_err(|reason| RepoError::CorruptBlob {
                        hash: uuid.clone(),
                        reason,
                    })?;
                Ok((ArtifactHash::parse(&uuid)?, delta))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_against_a_phantom_waits_and_leaves_no_trace_once_whole() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::scratch(dir.path());
        let source = b"line one\nline two\nline three\n".repeat(20);
        let mut target = source.clone();
        target.extend_from_slice(b"and one more\n");
        let (sh, th) = (
            ArtifactHash::sha3_of(&source),
            ArtifactHash::sha3_of(&target),
        );
        let delta = crate::delta::encode(&source, &target);

        assert!(!repo.has_dangling().unwrap());
        let held = repo.artifact_count().unwrap();
        repo.store_dangling(&th, &sh, &delta, None).unwrap();
        assert!(repo.has_dangling().unwrap());
        // Both are phantoms: asked for, never served.
        let phantoms = repo.phantoms().unwrap();
        assert!(
            phantoms.contains(&sh) && phantoms.contains(&th),
            "{phantoms:?}"
        );
        assert_eq!(repo.content(&th).unwrap(), None);
        assert_eq!(repo.artifact_count().unwrap(), held);

        repo.store(&source, Some(&sh), None).unwrap();
        let waiting = repo.dangling_on(&sh).unwrap();
        assert_eq!(waiting, vec![(th.clone(), delta)]);
        repo.store(&target, Some(&th), None).unwrap();
        assert!(!repo.has_dangling().unwrap());
        assert!(repo.phantoms().unwrap().is_empty());
        assert_eq!(repo.content(&th).unwrap(), Some(target));
    }
}

//! Rebasing: re-applying a check-in's changes (relative to its primary
//! parent) on top of another check-in, as a new check-in over the same file
//! artifacts. This is how a leaf whose push was refused catches up.

use super::checkin::{Checkin, CheckinMeta};
use super::error::{RebaseError, RepoError};
use super::hash::ArtifactHash;
use super::store::{now_ms, Repository};

impl Repository {
    /// Re-applies `checkin`'s changes onto `onto`. A file the check-in changed
    /// that also differs between its parent and `onto` is a
    /// [`RebaseError::Conflict`] (unless `onto` already has the same result).
    pub fn rebase(
        &self,
        checkin: &ArtifactHash,
        onto: &ArtifactHash,
    ) -> Result<Checkin, RebaseError> {
        let (rid, _) = self
            .rid_of(checkin)?
            .ok_or_else(|| RepoError::MissingArtifact {
                hash: checkin.to_string(),
            })?;
        let m = self.manifest_of_rid(rid, checkin)?;
        let parent = m
            .parents
            .first()
            .cloned()
            .ok_or_else(|| RebaseError::NoParent {
                hash: checkin.clone(),
            })?;
        let mine = self.file_list(checkin)?;
        let base = self.file_list(&parent)?;
        let mut target = self.file_list(onto)?;
        let changed: Vec<&String> = mine
            .keys()
            .chain(base.keys())
            .filter(|n| mine.get(*n) != base.get(*n))
            .collect();
        for name in changed {
            let (theirs, ours) = (target.get(name), mine.get(name));
            if theirs != base.get(name) && theirs != ours {
                return Err(RebaseError::Conflict { path: name.clone() });
            }
            match ours {
                Some(entry) => target.insert(name.clone(), entry.clone()),
                None => target.remove(name),
            };
        }
        let ms = now_ms().max(m.unix_ms().unwrap_or(0));
        self.savepoint(|| {
            let rcvid = self.new_rcvid(&m.user, None, None)?;
            let meta = CheckinMeta {
                comment: &m.comment,
                user: &m.user,
                ms,
                rcvid,
            };
            self.commit_list(onto, &target, &meta, &[])
                .map_err(RebaseError::from)
        })
    }
}

//! Rebasing: re-applying a check-in's changes (relative to its primary
//! parent) on top of another check-in, as a new check-in over the same file
//! artifacts. This is how a leaf whose push was refused catches up.

use std::collections::BTreeSet;

use super::checkin::{Checkin, CheckinMeta};
use super::error::RebaseError;
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
        let (_, m, mine) = self.checkin_view(checkin)?;
        let parent = m
            .parents
            .first()
            .cloned()
            .ok_or_else(|| RebaseError::NoParent {
                hash: checkin.clone(),
            })?;
        let (_, _, base) = self.checkin_view(&parent)?;
        let (_, _, target) = self.checkin_view(onto)?;
        // Where the check-in and its parent read through one baseline they
        // can differ only in their delta cards; otherwise compare all names.
        let candidates: BTreeSet<String> = if mine.shares_base(&base) {
            mine.delta
                .iter()
                .chain(&base.delta)
                .map(|f| f.name.clone())
                .collect()
        } else {
            mine.names().chain(base.names()).collect()
        };
        let mut changes = Vec::new();
        for name in candidates {
            let (ours, before) = (mine.entry(&name), base.entry(&name));
            if ours == before {
                continue;
            }
            let theirs = target.entry(&name);
            if theirs != before && theirs != ours {
                return Err(RebaseError::Conflict { path: name });
            }
            changes.push((name, ours));
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
            self.commit_changes(onto, changes, &meta, &[])
                .map_err(RebaseError::from)
        })
    }
}

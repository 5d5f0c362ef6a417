//! Re-applying a check-in's changes (relative to its primary parent) on top
//! of another check-in, as a new check-in over the same file artifacts.
//!
//! Two callers: a leaf whose push was refused rebases its own stored
//! check-in ([`Repository::rebase`]); the hub lands a pushed check-in that
//! it never stores on the trunk tip ([`Repository::land`]). Both read the
//! changes through views, so the cost follows the files the check-in
//! changed, not the size of the tree.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::checkin::{Checkin, CheckinMeta};
use super::error::{RebaseError, RepoError};
use super::hash::ArtifactHash;
use super::manifest::Manifest;
use super::store::{now_ms, Repository};
use super::view::{Entry, ListView};

/// The changes of a check-in (`mine`) against its parent (`base`), to be
/// laid onto `target`; `Err` lists every file changed both by the
/// check-in and between its parent and `target` to a different result.
fn changes_onto(
    mine: &ListView,
    base: &ListView,
    target: &ListView,
) -> Result<Vec<(String, Entry)>, Vec<String>> {
    // Where the check-in and its parent read through one baseline they
    // can differ only in their delta cards; otherwise compare all names.
    let candidates: BTreeSet<String> = if mine.shares_base(base) {
        mine.delta
            .iter()
            .chain(&base.delta)
            .map(|f| f.name.clone())
            .collect()
    } else {
        mine.names().chain(base.names()).collect()
    };
    let mut changes = Vec::new();
    let mut conflicts = Vec::new();
    for name in candidates {
        let (ours, before) = (mine.entry(&name), base.entry(&name));
        if ours == before {
            continue;
        }
        let theirs = target.entry(&name);
        if theirs != before && theirs != ours {
            conflicts.push(name);
        } else {
            changes.push((name, ours));
        }
    }
    if conflicts.is_empty() {
        Ok(changes)
    } else {
        Err(conflicts)
    }
}

/// How a hub landing ended without an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landing {
    /// The check-in was written anew on the tip.
    Landed(Checkin),
    /// Files the check-in changed were also changed on trunk since its
    /// parent (to a different result): nothing was written.
    Conflict {
        /// Every such file, sorted.
        paths: Vec<String>,
    },
}

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
        let changes =
            changes_onto(&mine, &base, &target).map_err(|paths| RebaseError::Conflict {
                path: paths.into_iter().next().unwrap_or_default(),
            })?;
        let ms = now_ms().max(m.unix_ms().unwrap_or(0));
        self.savepoint(|| {
            let rcvid = self.new_rcvid(&m.user, None, None)?;
            let meta = CheckinMeta {
                comment: &m.comment,
                user: &m.user,
                ms,
                rcvid,
                by_hub: false,
            };
            self.commit_changes(onto, changes, &meta, &[])
                .map_err(RebaseError::from)
        })
    }

    /// Lands `pushed`, a check-in manifest that is not stored here (named
    /// `hash`), on trunk tip `onto`: a new check-in with the same changes
    /// against its parent, comment and user, whose parent is `onto`, written
    /// as a delta against `onto`'s baseline (or a new baseline when one is
    /// due), dated no earlier than either. It carries no R card (a
    /// checksum over the whole tree; optional in the format). The files it
    /// names must be held; its parent must be a held check-in.
    pub fn land(
        &self,
        hash: &ArtifactHash,
        pushed: &Manifest,
        onto: &ArtifactHash,
        rcvid: i64,
    ) -> Result<Landing, RebaseError> {
        let parent = pushed
            .parents
            .first()
            .ok_or_else(|| RebaseError::NoParent { hash: hash.clone() })?;
        let mine = self.unstored_view(hash, pushed)?;
        let (_, _, base) = self.checkin_view(parent)?;
        let (_, tip, target) = self.checkin_view(onto)?;
        let changes = match changes_onto(&mine, &base, &target) {
            Ok(changes) => changes,
            Err(paths) => return Ok(Landing::Conflict { paths }),
        };
        let ms = pushed
            .unix_ms()
            .unwrap_or(0)
            .max(tip.unix_ms().unwrap_or(0));
        let meta = CheckinMeta {
            comment: &pushed.comment,
            user: &pushed.user,
            ms,
            rcvid,
            by_hub: true,
        };
        self.savepoint(|| self.commit_changes(onto, changes, &meta, &[]))
            .map(Landing::Landed)
            .map_err(RebaseError::from)
    }

    /// The view of a check-in manifest that is not stored (its baseline,
    /// if it names one, must be).
    fn unstored_view(&self, hash: &ArtifactHash, m: &Manifest) -> Result<ListView, RepoError> {
        Ok(match &m.baseline {
            Some(b) => ListView {
                is_delta: true,
                base: self.list_of_rid(self.held_rid(b)?)?,
                delta: m.files.clone(),
            },
            None => ListView {
                is_delta: false,
                base: Arc::new(self.full_list(hash, m)?),
                delta: Vec::new(),
            },
        })
    }
}

/// The table that remembers which pushed check-in each hub landing wrote,
/// so that a push repeated after a lost reply (the hub killed after its
/// COMMIT) is answered with the check-in it already landed instead of
/// landing twice. Fossil ignores tables it does not know.
const LANDINGS_TABLE: &str = "CREATE TABLE IF NOT EXISTS herd_landing(\
     pushed TEXT PRIMARY KEY, landed TEXT NOT NULL) WITHOUT ROWID";

impl Repository {
    /// The check-in the hub landed for pushed check-in `pushed`, if any (a
    /// repository that never landed one has no table yet: none).
    pub fn landed_as(&self, pushed: &ArtifactHash) -> Result<Option<ArtifactHash>, RepoError> {
        use super::error::SqlContext;
        let landed: Option<String> = match self
            .conn
            .prepare_cached("SELECT landed FROM herd_landing WHERE pushed=?1")
        {
            Ok(mut st) => st
                .query_row([pushed.as_str()], |r| r.get(0))
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
                .ctx("looking up a landing")?,
            Err(rusqlite::Error::SqliteFailure(_, Some(msg))) if msg.contains("no such table") => {
                None
            }
            Err(e) => return Err(e).ctx("looking up a landing"),
        };
        landed.map(|h| ArtifactHash::parse(&h)).transpose()
    }

    /// Records that pushed check-in `pushed` landed as `landed` (in the
    /// caller's transaction, with the landing itself).
    pub fn record_landing(
        &self,
        pushed: &ArtifactHash,
        landed: &ArtifactHash,
    ) -> Result<(), RepoError> {
        use super::error::SqlContext;
        self.exec(LANDINGS_TABLE, [])
            .ctx("creating the landings table")?;
        self.exec(
            "INSERT OR REPLACE INTO herd_landing(pushed, landed) VALUES(?1, ?2)",
            [pushed.as_str(), landed.as_str()],
        )
        .ctx("recording a landing")?;
        Ok(())
    }
}

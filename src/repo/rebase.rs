//! Re-applying a check-in's changes (relative to its primary parent) on top
//! of another check-in, as a new check-in over the same file artifacts.
//!
//! Two callers: a leaf whose push was refused rebases its own stored
//! check-in ([`Repository::rebase`]); the hub lands a pushed check-in that
//! it never stores on the trunk tip ([`Repository::land`]). Both read the
//! changes through views, so the cost follows the files the check-in
//! changed, not the size of the tree. A file changed both by the check-in
//! and on trunk since its parent is merged by lines (`merge`), as Mononoke
//! and GitHub merge server-side; only lines both sides changed refuse.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::checkin::{Checkin, CheckinMeta};
use super::error::{RebaseError, RepoError};
use super::hash::{ArtifactHash, Rid};
use super::manifest::{Manifest, Perm};
use super::merge::{merge3, Merge};
use super::store::{now_ms, Repository};
use super::view::{delta_differences, Entry, ListView};

/// A file changed both by a check-in and on trunk since its parent, to
/// different results, that no line merge could join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConflict {
    /// The file.
    pub path: String,
    /// Why it could not be merged.
    pub why: ConflictKind,
}

/// Why a file changed on both sides could not be merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictKind {
    /// Both sides changed these lines (or lines next to each other).
    Lines(Vec<super::merge::Conflict>),
    /// One side's content is binary, which is never merged.
    Binary,
    /// Added, removed or given another permission on a side: there is no
    /// line merge of that.
    Whole,
}

impl std::fmt::Display for FileConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.why {
            ConflictKind::Lines(lines) => {
                write!(f, "{} (", self.path)?;
                for (i, c) in lines.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "; " };
                    write!(f, "{sep}{c}")?;
                }
                f.write_str(")")
            }
            ConflictKind::Binary => write!(f, "{} (binary)", self.path),
            ConflictKind::Whole => write!(f, "{} (added, removed or re-permissioned)", self.path),
        }
    }
}

/// Every conflict, described in one line: `path (lines…); path (…)`.
pub fn describe(conflicts: &[FileConflict]) -> String {
    conflicts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The changes a check-in makes, laid onto another parent.
struct Laid {
    /// Files taken as the check-in has them (`None` removes).
    changes: Vec<(String, Entry)>,
    /// Files changed on both sides and merged by lines: their new text.
    merged: Vec<(String, Vec<u8>, Perm)>,
}

impl Repository {
    /// The changes of a check-in (`mine`) against its parent (`base`), to
    /// be laid onto `target`. A file the check-in changed that also changed
    /// between its parent and `target` (to a different result) is merged
    /// by lines, three ways (base: the parent's text, trunk: the target's,
    /// pushed: the check-in's); the inner `Err` lists every file that
    /// could not be merged. Nothing is written.
    fn changes_onto(
        &self,
        mine: &ListView,
        base: &ListView,
        target: &ListView,
    ) -> Result<Result<Laid, Vec<FileConflict>>, RepoError> {
        // Where the check-in and its parent read through one baseline they
        // can differ only in their delta cards; otherwise compare all names.
        let changed: Vec<(String, Entry, Entry)> = if mine.shares_base(base) {
            delta_differences(&mine.delta, &base.delta, &mine.base)
                .into_iter()
                .map(|(name, ours, before)| (name.to_owned(), ours, before))
                .collect()
        } else {
            let names: BTreeSet<String> = mine.names().chain(base.names()).collect();
            names
                .into_iter()
                .filter_map(|name| {
                    let (ours, before) = (mine.entry(&name), base.entry(&name));
                    (ours != before).then_some((name, ours, before))
                })
                .collect()
        };
        let mut laid = Laid {
            changes: Vec::new(),
            merged: Vec::new(),
        };
        let mut conflicts = Vec::new();
        for (name, ours, before) in changed {
            let theirs = target.entry(&name);
            if theirs == before || theirs == ours {
                laid.changes.push((name, ours));
                continue;
            }
            match self.merge_file(&before, &theirs, &ours)? {
                Ok((text, perm)) => laid.merged.push((name, text, perm)),
                Err(why) => conflicts.push(FileConflict { path: name, why }),
            }
        }
        Ok(if conflicts.is_empty() {
            Ok(laid)
        } else {
            Err(conflicts)
        })
    }

    /// The three-way line merge of one file's versions; `Err` says why
    /// there is none.
    fn merge_file(
        &self,
        base: &Entry,
        trunk: &Entry,
        pushed: &Entry,
    ) -> Result<Result<(Vec<u8>, Perm), ConflictKind>, RepoError> {
        let (Some((b, bp)), Some((t, tp)), Some((p, pp))) = (base, trunk, pushed) else {
            return Ok(Err(ConflictKind::Whole));
        };
        if tp != bp && pp != bp && tp != pp {
            return Ok(Err(ConflictKind::Whole));
        }
        let perm = if pp == bp { *tp } else { *pp };
        let [b, t, p] = [b, t, p].map(|h| {
            self.content(h)?.ok_or_else(|| RepoError::MissingArtifact {
                hash: h.to_string(),
            })
        });
        Ok(match merge3(&b?, &p?, &t?) {
            Merge::Clean(text) => Ok((text, perm)),
            Merge::Conflicts(lines) => Err(ConflictKind::Lines(lines)),
            Merge::Binary => Err(ConflictKind::Binary),
        })
    }

    /// Writes `laid` on `onto` as a new check-in: merged texts are stored
    /// first (and named among the new artifacts), then the check-in.
    /// Returns it and the merged texts' names.
    fn write_laid(
        &self,
        onto: &ArtifactHash,
        laid: Laid,
        meta: &CheckinMeta<'_>,
    ) -> Result<(Checkin, Vec<ArtifactHash>), RepoError> {
        let mut changes = laid.changes;
        let mut new_rids: Vec<Rid> = Vec::new();
        let mut merged = Vec::with_capacity(laid.merged.len());
        for (name, text, perm) in laid.merged {
            let stored = self.store(&text, None, Some(meta.rcvid))?;
            if stored.is_new {
                new_rids.push(stored.rid);
            }
            merged.push(stored.hash.clone());
            changes.push((name, Some((stored.hash, perm))));
        }
        let checkin = self.commit_changes(onto, changes, meta, &new_rids)?;
        Ok((checkin, merged))
    }
}

/// How a hub landing ended without an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landing {
    /// The check-in was written anew on the tip.
    Landed {
        /// The new check-in.
        checkin: Checkin,
        /// Files it merged by lines (changed on trunk too): their new
        /// texts' names, which the pusher lacks.
        merged: Vec<ArtifactHash>,
    },
    /// Files the check-in changed were also changed on trunk since its
    /// parent, and no line merge joins them: nothing was written.
    Conflict {
        /// Every such file, sorted by path.
        conflicts: Vec<FileConflict>,
    },
}

impl Repository {
    /// Re-applies `checkin`'s changes onto `onto`. A file the check-in
    /// changed that also differs between its parent and `onto` is merged
    /// by lines; one that cannot be is a [`RebaseError::Conflict`].
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
                hash: Box::new(checkin.clone()),
            })?;
        let base = self.list_view(&parent)?;
        let target = self.list_view(onto)?;
        let laid = self
            .changes_onto(&mine, &base, &target)?
            .map_err(|conflicts| RebaseError::Conflict { conflicts })?;
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
            self.write_laid(onto, laid, &meta)
                .map(|(checkin, _)| checkin)
                .map_err(RebaseError::from)
        })
    }

    /// Lands `pushed`, a check-in manifest that is not stored here (named
    /// `hash`), on trunk tip `onto`: a new check-in with the same changes
    /// against its parent (files changed on trunk too merged by lines),
    /// comment and user, whose parent is `onto`, written
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
            .ok_or_else(|| RebaseError::NoParent {
                hash: Box::new(hash.clone()),
            })?;
        let mine = self.unstored_view(hash, pushed)?;
        let base = self.list_view(parent)?;
        let target = self.list_view(onto)?;
        let laid = match self.changes_onto(&mine, &base, &target)? {
            Ok(laid) => laid,
            Err(conflicts) => return Ok(Landing::Conflict { conflicts }),
        };
        let ms = pushed.unix_ms().unwrap_or(0).max(self.checkin_ms(onto)?);
        let meta = CheckinMeta {
            comment: &pushed.comment,
            user: &pushed.user,
            ms,
            rcvid,
            by_hub: true,
        };
        self.savepoint(|| self.write_laid(onto, laid, &meta))
            .map(|(checkin, merged)| Landing::Landed { checkin, merged })
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

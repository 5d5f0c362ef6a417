//! A check-in's file list seen as its baseline's list (parsed once, shared)
//! plus the sorted F cards of its own delta manifest. Commit, rebase and
//! crosslink compare check-ins through views, so their cost follows the
//! files a check-in changed, not the size of the tree; only writing a new
//! baseline walks the whole list.

use std::sync::Arc;

use super::error::{RepoError, SqlContext};
use super::hash::{ArtifactHash, Rid};
use super::manifest::{FileCard, Manifest, Perm};
use super::store::{FileList, Repository};

/// One file's entry: its artifact and permission, `None` when absent.
pub(crate) type Entry = Option<(ArtifactHash, Perm)>;

/// A file list as a baseline plus the sorted F cards of a delta manifest.
pub(crate) struct ListView {
    /// Whether the manifest is a delta manifest (else `delta` is empty and
    /// `base` is its own full list).
    pub is_delta: bool,
    /// The baseline's full list.
    pub base: Arc<FileList>,
    /// The delta manifest's F cards, sorted by name.
    pub delta: Vec<FileCard>,
}

impl ListView {
    /// The manifest's own F card for `name` (delta manifests only).
    pub fn own(&self, name: &str) -> Option<&FileCard> {
        let i = self
            .delta
            .binary_search_by(|f| f.name.as_bytes().cmp(name.as_bytes()))
            .ok()?;
        Some(&self.delta[i])
    }

    /// The entry for `name`: `Some(None)` for a deletion card, `None` if unknown.
    #[allow(clippy::option_option)]
    pub fn lookup(&self, name: &str) -> Option<Entry> {
        match self.own(name) {
            Some(f) => Some(f.hash.clone().map(|h| (h, f.perm))),
            None => self.base.get(name).cloned().map(Some),
        }
    }

    /// The file `name` as this check-in has it.
    pub fn entry(&self, name: &str) -> Entry {
        self.lookup(name).flatten()
    }

    /// Every name the view mentions (baseline names, then delta names).
    pub fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.base
            .keys()
            .cloned()
            .chain(self.delta.iter().map(|f| f.name.clone()))
    }

    /// Whether `other` reads through the same baseline, so that the names
    /// where the two differ are among their delta cards.
    pub fn shares_base(&self, other: &ListView) -> bool {
        Arc::ptr_eq(&self.base, &other.base)
    }
}

/// A file two lists over one baseline name differently: its name, its
/// entry in the first list and in the second.
pub(crate) type Difference<'a> = (&'a str, Entry, Entry);

/// Where two delta manifests' cards (`a` and `b`, each sorted by name) over
/// the same baseline list `base` give a file different entries, in name
/// order. A name only one side lists has the baseline's entry on the other.
/// One pass over both card lists: the baseline is looked up only for names
/// one side alone lists, so the cost follows the cards, not the tree (two
/// neighbouring check-ins share all but a few).
pub(crate) fn delta_differences<'a>(
    a: &'a [FileCard],
    b: &'a [FileCard],
    base: &FileList,
) -> Vec<Difference<'a>> {
    let card = |f: &FileCard| f.hash.clone().map(|h| (h, f.perm));
    let based = |name: &str| base.get(name).cloned();
    let mut out = Vec::new();
    let (mut i, mut k) = (0, 0);
    loop {
        let (name, ea, eb) = match (a.get(i), b.get(k)) {
            (None, None) => break,
            (Some(x), Some(y)) if x.name == y.name => {
                (i, k) = (i + 1, k + 1);
                if x.hash == y.hash && x.perm == y.perm {
                    continue;
                }
                (x.name.as_str(), card(x), card(y))
            }
            (Some(x), Some(y)) if y.name < x.name => {
                k += 1;
                (y.name.as_str(), based(&y.name), card(y))
            }
            (Some(x), _) => {
                i += 1;
                (x.name.as_str(), card(x), based(&x.name))
            }
            (None, Some(y)) => {
                k += 1;
                (y.name.as_str(), based(&y.name), card(y))
            }
        };
        if ea != eb {
            out.push((name, ea, eb));
        }
    }
    out
}

impl Repository {
    /// A check-in's file list as its baseline's (shared, cached) plus its delta.
    pub(crate) fn view_of(&self, rid: Rid, m: &Manifest) -> Result<ListView, RepoError> {
        match &m.baseline {
            None => {
                let hash = self
                    .hash_of(rid)?
                    .ok_or_else(|| RepoError::MissingArtifact {
                        hash: format!("rid {}", rid.0),
                    })?;
                Ok(ListView {
                    is_delta: false,
                    base: self.list_of_parsed(rid, &hash, m)?,
                    delta: Vec::new(),
                })
            }
            Some(b) => {
                let brid = self.held_rid(b)?;
                Ok(ListView {
                    is_delta: true,
                    base: self.list_of_rid(brid)?,
                    delta: m.files.clone(),
                })
            }
        }
    }

    /// The row of `hash`, whose content must be held (not a phantom).
    pub(crate) fn held_rid(&self, hash: &ArtifactHash) -> Result<Rid, RepoError> {
        match self.rid_of(hash)? {
            Some((rid, false)) => Ok(rid),
            _ => Err(RepoError::MissingArtifact {
                hash: hash.to_string(),
            }),
        }
    }

    /// The view of check-in `hash` (held) and the name of the baseline it
    /// reads through (itself for a baseline). A baseline whose list is
    /// cached is neither read nor parsed again: on a long trunk it is the
    /// whole tree, and reading it back (through a chain of deltas) was a
    /// cost per landing that grew with the tree.
    pub(crate) fn based_view(
        &self,
        hash: &ArtifactHash,
    ) -> Result<(ArtifactHash, ListView), RepoError> {
        let rid = self.held_rid(hash)?;
        if let Some(base) = self.cached_baseline(rid) {
            let view = ListView {
                is_delta: false,
                base,
                delta: Vec::new(),
            };
            return Ok((hash.clone(), view));
        }
        let m = self.manifest_of_rid(rid, hash)?;
        let view = self.view_of(rid, &m)?;
        Ok((m.baseline.clone().unwrap_or_else(|| hash.clone()), view))
    }

    /// The time of check-in `hash` in Unix ms, as crosslinking recorded it
    /// (its `D` card), without reading its manifest; 0 if not crosslinked.
    pub(crate) fn checkin_ms(&self, hash: &ArtifactHash) -> Result<i64, RepoError> {
        use rusqlite::OptionalExtension;
        let julian: Option<f64> = self
            .query_row(
                "SELECT event.mtime FROM event JOIN blob ON blob.rid = event.objid \
                 WHERE blob.uuid = ?1 AND event.type = 'ci'",
                [hash.as_str()],
                |r| r.get(0),
            )
            .optional()
            .ctx("reading a check-in's time")?;
        Ok(julian.map_or(0, crate::repo::time::ms_of_julian))
    }

    /// The view of check-in `hash` (held), for a caller that needs no more.
    pub(crate) fn list_view(&self, hash: &ArtifactHash) -> Result<ListView, RepoError> {
        Ok(self.based_view(hash)?.1)
    }

    /// The row, manifest and view of check-in `hash`, which must be held.
    pub(crate) fn checkin_view(
        &self,
        hash: &ArtifactHash,
    ) -> Result<(Rid, Arc<Manifest>, ListView), RepoError> {
        let rid = self.held_rid(hash)?;
        let m = self.manifest_of_rid(rid, hash)?;
        let view = self.view_of(rid, &m)?;
        Ok((rid, m, view))
    }

    /// The content of file `path` in check-in `checkin` (held, with its
    /// files); `None` when the check-in has no such file.
    pub fn file_at(
        &self,
        checkin: &ArtifactHash,
        path: &str,
    ) -> Result<Option<Vec<u8>>, RepoError> {
        let view = self.list_view(checkin)?;
        let Some((hash, _)) = view.entry(path) else {
            return Ok(None);
        };
        self.content(&hash)?
            .map(Some)
            .ok_or_else(|| RepoError::MissingArtifact {
                hash: hash.to_string(),
            })
    }
}

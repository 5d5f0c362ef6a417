//! The plain values the repository layer takes and hands out: creation
//! options, file lists, and blobs as stored.

use std::collections::BTreeMap;

use crate::repo::hash::{ArtifactHash, Rid};
use crate::repo::manifest::Perm;

/// A full file list: name → (artifact, permission).
pub type FileList = BTreeMap<String, (ArtifactHash, Perm)>;

/// Options for [`Repository::create`](crate::repo::Repository::create).
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Optional `project-name` config value.
    pub project_name: Option<String>,
    /// Login of the setup user (uid 1, caps `s`), who makes the initial check-in.
    pub admin_user: String,
    /// Capabilities of the `nobody` user (what unauthenticated clients may do).
    pub nobody_caps: String,
}

/// The outcome of [`Repository::store`](crate::repo::Repository::store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The blob row.
    pub rid: Rid,
    /// The artifact's name.
    pub hash: ArtifactHash,
    /// False if the content was already held.
    pub is_new: bool,
}

/// A blob row as stored, for sending it verbatim in a `cfile` card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBlob {
    /// `blob.content`: 4-byte length + zlib, of the artifact or of a delta.
    pub stored: Vec<u8>,
    /// The delta source's name when `stored` is a delta.
    pub delta_source: Option<ArtifactHash>,
    /// Size of the full artifact.
    pub size: u64,
}

/// What a repository handle has read and written, counted rather than
/// timed, so a test can hold the cost of a landing to a bound on any
/// machine ([`Repository::work`](crate::repo::Repository::work)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// Rows inserted, updated or deleted (SQLite's count of changes).
    pub rows_changed: u64,
    /// SQLite virtual-machine steps in hundreds, rows read included; only
    /// after [`Repository::count_sql_steps`](crate::repo::Repository::count_sql_steps).
    pub sql_steps: u64,
    /// Blob rows whose content was written (stored, or re-stored as a delta).
    pub blobs_written: u64,
    /// Their content as stored (compressed).
    pub bytes_written: u64,
    /// Blob contents read back from storage and expanded.
    pub blobs_read: u64,
    /// Their bytes, expanded.
    pub bytes_read: u64,
    /// Bytes hashed to name what was stored.
    pub bytes_hashed: u64,
}

impl std::ops::Sub for Work {
    type Output = Work;
    fn sub(self, o: Work) -> Work {
        Work {
            rows_changed: self.rows_changed.saturating_sub(o.rows_changed),
            sql_steps: self.sql_steps.saturating_sub(o.sql_steps),
            blobs_written: self.blobs_written.saturating_sub(o.blobs_written),
            bytes_written: self.bytes_written.saturating_sub(o.bytes_written),
            blobs_read: self.blobs_read.saturating_sub(o.blobs_read),
            bytes_read: self.bytes_read.saturating_sub(o.bytes_read),
            bytes_hashed: self.bytes_hashed.saturating_sub(o.bytes_hashed),
        }
    }
}

/// A blob row as read: (uuid, size, content, delta source rid).
pub(crate) type StoredRow = (String, i64, Option<Vec<u8>>, Option<i64>);

#[cfg(test)]
impl CreateOptions {
    /// What unit tests create repositories with.
    pub(crate) fn for_tests() -> CreateOptions {
        CreateOptions {
            project_name: Some("t".into()),
            admin_user: "admin".into(),
            nobody_caps: "gio".into(),
        }
    }
}

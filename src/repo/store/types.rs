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

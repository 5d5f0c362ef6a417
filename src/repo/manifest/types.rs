//! The values a structural artifact parses into: a check-in [`Manifest`] with
//! its F and T cards, and the [`Artifact`] classification. Reading and writing
//! the bytes is in `parse.rs` and `write.rs`.

use crate::repo::hash::ArtifactHash;
use crate::repo::time;

/// File permission of an F card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Perm {
    /// An ordinary file.
    #[default]
    Regular,
    /// An executable file (`x`).
    Executable,
    /// A symbolic link (`l`).
    Symlink,
}

impl Perm {
    /// The `mlink.mperm` value Fossil stores: 0, 1 (x) or 2 (l).
    pub fn mperm(self) -> i64 {
        match self {
            Perm::Regular => 0,
            Perm::Executable => 1,
            Perm::Symlink => 2,
        }
    }
}

/// One `F` card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCard {
    /// Decoded relative path.
    pub name: String,
    /// The file's artifact; `None` only in a delta manifest, meaning "deleted".
    pub hash: Option<ArtifactHash>,
    /// Permission.
    pub perm: Perm,
    /// Previous name when the file was renamed.
    pub oldname: Option<String>,
}

/// The prefix of a `T` card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TagKind {
    /// `*`: propagates to descendants (tagtype 2).
    Propagating,
    /// `+`: applies to this check-in only (tagtype 1).
    Singleton,
    /// `-`: cancels a tag (tagtype 0).
    Cancel,
}

impl TagKind {
    /// The character a `T` card's tag name starts with.
    pub(super) fn prefix(self) -> char {
        match self {
            TagKind::Propagating => '*',
            TagKind::Singleton => '+',
            TagKind::Cancel => '-',
        }
    }

    /// The `tagxref.tagtype` Fossil stores.
    pub fn tagtype(self) -> i64 {
        match self {
            TagKind::Propagating => 2,
            TagKind::Singleton => 1,
            TagKind::Cancel => 0,
        }
    }
}

/// One `T` card of a check-in (target always `*`, the check-in itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCard {
    /// Prefix.
    pub kind: TagKind,
    /// Decoded tag name, e.g. `branch`, `sym-trunk`.
    pub name: String,
    /// Decoded value, if any.
    pub value: Option<String>,
}

/// A parsed check-in manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// `B`: the baseline of a delta manifest.
    pub baseline: Option<ArtifactHash>,
    /// `C`, decoded; written as `(no comment)` when empty.
    pub comment: String,
    /// `D`, as written (`YYYY-MM-DDTHH:MM:SS.SSS`).
    pub date: String,
    /// `F` cards, sorted by name.
    pub files: Vec<FileCard>,
    /// `N`: mimetype of the comment.
    pub mimetype: Option<String>,
    /// `P`: primary parent first, then merge parents.
    pub parents: Vec<ArtifactHash>,
    /// `Q` cards, kept verbatim (cherry-picks and backouts).
    pub cherrypicks: Vec<String>,
    /// `R`: MD5 over the full file list, if present.
    pub repo_cksum: Option<String>,
    /// `T` cards.
    pub tags: Vec<TagCard>,
    /// `U`, decoded; empty means anonymous.
    pub user: String,
}

impl Manifest {
    /// Unix milliseconds of the `D` card.
    pub fn unix_ms(&self) -> Option<i64> {
        time::parse_date(&self.date)
    }
}

/// What a blob is, structurally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Artifact {
    /// A check-in manifest.
    Checkin(Box<Manifest>),
    /// A cluster: the artifacts its `M` cards name.
    Cluster(Vec<ArtifactHash>),
    /// Anything else: file content, control artifacts, wiki, tickets.
    Other,
}

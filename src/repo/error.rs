//! Error types of the repository subsystem: [`RepoError`] for storage and
//! crosslinking, [`ManifestError`] for parsing artifacts, [`RebaseError`] for
//! re-applying a check-in onto a new parent.

use std::path::PathBuf;

use thiserror::Error;

use super::hash::ArtifactHash;

/// A failure of a repository operation; each variant names the step.
#[derive(Debug, Error)]
pub enum RepoError {
    /// `create` refuses to overwrite an existing file.
    #[error("repository file {path} already exists")]
    AlreadyExists {
        /// The path that exists.
        path: PathBuf,
    },
    /// A file-system step failed.
    #[error("{step} failed for {path}")]
    Io {
        /// What was being done.
        step: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An SQLite statement failed.
    #[error("sqlite failed while {step}")]
    Sql {
        /// What was being done.
        step: &'static str,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file opened is not a Fossil repository.
    #[error("{path} is not a fossil repository: {reason}")]
    NotARepository {
        /// The path opened.
        path: PathBuf,
        /// What is missing.
        reason: &'static str,
    },
    /// The repository has no `project-code` config row.
    #[error("repository {path} has no project-code")]
    MissingProjectCode {
        /// The path opened.
        path: PathBuf,
    },
    /// A string is not a full lowercase SHA1 or SHA3-256 hex name.
    #[error("invalid artifact hash {text:?}")]
    InvalidHash {
        /// The rejected text.
        text: String,
    },
    /// Content does not hash to the name it was sent or stored under.
    #[error("artifact content does not match its name {expected} (it hashes to {actual})")]
    HashMismatch {
        /// The name given (boxed, as the names below: an inline name
        /// would make every result of this layer as large).
        expected: Box<ArtifactHash>,
        /// The name the content really has.
        actual: Box<ArtifactHash>,
    },
    /// A stored blob cannot be read back as the artifact it claims to be.
    #[error("stored blob {hash} is corrupt: {reason}")]
    CorruptBlob {
        /// The artifact name of the row.
        hash: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An artifact the operation needs is not held (absent or a phantom).
    #[error("artifact {hash} is not held by the repository")]
    MissingArtifact {
        /// The missing artifact.
        hash: String,
    },
    /// An artifact that must be a check-in manifest does not parse as one.
    #[error("artifact {hash} is not a valid check-in manifest")]
    BadManifest {
        /// The artifact's name.
        hash: Box<ArtifactHash>,
        /// Why parsing failed.
        #[source]
        source: ManifestError,
    },
    /// A path in a check-in is not a valid relative Fossil file name.
    #[error("invalid file path {path:?}: {reason}")]
    InvalidPath {
        /// The rejected path.
        path: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A user row the operation needs does not exist.
    #[error("no user {login:?} in the repository")]
    NoSuchUser {
        /// The login looked up.
        login: String,
    },
}

/// Why bytes are not a valid structural artifact (manifest or cluster).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    /// The artifact is not UTF-8 text.
    #[error("artifact is not utf-8 text")]
    NotText,
    /// The last line is not terminated by a newline.
    #[error("artifact does not end with a newline")]
    NoFinalNewline,
    /// The `Z` card is missing or not the last card.
    #[error("artifact has no final Z card")]
    MissingZ,
    /// The `Z` card's MD5 differs from the content's.
    #[error("Z card checksum {declared} does not match the content's {computed}")]
    BadZ {
        /// The checksum written.
        declared: String,
        /// The checksum of the bytes before the Z card.
        computed: String,
    },
    /// A card is malformed.
    #[error("line {line}: {what}")]
    BadCard {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// Card letters decrease.
    #[error("line {line}: card {card:?} is out of order")]
    OutOfOrder {
        /// 1-based line number.
        line: usize,
        /// The offending card letter.
        card: char,
    },
    /// A card letter not allowed in this kind of artifact.
    #[error("line {line}: card {card:?} is not allowed in a check-in")]
    UnexpectedCard {
        /// 1-based line number.
        line: usize,
        /// The offending card letter.
        card: char,
    },
    /// A required card is absent.
    #[error("required {card} card is missing")]
    MissingCard {
        /// The missing card letter.
        card: char,
    },
}

/// Why a check-in could not be rebased onto a new parent.
#[derive(Debug, Error)]
pub enum RebaseError {
    /// Files changed in the check-in and between its parent and the
    /// target that no line merge joins.
    #[error("conflict: {}", super::rebase::describe(conflicts))]
    Conflict {
        /// Every such file, sorted by path.
        conflicts: Vec<super::rebase::FileConflict>,
    },
    /// The check-in has no parent to compute its changes against.
    #[error("check-in {hash} has no parent to rebase from")]
    NoParent {
        /// The check-in.
        hash: Box<ArtifactHash>,
    },
    /// A repository step failed.
    #[error("rebase failed in the repository")]
    Repo(#[from] RepoError),
}

/// Attaches a step name to rusqlite results.
pub(crate) trait SqlContext<T> {
    /// Maps the error to [`RepoError::Sql`] naming `step`.
    fn ctx(self, step: &'static str) -> Result<T, RepoError>;
}

impl<T> SqlContext<T> for Result<T, rusqlite::Error> {
    fn ctx(self, step: &'static str) -> Result<T, RepoError> {
        self.map_err(|source| RepoError::Sql { step, source })
    }
}

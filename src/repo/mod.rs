//! Fossil-format repositories written and read with rusqlite: the content
//! store, manifests and clusters, crosslinking into Fossil's derived tables,
//! check-ins with delta manifests, check-out and rebase. Knows no protocol;
//! `xfer` builds sync on top of these calls.
//!
//! Files: `schema` (the 2.21 SQL), `hash` (names and row ids), `store`
//! (create/open, transactions, config, users), `blob` (content store), `manifest` (bytes ↔ cards),
//! `deltify` (older versions stored as deltas of newer ones), `dangling` (pushed deltas whose source is a phantom), `crosslink` (derived tables), `trunk` (file lists,
//! trunk queries), `checkin`, `checkout`, `rebase`, `view` (file lists as baseline + delta),
//! `time` (D-card dates), `error`, `trunk_load` (a long one-file trunk landed
//! in one process, for the test and bench that count a landing's work).

mod blob;
mod checkin;
mod checkout;
mod crosslink;
mod dangling;
mod deltify;
pub mod encode;
mod error;
mod hash;
pub mod manifest;
pub mod merge;
mod rebase;
mod schema;
mod store;
pub mod time;
mod trunk;
pub mod trunk_load;
mod view;

pub use blob::{compress, decompress};
pub use checkin::{prefer_delta, Checkin, CheckinSpec, FileChange, MAX_DELTA_CARD_BYTES};
pub use crosslink::Crosslinked;
pub use deltify::MAX_CHAIN_LINKS;
pub use error::{ManifestError, RebaseError, RepoError};
pub use hash::{ArtifactHash, Rid};
pub use manifest::{
    parse_artifact, parse_named_artifact, Artifact, FileCard, Manifest, Perm, TagCard, TagKind,
};
pub use rebase::{describe as describe_conflicts, ConflictKind, FileConflict, Landing};
pub use store::{CreateOptions, FileList, RawBlob, Repository, Stored, Work};

//! Check-in manifests and clusters as bytes: a strict parser and an exact
//! writer of Fossil's card format (www/fileformat.wiki, src/manifest.c).
//!
//! No I/O here: the repository reads and stores the bytes, this module only
//! turns them into [`Manifest`] values and back. Cards are one per line,
//! letters never decrease, F and T cards are sorted, and the last line is
//! `Z <md5 of everything before it>`.
//!
//! Files: `types` (the parsed values), `text` (the Z card, card lines, file
//! names), `parse` (bytes to a [`Manifest`], one step per card), `write` (a
//! [`Manifest`] to bytes), `cluster` (artifacts of M cards).

mod cluster;
mod parse;
mod text;
mod types;
mod write;

pub use cluster::{build_cluster, parse_cluster};
pub use parse::{parse_artifact, parse_named_artifact};
pub use text::check_file_name;
pub use types::{Artifact, FileCard, Manifest, Perm, TagCard, TagKind};

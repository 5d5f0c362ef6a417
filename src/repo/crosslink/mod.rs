//! Crosslinking: filling Fossil's derived tables (event, plink, leaf,
//! filename, mlink, tag/tagxref, orphan, phantoms) from a stored structural
//! artifact, as `manifest_crosslink` in Fossil's src/manifest.c does for
//! check-ins and clusters. Trunk queries live in `trunk.rs`.
//!
//! Every derived row is keyed so that crosslinking twice changes nothing.
//!
//! Files: `artifact` (the entry points and the row checks the steps share),
//! `checkin` (plink, event, leaf, orphans), `mlink` (file changes), `tags`
//! (tagxref and propagation), `cluster`, `cache` (parsed manifests and full
//! file lists, kept for the next check-in).

mod artifact;
mod cache;
mod checkin;
mod cluster;
mod mlink;
mod tags;

pub use artifact::Crosslinked;
pub(crate) use cache::{CacheRole, RowLru};

//! The [`Repository`] handle: creating and opening the SQLite file,
//! transactions, config and users. The content store is in `blob.rs`.
//!
//! Crosslinking (the derived tables) lives in `crosslink/`; check-ins in
//! `checkin.rs`.
//!
//! Files: `types` (the values the store hands out), `handle` (the struct, its
//! caches and connection settings), `create` (create and open), `seed` (what
//! `fossil new` writes), `txn` (transactions and savepoints), `config`,
//! `users`.

mod config;
mod create;
mod handle;
mod seed;
mod txn;
mod types;
mod users;

pub(crate) use config::now_ms;
pub use handle::Repository;
pub(crate) use types::StoredRow;
pub use types::{CreateOptions, FileList, RawBlob, Stored, Work};

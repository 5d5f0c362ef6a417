//! The [`Repository`] struct: one SQLite connection and the caches kept
//! beside it, with the connection's settings and the statement helpers the
//! rest of the repository layer runs its SQL through.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::types::{FileList, Work};
use crate::repo::crosslink::{CacheRole, RowLru};
use crate::repo::deltify::{TextCache, MAX_CHAIN_LINKS};
use crate::repo::error::{RepoError, SqlContext};
use crate::repo::hash::ArtifactHash;
use crate::repo::manifest::Manifest;

/// One Fossil repository file, held through a single SQLite connection.
pub struct Repository {
    pub(crate) conn: Connection,
    path: PathBuf,
    /// Recently expanded baseline manifests' file lists (check-ins on a
    /// trunk share a baseline for many commits), so none is reparsed.
    pub(crate) baseline_cache: RefCell<RowLru<FileList>>,
    /// File contents by name for the R card, which hashes every file of the
    /// tree on each check-in; names are content addresses, so entries never
    /// go stale (even if the transaction that stored them rolls back).
    pub(crate) file_cache: RefCell<FileCache>,
    /// Recent manifest texts by name, the sources of delta-stored manifests
    /// (`deltify.rs`).
    pub(crate) text_cache: RefCell<TextCache>,
    /// Longest delta chain deltifying may make
    /// ([`MAX_CHAIN_LINKS`](crate::repo::MAX_CHAIN_LINKS) unless a test says).
    pub(crate) chain_bound: Cell<usize>,
    /// For rows whole or stored as deltas, the longest delta chain that
    /// reads through each (`deltify::chain_height`), measured or made by
    /// this connection, so deltifying the previous tip against the new one
    /// does not walk its chain again on every check-in.
    pub(crate) chain_heights: RefCell<HashMap<i64, usize>>,
    /// Whether crosslinking a check-in makes a phantom for every file it
    /// names (Fossil's way: a later sync fetches them). Off for a sparse
    /// copy, which never fetches other slots' files.
    pub(crate) file_phantoms: Cell<bool>,
    /// The number of check-ins and SQLite's `data_version` when it was
    /// counted: valid while no other connection has committed since (this
    /// connection's own crosslinks keep it up to date).
    pub(crate) checkin_count: Cell<Option<(i64, u64)>>,
    /// The last few check-in manifests parsed or received, by row: a leaf
    /// rebases onto the tip it has just stored, reading it right back.
    pub(crate) manifest_cache: RefCell<RowLru<Manifest>>,
    /// File texts received since the worktree was last updated, so the
    /// update writes them without reading and inflating them again; taken
    /// (emptied) by each update ([`Repository::update_checkout`]).
    pub(crate) received_texts: RefCell<ReceivedTexts>,
    /// Blobs and bytes read and written so far ([`Repository::work`]).
    pub(crate) work: Cell<Work>,
    /// SQLite's progress callbacks, one per 100 VM steps, once
    /// [`Repository::count_sql_steps`] has installed the callback.
    sql_ticks: Arc<AtomicU64>,
}

/// File texts by name and their total size (see
/// [`Repository::remember_received`]).
#[derive(Default)]
pub(crate) struct ReceivedTexts {
    pub(crate) texts: HashMap<ArtifactHash, Arc<[u8]>>,
    pub(crate) bytes: usize,
}

/// A byte-bounded map of artifact contents, emptied when full.
#[derive(Default)]
pub(crate) struct FileCache {
    map: HashMap<ArtifactHash, Arc<[u8]>>,
    bytes: usize,
}

impl FileCache {
    /// Budget before the cache starts over.
    const MAX_BYTES: usize = 64 << 20;

    pub(crate) fn get(&self, h: &ArtifactHash) -> Option<Arc<[u8]>> {
        self.map.get(h).cloned()
    }

    pub(crate) fn put(&mut self, h: ArtifactHash, content: Arc<[u8]>) {
        if self.bytes + content.len() > Self::MAX_BYTES {
            self.map.clear();
            self.bytes = 0;
        }
        self.bytes += content.len();
        if let Some(old) = self.map.insert(h, content) {
            self.bytes -= old.len();
        }
    }
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("path", &self.path)
            .finish()
    }
}

impl Repository {
    /// The connection settings every opened repository runs with.
    pub(super) fn configure(conn: &Connection) -> Result<(), RepoError> {
        conn.set_prepared_statement_cache_capacity(256);
        conn.busy_timeout(Duration::from_secs(10))
            .ctx("setting the busy timeout")?;
        // Fossil never enforces its REFERENCES clauses (srcid 0, phantom parents).
        conn.pragma_update(None, "foreign_keys", false)
            .ctx("disabling foreign keys")?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .ctx("enabling WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")
            .ctx("setting synchronous")?;
        Ok(())
    }

    /// What this handle has read and written since it was opened (SQL
    /// steps only after [`Repository::count_sql_steps`]).
    pub fn work(&self) -> Work {
        Work {
            rows_changed: self.conn.total_changes(),
            sql_steps: self.sql_ticks.load(Ordering::Relaxed),
            ..self.work.get()
        }
    }

    /// Counts SQLite's work in [`Work::sql_steps`] from now on (a callback
    /// every 100 virtual-machine steps; for tests and benchmarks).
    pub fn count_sql_steps(&self) {
        let ticks = Arc::clone(&self.sql_ticks);
        self.conn.progress_handler(
            100,
            Some(move || {
                ticks.fetch_add(1, Ordering::Relaxed);
                false
            }),
        );
    }

    /// Adds to the counts [`Repository::work`] reports.
    pub(crate) fn note_work(&self, add: impl FnOnce(&mut Work)) {
        let mut w = self.work.get();
        add(&mut w);
        self.work.set(w);
    }

    /// Bounds this connection's page cache to `kib` KiB (SQLite's default
    /// is 2 MiB per connection).
    pub fn limit_cache(&self, kib: u32) -> Result<(), RepoError> {
        self.conn
            .pragma_update(None, "cache_size", -i64::from(kib))
            .ctx("setting the cache size")
    }

    /// The handle over an open connection, caches empty.
    pub(super) fn over(conn: Connection, path: &Path) -> Repository {
        Repository {
            conn,
            path: path.to_owned(),
            baseline_cache: RefCell::new(RowLru::for_baselines(CacheRole::Leaf)),
            file_cache: RefCell::default(),
            text_cache: RefCell::default(),
            chain_bound: Cell::new(MAX_CHAIN_LINKS),
            chain_heights: RefCell::default(),
            file_phantoms: Cell::new(true),
            checkin_count: Cell::new(None),
            manifest_cache: RefCell::new(RowLru::for_manifests(CacheRole::Leaf)),
            received_texts: RefCell::default(),
            work: Cell::default(),
            sql_ticks: Arc::default(),
        }
    }

    /// Crosslinks check-ins without a phantom for each file they name, for
    /// a sparse copy (a leaf) that holds the trunk tip's manifest but never
    /// the other slots' files: a baseline names every file of the tree, and
    /// making a phantom row for each was most of what storing one cost.
    /// Files this copy stores itself, and those a check-in changes against
    /// a parent it holds (its mlink rows), are still recorded.
    pub fn skip_file_phantoms(&self) {
        self.file_phantoms.set(false);
    }

    /// Drops planner statistics of the tables a hub keeps growing. Figures
    /// taken while a table was nearly empty (older versions analyzed
    /// `tagxref` when creating a repository: two rows) make SQLite scan it
    /// whole for every check-in instead of using its index; without any,
    /// the planner uses the indexes. Best effort: a read-only file keeps
    /// its figures.
    pub fn drop_planner_stats(&self) {
        let _ = self.conn.execute_batch(
            "DELETE FROM sqlite_stat1 WHERE tbl IN ('tagxref','plink','mlink','event','blob')",
        );
    }

    /// Lets commits skip the fsync (SQLite `synchronous=NORMAL` in WAL mode):
    /// a commit still survives the process being killed, but not the
    /// machine losing power. For copies that can be fetched again (a
    /// leaf's clone); a hub keeps the default, every commit on disk.
    pub fn skip_fsync(&self) -> Result<(), RepoError> {
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .ctx("setting synchronous")
    }

    /// Runs one statement through the connection's statement cache: the
    /// hot paths (store, crosslink) run the same few statements per commit,
    /// and compiling them each time cost more than running them.
    pub(crate) fn exec<P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
    ) -> rusqlite::Result<usize> {
        self.conn.prepare_cached(sql)?.execute(params)
    }

    /// [`Repository::exec`] for a statement that returns one row.
    pub(crate) fn query_row<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.conn.prepare_cached(sql)?.query_row(params, f)
    }

    /// Whether a transaction is open on this repository's connection.
    pub fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    /// The file this handle works on.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{CreateOptions, Rid};

    #[test]
    fn repository_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Repository>();
    }

    // The store and read paths of `blob.rs`, through a whole handle.

    #[test]
    fn store_verifies_hashes_and_fills_phantoms() {
        let dir = tempfile::tempdir().unwrap();
        let repo =
            Repository::create(&dir.path().join("r.fossil"), &CreateOptions::for_tests()).unwrap();
        let data = b"some file content\n";
        let wrong = ArtifactHash::sha3_of(b"other");
        assert!(matches!(
            repo.store(data, Some(&wrong), None),
            Err(RepoError::HashMismatch { .. })
        ));
        let h = ArtifactHash::sha1_of(data);
        let ph = repo.store_phantom(&h).unwrap();
        assert_eq!(repo.rid_of(&h).unwrap(), Some((ph, true)));
        assert_eq!(repo.phantoms().unwrap(), vec![h.clone()]);
        let s = repo.store(data, Some(&h), None).unwrap();
        assert_eq!((s.rid, s.is_new), (ph, true));
        assert!(repo.phantoms().unwrap().is_empty());
        assert_eq!(repo.content(&h).unwrap().as_deref(), Some(&data[..]));
        assert!(!repo.store(data, Some(&h), None).unwrap().is_new);
    }

    #[test]
    fn garbage_zlib_is_a_corrupt_blob() {
        let dir = tempfile::tempdir().unwrap();
        let repo =
            Repository::create(&dir.path().join("r.fossil"), &CreateOptions::for_tests()).unwrap();
        let s = repo.store(b"hello world", None, None).unwrap();
        repo.conn
            .execute(
                "UPDATE blob SET content=x'0000000b00112233445566' WHERE rid=?1",
                [s.rid.0],
            )
            .unwrap();
        assert!(matches!(
            repo.content(&s.hash),
            Err(RepoError::CorruptBlob { .. })
        ));
    }

    #[test]
    fn blobs_from_pages_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let repo =
            Repository::create(&dir.path().join("r.fossil"), &CreateOptions::for_tests()).unwrap();
        for i in 0..10 {
            repo.store(format!("blob number {i}").as_bytes(), None, None)
                .unwrap();
        }
        let (mut seen, mut next) = (0, Some(Rid(1)));
        while let Some(start) = next {
            let (rids, n) = repo.blobs_from(start, 40).unwrap();
            assert!(!rids.is_empty() && rids.len() <= 2);
            seen += rids.len();
            next = n;
        }
        assert_eq!(seen as u64, repo.artifact_count().unwrap());
    }
}

//! The [`Repository`] handle: creating and opening the SQLite file,
//! transactions, config and users. The content store is in `blob.rs`.
//!
//! Crosslinking (the derived tables) lives in `crosslink.rs`; check-ins in
//! `checkin.rs`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rusqlite::{params, Connection, OptionalExtension};

use super::error::{RepoError, SqlContext};
use super::hash::{ArtifactHash, Rid};
use super::manifest::{Manifest, Perm};
use super::schema;

/// A full file list: name → (artifact, permission).
pub type FileList = BTreeMap<String, (ArtifactHash, Perm)>;

/// Options for [`Repository::create`].
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Optional `project-name` config value.
    pub project_name: Option<String>,
    /// Login of the setup user (uid 1, caps `s`), who makes the initial check-in.
    pub admin_user: String,
    /// Capabilities of the `nobody` user (what unauthenticated clients may do).
    pub nobody_caps: String,
}

/// The outcome of [`Repository::store`].
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

/// One Fossil repository file, held through a single SQLite connection.
pub struct Repository {
    pub(crate) conn: Connection,
    path: PathBuf,
    /// The most recently expanded baseline manifest's file list; check-ins on a
    /// trunk share a baseline for many commits, so this saves reparsing it.
    pub(crate) baseline_cache: RefCell<Vec<(Rid, Arc<FileList>)>>,
    /// File contents by name for the R card, which hashes every file of the
    /// tree on each check-in; names are content addresses, so entries never
    /// go stale (even if the transaction that stored them rolls back).
    pub(crate) file_cache: RefCell<FileCache>,
    /// Recent manifest texts by name, the sources of delta-stored manifests
    /// (`deltify.rs`).
    pub(crate) text_cache: RefCell<super::deltify::TextCache>,
    /// Longest delta chain deltifying may make
    /// ([`MAX_CHAIN_LINKS`](super::MAX_CHAIN_LINKS) unless a test says).
    pub(crate) chain_bound: std::cell::Cell<usize>,
    /// For rows whole or stored as deltas, the longest delta chain that
    /// reads through each (`deltify::chain_height`), measured or made by
    /// this connection, so deltifying the previous tip against the new one
    /// does not walk its chain again on every check-in.
    pub(crate) chain_heights: RefCell<std::collections::HashMap<i64, usize>>,
    /// Whether crosslinking a check-in makes a phantom for every file it
    /// names (Fossil's way: a later sync fetches them). Off for a sparse
    /// copy, which never fetches other slots' files.
    pub(crate) file_phantoms: std::cell::Cell<bool>,
    /// The number of check-ins and SQLite's `data_version` when it was
    /// counted: valid while no other connection has committed since (this
    /// connection's own crosslinks keep it up to date).
    pub(crate) checkin_count: std::cell::Cell<Option<(i64, u64)>>,
    /// The last few check-in manifests parsed or received, by row: a leaf
    /// rebases onto the tip it has just stored, reading it right back.
    pub(crate) manifest_cache: RefCell<Vec<(Rid, Arc<super::manifest::Manifest>)>>,
}

/// A byte-bounded map of artifact contents, emptied when full.
#[derive(Default)]
pub(crate) struct FileCache {
    map: std::collections::HashMap<ArtifactHash, Arc<[u8]>>,
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

/// Random lowercase hex of `n` bytes.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill(&mut bytes[..]);
    hex::encode(bytes)
}

/// Current Unix time in milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Repository {
    fn configure(conn: &Connection) -> Result<(), RepoError> {
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

    /// Bounds this connection's page cache to `kib` KiB (SQLite's default
    /// is 2 MiB per connection).
    pub fn limit_cache(&self, kib: u32) -> Result<(), RepoError> {
        self.conn
            .pragma_update(None, "cache_size", -i64::from(kib))
            .ctx("setting the cache size")
    }

    /// The handle over an open connection, caches empty.
    fn over(conn: Connection, path: &Path) -> Repository {
        Repository {
            conn,
            path: path.to_owned(),
            baseline_cache: RefCell::default(),
            file_cache: RefCell::default(),
            text_cache: RefCell::default(),
            chain_bound: std::cell::Cell::new(super::deltify::MAX_CHAIN_LINKS),
            chain_heights: RefCell::default(),
            file_phantoms: std::cell::Cell::new(true),
            checkin_count: std::cell::Cell::new(None),
            manifest_cache: RefCell::default(),
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

    /// Creates a new repository at `path`, as `fossil new` does: full schema,
    /// seeded rows and the initial empty check-in. Built in a temporary file
    /// beside `path` and renamed into place, so a failure leaves nothing.
    pub fn create(path: &Path, opts: &CreateOptions) -> Result<Repository, RepoError> {
        Repository::create_inner(path, opts, None)
    }

    /// Creates the empty repository a clone of project `project_code` fills:
    /// the same schema and seed rows, that project code, and no check-in at
    /// all (the server's initial check-in arrives with the clone; a local
    /// one would be a second root).
    pub fn create_for_clone(path: &Path, project_code: &str) -> Result<Repository, RepoError> {
        let opts = CreateOptions {
            project_name: None,
            admin_user: "admin".to_string(),
            nobody_caps: String::new(),
        };
        Repository::create_inner(path, &opts, Some(project_code))
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

    fn create_inner(
        path: &Path,
        opts: &CreateOptions,
        clone_of: Option<&str>,
    ) -> Result<Repository, RepoError> {
        if path.exists() {
            return Err(RepoError::AlreadyExists {
                path: path.to_owned(),
            });
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let io = |step| {
            move |source| RepoError::Io {
                step,
                path: path.to_owned(),
                source,
            }
        };
        let tmp = tempfile::Builder::new()
            .prefix(".herd-new-")
            .suffix(".fossil")
            .tempfile_in(dir)
            .map_err(io("creating a temporary repository file"))?;
        {
            let conn = Connection::open(tmp.path()).ctx("opening the new repository")?;
            conn.pragma_update(None, "page_size", 4096)
                .ctx("setting the page size")?;
            conn.pragma_update(None, "foreign_keys", false)
                .ctx("disabling foreign keys")?;
            conn.pragma_update(None, "application_id", schema::APPLICATION_ID)
                .ctx("setting the application id")?;
            let repo = Repository::over(conn, tmp.path());
            repo.transaction(|r| r.seed(opts, clone_of))?;
            repo.conn.close().map_err(|(_, source)| RepoError::Sql {
                step: "closing the new repository",
                source,
            })?;
        }
        tmp.persist_noclobber(path).map_err(|e| RepoError::Io {
            step: "moving the new repository into place",
            path: path.to_owned(),
            source: e.error,
        })?;
        Repository::open(path)
    }

    /// Writes schema, seed rows and (unless this is a clone of `clone_of`)
    /// the initial check-in into an empty database.
    fn seed(&self, opts: &CreateOptions, clone_of: Option<&str>) -> Result<(), RepoError> {
        let c = &self.conn;
        c.execute_batch(schema::CONTENT_SCHEMA)
            .ctx("creating the content schema")?;
        c.execute_batch(schema::DERIVED_SCHEMA)
            .ctx("creating the derived schema")?;
        c.execute(
            "INSERT INTO reportfmt(rn, owner, title, mtime, cols, sqlcode) VALUES(1, NULL, ?1, 2440587.5, ?2, ?3)",
            params![schema::REPORT_TITLE, schema::REPORT_COLS, schema::REPORT_SQL],
        )
        .ctx("seeding the ticket report")?;
        let now = now_ms() / 1000;
        let mut config = vec![
            ("hash-policy", "2".to_owned()),
            ("content-schema", "2".to_owned()),
            ("aux-schema", schema::AUX_SCHEMA.to_owned()),
            ("rebuilt", schema::REBUILT.to_owned()),
            ("admin-log", "1".to_owned()),
            ("access-log", "1".to_owned()),
            ("server-code", random_hex(20)),
            (
                "project-code",
                clone_of.map_or_else(|| random_hex(20), str::to_owned),
            ),
            ("autosync", "1".to_owned()),
            ("localauth", "0".to_owned()),
            ("timeline-plaintext", "1".to_owned()),
        ];
        if let Some(name) = &opts.project_name {
            config.push(("project-name", name.clone()));
        }
        for (name, value) in config {
            c.execute(
                "INSERT INTO config(name, value, mtime) VALUES(?1, ?2, ?3)",
                params![name, value, now],
            )
            .ctx("seeding config")?;
        }
        let users = [
            (1, opts.admin_user.as_str(), random_hex(5), "s", ""),
            (2, "anonymous", random_hex(8).to_uppercase(), "hmnc", "Anon"),
            (
                3,
                "nobody",
                String::new(),
                opts.nobody_caps.as_str(),
                "Nobody",
            ),
            (4, "developer", String::new(), "ei", "Dev"),
            (5, "reader", String::new(), "kptw", "Reader"),
        ];
        for (uid, login, pw, cap, info) in users {
            c.execute(
                "INSERT INTO user(uid, login, pw, cap, info, mtime) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                params![uid, login, pw, cap, info, now],
            )
            .ctx("seeding users")?;
        }
        if clone_of.is_some() {
            return Ok(());
        }
        let rcvid = self.new_rcvid(&opts.admin_user, None, None)?;
        let manifest = Manifest {
            comment: "initial empty check-in".into(),
            date: super::time::format_date(now_ms()),
            repo_cksum: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
            tags: vec![
                super::manifest::TagCard {
                    kind: super::manifest::TagKind::Propagating,
                    name: "branch".into(),
                    value: Some("trunk".into()),
                },
                super::manifest::TagCard {
                    kind: super::manifest::TagKind::Propagating,
                    name: "sym-trunk".into(),
                    value: None,
                },
            ],
            user: opts.admin_user.clone(),
            ..Manifest::default()
        };
        let stored = self.store(&manifest.to_bytes(), None, Some(rcvid))?;
        self.crosslink(stored.rid)?;
        Ok(())
    }

    /// Opens an existing repository (ours or one made by `fossil new`).
    pub fn open(path: &Path) -> Result<Repository, RepoError> {
        if !path.is_file() {
            return Err(RepoError::NotARepository {
                path: path.to_owned(),
                reason: "no such file",
            });
        }
        let conn = Connection::open(path).ctx("opening the repository")?;
        let not_repo = |reason| RepoError::NotARepository {
            path: path.to_owned(),
            reason,
        };
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type='table' AND name IN \
                 ('blob','delta','rcvfrom','user','config','mlink','plink','event','tagxref')",
                [],
                |r| r.get(0),
            )
            .map_err(|_| not_repo("not an sqlite database"))?;
        if tables != 9 {
            return Err(not_repo("fossil tables are missing"));
        }
        Self::configure(&conn)?;
        let repo = Repository::over(conn, path);
        match repo.config_get("project-code")? {
            Some(code) if !code.is_empty() => Ok(repo),
            _ => Err(RepoError::MissingProjectCode {
                path: path.to_owned(),
            }),
        }
    }

    /// The file this handle works on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The repository's `project-code`.
    pub fn project_code(&self) -> Result<String, RepoError> {
        self.config_get("project-code")?
            .ok_or_else(|| RepoError::MissingProjectCode {
                path: self.path.clone(),
            })
    }

    /// The repository's `server-code` (empty if missing).
    pub fn server_code(&self) -> Result<String, RepoError> {
        Ok(self.config_get("server-code")?.unwrap_or_default())
    }

    /// One config value.
    pub fn config_get(&self, name: &str) -> Result<Option<String>, RepoError> {
        self.query_row(
            "SELECT CAST(value AS TEXT) FROM config WHERE name=?1",
            [name],
            |r| r.get(0),
        )
        .optional()
        .ctx("reading config")
        .map(Option::flatten)
    }

    /// Sets one config value (mtime = now, Unix seconds).
    pub fn config_set(&self, name: &str, value: &str) -> Result<(), RepoError> {
        self.exec(
            "REPLACE INTO config(name, value, mtime) VALUES(?1, ?2, ?3)",
            params![name, value, now_ms() / 1000],
        )
        .ctx("writing config")?;
        Ok(())
    }

    /// Runs `f` in `BEGIN IMMEDIATE … COMMIT`, rolling back if it fails.
    pub fn transaction<T, E: From<RepoError>>(
        &self,
        f: impl FnOnce(&Repository) -> Result<T, E>,
    ) -> Result<T, E> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .ctx("beginning a transaction")?;
        match f(self) {
            Ok(v) => {
                if let Err(source) = self.conn.execute_batch("COMMIT") {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    self.forget_derived();
                    return Err(RepoError::Sql {
                        step: "committing a transaction",
                        source,
                    }
                    .into());
                }
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.forget_derived();
                Err(e)
            }
        }
    }

    /// Drops what was derived from rows a rollback may have removed.
    fn forget_derived(&self) {
        self.baseline_cache.borrow_mut().clear();
        self.checkin_count.set(None);
        self.manifest_cache.borrow_mut().clear();
        // Rows rolled back may be numbered again for other content, and
        // deltas made in the transaction are gone.
        self.chain_heights.borrow_mut().clear();
    }

    /// Runs `f` inside a savepoint, so it is atomic alone and nests inside a
    /// caller's transaction.
    pub(crate) fn savepoint<T, E: From<RepoError>>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        if self.conn.is_autocommit() {
            // Alone, take the write lock up front: a deferred transaction that
            // reads first cannot be upgraded once another writer commits (WAL).
            return self.transaction(|_| f());
        }
        self.conn
            .execute_batch("SAVEPOINT herd_sp")
            .ctx("opening a savepoint")?;
        match f() {
            Ok(v) => {
                self.conn
                    .execute_batch("RELEASE herd_sp")
                    .ctx("releasing a savepoint")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self
                    .conn
                    .execute_batch("ROLLBACK TO herd_sp; RELEASE herd_sp");
                self.forget_derived();
                Err(e)
            }
        }
    }

    /// Records a receiving session and returns its `rcvid`. A nonce seen
    /// before (the same signed request handled again: a push held in the
    /// hub's queue, or a client's retry after a lost reply) is not
    /// recorded twice; `rcvfrom.nonce` is unique.
    pub fn new_rcvid(
        &self,
        login: &str,
        nonce: Option<&str>,
        ipaddr: Option<&str>,
    ) -> Result<i64, RepoError> {
        self.exec(
            "INSERT INTO rcvfrom(uid, mtime, nonce, ipaddr) \
                 VALUES((SELECT uid FROM user WHERE login=?1), julianday('now'), \
                 CASE WHEN EXISTS(SELECT 1 FROM rcvfrom WHERE nonce=?2) THEN NULL ELSE ?2 END, ?3)",
            params![login, nonce, ipaddr],
        )
        .ctx("recording a receiving session")?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Capabilities of `login`.
    pub fn user_caps(&self, login: &str) -> Result<Option<String>, RepoError> {
        self.query_row("SELECT cap FROM user WHERE login=?1", [login], |r| r.get(0))
            .optional()
            .ctx("reading user caps")
            .map(Option::flatten)
    }

    /// The stored password of `login` (cleartext or 40-hex shared secret).
    pub fn user_secret(&self, login: &str) -> Result<Option<String>, RepoError> {
        self.query_row("SELECT pw FROM user WHERE login=?1", [login], |r| r.get(0))
            .optional()
            .ctx("reading a user's password")
            .map(Option::flatten)
    }

    /// Creates or replaces user `login` with password `pw` and capabilities `caps`.
    pub fn set_user(&self, login: &str, pw: &str, caps: &str) -> Result<(), RepoError> {
        self.exec(
                "INSERT INTO user(login, pw, cap, info, mtime) VALUES(?1, ?2, ?3, '', ?4) \
                 ON CONFLICT(login) DO UPDATE SET pw=excluded.pw, cap=excluded.cap, mtime=excluded.mtime",
                params![login, pw, caps, now_ms() / 1000],
            )
            .ctx("writing a user")?;
        Ok(())
    }

    /// Sets the capabilities of an existing user.
    pub fn set_caps(&self, login: &str, caps: &str) -> Result<(), RepoError> {
        let n = self
            .conn
            .execute(
                "UPDATE user SET cap=?1 WHERE login=?2",
                params![caps, login],
            )
            .ctx("writing user caps")?;
        if n == 0 {
            return Err(RepoError::NoSuchUser {
                login: login.to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn opts() -> CreateOptions {
        CreateOptions {
            project_name: Some("t".into()),
            admin_user: "admin".into(),
            nobody_caps: "gio".into(),
        }
    }

    /// The kept check-in count follows this connection's commits, another
    /// connection's (a hub reader while the writer lands check-ins), and a
    /// rollback of its own.
    #[test]
    fn the_checkin_count_stays_true_across_connections_and_rollbacks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.fossil");
        let writer = Repository::create(&p, &opts()).unwrap();
        let reader = Repository::open(&p).unwrap();
        let commit = |repo: &Repository, name: &str| {
            let parent = repo.trunk_tip().unwrap().unwrap();
            repo.commit(&crate::repo::CheckinSpec {
                parent,
                changes: vec![crate::repo::FileChange {
                    path: name.into(),
                    content: Some(name.as_bytes().to_vec()),
                }],
                comment: name.into(),
                user: "t".into(),
                time: std::time::SystemTime::now(),
            })
            .unwrap()
        };
        assert_eq!(
            (
                writer.trunk_commits().unwrap(),
                reader.trunk_commits().unwrap()
            ),
            (1, 1)
        );
        commit(&writer, "a");
        assert_eq!(writer.trunk_commits().unwrap(), 2, "its own commit");
        assert_eq!(
            reader.trunk_commits().unwrap(),
            2,
            "another connection's commit"
        );
        let failed: Result<(), RepoError> = writer.transaction(|w| {
            commit(w, "b");
            assert_eq!(w.trunk_commits().unwrap(), 3, "inside the transaction");
            Err(RepoError::MissingArtifact { hash: "x".into() })
        });
        assert!(failed.is_err());
        assert_eq!(writer.trunk_commits().unwrap(), 2, "after the rollback");
        assert_eq!(reader.trunk_commits().unwrap(), 2);
        commit(&reader, "c");
        assert_eq!(
            (
                writer.trunk_commits().unwrap(),
                reader.trunk_commits().unwrap()
            ),
            (3, 3)
        );
    }

    #[test]
    fn create_refuses_an_existing_file_and_open_reads_codes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.fossil");
        let repo = Repository::create(&p, &opts()).unwrap();
        assert_eq!(repo.project_code().unwrap().len(), 40);
        assert_eq!(repo.server_code().unwrap().len(), 40);
        assert_eq!(repo.user_caps("nobody").unwrap().as_deref(), Some("gio"));
        drop(repo);
        assert!(matches!(
            Repository::create(&p, &opts()),
            Err(RepoError::AlreadyExists { .. })
        ));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.to_string_lossy().starts_with(".herd-new-")),
            "{names:?}"
        );
        let repo = Repository::open(&p).unwrap();
        assert_eq!(
            repo.config_get("aux-schema").unwrap().as_deref(),
            Some("2015-01-24")
        );
    }

    #[test]
    fn repository_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Repository>();
    }

    #[test]
    fn open_rejects_non_repositories() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"not sqlite at all, just text").unwrap();
        assert!(matches!(
            Repository::open(&p),
            Err(RepoError::NotARepository { .. })
        ));
        assert!(matches!(
            Repository::open(&dir.path().join("nope")),
            Err(RepoError::NotARepository { .. })
        ));
    }

    #[test]
    fn store_verifies_hashes_and_fills_phantoms() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::create(&dir.path().join("r.fossil"), &opts()).unwrap();
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
        let repo = Repository::create(&dir.path().join("r.fossil"), &opts()).unwrap();
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
    fn transaction_rolls_back_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::create(&dir.path().join("r.fossil"), &opts()).unwrap();
        let res: Result<(), RepoError> = repo.transaction(|r| {
            r.config_set("x", "1")?;
            Err(RepoError::NoSuchUser { login: "z".into() })
        });
        assert!(res.is_err());
        assert_eq!(repo.config_get("x").unwrap(), None);
    }

    #[test]
    fn blobs_from_pages_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::create(&dir.path().join("r.fossil"), &opts()).unwrap();
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

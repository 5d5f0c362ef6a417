//! The [`Repository`] handle: creating and opening the SQLite file,
//! transactions, config, users, and the content store (blob rows as a 4-byte
//! big-endian length plus zlib, phantoms, delta chains of fossil-made repos).
//!
//! Crosslinking (the derived tables) lives in `crosslink.rs`; check-ins in
//! `checkin.rs`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use rand::Rng;
use rusqlite::{params, Connection, OptionalExtension};

use super::error::{RepoError, SqlContext};
use super::hash::{ArtifactHash, Rid};
use super::manifest::{Manifest, Perm};
use super::schema;

/// A full file list: name → (artifact, permission).
pub type FileList = BTreeMap<String, (ArtifactHash, Perm)>;

/// Chains longer than this are treated as corrupt (they would be cycles).
const MAX_DELTA_CHAIN: usize = 100_000;
/// Largest artifact we will reconstruct.
const MAX_ARTIFACT: u64 = 1 << 31;

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
type StoredRow = (String, i64, Option<Vec<u8>>, Option<i64>);

/// One Fossil repository file, held through a single SQLite connection.
pub struct Repository {
    pub(crate) conn: Connection,
    path: PathBuf,
    /// The most recently expanded baseline manifest's file list; check-ins on a
    /// trunk share a baseline for many commits, so this saves reparsing it.
    pub(crate) baseline_cache: RefCell<Option<(Rid, Arc<FileList>)>>,
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

/// Compresses an artifact into Fossil's blob.content form.
pub fn compress(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() / 2 + 16);
    out.extend_from_slice(&(content.len() as u32).to_be_bytes());
    let mut enc = ZlibEncoder::new(out, Compression::default());
    enc.write_all(content)
        .expect("writing to a Vec cannot fail");
    enc.finish()
        .expect("finishing a Vec-backed encoder cannot fail")
}

/// Reverses [`compress`], checking the length prefix.
pub fn decompress(stored: &[u8]) -> Result<Vec<u8>, String> {
    let prefix: [u8; 4] = stored
        .get(..4)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| "shorter than the 4-byte length prefix".to_owned())?;
    let len = u32::from_be_bytes(prefix) as usize;
    let mut out = Vec::with_capacity(len.min(64 << 20));
    ZlibDecoder::new(&stored[4..])
        .take(len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("zlib stream is invalid: {e}"))?;
    if out.len() != len {
        return Err(format!(
            "inflates to {} bytes, prefix says {len}",
            out.len()
        ));
    }
    Ok(out)
}

impl Repository {
    fn configure(conn: &Connection) -> Result<(), RepoError> {
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

    /// Creates a new repository at `path`, as `fossil new` does: full schema,
    /// seeded rows and the initial empty check-in. Built in a temporary file
    /// beside `path` and renamed into place, so a failure leaves nothing.
    pub fn create(path: &Path, opts: &CreateOptions) -> Result<Repository, RepoError> {
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
            let repo = Repository {
                conn,
                path: tmp.path().to_owned(),
                baseline_cache: RefCell::new(None),
            };
            repo.transaction(|r| r.seed(opts))?;
            repo.conn
                .execute_batch("ANALYZE tagxref")
                .ctx("analyzing")?;
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

    /// Writes schema, seed rows and the initial check-in into an empty database.
    fn seed(&self, opts: &CreateOptions) -> Result<(), RepoError> {
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
            ("project-code", random_hex(20)),
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
        let repo = Repository {
            conn,
            path: path.to_owned(),
            baseline_cache: RefCell::new(None),
        };
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
        self.conn
            .query_row(
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
        self.conn
            .execute(
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
                    self.baseline_cache.replace(None);
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
                self.baseline_cache.replace(None);
                Err(e)
            }
        }
    }

    /// Runs `f` inside a savepoint, so it is atomic alone and nests inside a
    /// caller's transaction.
    pub(crate) fn savepoint<T, E: From<RepoError>>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
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
                self.baseline_cache.replace(None);
                Err(e)
            }
        }
    }

    /// Records a receiving session and returns its `rcvid`.
    pub fn new_rcvid(
        &self,
        login: &str,
        nonce: Option<&str>,
        ipaddr: Option<&str>,
    ) -> Result<i64, RepoError> {
        self.conn
            .execute(
                "INSERT INTO rcvfrom(uid, mtime, nonce, ipaddr) \
                 VALUES((SELECT uid FROM user WHERE login=?1), julianday('now'), ?2, ?3)",
                params![login, nonce, ipaddr],
            )
            .ctx("recording a receiving session")?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Stores `content` (verifying `expected` if given), replacing a phantom
    /// row in place. New rows go into `unclustered`. Does not crosslink.
    pub fn store(
        &self,
        content: &[u8],
        expected: Option<&ArtifactHash>,
        rcvid: Option<i64>,
    ) -> Result<Stored, RepoError> {
        let hash = match expected {
            Some(exp) => {
                let actual = exp.same_kind_of(content);
                if &actual != exp {
                    return Err(RepoError::HashMismatch {
                        expected: exp.clone(),
                        actual,
                    });
                }
                actual
            }
            None => ArtifactHash::sha3_of(content),
        };
        let existing = self.rid_of(&hash)?;
        if let Some((rid, false)) = existing {
            return Ok(Stored {
                rid,
                hash,
                is_new: false,
            });
        }
        let blob = compress(content);
        let rcvid = rcvid.unwrap_or(0);
        let rid = match existing {
            Some((rid, _phantom)) => {
                self.conn
                    .execute(
                        "UPDATE blob SET rcvid=?1, size=?2, content=?3 WHERE rid=?4",
                        params![rcvid, content.len() as i64, blob, rid.0],
                    )
                    .ctx("filling a phantom")?;
                self.conn
                    .execute("DELETE FROM phantom WHERE rid=?1", [rid.0])
                    .ctx("clearing a phantom")?;
                rid
            }
            None => {
                self.conn
                    .execute(
                        "INSERT INTO blob(rcvid, size, uuid, content) VALUES(?1, ?2, ?3, ?4)",
                        params![rcvid, content.len() as i64, hash.as_str(), blob],
                    )
                    .ctx("inserting a blob")?;
                let rid = Rid(self.conn.last_insert_rowid());
                self.conn
                    .execute("INSERT OR IGNORE INTO unclustered(rid) VALUES(?1)", [rid.0])
                    .ctx("marking a blob unclustered")?;
                rid
            }
        };
        Ok(Stored {
            rid,
            hash,
            is_new: true,
        })
    }

    /// Records `hash` as known but not held; returns its row (existing or new).
    pub fn store_phantom(&self, hash: &ArtifactHash) -> Result<Rid, RepoError> {
        if let Some((rid, _)) = self.rid_of(hash)? {
            return Ok(rid);
        }
        self.conn
            .execute(
                "INSERT INTO blob(rcvid, size, uuid, content) VALUES(0, -1, ?1, NULL)",
                [hash.as_str()],
            )
            .ctx("inserting a phantom")?;
        let rid = self.conn.last_insert_rowid();
        self.conn
            .execute("INSERT OR IGNORE INTO phantom(rid) VALUES(?1)", [rid])
            .ctx("recording a phantom")?;
        self.conn
            .execute("INSERT OR IGNORE INTO unclustered(rid) VALUES(?1)", [rid])
            .ctx("marking a phantom unclustered")?;
        Ok(Rid(rid))
    }

    /// The row of `hash` and whether it is a phantom.
    pub fn rid_of(&self, hash: &ArtifactHash) -> Result<Option<(Rid, bool)>, RepoError> {
        self.conn
            .prepare_cached("SELECT rid, size<0 FROM blob WHERE uuid=?1")
            .and_then(|mut st| {
                st.query_row([hash.as_str()], |r| Ok((Rid(r.get(0)?), r.get(1)?)))
                    .optional()
            })
            .ctx("looking up an artifact")
    }

    /// The name of row `rid`.
    pub fn hash_of(&self, rid: Rid) -> Result<Option<ArtifactHash>, RepoError> {
        let text: Option<String> = self
            .conn
            .prepare_cached("SELECT uuid FROM blob WHERE rid=?1")
            .and_then(|mut st| st.query_row([rid.0], |r| r.get(0)).optional())
            .ctx("looking up a row's hash")?;
        text.map(|t| ArtifactHash::parse(&t)).transpose()
    }

    /// Reads row `rid` as stored: (uuid, size, content, delta source rid).
    fn stored_row(&self, rid: Rid) -> Result<Option<StoredRow>, RepoError> {
        self.conn
            .prepare_cached("SELECT uuid, size, content, (SELECT srcid FROM delta WHERE delta.rid=blob.rid) FROM blob WHERE rid=?1")
            .and_then(|mut st| st.query_row([rid.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).optional())
            .ctx("reading a blob")
    }

    /// The full content of `hash`, or `None` if absent or a phantom.
    pub fn content(&self, hash: &ArtifactHash) -> Result<Option<Vec<u8>>, RepoError> {
        match self.rid_of(hash)? {
            Some((rid, false)) => self.content_of(rid).map(Some),
            _ => Ok(None),
        }
    }

    /// The full content of row `rid`, reconstructing delta chains and
    /// verifying size and hash.
    pub fn content_of(&self, rid: Rid) -> Result<Vec<u8>, RepoError> {
        // Walk to the full-text root, then apply the deltas back up.
        let mut chain = Vec::new();
        let mut cur = rid;
        loop {
            let Some((uuid, size, content, src)) = self.stored_row(cur)? else {
                let hash = chain.first().map_or_else(
                    || format!("rid {}", rid.0),
                    |(u, _, _): &(String, i64, Vec<u8>)| u.clone(),
                );
                return Err(RepoError::MissingArtifact { hash });
            };
            let Some(content) = content.filter(|_| size >= 0) else {
                return Err(RepoError::MissingArtifact { hash: uuid });
            };
            let bytes = match decompress(&content) {
                Ok(b) => b,
                Err(reason) => return Err(RepoError::CorruptBlob { hash: uuid, reason }),
            };
            if src.is_some() && chain.len() >= MAX_DELTA_CHAIN {
                return Err(RepoError::CorruptBlob {
                    hash: uuid,
                    reason: "delta chain too long or cyclic".into(),
                });
            }
            chain.push((uuid, size, bytes));
            match src {
                Some(s) => cur = Rid(s),
                None => break,
            }
        }
        let (mut uuid, mut size, mut data) =
            chain.pop().expect("chain holds at least the row itself");
        loop {
            if data.len() as i64 != size {
                return Err(RepoError::CorruptBlob {
                    hash: uuid,
                    reason: format!("content is {} bytes, blob.size says {size}", data.len()),
                });
            }
            let Some((next_uuid, next_size, delta)) = chain.pop() else {
                break;
            };
            data = crate::delta::apply(&data, &delta, MAX_ARTIFACT).map_err(|e| {
                RepoError::CorruptBlob {
                    hash: next_uuid.clone(),
                    reason: format!("delta does not apply: {e}"),
                }
            })?;
            uuid = next_uuid;
            size = next_size;
        }
        let name = ArtifactHash::parse(&uuid).map_err(|_| RepoError::CorruptBlob {
            hash: uuid.clone(),
            reason: "blob.uuid is not a valid hash".into(),
        })?;
        if !name.matches(&data) {
            return Err(RepoError::CorruptBlob {
                hash: uuid,
                reason: "content does not hash to its name".into(),
            });
        }
        Ok(data)
    }

    /// Row `rid` as stored, for a `cfile` card; `None` if absent or a phantom.
    pub fn raw(&self, rid: Rid) -> Result<Option<RawBlob>, RepoError> {
        let Some((_, size, Some(stored), src)) = self.stored_row(rid)? else {
            return Ok(None);
        };
        if size < 0 {
            return Ok(None);
        }
        let delta_source = match src {
            Some(s) => self.hash_of(Rid(s))?,
            None => None,
        };
        Ok(Some(RawBlob {
            stored,
            delta_source,
            size: size as u64,
        }))
    }

    fn hashes(&self, sql: &str, step: &'static str) -> Result<Vec<(Rid, ArtifactHash)>, RepoError> {
        let mut st = self.conn.prepare_cached(sql).ctx(step)?;
        let rows = st
            .query_map([], |r| Ok((Rid(r.get(0)?), r.get::<_, String>(1)?)))
            .ctx(step)?
            .collect::<Result<Vec<_>, _>>()
            .ctx(step)?;
        rows.into_iter()
            .map(|(rid, h)| Ok((rid, ArtifactHash::parse(&h)?)))
            .collect()
    }

    /// Every phantom's name.
    pub fn phantoms(&self) -> Result<Vec<ArtifactHash>, RepoError> {
        let rows = self.hashes(
            "SELECT blob.rid, uuid FROM phantom JOIN blob USING(rid) ORDER BY blob.rid",
            "listing phantoms",
        )?;
        Ok(rows.into_iter().map(|(_, h)| h).collect())
    }

    /// Non-phantom, non-private artifacts no cluster mentions yet.
    pub fn unclustered(&self) -> Result<Vec<(Rid, ArtifactHash)>, RepoError> {
        self.hashes(
            "SELECT blob.rid, uuid FROM unclustered JOIN blob USING(rid) \
             WHERE size>=0 AND blob.rid NOT IN private ORDER BY blob.rid",
            "listing unclustered artifacts",
        )
    }

    /// Artifacts made here and not yet pushed.
    pub fn unsent(&self) -> Result<Vec<(Rid, ArtifactHash)>, RepoError> {
        self.hashes(
            "SELECT blob.rid, uuid FROM unsent JOIN blob USING(rid) WHERE size>=0 ORDER BY blob.rid",
            "listing unsent artifacts",
        )
    }

    /// Empties `unsent` (after a push).
    pub fn clear_unsent(&self) -> Result<(), RepoError> {
        self.conn
            .execute("DELETE FROM unsent", [])
            .ctx("clearing unsent")?;
        Ok(())
    }

    /// Clone paging: rows from `start` on (non-phantom, non-private), until
    /// their stored size reaches `max_bytes` (at least one row is returned).
    /// `next` is the first row not returned, `None` when done.
    pub fn blobs_from(
        &self,
        start: Rid,
        max_bytes: u64,
    ) -> Result<(Vec<Rid>, Option<Rid>), RepoError> {
        let step = "paging blobs";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT rid, length(content) FROM blob WHERE rid>=?1 AND size>=0 \
                 AND rid NOT IN private ORDER BY rid",
            )
            .ctx(step)?;
        let mut rows = st.query([start.0]).ctx(step)?;
        let (mut out, mut total) = (Vec::new(), 0u64);
        while let Some(row) = rows.next().ctx(step)? {
            let rid = Rid(row.get(0).ctx(step)?);
            if !out.is_empty() && total >= max_bytes {
                return Ok((out, Some(rid)));
            }
            total += row.get::<_, Option<i64>>(1).ctx(step)?.unwrap_or(0).max(0) as u64;
            out.push(rid);
        }
        Ok((out, None))
    }

    /// Count of held (non-phantom) artifacts.
    pub fn artifact_count(&self) -> Result<u64, RepoError> {
        self.conn
            .query_row("SELECT count(*) FROM blob WHERE size>=0", [], |r| {
                r.get::<_, i64>(0)
            })
            .ctx("counting artifacts")
            .map(|n| n as u64)
    }

    /// Capabilities of `login`.
    pub fn user_caps(&self, login: &str) -> Result<Option<String>, RepoError> {
        self.conn
            .query_row("SELECT cap FROM user WHERE login=?1", [login], |r| r.get(0))
            .optional()
            .ctx("reading user caps")
            .map(Option::flatten)
    }

    /// The stored password of `login` (cleartext or 40-hex shared secret).
    pub fn user_secret(&self, login: &str) -> Result<Option<String>, RepoError> {
        self.conn
            .query_row("SELECT pw FROM user WHERE login=?1", [login], |r| r.get(0))
            .optional()
            .ctx("reading a user's password")
            .map(Option::flatten)
    }

    /// Creates or replaces user `login` with password `pw` and capabilities `caps`.
    pub fn set_user(&self, login: &str, pw: &str, caps: &str) -> Result<(), RepoError> {
        self.conn
            .execute(
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

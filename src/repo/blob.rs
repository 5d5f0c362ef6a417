//! The content store: blob rows as a 4-byte big-endian length plus zlib,
//! phantoms, delta chains (ours and fossil-made ones, reconstructed and
//! verified on read), and the listings sync needs (unclustered, unsent,
//! clone paging). Nothing here crosslinks.

use std::cell::RefCell;
use std::io::Read;
use std::sync::Arc;

use flate2::read::ZlibDecoder;
use flate2::{Compress, Compression, FlushCompress, Status};
use rusqlite::{params, OptionalExtension};

use super::error::{RepoError, SqlContext};
use super::hash::{ArtifactHash, Rid};
use super::store::{RawBlob, Repository, Stored, StoredRow};

/// Chains longer than this are treated as corrupt (they would be cycles).
const MAX_DELTA_CHAIN: usize = 100_000;
/// Largest artifact we will reconstruct.
const MAX_ARTIFACT: u64 = 1 << 31;

/// Compresses an artifact into Fossil's blob.content form.
pub fn compress(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() / 2 + 64);
    out.extend_from_slice(&(content.len() as u32).to_be_bytes());
    // One deflate state per thread, reset per call: setting one up costs
    // more than compressing a small artifact. Level 1: any zlib level reads
    // back the same (fossil included), and the writer's time goes into
    // every commit.
    DEFLATE.with(|state| {
        let mut z = state.borrow_mut();
        z.reset();
        loop {
            let read = usize::try_from(z.total_in()).unwrap_or(usize::MAX);
            let input = content.get(read..).unwrap_or_default();
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(64));
            }
            match z.compress_vec(input, &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => return,
                Ok(_) => {}
                // Deflate into memory has no failure mode short of a bug;
                // a truncated stream is caught by decompress's length check.
                Err(_) => return,
            }
        }
    });
    out
}

thread_local! {
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), true));
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
    /// Stores `content` (verifying `expected` if given), replacing a phantom
    /// row in place. New rows go into `unclustered`. Content is stored whole;
    /// crosslinking may later store an older version as a delta of it
    /// (`deltify.rs`), and [`Repository::content`] reads either form. Does
    /// not crosslink.
    pub fn store(
        &self,
        content: &[u8],
        expected: Option<&ArtifactHash>,
        rcvid: Option<i64>,
    ) -> Result<Stored, RepoError> {
        self.store_compressed(content, None, expected, rcvid)
    }

    /// [`Repository::store`] given, when known, `compressed`: `content` in
    /// this module's stored form (4-byte length + zlib), as a `cfile` card
    /// brings it, used as is when the artifact is stored in full.
    pub fn store_compressed(
        &self,
        content: &[u8],
        compressed: Option<Vec<u8>>,
        expected: Option<&ArtifactHash>,
        rcvid: Option<i64>,
    ) -> Result<Stored, RepoError> {
        self.store_text(content, compressed, expected, rcvid, None)
    }

    /// [`Repository::store`] of a manifest written here, `text`, which the
    /// text cache then shares rather than copies (a baseline's is the
    /// whole tree's list).
    pub(crate) fn store_manifest(&self, text: &Arc<[u8]>, rcvid: i64) -> Result<Stored, RepoError> {
        self.store_text(text, None, None, Some(rcvid), Some(text))
    }

    fn store_text(
        &self,
        content: &[u8],
        compressed: Option<Vec<u8>>,
        expected: Option<&ArtifactHash>,
        rcvid: Option<i64>,
        shared: Option<&Arc<[u8]>>,
    ) -> Result<Stored, RepoError> {
        self.note_work(|w| w.bytes_hashed += content.len() as u64);
        let hash = match expected {
            Some(exp) => {
                let actual = exp.same_kind_of(content);
                if &actual != exp {
                    return Err(RepoError::HashMismatch {
                        expected: Box::new(exp.clone()),
                        actual: Box::new(actual),
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
        // Stored whole: an older version becomes a delta of this one when
        // it is crosslinked (`deltify.rs`), never the other way round.
        // A received cfile is kept as it came (already zlib).
        let blob = compressed.unwrap_or_else(|| compress(content));
        if let Some(text) = shared {
            self.text_cache
                .borrow_mut()
                .put(hash.clone(), Arc::clone(text));
        } else if content.starts_with(b"B ") || content.starts_with(b"C ") {
            // Likely a check-in manifest: read again when it is crosslinked
            // and when its child is.
            self.remember_text(&hash, content);
        }
        let rcvid = rcvid.unwrap_or(0);
        self.note_work(|w| {
            w.blobs_written += 1;
            w.bytes_written += blob.len() as u64;
        });
        let rid = match existing {
            Some((rid, _phantom)) => {
                self.exec(
                    "UPDATE blob SET rcvid=?1, size=?2, content=?3 WHERE rid=?4",
                    params![rcvid, content.len() as i64, blob, rid.0],
                )
                .ctx("filling a phantom")?;
                self.exec("DELETE FROM phantom WHERE rid=?1", [rid.0])
                    .ctx("clearing a phantom")?;
                // A phantom may carry a delta against another phantom
                // (`dangling.rs`); the row now holds what this call wrote.
                self.exec("DELETE FROM delta WHERE rid=?1", [rid.0])
                    .ctx("clearing a phantom's delta")?;
                rid
            }
            None => {
                self.exec(
                    "INSERT INTO blob(rcvid, size, uuid, content) VALUES(?1, ?2, ?3, ?4)",
                    params![rcvid, content.len() as i64, hash.as_str(), blob],
                )
                .ctx("inserting a blob")?;
                let rid = Rid(self.conn.last_insert_rowid());
                self.exec("INSERT OR IGNORE INTO unclustered(rid) VALUES(?1)", [rid.0])
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

    /// Stores `content` (named `expected`, checked) as the delta `delta`
    /// (zlib, as a sender stored it) against the held artifact `source`,
    /// the way Fossil keeps an older version: nothing is compressed, and the
    /// version stays a delta when a newer one is crosslinked.
    pub fn store_delta(
        &self,
        content: &[u8],
        delta: Vec<u8>,
        source: &ArtifactHash,
        expected: &ArtifactHash,
        rcvid: Option<i64>,
    ) -> Result<Stored, RepoError> {
        let source = match self.rid_of(source)? {
            Some((rid, false)) => rid,
            _ => {
                return Err(RepoError::MissingArtifact {
                    hash: source.to_string(),
                })
            }
        };
        let stored = self.store_compressed(content, Some(delta), Some(expected), rcvid)?;
        if stored.is_new {
            self.exec(
                "REPLACE INTO delta(rid, srcid) VALUES(?1, ?2)",
                [stored.rid.0, source.0],
            )
            .ctx("recording a delta source")?;
            // Every chain through `source` grew: measure again when asked.
            self.chain_heights.borrow_mut().clear();
        }
        Ok(stored)
    }

    /// Records `hash` as known but not held; returns its row (existing or new).
    pub fn store_phantom(&self, hash: &ArtifactHash) -> Result<Rid, RepoError> {
        if let Some((rid, _)) = self.rid_of(hash)? {
            return Ok(rid);
        }
        self.exec(
            "INSERT INTO blob(rcvid, size, uuid, content) VALUES(0, -1, ?1, NULL)",
            [hash.as_str()],
        )
        .ctx("inserting a phantom")?;
        let rid = self.conn.last_insert_rowid();
        self.exec("INSERT OR IGNORE INTO phantom(rid) VALUES(?1)", [rid])
            .ctx("recording a phantom")?;
        self.exec("INSERT OR IGNORE INTO unclustered(rid) VALUES(?1)", [rid])
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
        // Walk to the full-text root (or to a text cached by name), then
        // apply the deltas back up.
        let mut chain = Vec::new();
        let mut cur = rid;
        let mut cached = None;
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
            if src.is_some() || !chain.is_empty() {
                if let Some(text) = self.cached_text(&uuid) {
                    cached = Some((uuid, size, text.to_vec()));
                    break;
                }
            }
            let bytes = match decompress(&content) {
                Ok(b) => b,
                Err(reason) => return Err(RepoError::CorruptBlob { hash: uuid, reason }),
            };
            self.note_work(|w| {
                w.blobs_read += 1;
                w.bytes_read += bytes.len() as u64;
            });
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
        let had_delta = chain.len() + usize::from(cached.is_some()) > 1;
        let (mut uuid, mut size, mut data) = match cached {
            Some(root) => root,
            None => chain.pop().expect("chain holds at least the row itself"),
        };
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
        // A full-text blob was hash-checked when stored, and zlib's adler32
        // and the size check guard it since; content rebuilt from deltas is
        // checked again, since a wrong delta source would go unseen.
        if had_delta {
            if !name.matches(&data) {
                return Err(RepoError::CorruptBlob {
                    hash: uuid,
                    reason: "content does not hash to its name".into(),
                });
            }
            // Rebuilt from deltas: a chain is worth not walking twice.
            self.remember_text(&name, &data);
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
            // Driven by the (small) phantom table, not a scan of blob.
            "SELECT phantom.rid, uuid FROM phantom CROSS JOIN blob ON blob.rid=phantom.rid \
             ORDER BY phantom.rid",
            "listing phantoms",
        )?;
        Ok(rows.into_iter().map(|(_, h)| h).collect())
    }

    /// Non-phantom, non-private artifacts no cluster mentions yet.
    pub fn unclustered(&self) -> Result<Vec<(Rid, ArtifactHash)>, RepoError> {
        self.hashes(
            "SELECT unclustered.rid, uuid FROM unclustered CROSS JOIN blob ON blob.rid=unclustered.rid \
             WHERE size>=0 AND blob.rid NOT IN private ORDER BY unclustered.rid",
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
        self.exec("DELETE FROM unsent", []).ctx("clearing unsent")?;
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
        self.query_row("SELECT count(*) FROM blob WHERE size>=0", [], |r| {
            r.get::<_, i64>(0)
        })
        .ctx("counting artifacts")
        .map(|n| n as u64)
    }
}

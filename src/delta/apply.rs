//! Applying a delta: replaying its copy and insert commands against the
//! source, into a new buffer ([`apply`]) or checked against the text it
//! should give ([`reproduces`]), with the declared size and checksum held.

use super::{checksum, DeltaError, Reader};

/// Applies `delta` to `source`, returning the target.
///
/// The output is bounded by the declared size, which is checked against
/// `max_size` before anything is allocated.
pub fn apply(source: &[u8], delta: &[u8], max_size: u64) -> Result<Vec<u8>, DeltaError> {
    let mut out = Vec::new();
    replay(source, delta, max_size, &mut out)?;
    Ok(out)
}

/// Whether applying `delta` to `source` gives exactly `target`, checked as
/// it is replayed, without building the output (a copy the size of the
/// target: the whole tree's list for a baseline).
pub fn reproduces(source: &[u8], delta: &[u8], target: &[u8]) -> bool {
    let mut out = Matching { target, at: 0 };
    replay(source, delta, target.len() as u64, &mut out).is_ok() && out.at == target.len()
}

/// Where a replayed delta's output goes.
trait Output {
    /// Room for the declared size, which the caller bounded.
    fn reserve(&mut self, declared: u64);
    /// Appends `bytes`; false when they are refused (not what was expected).
    fn put(&mut self, bytes: &[u8]) -> bool;
    /// The output so far.
    fn so_far(&self) -> &[u8];
}

impl Output for Vec<u8> {
    fn reserve(&mut self, declared: u64) {
        Vec::reserve(self, declared as usize);
    }
    fn put(&mut self, bytes: &[u8]) -> bool {
        self.extend_from_slice(bytes);
        true
    }
    fn so_far(&self) -> &[u8] {
        self
    }
}

/// An output held against the text it should equal.
struct Matching<'a> {
    target: &'a [u8],
    at: usize,
}

impl Output for Matching<'_> {
    fn reserve(&mut self, _: u64) {}
    fn put(&mut self, bytes: &[u8]) -> bool {
        let end = self.at + bytes.len();
        let same = self.target.get(self.at..end) == Some(bytes);
        self.at = end;
        same
    }
    fn so_far(&self) -> &[u8] {
        &self.target[..self.at.min(self.target.len())]
    }
}

/// Replays `delta` against `source` into `out`; see [`apply`].
fn replay(
    source: &[u8],
    delta: &[u8],
    max_size: u64,
    out: &mut impl Output,
) -> Result<(), DeltaError> {
    let mut r = Reader { d: delta, pos: 0 };
    let declared = r.int()?;
    r.expect(b'\n', "newline after the target size")?;
    if declared > max_size {
        return Err(DeltaError::SizeMismatch {
            declared,
            actual: max_size,
        });
    }
    // `declared` is at most `max_size`, which the caller chose to fit memory.
    out.reserve(declared);
    let mismatch = |at| DeltaError::Malformed {
        at,
        what: "output differs from the expected text",
    };
    loop {
        let at = r.pos;
        let count = r.int()?;
        match r.next() {
            Some(b'@') => {
                let offset = r.int()?;
                r.expect(b',', "',' after a copy offset")?;
                let end = offset
                    .checked_add(count)
                    .filter(|&e| e <= source.len() as u64);
                let Some(end) = end else {
                    return Err(DeltaError::CopyOutOfRange {
                        count,
                        offset,
                        source_len: source.len(),
                    });
                };
                grow_check(out.so_far(), count, declared)?;
                if !out.put(&source[offset as usize..end as usize]) {
                    return Err(mismatch(at));
                }
            }
            Some(b':') => {
                grow_check(out.so_far(), count, declared)?;
                let start = r.pos;
                let end = start
                    .checked_add(count as usize)
                    .filter(|&e| e <= delta.len())
                    .ok_or(DeltaError::Malformed {
                        at: start,
                        what: "literal runs past the end of the delta",
                    })?;
                if !out.put(&delta[start..end]) {
                    return Err(mismatch(at));
                }
                r.pos = end;
            }
            Some(b';') => {
                let written = out.so_far();
                if written.len() as u64 != declared {
                    return Err(DeltaError::SizeMismatch {
                        declared,
                        actual: written.len() as u64,
                    });
                }
                let computed = checksum(written);
                let declared_sum = u32::try_from(count).map_err(|_| DeltaError::Malformed {
                    at,
                    what: "checksum wider than 32 bits",
                })?;
                if computed != declared_sum {
                    return Err(DeltaError::Checksum {
                        declared: declared_sum,
                        computed,
                    });
                }
                return Ok(());
            }
            _ => {
                return Err(DeltaError::Malformed {
                    at,
                    what: "expected '@', ':' or ';' after a number",
                })
            }
        }
    }
}

fn grow_check(out: &[u8], count: u64, declared: u64) -> Result<(), DeltaError> {
    let after = (out.len() as u64).saturating_add(count);
    if after > declared {
        return Err(DeltaError::SizeMismatch {
            declared,
            actual: after,
        });
    }
    Ok(())
}

//! Fossil's delta format (www/delta_format.wiki; src/delta.c in Fossil).
//!
//! A delta turns a *source* into a *target*:
//!
//! ```text
//! TARGET_SIZE "\n" { COUNT "@" OFFSET "," | COUNT ":" BYTES } CHECKSUM ";"
//! ```
//!
//! Integers are base-64 with the digits `0-9A-Z_a-z~`, most significant digit
//! first (the wiki says otherwise; the code and real deltas are MSB first).
//! The checksum is the wrapping sum of the target read as big-endian `u32`
//! words, the tail zero-padded. Fossil 2.21 does not check it when applying;
//! we do, because a delta that lies about its result should not be stored.
//!
//! The encoder here is deliberately simple: it copies the longest common
//! prefix and suffix and inserts the middle. That is exact for the changes
//! herd makes (manifests that differ in a few cards, files appended to) and
//! always produces a valid delta; it is not Fossil's rolling-hash encoder.

use thiserror::Error;

/// Why a delta could not be applied.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DeltaError {
    /// The delta text does not follow the format.
    #[error("malformed delta at byte {at}: {what}")]
    Malformed {
        /// Offset into the delta where parsing failed.
        at: usize,
        /// What was expected.
        what: &'static str,
    },
    /// A copy command reaches outside the source.
    #[error("delta copies {count} bytes at offset {offset} from a source of {source_len} bytes")]
    CopyOutOfRange {
        /// Bytes to copy.
        count: u64,
        /// Offset in the source.
        offset: u64,
        /// Length of the source.
        source_len: usize,
    },
    /// The commands produce more or fewer bytes than the header declares.
    #[error("delta output is {actual} bytes, header declares {declared}")]
    SizeMismatch {
        /// Declared target size.
        declared: u64,
        /// Bytes actually produced (or about to be exceeded).
        actual: u64,
    },
    /// The checksum of the output differs from the one in the delta.
    #[error("delta checksum mismatch: declared {declared:08x}, computed {computed:08x}")]
    Checksum {
        /// Checksum written in the delta.
        declared: u32,
        /// Checksum of the produced output.
        computed: u32,
    },
}

const DIGITS: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";

fn digit_value(c: u8) -> Option<u64> {
    let v = match c {
        b'0'..=b'9' => c - b'0',
        b'A'..=b'Z' => c - b'A' + 10,
        b'_' => 36,
        b'a'..=b'z' => c - b'a' + 37,
        b'~' => 63,
        _ => return None,
    };
    Some(u64::from(v))
}

fn put_int(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 11];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(v & 63) as usize];
        v >>= 6;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// The checksum Fossil puts at the end of a delta.
pub fn checksum(data: &[u8]) -> u32 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        sum = sum.wrapping_add(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut word = [0u8; 4];
        word[..tail.len()].copy_from_slice(tail);
        sum = sum.wrapping_add(u32::from_be_bytes(word));
    }
    sum
}

/// Builds a delta that turns `source` into `target`.
pub fn encode(source: &[u8], target: &[u8]) -> Vec<u8> {
    let prefix = source
        .iter()
        .zip(target)
        .take_while(|(a, b)| a == b)
        .count();
    let max_suffix = source.len().min(target.len()) - prefix;
    let suffix = source
        .iter()
        .rev()
        .zip(target.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    let middle = &target[prefix..target.len() - suffix];

    let mut out = Vec::with_capacity(middle.len() + 32);
    put_int(&mut out, target.len() as u64);
    out.push(b'\n');
    if prefix > 0 {
        put_int(&mut out, prefix as u64);
        out.extend_from_slice(b"@0,");
    }
    if !middle.is_empty() {
        put_int(&mut out, middle.len() as u64);
        out.push(b':');
        out.extend_from_slice(middle);
    }
    if suffix > 0 {
        put_int(&mut out, suffix as u64);
        out.push(b'@');
        put_int(&mut out, (source.len() - suffix) as u64);
        out.push(b',');
    }
    put_int(&mut out, u64::from(checksum(target)));
    out.push(b';');
    out
}

/// Reads the target size a delta declares, without applying it.
pub fn target_size(delta: &[u8]) -> Result<u64, DeltaError> {
    let mut r = Reader { d: delta, pos: 0 };
    let size = r.int()?;
    r.expect(b'\n', "newline after the target size")?;
    Ok(size)
}

/// Applies `delta` to `source`, returning the target.
///
/// The output is bounded by the declared size, which is checked against
/// `max_size` before anything is allocated.
pub fn apply(source: &[u8], delta: &[u8], max_size: u64) -> Result<Vec<u8>, DeltaError> {
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
    let mut out = Vec::with_capacity(declared as usize);
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
                grow_check(&out, count, declared)?;
                out.extend_from_slice(&source[offset as usize..end as usize]);
            }
            Some(b':') => {
                grow_check(&out, count, declared)?;
                let start = r.pos;
                let end = start
                    .checked_add(count as usize)
                    .filter(|&e| e <= delta.len())
                    .ok_or(DeltaError::Malformed {
                        at: start,
                        what: "literal runs past the end of the delta",
                    })?;
                out.extend_from_slice(&delta[start..end]);
                r.pos = end;
            }
            Some(b';') => {
                if out.len() as u64 != declared {
                    return Err(DeltaError::SizeMismatch {
                        declared,
                        actual: out.len() as u64,
                    });
                }
                let computed = checksum(&out);
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
                return Ok(out);
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

struct Reader<'a> {
    d: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = self.d.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn expect(&mut self, want: u8, what: &'static str) -> Result<(), DeltaError> {
        let at = self.pos;
        match self.next() {
            Some(c) if c == want => Ok(()),
            _ => Err(DeltaError::Malformed { at, what }),
        }
    }

    fn int(&mut self) -> Result<u64, DeltaError> {
        let start = self.pos;
        let mut v: u64 = 0;
        while let Some(d) = self.d.get(self.pos).and_then(|&c| digit_value(c)) {
            v = v
                .checked_mul(64)
                .and_then(|v| v.checked_add(d))
                .ok_or(DeltaError::Malformed {
                    at: start,
                    what: "number does not fit 64 bits",
                })?;
            self.pos += 1;
        }
        if self.pos == start {
            return Err(DeltaError::Malformed {
                at: start,
                what: "expected a base-64 number",
            });
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integers_are_most_significant_digit_first() {
        let mut out = Vec::new();
        put_int(&mut out, 6246);
        assert_eq!(out, b"1Xb");
        out.clear();
        put_int(&mut out, 0);
        assert_eq!(out, b"0");
    }

    #[test]
    fn applies_a_hand_written_delta() {
        // "hello world" -> "hello there world": copy 6, insert "there ", copy 5 from 6.
        let target = b"hello there world";
        let mut d = b"H\n6@0,6:there 5@6,".to_vec();
        put_int(&mut d, u64::from(checksum(target)));
        d.push(b';');
        assert_eq!(apply(b"hello world", &d, 1 << 20).unwrap(), target);
    }

    #[test]
    fn rejects_bad_deltas_without_panicking() {
        let src = b"abcdef";
        for bad in [
            &b""[..],
            b"3",
            b"3\n",
            b"3\n3@4,0;",
            b"3\n9:ab",
            b"2\n3:abc0;",
            b"3\n3:abc1;",
            b"~~~~~~~~~~~~~\n",
        ] {
            assert!(apply(src, bad, 1 << 20).is_err(), "{:?}", bad);
        }
    }

    #[test]
    fn refuses_declared_sizes_over_the_bound() {
        let d = encode(b"", &[b'x'; 100]);
        assert!(matches!(
            apply(b"", &d, 99),
            Err(DeltaError::SizeMismatch { .. })
        ));
    }

    proptest! {
        #[test]
        fn encode_then_apply_round_trips(src in proptest::collection::vec(any::<u8>(), 0..300),
                                         tgt in proptest::collection::vec(any::<u8>(), 0..300)) {
            let d = encode(&src, &tgt);
            prop_assert_eq!(apply(&src, &d, 1 << 20).unwrap(), tgt);
        }

        #[test]
        fn apply_never_panics(src in proptest::collection::vec(any::<u8>(), 0..64),
                              d in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = apply(&src, &d, 1 << 16);
        }
    }
}

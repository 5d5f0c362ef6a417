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
//! The encoder follows Fossil's approach (www/delta_encoder_algorithm.wiki):
//! the source is cut into blocks of [`BLOCK`] bytes and each block's hash is
//! indexed; a window of the same width slides over the target with a
//! rolling hash, and where it meets an indexed block the match is verified
//! and extended forward and backward, becoming a copy command, while the
//! bytes between matches become insert commands. A manifest that gains a
//! few cards in a megabyte of unchanged ones thus becomes a delta of a few
//! copies and the new cards. Any input pair gives a valid delta; inputs that
//! share nothing give one insert of the whole target.

use thiserror::Error;

mod apply;

pub use apply::{apply, reproduces};

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

/// Width of the source blocks the encoder indexes, and of its rolling window.
pub const BLOCK: usize = 16;

/// Candidate blocks examined per window position: repetitive sources put
/// many blocks in one hash bucket, and trying them all would make encoding
/// quadratic for no better result.
const MAX_PROBES: usize = 16;

/// A match this long is taken without trying further candidates.
const GOOD_ENOUGH: usize = 4096;

/// Multiplier of the rolling hash (odd, so every power is invertible).
const ROLL_MUL: u32 = 0x0100_0193;

/// A polynomial hash over a [`BLOCK`]-byte window that slides by one byte
/// in constant time: `h = sum(b[k] * M^(BLOCK-1-k))` modulo 2^32.
struct Rolling {
    h: u32,
    /// `M^(BLOCK-1)`, the weight of the byte leaving the window.
    top: u32,
}

impl Rolling {
    fn new(window: &[u8]) -> Rolling {
        let mut h = 0u32;
        let mut top = 1u32;
        for (k, &b) in window.iter().enumerate() {
            h = h.wrapping_mul(ROLL_MUL).wrapping_add(u32::from(b));
            if k > 0 {
                top = top.wrapping_mul(ROLL_MUL);
            }
        }
        Rolling { h, top }
    }

    fn roll(&mut self, out: u8, inp: u8) {
        let without = self.h.wrapping_sub(u32::from(out).wrapping_mul(self.top));
        self.h = without.wrapping_mul(ROLL_MUL).wrapping_add(u32::from(inp));
    }

    /// The bucket of the current window in a table of `2^bits` buckets.
    fn bucket(&self, bits: u32) -> usize {
        // The low bits of a polynomial hash depend only on the low bits of
        // the bytes; multiplying and taking the high bits mixes them all.
        (self.h.wrapping_mul(0x9E37_79B1) >> (32 - bits)) as usize
    }
}

/// The source's blocks indexed by hash: `heads[bucket]` is the last block in
/// the bucket, `next[block]` the one before it, [`NONE`] ends a chain.
struct BlockIndex {
    heads: Vec<u32>,
    next: Vec<u32>,
    bits: u32,
}

const NONE: u32 = u32::MAX;

impl BlockIndex {
    fn new(source: &[u8]) -> BlockIndex {
        let blocks = source.len() / BLOCK;
        let bits = (blocks.max(2).next_power_of_two().trailing_zeros()).clamp(1, 31);
        let mut heads = vec![NONE; 1 << bits];
        let mut next = vec![NONE; blocks];
        for (b, chunk) in source.chunks_exact(BLOCK).enumerate() {
            let slot = Rolling::new(chunk).bucket(bits);
            next[b] = heads[slot];
            // `encode` only indexes sources of fewer than 2^32 blocks.
            heads[slot] = b as u32;
        }
        BlockIndex { heads, next, bits }
    }
}

/// Length of the common prefix of `a` and `b`.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Length of the common suffix of `a` and `b`.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

/// Digits `put_int` writes for `v`.
fn int_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 64 {
        v >>= 6;
        n += 1;
    }
    n
}

/// Writes an insert command for `bytes` (nothing if empty).
fn put_insert(out: &mut Vec<u8>, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_int(out, bytes.len() as u64);
        out.push(b':');
        out.extend_from_slice(bytes);
    }
}

/// Builds a delta that turns `source` into `target` (see the module docs
/// for the method). `apply(source, &encode(source, target), ..)` gives
/// `target` back for every pair of inputs.
pub fn encode(source: &[u8], target: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_int(&mut out, target.len() as u64);
    out.push(b'\n');
    // Sources past 2^32 blocks (64 GiB) are beyond any artifact we store;
    // they get a plain insert rather than a wider index.
    let indexable = source.len() >= BLOCK && source.len() / BLOCK < NONE as usize;
    if indexable && target.len() >= BLOCK {
        encode_matches(source, target, &mut out);
    } else {
        put_insert(&mut out, target);
    }
    put_int(&mut out, u64::from(checksum(target)));
    out.push(b';');
    out
}

/// The copy and insert commands of a delta, for a source of at least one
/// block and a target at least one window long.
fn encode_matches(source: &[u8], target: &[u8], out: &mut Vec<u8>) {
    let index = BlockIndex::new(source);
    // Bytes of the target before `literal` are covered by commands already
    // written; `at` is the start of the rolling window.
    let mut literal = 0;
    let mut at = 0;
    let mut hash = Rolling::new(&target[..BLOCK]);
    while at + BLOCK <= target.len() {
        // Best candidate as (source start, target start, length).
        let mut best: Option<(usize, usize, usize)> = None;
        let mut cand = index.heads[hash.bucket(index.bits)];
        let mut probes = 0;
        while cand != NONE && probes < MAX_PROBES {
            probes += 1;
            let s = cand as usize * BLOCK;
            cand = index.next[cand as usize];
            let forward = common_prefix(&source[s..], &target[at..]);
            if forward < BLOCK {
                continue; // a hash collision, not a match
            }
            let back = common_suffix(&source[..s], &target[literal..at]);
            let len = back + forward;
            if best.map_or(true, |(_, _, l)| len > l) {
                best = Some((s - back, at - back, len));
                if len >= GOOD_ENOUGH {
                    break;
                }
            }
        }
        match best {
            // A copy command must be shorter than the bytes it replaces.
            Some((src, tgt, len)) if len > int_len(len as u64) + int_len(src as u64) + 2 => {
                put_insert(out, &target[literal..tgt]);
                put_int(out, len as u64);
                out.push(b'@');
                put_int(out, src as u64);
                out.push(b',');
                literal = tgt + len;
                at = literal;
                if at + BLOCK <= target.len() {
                    hash = Rolling::new(&target[at..at + BLOCK]);
                }
            }
            _ => {
                if at + BLOCK < target.len() {
                    hash.roll(target[at], target[at + BLOCK]);
                }
                at += 1;
            }
        }
    }
    put_insert(out, &target[literal..]);
}

/// Reads the target size a delta declares, without applying it.
pub fn target_size(delta: &[u8]) -> Result<u64, DeltaError> {
    let mut r = Reader { d: delta, pos: 0 };
    let size = r.int()?;
    r.expect(b'\n', "newline after the target size")?;
    Ok(size)
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
    fn reproduces_holds_a_delta_to_its_exact_target() {
        let source = b"F a 1\nF b 2\nF c 3\n".repeat(40);
        let mut target = source.clone();
        target.splice(200..200, b"F bb 9\n".iter().copied());
        let delta = encode(&source, &target);
        assert!(reproduces(&source, &delta, &target));
        let mut other = target.clone();
        other[300] ^= 1;
        assert!(!reproduces(&source, &delta, &other), "one byte differs");
        assert!(!reproduces(&source, &delta, &target[..target.len() - 1]));
        let mut longer = target.clone();
        longer.push(b'x');
        assert!(!reproduces(&source, &delta, &longer));
    }

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

    /// A baseline-like manifest: `n` F cards of made-up names and hashes.
    fn manifest(files: impl Iterator<Item = usize>) -> Vec<u8> {
        let mut names: Vec<String> = files
            .map(|i| {
                let hash = crate::repo::ArtifactHash::sha3_of(i.to_string().as_bytes());
                format!("F slot-{}/task-{i}/file-{}.txt {hash}\n", i % 16, i % 3)
            })
            .collect();
        names.sort();
        let mut m = b"C task\nD 2024-01-01T00:00:00.000\n".to_vec();
        for n in names {
            m.extend_from_slice(n.as_bytes());
        }
        m.extend_from_slice(b"U leaf\nZ 0123456789abcdef0123456789abcdef\n");
        m
    }

    #[test]
    fn a_baseline_gaining_a_few_cards_is_a_small_delta() {
        let old = manifest(0..15_000);
        assert!(old.len() > 1_300_000, "{}", old.len());
        let new = manifest((0..15_000).chain(20_000..20_009));
        let d = encode(&old, &new);
        assert_eq!(apply(&old, &d, 1 << 24).unwrap(), new);
        // Nine new cards of ~100 bytes, plus about twenty copy commands.
        assert!(d.len() < 1400, "delta of {} bytes", d.len());
    }

    #[test]
    fn unrelated_inputs_become_one_insert() {
        let src = vec![7u8; 100];
        let tgt: Vec<u8> = (0..=255).collect();
        let d = encode(&src, &tgt);
        assert!(d.len() <= tgt.len() + 16, "{}", d.len());
        assert_eq!(apply(&src, &d, 1 << 20).unwrap(), tgt);
    }

    /// The real fossil applies our deltas (`fossil test-delta-apply`).
    #[test]
    fn fossil_applies_our_deltas() {
        let dir = tempfile::tempdir().unwrap();
        let old = manifest(0..2_000);
        let mut new = manifest((0..2_000).filter(|i| i % 97 != 0).chain(5_000..5_020));
        new.extend_from_slice(&[0, 255, 10, 13]); // and some binary bytes
        let cases = [(&old, &new), (&new, &old), (&old, &old)];
        for (k, (src, tgt)) in cases.into_iter().enumerate() {
            let [s, d, t] = ["s", "d", "t"].map(|n| dir.path().join(format!("{n}{k}")));
            std::fs::write(&s, src).unwrap();
            std::fs::write(&d, encode(src, tgt)).unwrap();
            let out = std::process::Command::new("fossil")
                .arg("test-delta-apply")
                .args([&s, &d, &t])
                .output()
                .expect("the fossil binary must be on PATH (scripts/install-deps)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let got = std::fs::read(&t).unwrap();
            assert!(
                got == **tgt,
                "case {k}: fossil produced {} bytes",
                got.len()
            );
        }
    }

    proptest! {
        #[test]
        fn encode_then_apply_round_trips(src in proptest::collection::vec(any::<u8>(), 0..300),
                                         tgt in proptest::collection::vec(any::<u8>(), 0..300)) {
            let d = encode(&src, &tgt);
            prop_assert_eq!(apply(&src, &d, 1 << 20).unwrap(), tgt);
        }

        #[test]
        fn similar_inputs_round_trip_with_copies(
            base in proptest::collection::vec(any::<u8>(), 64..4000),
            edits in proptest::collection::vec((any::<u16>(), 0usize..40, proptest::collection::vec(any::<u8>(), 0..40)), 1..8),
        ) {
            // The target is the source with a few ranges replaced.
            let mut tgt = base.clone();
            for (pos, cut, insert) in edits {
                let at = usize::from(pos) % (tgt.len() + 1);
                let end = (at + cut).min(tgt.len());
                tgt.splice(at..end, insert);
            }
            let d = encode(&base, &tgt);
            prop_assert_eq!(apply(&base, &d, 1 << 20).unwrap(), tgt.clone());
            // Eight edits of at most 40 bytes leave most of the target to copies.
            prop_assert!(d.len() < tgt.len() / 2 + 8 * 64, "{} for {}", d.len(), tgt.len());
        }

        #[test]
        fn repetitive_inputs_round_trip(unit in proptest::collection::vec(any::<u8>(), 1..5),
                                        n in 0usize..2000, m in 0usize..2000) {
            let src = unit.repeat(n);
            let tgt = unit.repeat(m);
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

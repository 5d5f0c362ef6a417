//! Three-way merge of one file's contents, line by line. The hub lands a
//! stale push by content with it: `base` is the file at the push's parent,
//! `theirs` the file at the trunk tip, `ours` the file as pushed. Bytes in,
//! a [`Merge`] out; reading the artifacts and deciding what a conflict means
//! for the push are the caller's.
//!
//! The diffs come from `imara-diff`, one from base to each side; the walk
//! that merges them is here. imara-diff is maintained (gitoxide diffs with
//! it), fast, and reports each change as a pair of line ranges, base and
//! side. Working on ranges rather than text lets a conflict name the exact
//! lines it covers in all three files, so nobody has to parse conflict
//! markers back out of a merged text.
//!
//! Of its algorithms the merge uses Myers, not Histogram. Histogram anchors
//! on the longest run of rare lines, and near repeated lines (blank lines,
//! lone braces) it can report an insertion as the replacement of one of
//! them: base three blank lines, a side inserting a line before the first,
//! the second and after the third, and Histogram says the third blank line
//! was replaced. A replaced line touches the other side's changes where an
//! insertion would not, so the merge would report conflicts that are not
//! there (the property test below finds such cases at once). Myers' edit
//! scripts are minimal (short of its cost cut-offs on very different
//! files), so inserted lines stay insertions; on the bench's 2,000-line
//! file it is no slower.
//!
//! The rule, git's: a change only one side made is taken; a stretch both
//! sides changed to the same lines is taken once; otherwise two changes
//! conflict when their base ranges overlap *or touch*: one ends where the
//! other starts, both insert at the same point, or one inserts at either
//! edge of lines the other replaced. Two changes merge only with at least
//! one unchanged base line between them, because that line is what fixes
//! the order of the two sides' text; without it the merge would guess.
//!
//! Lines keep their terminators, so `"\r\n"` is part of its line and a last
//! line without `"\n"` is a line of its own. The merge therefore reproduces
//! bytes exactly (CRLF stays CRLF, a missing final newline stays missing
//! where neither side touched the end), and a side that appends after such
//! a last line has changed that line (it gained its `"\n"`), so nothing is
//! ever glued onto it.
//!
//! Binary files are never merged: [`is_binary`] is git's test, a NUL byte
//! in the first 8,000 bytes. (Fossil's own test scans the whole file and
//! also counts very long lines as binary; a file it calls binary but git's
//! test does not is merged here as text.)

use std::fmt;
use std::ops::Range;

use imara_diff::intern::{InternedInput, Interner};
use imara_diff::{diff, Algorithm};

/// How many leading bytes [`is_binary`] looks at (git's `FIRST_FEW_BYTES`).
const BINARY_SNIFF_BYTES: usize = 8000;

/// The largest input merged by lines. imara-diff refuses (by panicking)
/// inputs of `i32::MAX` lines or more, and line numbers here are `u32`; a
/// file shorter than this in bytes has fewer lines than that.
const MAX_MERGE_BYTES: usize = i32::MAX as usize - 1;

/// Lines `start..end` of one file: 0-based and half-open. An empty range
/// (`start == end`) is the point before line `start`, where a side inserted
/// lines or deleted them. Displayed 1-based: "lines 3-5", "line 3",
/// "after line 7" or "at the start".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRange {
    /// The first line in the range, counted from 0.
    pub start: u32,
    /// One past the last line in the range.
    pub end: u32,
}

impl From<Range<u32>> for LineRange {
    fn from(range: Range<u32>) -> LineRange {
        LineRange {
            start: range.start,
            end: range.end,
        }
    }
}

impl fmt::Display for LineRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `end > start` in the last two arms, so `start + 1` cannot overflow.
        match self.end.saturating_sub(self.start) {
            0 if self.start == 0 => write!(f, "at the start"),
            0 => write!(f, "after line {}", self.start),
            1 => write!(f, "line {}", self.end),
            _ => write!(f, "lines {}-{}", self.start + 1, self.end),
        }
    }
}

/// One place where the push and the trunk changed the same base lines (or
/// touching ones) differently: the lines it covers in each file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// The lines of the common ancestor both sides changed.
    pub base: LineRange,
    /// What the pushed file has in their place.
    pub ours: LineRange,
    /// What the trunk's file has in their place.
    pub theirs: LineRange,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "base {}, trunk {}, pushed {}",
            self.base, self.theirs, self.ours
        )
    }
}

/// How a three-way merge ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// The merged file.
    Clean(Vec<u8>),
    /// Every conflict, in base order; nothing was merged.
    Conflicts(Vec<Conflict>),
    /// One of the three files is binary, or too large (2 GiB) to count in
    /// lines; such files are never merged.
    Binary,
}

/// Whether `content` is binary by git's test: a NUL byte in its first
/// 8,000 bytes. Anything else is text, whatever its encoding.
pub fn is_binary(content: &[u8]) -> bool {
    content[..content.len().min(BINARY_SNIFF_BYTES)].contains(&0)
}

/// Merges the changes `base → ours` (the push) and `base → theirs` (the
/// trunk) into one file, or names the lines where they conflict.
pub fn merge3(base: &[u8], ours: &[u8], theirs: &[u8]) -> Merge {
    let inputs = [base, ours, theirs];
    if inputs
        .iter()
        .any(|file| is_binary(file) || file.len() > MAX_MERGE_BYTES)
    {
        return Merge::Binary;
    }
    // Whole-file shortcuts; the walk below gives the same answers.
    if ours == theirs || theirs == base {
        return Merge::Clean(ours.to_vec());
    }
    if ours == base {
        return Merge::Clean(theirs.to_vec());
    }
    let (base, ours, theirs) = (Lines::new(base), Lines::new(ours), Lines::new(theirs));
    let (to_ours, to_theirs) = changes(&base, &ours, &theirs);
    let chunks = chunks(&to_ours, &to_theirs);
    resolve(&chunks, &base, &ours, &theirs)
}

/// A file split into lines that keep their terminators.
struct Lines<'a> {
    bytes: &'a [u8],
    /// Where each line starts, plus one last entry at the end of `bytes`.
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Lines<'a> {
        // `split_inclusive` keeps each "\n" with its line and yields a last
        // line without one as a line too (and nothing for an empty file).
        let mut starts = vec![0];
        let mut end = 0;
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            end += line.len();
            starts.push(end);
        }
        Lines { bytes, starts }
    }

    /// How many lines; below `i32::MAX` since the file is shorter than
    /// [`MAX_MERGE_BYTES`].
    fn count(&self) -> u32 {
        (self.starts.len() - 1) as u32
    }

    /// The bytes of lines `range`.
    fn span(&self, range: Range<u32>) -> &'a [u8] {
        &self.bytes[self.starts[range.start as usize]..self.starts[range.end as usize]]
    }

    fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.starts.windows(2).map(|w| &self.bytes[w[0]..w[1]])
    }
}

/// One change of one side: base lines `base` became that side's lines
/// `side`.
struct Hunk {
    base: Range<u32>,
    side: Range<u32>,
}

/// The hunks from base to each side, in base order. One interner serves
/// both diffs, so base's lines are hashed once.
fn changes(base: &Lines, ours: &Lines, theirs: &Lines) -> (Vec<Hunk>, Vec<Hunk>) {
    let capacity = (base.count() + ours.count() + theirs.count()) as usize;
    let mut input = InternedInput {
        before: Vec::new(),
        after: Vec::new(),
        interner: Interner::new(capacity),
    };
    input.update_before(base.iter());
    input.update_after(ours.iter());
    let to_ours = hunks(&input);
    input.update_after(theirs.iter());
    let to_theirs = hunks(&input);
    (to_ours, to_theirs)
}

/// The hunks of one diff; Myers for the reason in the module doc.
fn hunks(input: &InternedInput<&[u8]>) -> Vec<Hunk> {
    let mut found = Vec::new();
    let sink = |base: Range<u32>, side: Range<u32>| found.push(Hunk { base, side });
    diff(Algorithm::Myers, input, sink);
    found
}

/// A stretch of base lines that one or both sides changed, with the lines
/// each side has in its place.
struct Chunk {
    base: Range<u32>,
    ours: Range<u32>,
    theirs: Range<u32>,
    by_ours: bool,
    by_theirs: bool,
}

/// One side's hunks, consumed in base order.
struct Side<'h> {
    hunks: &'h [Hunk],
    /// How far this side's line numbers run ahead of base's past the
    /// hunks consumed so far (negative after net deletions).
    shift: i64,
}

impl<'h> Side<'h> {
    fn next_start(&self) -> Option<u32> {
        self.hunks.first().map(|h| h.base.start)
    }

    /// Consumes the next hunk if it starts at or before base line `end`
    /// (overlapping or touching a chunk that reaches `end`); returns where
    /// it ends in base.
    fn take_touching(&mut self, end: u32) -> Option<u32> {
        let (hunk, rest) = self.hunks.split_first()?;
        if hunk.base.start > end {
            return None;
        }
        self.hunks = rest;
        self.shift = i64::from(hunk.side.end) - i64::from(hunk.base.end);
        Some(hunk.base.end)
    }

    /// This side's line number for base line `line`. Only asked for lines
    /// at or before every hunk not yet consumed and at or after every
    /// consumed one, where the side differs from base only by `shift`.
    fn at(&self, line: u32) -> u32 {
        (i64::from(line) + self.shift) as u32
    }
}

/// Groups the two sides' hunks into chunks: a chunk starts at the first
/// unconsumed hunk of either side and grows while any hunk of either side
/// starts at or before its end, which is the touch rule of the module doc.
fn chunks(to_ours: &[Hunk], to_theirs: &[Hunk]) -> Vec<Chunk> {
    let mut ours = Side {
        hunks: to_ours,
        shift: 0,
    };
    let mut theirs = Side {
        hunks: to_theirs,
        shift: 0,
    };
    let mut found = Vec::new();
    while let Some(start) = min_start(&ours, &theirs) {
        let (ours_start, theirs_start) = (ours.at(start), theirs.at(start));
        let (mut end, mut by_ours, mut by_theirs) = (start, false, false);
        loop {
            if let Some(hunk_end) = ours.take_touching(end) {
                (end, by_ours) = (end.max(hunk_end), true);
            } else if let Some(hunk_end) = theirs.take_touching(end) {
                (end, by_theirs) = (end.max(hunk_end), true);
            } else {
                break;
            }
        }
        found.push(Chunk {
            base: start..end,
            ours: ours_start..ours.at(end),
            theirs: theirs_start..theirs.at(end),
            by_ours,
            by_theirs,
        });
    }
    found
}

fn min_start(ours: &Side, theirs: &Side) -> Option<u32> {
    match (ours.next_start(), theirs.next_start()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Writes the merged file: base's lines between chunks, and for each chunk
/// the side that changed it, or the common text where both changed it
/// alike. Any other chunk is a conflict, and then no file is returned.
fn resolve(chunks: &[Chunk], base: &Lines, ours: &Lines, theirs: &Lines) -> Merge {
    let longest = base
        .bytes
        .len()
        .max(ours.bytes.len())
        .max(theirs.bytes.len());
    let mut merged = Vec::with_capacity(longest);
    let mut conflicts = Vec::new();
    let mut copied = 0;
    for chunk in chunks {
        merged.extend_from_slice(base.span(copied..chunk.base.start));
        copied = chunk.base.end;
        let ours_text = ours.span(chunk.ours.clone());
        let theirs_text = theirs.span(chunk.theirs.clone());
        match (chunk.by_ours, chunk.by_theirs) {
            (true, false) => merged.extend_from_slice(ours_text),
            (false, true) => merged.extend_from_slice(theirs_text),
            _ if ours_text == theirs_text => merged.extend_from_slice(ours_text),
            _ => conflicts.push(Conflict {
                base: chunk.base.clone().into(),
                ours: chunk.ours.clone().into(),
                theirs: chunk.theirs.clone().into(),
            }),
        }
    }
    merged.extend_from_slice(base.span(copied..base.count()));
    if conflicts.is_empty() {
        Merge::Clean(merged)
    } else {
        Merge::Conflicts(conflicts)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn clean(base: &str, ours: &str, theirs: &str) -> String {
        match merge3(base.as_bytes(), ours.as_bytes(), theirs.as_bytes()) {
            Merge::Clean(bytes) => String::from_utf8(bytes).expect("text in, text out"),
            other => panic!("expected a clean merge, got {other:?}"),
        }
    }

    fn conflicts(base: &str, ours: &str, theirs: &str) -> Vec<Conflict> {
        match merge3(base.as_bytes(), ours.as_bytes(), theirs.as_bytes()) {
            Merge::Conflicts(found) => found,
            other => panic!("expected conflicts, got {other:?}"),
        }
    }

    fn range(start: u32, end: u32) -> LineRange {
        LineRange { start, end }
    }

    const BASE: &str = "a\nb\nc\nd\ne\n";

    #[test]
    fn a_change_only_one_side_made_is_taken() {
        assert_eq!(clean(BASE, "a\nB\nc\nd\ne\n", BASE), "a\nB\nc\nd\ne\n");
        assert_eq!(clean(BASE, BASE, "a\nb\nc\nD\ne\n"), "a\nb\nc\nD\ne\n");
        assert_eq!(clean("", "new\n", ""), "new\n");
    }

    #[test]
    fn insertions_at_different_places_merge() {
        let ours = "a\nOURS\nb\nc\nd\ne\n";
        let theirs = "a\nb\nc\nd\nTHEIRS\ne\n";
        assert_eq!(clean(BASE, ours, theirs), "a\nOURS\nb\nc\nd\nTHEIRS\ne\n");
        // One unchanged line between the two insertion points is enough.
        let theirs = "a\nb\nTHEIRS\nc\nd\ne\n";
        assert_eq!(clean(BASE, ours, theirs), "a\nOURS\nb\nTHEIRS\nc\nd\ne\n");
        // At the very start and the very end.
        assert_eq!(
            clean(BASE, "S\na\nb\nc\nd\ne\n", "a\nb\nc\nd\ne\nE\n"),
            "S\na\nb\nc\nd\ne\nE\n"
        );
    }

    #[test]
    fn insertions_at_the_same_place_conflict() {
        let found = conflicts(BASE, "a\nb\nOURS\nc\nd\ne\n", "a\nb\nTHEIRS\nc\nd\ne\n");
        assert_eq!(
            found,
            [Conflict {
                base: range(2, 2),
                ours: range(2, 3),
                theirs: range(2, 3),
            }]
        );
        assert_eq!(
            found[0].to_string(),
            "base after line 2, trunk line 3, pushed line 3"
        );
    }

    /// Git's rule: changes whose base ranges touch conflict, though no
    /// base line is changed by both.
    #[test]
    fn adjacent_changes_conflict() {
        // Edits of neighbouring lines b and c.
        let found = conflicts(BASE, "a\nB\nc\nd\ne\n", "a\nb\nC\nd\ne\n");
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].base, found[0].ours, found[0].theirs),
            (range(1, 3), range(1, 3), range(1, 3))
        );
        // An insertion right after, or right before, the lines the other
        // side replaced.
        conflicts(BASE, "a\nB\nC\nd\ne\n", "a\nb\nc\nNEW\nd\ne\n");
        conflicts(BASE, "a\nB\nC\nd\ne\n", "a\nNEW\nb\nc\nd\ne\n");
        // A deletion next to an edit.
        conflicts(BASE, "a\nc\nd\ne\n", "a\nb\nC\nd\ne\n");
    }

    /// Histogram diffs would call one of ours' insertions a replacement of
    /// the third blank line, touching theirs' insertion (module doc).
    #[test]
    fn repeated_lines_make_no_false_conflicts() {
        let ours = "I0\n\nI1\n\n\nI3\n";
        let theirs = "\n\nT\n\n";
        assert_eq!(clean("\n\n\n", ours, theirs), "I0\n\nI1\n\nT\n\nI3\n");
    }

    #[test]
    fn identical_changes_on_both_sides_merge_once() {
        let both = "a\nB\nc\nd\nNEW\ne\n";
        assert_eq!(clean(BASE, both, both), both);
        // The same edit on both sides, and another edit by one side only.
        let ours = "a\nB\nc\nd\nE\n";
        let theirs = "a\nB\nc\nd\ne\n";
        assert_eq!(clean(BASE, ours, theirs), "a\nB\nc\nd\nE\n");
        // The same insertion at the same point.
        let ours = "a\nb\nX\nc\nD\ne\n";
        let theirs = "Y\na\nb\nX\nc\nd\ne\n";
        assert_eq!(clean(BASE, ours, theirs), "Y\na\nb\nX\nc\nD\ne\n");
    }

    #[test]
    fn deletions_and_edits_elsewhere_merge() {
        assert_eq!(clean(BASE, "a\nd\ne\n", "a\nb\nc\nd\nE\n"), "a\nd\nE\n");
        assert_eq!(clean(BASE, "b\nc\nd\ne\n", "a\nb\nc\nd\n"), "b\nc\nd\n");
        // A deletion against an edit of the deleted line conflicts.
        let found = conflicts(BASE, "a\nb\nd\ne\n", "a\nb\nC\nd\ne\n");
        assert_eq!(
            found[0].to_string(),
            "base line 3, trunk line 3, pushed after line 2"
        );
    }

    #[test]
    fn a_missing_final_newline_stays_missing() {
        let base = "a\nb\nc";
        // Both sides leave the end alone.
        assert_eq!(clean(base, "A\nb\nc", "a\nb\nC"), "A\nb\nC");
        assert_eq!(clean(base, "top\na\nb\nc", "a\nB\nc"), "top\na\nB\nc");
        // One side appends after the last line (which gains its "\n");
        // the other inserts at the top.
        assert_eq!(clean(base, "a\nb\nc\nX\n", "T\na\nb\nc"), "T\na\nb\nc\nX\n");
        assert_eq!(clean(base, "a\nb\ncX", "T\na\nb\nc"), "T\na\nb\ncX");
        // One side only adds the final newline.
        assert_eq!(clean(base, "a\nb\nc\n", "T\na\nb\nc"), "T\na\nb\nc\n");
        // Both append at the end: both changed the last line.
        let found = conflicts(base, "a\nb\nc\nX\n", "a\nb\nc\nY");
        assert_eq!(
            found[0].to_string(),
            "base line 3, trunk lines 3-4, pushed lines 3-4"
        );
    }

    #[test]
    fn crlf_lines_stay_crlf() {
        let base = "a\r\nb\r\nc\r\nd\r\n";
        let ours = "a\r\nOURS\r\nb\r\nc\r\nd\r\n";
        let theirs = "a\r\nb\r\nc\r\nTHEIRS\r\nd\r\n";
        assert_eq!(
            clean(base, ours, theirs),
            "a\r\nOURS\r\nb\r\nc\r\nTHEIRS\r\nd\r\n"
        );
        // A side that changes only the line ending of a line changed it.
        conflicts(base, "a\r\nb\nc\r\nd\r\n", "a\r\nB\r\nc\r\nd\r\n");
    }

    #[test]
    fn binary_files_are_never_merged() {
        let binary = b"a\n\0b\n";
        assert_eq!(merge3(binary, binary, b"a\n"), Merge::Binary);
        assert_eq!(merge3(b"a\n", b"a\nb\n", binary), Merge::Binary);
        assert_eq!(merge3(b"a\n", binary, binary), Merge::Binary);
        let mut late = vec![b'x'; BINARY_SNIFF_BYTES];
        assert!(!is_binary(&late));
        late.push(0);
        assert!(
            !is_binary(&late),
            "a NUL past the first 8,000 bytes is not looked at"
        );
        late[BINARY_SNIFF_BYTES - 1] = 0;
        assert!(is_binary(&late));
        assert!(!is_binary(b""));
        assert!(
            !is_binary(&[0xff, 0xfe, b'\n']),
            "invalid UTF-8 is still text"
        );
    }

    #[test]
    fn conflicts_name_their_lines_in_all_three_files() {
        let base: String = (1..=20).map(|n| format!("{n}\n")).collect();
        let edit = |text: &str, from: &str, to: &str| text.replacen(from, to, 1);
        // The push replaces lines 12-14 with four lines and inserts one at
        // the top; the trunk deletes line 2 and replaces 13-14 with one.
        let ours = edit(
            &edit(&base, "12\n13\n14\n", "p\nq\nr\ns\n"),
            "1\n",
            "0\n1\n",
        );
        let theirs = edit(&edit(&base, "13\n14\n", "t\n"), "\n2\n", "\n");
        let found = conflicts(&base, &ours, &theirs);
        assert_eq!(
            found,
            [Conflict {
                base: range(11, 14),
                ours: range(12, 16),
                theirs: range(10, 12),
            }]
        );
        assert_eq!(
            found[0].to_string(),
            "base lines 12-14, trunk lines 11-12, pushed lines 13-16"
        );
    }

    #[test]
    fn line_ranges_read_one_based() {
        assert_eq!(range(2, 5).to_string(), "lines 3-5");
        assert_eq!(range(2, 3).to_string(), "line 3");
        assert_eq!(range(7, 7).to_string(), "after line 7");
        assert_eq!(range(0, 0).to_string(), "at the start");
        assert_eq!(
            range(5, 2).to_string(),
            "after line 5",
            "a reversed range reads as empty"
        );
    }

    /// A base of `lines` with, at insertion point `p` (before line `p`),
    /// the lines `inserted(p)`, all terminated by `eol`.
    fn file(lines: &[String], eol: &str, inserted: impl Fn(usize) -> Vec<String>) -> String {
        let mut text = String::new();
        for p in 0..=lines.len() {
            for line in inserted(p).iter().chain(lines.get(p)) {
                text.push_str(line);
                text.push_str(eol);
            }
        }
        text
    }

    /// Per insertion point: nobody (0), the push (1) or the trunk (2)
    /// inserts 1-3 lines there.
    fn base_and_insertions() -> impl Strategy<Value = (Vec<String>, Vec<(u8, usize)>)> {
        prop::collection::vec("[a-z]{0,3}", 0..40).prop_flat_map(|lines| {
            let points = lines.len() + 1;
            (
                Just(lines),
                prop::collection::vec((0..3u8, 1..4usize), points),
            )
        })
    }

    proptest! {
        /// Insertions of new lines at distinct points, however close,
        /// merge cleanly into the base in order, each line once.
        #[test]
        fn insertions_at_distinct_points_merge((lines, at) in base_and_insertions(), crlf in any::<bool>()) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let by = |who: u8, name: &'static str| {
                let at = at.clone();
                move |p: usize| match at[p] {
                    (w, n) if w == who => (0..n).map(|k| format!("{name} {p} {k}")).collect(),
                    _ => Vec::new(),
                }
            };
            let base = file(&lines, eol, |_| Vec::new());
            let ours = file(&lines, eol, by(1, "pushed"));
            let theirs = file(&lines, eol, by(2, "trunk"));
            let (ours_at, theirs_at) = (by(1, "pushed"), by(2, "trunk"));
            let both = file(&lines, eol, |p| [ours_at(p), theirs_at(p)].concat());
            prop_assert_eq!(clean(&base, &ours, &theirs), both);
        }
    }
}

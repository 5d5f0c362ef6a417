//! Hot files: shared text that several agents edit at once.
//!
//! With `--overlap P` a share P of tasks, besides writing their own files,
//! insert a few lines into one of `--hot-files K` shared files
//! (`hot/file-<k>.txt`, seeded with [`SEED_LINES`] lines before the trial).
//! Every inserted line ends in a marker `herd:<slot>:<task>:<n>` that
//! appears nowhere else in the tree (seed lines carry none, own files are
//! lowercase letters only), so after the trial herd can check that every
//! edit that landed is on trunk exactly once ([`find_markers`]).
//!
//! What a task inserts, and into which file, is drawn from the seed; where
//! is drawn as a position relative to the file the leaf holds when it makes
//! the edit ([`HotEdit::apply`]): after a random existing line, or at the
//! end as a changelog would (`--hot-append`). So an agent that must redo
//! its edit on newer content (a conflict) places its lines the same way on
//! that content, as an agent re-reading the file would.

use rand::Rng;
use rand_pcg::Pcg64;

/// Lines each hot file holds before the trial.
pub const SEED_LINES: u32 = 200;

/// Lines one edit inserts, at most.
const MAX_EDIT_LINES: u32 = 3;

/// The hot-file knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct HotConfig {
    /// The share of tasks (0–1) that edit a hot file.
    pub overlap: f64,
    /// How many hot files there are.
    pub files: u32,
    /// The share of edits (0–1) that append at the end of the file rather
    /// than insert after a random line.
    pub append: f64,
    /// Whether a task that edits a hot file holds it (through its claim)
    /// for the whole task: the lock-based design.
    pub hold: bool,
}

impl Default for HotConfig {
    fn default() -> Self {
        HotConfig {
            overlap: 0.0,
            files: 4,
            append: 0.2,
            hold: false,
        }
    }
}

impl HotConfig {
    /// Whether any task edits a hot file.
    pub fn enabled(&self) -> bool {
        self.overlap > 0.0
    }
}

/// The path of hot file `k`.
pub fn hot_path(k: u32) -> String {
    format!("hot/file-{k}.txt")
}

/// The hot files as they stand before the trial: `files` of them, each
/// [`SEED_LINES`] lines long, no marker in any.
pub fn seed_files(files: u32) -> Vec<(String, Vec<u8>)> {
    (0..files)
        .map(|k| {
            let text: String = (1..=SEED_LINES)
                .map(|i| format!("hot file {k}, line {i}: text that every agent may edit\n"))
                .collect();
            (hot_path(k), text.into_bytes())
        })
        .collect()
}

/// Where an edit's lines go in the file it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// After the last line.
    End,
    /// After existing line `pick × lines / 2³²` (0-based): a position
    /// relative to the file's length, so it means the same on any version.
    AfterLine(u32),
}

/// One task's edit of a hot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotEdit {
    /// The hot file.
    pub path: String,
    /// The lines inserted, each ending in `\n` and carrying its marker.
    pub lines: Vec<String>,
    /// Where they go.
    pub place: Place,
    /// Their markers, in order.
    pub markers: Vec<Marker>,
}

impl HotEdit {
    /// The file with this edit made on `current`: the lines inserted as one
    /// block at the edit's place. A last line without a newline gets one,
    /// so no inserted line is glued to it.
    pub fn apply(&self, current: &[u8]) -> Vec<u8> {
        let mut lines: Vec<&[u8]> = current.split_inclusive(|&b| b == b'\n').collect();
        let at = match self.place {
            Place::End => lines.len(),
            Place::AfterLine(_) if lines.is_empty() => 0,
            Place::AfterLine(pick) => {
                let index = (u64::from(pick) * lines.len() as u64) >> 32;
                usize::try_from(index).unwrap_or(0) + 1
            }
        };
        let inserted: usize = self.lines.iter().map(String::len).sum();
        let mut out = Vec::with_capacity(current.len() + inserted + 1);
        for line in &lines[..at] {
            out.extend_from_slice(line);
        }
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        for line in &self.lines {
            out.extend_from_slice(line.as_bytes());
        }
        for line in lines.drain(at..) {
            out.extend_from_slice(line);
        }
        out
    }
}

/// The mark on one inserted line: `herd:<slot>:<task>:<n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Marker {
    /// The slot whose task inserted the line.
    pub slot: u32,
    /// The task's index within its slot.
    pub task: u32,
    /// The line's index within the edit.
    pub n: u32,
}

impl std::fmt::Display for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "herd:{}:{}:{}", self.slot, self.task, self.n)
    }
}

/// Every marker in `text`, in order, as many times as it appears.
pub fn find_markers(text: &[u8]) -> Vec<Marker> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = find(rest, b"herd:") {
        rest = &rest[at + 5..];
        let mut fields = [0u32; 3];
        let mut ok = true;
        let mut used = 0;
        for (i, field) in fields.iter_mut().enumerate() {
            let digits = rest[used..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let parsed = std::str::from_utf8(&rest[used..used + digits])
                .ok()
                .and_then(|s| s.parse().ok());
            match parsed {
                Some(v) if digits > 0 => *field = v,
                _ => {
                    ok = false;
                    break;
                }
            }
            used += digits;
            if i < 2 {
                if rest.get(used) != Some(&b':') {
                    ok = false;
                    break;
                }
                used += 1;
            }
        }
        if ok {
            found.push(Marker {
                slot: fields[0],
                task: fields[1],
                n: fields[2],
            });
            rest = &rest[used..];
        }
    }
    found
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Draws task `task` of `slot`'s hot edit from `rng` (the slot's hot-edit
/// stream). The same number of values is drawn whether or not the task
/// edits, so which tasks edit, and what, does not shift with `overlap`'s
/// neighbours.
pub(super) fn draw_edit(
    config: &HotConfig,
    rng: &mut Pcg64,
    slot: u32,
    task: u32,
) -> Option<HotEdit> {
    let edits = rng.gen::<f64>() < config.overlap;
    let file = rng.gen_range(0..config.files.max(1));
    let count = rng.gen_range(1..=MAX_EDIT_LINES);
    let append = rng.gen::<f64>() < config.append;
    let pick = rng.gen::<u32>();
    let markers: Vec<Marker> = (0..count).map(|n| Marker { slot, task, n }).collect();
    let lines = markers
        .iter()
        .map(|m| {
            let words: Vec<String> = (0..rng.gen_range(2..=6))
                .map(|_| {
                    let len = rng.gen_range(3..=8);
                    (0..len)
                        .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
                        .collect()
                })
                .collect();
            format!("{} {m}\n", words.join(" "))
        })
        .collect();
    edits.then(|| HotEdit {
        path: hot_path(file),
        lines,
        place: if append {
            Place::End
        } else {
            Place::AfterLine(pick)
        },
        markers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn edit(place: Place) -> HotEdit {
        HotEdit {
            path: hot_path(0),
            lines: vec!["new herd:1:2:0\n".into(), "more herd:1:2:1\n".into()],
            place,
            markers: vec![],
        }
    }

    #[test]
    fn an_edit_goes_after_a_line_or_at_the_end() {
        let base = b"a\nb\nc\nd\n";
        assert_eq!(
            edit(Place::End).apply(base),
            b"a\nb\nc\nd\nnew herd:1:2:0\nmore herd:1:2:1\n"
        );
        // pick = 2^31 of 4 lines: after line index 2 ("c").
        assert_eq!(
            edit(Place::AfterLine(1 << 31)).apply(base),
            b"a\nb\nc\nnew herd:1:2:0\nmore herd:1:2:1\nd\n"
        );
        assert_eq!(
            edit(Place::AfterLine(0)).apply(base),
            b"a\nnew herd:1:2:0\nmore herd:1:2:1\nb\nc\nd\n"
        );
        assert_eq!(
            edit(Place::AfterLine(u32::MAX)).apply(base),
            edit(Place::End).apply(base)
        );
        assert_eq!(
            edit(Place::AfterLine(7)).apply(b""),
            b"new herd:1:2:0\nmore herd:1:2:1\n"
        );
    }

    #[test]
    fn a_last_line_without_newline_is_not_glued() {
        assert_eq!(
            edit(Place::End).apply(b"a\nb"),
            b"a\nb\nnew herd:1:2:0\nmore herd:1:2:1\n"
        );
    }

    #[test]
    fn markers_are_found_and_nothing_else_is() {
        let text = b"x herd:3:14:2\nherd:1:2\nherd:a:1:1 herd:10:0:0\nherd:4:5:6";
        let found = find_markers(text);
        assert_eq!(
            found,
            vec![
                Marker {
                    slot: 3,
                    task: 14,
                    n: 2
                },
                Marker {
                    slot: 10,
                    task: 0,
                    n: 0
                },
                Marker {
                    slot: 4,
                    task: 5,
                    n: 6
                },
            ]
        );
        assert_eq!(found[0].to_string(), "herd:3:14:2");
        for (_, seed) in seed_files(3) {
            assert!(find_markers(&seed).is_empty());
        }
    }

    #[test]
    fn edits_carry_their_markers_and_follow_the_overlap() {
        let config = HotConfig {
            overlap: 0.5,
            ..HotConfig::default()
        };
        let mut rng = Pcg64::seed_from_u64(9);
        let edits: Vec<_> = (0..400)
            .map(|t| draw_edit(&config, &mut rng, 7, t))
            .collect();
        let some = edits.iter().flatten().count();
        assert!((150..250).contains(&some), "{some} of 400 edit");
        for (t, e) in edits.iter().enumerate() {
            let Some(e) = e else { continue };
            assert!(e.path.starts_with("hot/file-"));
            let text: String = e.lines.concat();
            assert_eq!(find_markers(text.as_bytes()), e.markers);
            assert!(e
                .markers
                .iter()
                .all(|m| m.slot == 7 && m.task as usize == t));
        }
    }
}

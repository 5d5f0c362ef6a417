//! The set check over hot-file edits: after a trial with `--overlap`, every
//! line a committed task inserted must be on the hub's trunk tip exactly
//! once. A lost line is an edit a merge dropped; a doubled one is an edit
//! applied twice (a retried push landed again, a redo on top of its own
//! first landing). This is the check Jepsen runs against a database's set,
//! applied to a version-control hub.
//!
//! What the workload inserted is known without asking anyone: each task's
//! edit is drawn from the seed ([`SlotWorkload::edits`]), and the task
//! lines say which tasks committed. What the hub holds is read from its
//! repository: every hot file at the trunk tip, scanned for markers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::repo::{RepoError, Repository};
use crate::workload::{find_markers, hot_path, Marker, SlotWorkload, WorkloadConfig};

/// Lost or doubled markers named in the verdict, at most.
const NAMED: usize = 5;

/// What the set check found, in the summary and `--json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EditCheck {
    /// The share of tasks that edit a hot file (`--overlap`).
    pub overlap: f64,
    /// Whether tasks held the hot file they edit (`--hold-hot`).
    pub hold_hot: bool,
    /// Lines committed tasks inserted.
    pub edits_expected: u64,
    /// Of those, lines found on the hub's trunk tip (once or more).
    pub edits_found: u64,
    /// Lines a committed task inserted that the tip lacks.
    pub edits_lost: u64,
    /// Lines the tip holds more than once.
    pub edits_doubled: u64,
    /// Markers of tasks that did not commit, found on the tip anyway.
    pub edits_unexpected: u64,
    /// Lines a committed task inserted that are not at the tip but on
    /// another trunk leaf: forks a stock `fossil server` took and nobody
    /// merged (always 0 with herd's hub, whose trunk is linear).
    #[serde(default)]
    pub edits_off_tip: u64,
    /// A few lost markers, for the verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<String>,
    /// A few doubled markers, for the verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub doubled: Vec<String>,
    /// Hub landings that merged a file by lines (`None`: the hub does not
    /// say).
    pub hub_merges: Option<u64>,
    /// Hub landings refused for conflicting lines.
    pub conflicts: Option<u64>,
    /// Edits the leaves redid on newer text after a conflict.
    pub leaf_resolutions: u64,
}

impl EditCheck {
    /// Compares what committed tasks inserted with what the trunk holds.
    /// An edit only on a fork is counted apart (`edits_off_tip`), not lost:
    /// it is on the server, waiting for a merge.
    pub fn compare(expected: &BTreeSet<Marker>, on: &OnTrunk) -> EditCheck {
        let found = &on.tip;
        let missing = |m: &&Marker| !found.contains_key(m);
        let off_tip = expected
            .iter()
            .filter(missing)
            .filter(|m| on.off_tip.contains(m))
            .count();
        let lost: Vec<&Marker> = expected
            .iter()
            .filter(missing)
            .filter(|m| !on.off_tip.contains(m))
            .collect();
        let doubled: Vec<&Marker> = found
            .iter()
            .filter(|(_, &n)| n > 1)
            .map(|(m, _)| m)
            .collect();
        let unexpected = found.keys().filter(|m| !expected.contains(m)).count();
        let named = |v: &[&Marker]| v.iter().take(NAMED).map(ToString::to_string).collect();
        EditCheck {
            edits_expected: expected.len() as u64,
            edits_found: (expected.len() - lost.len() - off_tip) as u64,
            edits_off_tip: off_tip as u64,
            edits_lost: lost.len() as u64,
            edits_doubled: doubled.len() as u64,
            edits_unexpected: unexpected as u64,
            lost: named(&lost),
            doubled: named(&doubled),
            ..EditCheck::default()
        }
    }

    /// Why the check fails, or `None`: lost and doubled edits, a few named.
    pub fn failure(&self) -> Option<String> {
        let mut why = Vec::new();
        let more = |n: u64, named: usize| {
            let rest = n.saturating_sub(named as u64);
            if rest > 0 {
                format!(" and {rest} more")
            } else {
                String::new()
            }
        };
        if self.edits_lost > 0 {
            why.push(format!(
                "{} of {} hot-file edits lost: {}{}",
                self.edits_lost,
                self.edits_expected,
                self.lost.join(", "),
                more(self.edits_lost, self.lost.len())
            ));
        }
        if self.edits_doubled > 0 {
            why.push(format!(
                "{} hot-file edits doubled: {}{}",
                self.edits_doubled,
                self.doubled.join(", "),
                more(self.edits_doubled, self.doubled.len())
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

/// The markers the committed tasks inserted: `committed` lists (slot,
/// task) pairs; each task's edit is drawn again from the seed.
pub fn expected_markers(
    workload: &WorkloadConfig,
    seed: u64,
    tasks: u32,
    committed: impl IntoIterator<Item = (u32, u32)>,
) -> BTreeSet<Marker> {
    let mut by_slot: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (slot, task) in committed {
        by_slot.entry(slot).or_default().push(task);
    }
    let mut expected = BTreeSet::new();
    for (slot, done) in by_slot {
        let edits = SlotWorkload::edits(workload, seed, slot, tasks);
        for task in done {
            if let Some(Some(edit)) = edits.get(task as usize) {
                expected.extend(edit.markers.iter().copied());
            }
        }
    }
    expected
}

/// The markers in the hot files of the repository at `repo`: at the trunk
/// tip, counted, and (where the server took forks: a stock `fossil
/// server`) those found only on another trunk leaf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnTrunk {
    /// Every marker at the trunk tip, with how often it appears there.
    pub tip: BTreeMap<Marker, u32>,
    /// Markers on another trunk leaf but not at the tip: edits on forks
    /// nobody merged.
    pub off_tip: BTreeSet<Marker>,
}

/// Reads the hot files at every trunk leaf of the repository at `repo`.
pub fn markers_on_trunk(repo: &Path, hot_files: u32) -> Result<OnTrunk, RepoError> {
    let repo = Repository::open(repo)?;
    let mut on = OnTrunk::default();
    for (i, leaf) in repo.trunk_leaf_list()?.iter().enumerate() {
        for k in 0..hot_files {
            let text = repo.file_at(leaf, &hot_path(k))?.unwrap_or_default();
            for marker in find_markers(&text) {
                if i == 0 {
                    *on.tip.entry(marker).or_insert(0) += 1;
                } else if !on.tip.contains_key(&marker) {
                    on.off_tip.insert(marker);
                }
            }
        }
    }
    Ok(on)
}

/// Reads the hot files at `main` of the bare git repository at `bare`
/// (a git server's `main` cannot fork: it refuses non-fast-forwards).
pub fn markers_in_git(bare: &Path, hot_files: u32) -> Result<OnTrunk, String> {
    let mut on = OnTrunk::default();
    for k in 0..hot_files {
        let text = super::git_hub::file_at_main(bare, &hot_path(k))?.unwrap_or_default();
        for marker in find_markers(&text) {
            *on.tip.entry(marker).or_insert(0) += 1;
        }
    }
    Ok(on)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(slot: u32, task: u32, n: u32) -> Marker {
        Marker { slot, task, n }
    }

    #[test]
    fn lost_doubled_and_unexpected_are_told_apart() {
        let expected: BTreeSet<Marker> = [m(0, 0, 0), m(0, 0, 1), m(1, 3, 0)].into();
        let on = OnTrunk {
            tip: [(m(0, 0, 0), 1), (m(1, 3, 0), 2), (m(2, 2, 0), 1)].into(),
            off_tip: BTreeSet::new(),
        };
        let check = EditCheck::compare(&expected, &on);
        assert_eq!(
            (
                check.edits_expected,
                check.edits_found,
                check.edits_lost,
                check.edits_doubled,
                check.edits_unexpected
            ),
            (3, 2, 1, 1, 1)
        );
        let why = check.failure().expect("fails");
        assert!(
            why.contains("1 of 3 hot-file edits lost: herd:0:0:1"),
            "{why}"
        );
        assert!(
            why.contains("1 hot-file edits doubled: herd:1:3:0"),
            "{why}"
        );
        let clean = OnTrunk {
            tip: expected.iter().map(|m| (*m, 1)).collect(),
            off_tip: BTreeSet::new(),
        };
        assert_eq!(EditCheck::compare(&expected, &clean).failure(), None);
        // On a fork, not lost: counted apart.
        let forked = OnTrunk {
            tip: [(m(0, 0, 0), 1), (m(1, 3, 0), 1)].into(),
            off_tip: [m(0, 0, 1)].into(),
        };
        let check = EditCheck::compare(&expected, &forked);
        assert_eq!(
            (check.edits_lost, check.edits_off_tip, check.edits_found),
            (0, 1, 2)
        );
        assert_eq!(check.failure(), None);
    }

    #[test]
    fn expected_markers_follow_the_committed_tasks() {
        let mut workload = WorkloadConfig::default();
        workload.hot.overlap = 1.0;
        let all = expected_markers(&workload, 4, 5, (0..5).map(|t| (2, t)));
        let some = expected_markers(&workload, 4, 5, [(2, 1), (2, 3)]);
        assert!(all.len() >= 5 && some.len() >= 2);
        assert!(some.is_subset(&all));
        assert!(some
            .iter()
            .all(|m| m.slot == 2 && (m.task == 1 || m.task == 3)));
    }
}

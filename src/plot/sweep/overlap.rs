//! The overlap chart (`overlap.svg`), drawn when a sweep ran more than one
//! `--overlap` share: commits/s, P50 and P99, and conflicts per commit
//! against the share of tasks that edit shared hot files, one series for
//! concurrent edits (merged by the hub) and one for held ones
//! (`--hold-hot`). A run without overlap is the first point of both.

use std::collections::BTreeMap;

use super::points::{median, Run};
use crate::plot::{xy_grid, Axis, Frame, LegendAt, Mark, PlotError, Series, PALETTE};

/// The medians at one share: commits/s, P50, P99, conflicts per commit.
type Figures = [Option<f64>; 4];

/// The chart, or `None` when the runs hold fewer than two shares.
pub(super) fn chart(runs: &[Run], title: &str) -> Option<Result<String, PlotError>> {
    let herd: Vec<&Run> = runs
        .iter()
        .filter(|r| r.hub_kind != "fossil" && !r.side_by_side && r.p50_commit_ms.is_some())
        .collect();
    let mut shares: Vec<f64> = herd.iter().map(|r| r.overlap).collect();
    shares.sort_by(f64::total_cmp);
    shares.dedup();
    if shares.len() < 2 {
        return None;
    }
    let lines: Vec<(&str, BTreeMap<u64, Figures>)> =
        [("concurrent, merged", false), ("held", true)]
            .into_iter()
            .map(|(name, held)| (name, figures(&herd, held)))
            .filter(|(_, by_share)| by_share.keys().any(|&s| s > 0))
            .collect();
    let mut panels: [Vec<Series>; 3] = Default::default();
    for (i, (name, by_share)) in lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let line = |label: String, mark, k: usize| Series {
            label,
            color,
            mark,
            points: by_share
                .iter()
                .filter_map(|(s, f)| Some((f64::from_bits(*s), f[k]?)))
                .collect(),
        };
        panels[0].push(line((*name).into(), Mark::LinePoints, 0));
        panels[1].push(line(format!("{name} P50"), Mark::LinePoints, 1));
        panels[1].push(line(format!("{name} P99"), Mark::DashedPoints, 2));
        panels[2].push(line((*name).into(), Mark::LinePoints, 3));
    }
    let frame = |title: &str, y: &str, legend| Frame {
        title: title.into(),
        size: (560, 400),
        x: Axis::linear("share of tasks editing hot files (--overlap)"),
        y: Axis::linear(y),
        legend,
    };
    let [rate, latency, conflicts] = panels;
    let panels = [
        (
            frame("Hub throughput", "commits per second", LegendAt::UpperRight),
            rate,
        ),
        (
            frame(
                "Commit latency: P50 solid, P99 dashed",
                "ms",
                LegendAt::UpperLeft,
            ),
            latency,
        ),
        (
            frame(
                "Conflicts per commit",
                "refused for conflicting lines",
                LegendAt::UpperLeft,
            ),
            conflicts,
        ),
    ];
    Some(xy_grid(title, (560, 400), 3, &panels))
}

/// The medians by share (as `f64` bits, which order like the shares for
/// values ≥ 0) of the runs held or not; runs without overlap count for both.
fn figures(runs: &[&Run], held: bool) -> BTreeMap<u64, Figures> {
    let mut groups: BTreeMap<u64, Vec<&Run>> = BTreeMap::new();
    for r in runs
        .iter()
        .filter(|r| r.overlap == 0.0 || r.hold_hot == held)
    {
        groups.entry(r.overlap.to_bits()).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|(share, rs)| {
            let m = |f: &dyn Fn(&Run) -> Option<f64>| median(rs.iter().map(|r| f(r)));
            let per_commit = |r: &Run| {
                let commits = r.hub_commits.filter(|&c| c > 0)? as f64;
                Some(r.conflicts.unwrap_or(0.0) / commits)
            };
            let figures = [
                m(&|r| r.commits_per_s),
                m(&|r| r.p50_commit_ms),
                m(&|r| r.p99_commit_ms),
                m(&per_commit),
            ];
            (share, figures)
        })
        .collect()
}

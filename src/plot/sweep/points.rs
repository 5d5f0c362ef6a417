//! A sweep's runs as the charts and tables see them, and the points they
//! make: the medians over the repeats of one agent count in one series,
//! with the smallest and largest repeat of the figures the charts draw
//! bars for.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The figures of one run the charts and tables use.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Run {
    #[serde(default = "herd")]
    pub(super) hub_kind: String,
    #[serde(default)]
    landing: Option<String>,
    #[serde(default)]
    leaf: Option<String>,
    #[serde(default)]
    catch_up: Option<String>,
    #[serde(default)]
    bytes_pulled: Option<f64>,
    pub(crate) agents: u32,
    pub(crate) tasks: u32,
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    pub(super) hub_commits: Option<u64>,
    #[serde(default)]
    pub(super) side_by_side: bool,
    #[serde(default)]
    pub(super) p50_commit_ms: Option<f64>,
    #[serde(default)]
    pub(super) p99_commit_ms: Option<f64>,
    #[serde(default)]
    pub(super) commits_per_s: Option<f64>,
    #[serde(default)]
    hub_requests_per_commit: Option<f64>,
    #[serde(default)]
    fork_retries: Option<f64>,
    #[serde(default)]
    forks: Option<f64>,
    #[serde(default)]
    cpu_ms_per_commit: Option<f64>,
    #[serde(default)]
    cpu_ms_per_commit_by_kind: Option<CpuByKind>,
    #[serde(default)]
    hub_bytes_out_per_commit: Option<f64>,
    #[serde(default)]
    apply_us_per_checkin: Option<f64>,
    /// The share of tasks that edited hot files (absent: none).
    #[serde(default)]
    pub(super) overlap: f64,
    /// Whether those tasks held the hot file they edited.
    #[serde(default)]
    pub(super) hold_hot: bool,
    /// Hub landings refused for conflicting lines.
    #[serde(default)]
    pub(super) conflicts: Option<f64>,
}

/// The CPU per commit of the kinds of process the tables show.
#[derive(Debug, Clone, Copy, Deserialize)]
struct CpuByKind {
    hub: Option<f64>,
    leaves: Option<f64>,
}

fn herd() -> String {
    "herd".into()
}

impl Run {
    /// The plotted series the run belongs to.
    pub(crate) fn series(&self) -> String {
        if self.hub_kind == "fossil" {
            "fossil".into()
        } else if self.hub_kind == "git" {
            // A git leaf pulls before each task when full, never when sparse.
            match self.leaf.as_deref() {
                Some("sparse") => "git, sparse leaves".into(),
                _ => "git".into(),
            }
        } else {
            // Rows without `leaf` predate full leaves: sparse. Full leaves,
            // the default, are named by their landing alone, and so is
            // catching up from the stream, the default (rows without
            // `catch_up` predate the knob); pulling is named. Sparse leaves
            // ignore catch-up.
            let mut name = format!(
                "herd, {} landing",
                self.landing.as_deref().unwrap_or("leaf")
            );
            match (self.leaf.as_deref(), self.catch_up.as_deref()) {
                (Some("full"), Some("pull")) => name.push_str(", pull catch-up"),
                (Some("full"), _) => {}
                _ => name.push_str(", sparse leaves"),
            }
            if self.overlap > 0.0 {
                name.push_str(&format!(", overlap {}", self.overlap));
                if self.hold_hot {
                    name.push_str(" held");
                }
            }
            name
        }
    }
}

/// One point: the medians over the runs of one agent count in a series.
#[derive(Debug, Clone, Default)]
pub(super) struct Point {
    pub(super) runs: usize,
    pub(super) tasks: u32,
    pub(super) total: u64,
    pub(super) hub_commits: u64,
    pub(super) commits_per_s: Option<f64>,
    pub(super) p50: Option<f64>,
    pub(super) p99: Option<f64>,
    /// The smallest and largest commits/s, P50 and P99 over the runs.
    pub(super) commits_per_s_spread: Option<Spread>,
    pub(super) p50_spread: Option<Spread>,
    pub(super) p99_spread: Option<Spread>,
    pub(super) requests: Option<f64>,
    pub(super) fork_retries: Option<f64>,
    pub(super) forks: Option<f64>,
    pub(super) cpu: Option<f64>,
    pub(super) bytes_per_commit: Option<f64>,
    pub(super) hub_bytes_out: Option<f64>,
    pub(super) apply_us: Option<f64>,
    pub(super) cpu_hub: Option<f64>,
    pub(super) cpu_leaves: Option<f64>,
}

/// The points by series name, then by agent count.
pub(super) type Points = BTreeMap<String, BTreeMap<u32, Point>>;

/// The smallest and the largest of a figure over a point's runs.
pub(super) type Spread = (f64, f64);

/// The finite values, sorted.
fn sorted(values: impl Iterator<Item = Option<f64>>) -> Vec<f64> {
    let mut v: Vec<f64> = values.flatten().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The smallest and largest of the finite values; `None` with none.
fn spread(values: impl Iterator<Item = Option<f64>>) -> Option<Spread> {
    let v = sorted(values);
    Some((*v.first()?, *v.last()?))
}

/// The median of the finite values; `None` with none.
pub(crate) fn median(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v = sorted(values);
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Groups runs with figures into points. `pairs` false: the sweep's herd
/// rows and every fossil row (the plotted series); true: only the
/// side-by-side rows (the ratio table).
pub(super) fn points(runs: &[Run], pairs: bool) -> Points {
    let mut groups: BTreeMap<(String, u32), Vec<&Run>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.p50_commit_ms.is_some()) {
        if pairs && !r.side_by_side {
            continue;
        }
        if !pairs && r.side_by_side && r.hub_kind != "fossil" {
            continue;
        }
        groups.entry((r.series(), r.agents)).or_default().push(r);
    }
    let mut out = Points::new();
    for ((series, agents), rs) in groups {
        let m = |f: fn(&Run) -> Option<f64>| median(rs.iter().map(|r| f(r)));
        let range = |f: fn(&Run) -> Option<f64>| spread(rs.iter().map(|r| f(r)));
        let point = Point {
            runs: rs.len(),
            tasks: rs[0].tasks,
            total: rs[0].total.unwrap_or(0),
            hub_commits: rs.iter().filter_map(|r| r.hub_commits).min().unwrap_or(0),
            commits_per_s: m(|r| r.commits_per_s),
            p50: m(|r| r.p50_commit_ms),
            p99: m(|r| r.p99_commit_ms),
            commits_per_s_spread: range(|r| r.commits_per_s),
            p50_spread: range(|r| r.p50_commit_ms),
            p99_spread: range(|r| r.p99_commit_ms),
            requests: m(|r| r.hub_requests_per_commit),
            fork_retries: m(|r| r.fork_retries),
            forks: m(|r| r.forks),
            cpu: m(|r| r.cpu_ms_per_commit),
            bytes_per_commit: median(rs.iter().map(|r| {
                let commits = r.hub_commits.filter(|&c| c > 0)? as f64;
                Some(r.bytes_pulled.unwrap_or(0.0) / commits)
            })),
            hub_bytes_out: m(|r| r.hub_bytes_out_per_commit),
            apply_us: m(|r| r.apply_us_per_checkin),
            cpu_hub: m(|r| r.cpu_ms_per_commit_by_kind?.hub),
            cpu_leaves: m(|r| r.cpu_ms_per_commit_by_kind?.leaves),
        };
        out.entry(series).or_default().insert(agents, point);
    }
    out
}

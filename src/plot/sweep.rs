//! `herd plot`: a sweep's runs (`herd run --json` lines, one per run, as
//! `scripts/sweep` writes them to `runs.jsonl`) as a CSV, an SVG of charts
//! against the agent count and a markdown table.
//!
//! Each input line is one trial's report plus what the sweep adds:
//! `repeat`, `exit_code`, `zero_think` and `side_by_side`. A point is the
//! median over the repeats of one agent count in one series; the series
//! are herd's hub per landing strategy (rows without `landing` predate hub
//! landing: leaf) and the stock `fossil server`. The fossil series comes
//! from the side-by-side rows, whose herd twins (same agents, tasks and
//! seed) only feed the ratio table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::{xy_grid, Axis, Frame, LegendAt, Mark, PlotError, Series, PALETTE};

/// The columns of the CSV, in order.
pub const COLUMNS: [&str; 31] = [
    "hub_kind",
    "agents",
    "tasks",
    "repeat",
    "exit_code",
    "zero_think",
    "total",
    "hub_commits",
    "fork_retries",
    "fork_unrecoverable",
    "claims_won",
    "claims_lost",
    "broadcasts_pulled",
    "broadcasts_skipped",
    "hub_requests_per_commit",
    "p50_commit_ms",
    "p99_commit_ms",
    "runtime_s",
    "think_floor_s",
    "commits_per_s",
    "hub_peak_rss_kb",
    "leaf_peak_rss_kb",
    "trunk_leaves",
    "forks",
    "side_by_side",
    "landing",
    "hub_rebases",
    "cpu_ms_per_commit",
    "leaf",
    "bytes_pulled",
    "files_updated",
];

/// Why the sweep could not be plotted.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A file could not be read or written.
    #[error("cannot {what} {}", path.display())]
    Io {
        /// Read or write.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a run's JSON object.
    #[error("{}:{line}: not a run's JSON object: {why}", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// No run produced figures.
    #[error("{}: no run produced figures (every run failed before its report)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A chart could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

/// The figures of one run the charts and tables use.
#[derive(Debug, Clone, Deserialize)]
struct Run {
    #[serde(default = "herd")]
    hub_kind: String,
    #[serde(default)]
    landing: Option<String>,
    #[serde(default)]
    leaf: Option<String>,
    #[serde(default)]
    bytes_pulled: Option<f64>,
    agents: u32,
    tasks: u32,
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    hub_commits: Option<u64>,
    #[serde(default)]
    side_by_side: bool,
    #[serde(default)]
    p50_commit_ms: Option<f64>,
    #[serde(default)]
    p99_commit_ms: Option<f64>,
    #[serde(default)]
    commits_per_s: Option<f64>,
    #[serde(default)]
    hub_requests_per_commit: Option<f64>,
    #[serde(default)]
    fork_retries: Option<f64>,
    #[serde(default)]
    forks: Option<f64>,
    #[serde(default)]
    cpu_ms_per_commit: Option<f64>,
}

fn herd() -> String {
    "herd".into()
}

impl Run {
    /// The plotted series the run belongs to.
    fn series(&self) -> String {
        if self.hub_kind == "fossil" {
            "fossil".into()
        } else {
            // Rows without `leaf` predate full leaves: sparse. Full leaves,
            // the default, are named by their landing alone.
            let name = format!(
                "herd, {} landing",
                self.landing.as_deref().unwrap_or("leaf")
            );
            match self.leaf.as_deref() {
                Some("full") => name,
                _ => format!("{name}, sparse leaves"),
            }
        }
    }
}

/// One point: the medians over the runs of one agent count in a series.
#[derive(Debug, Clone, Default)]
struct Point {
    runs: usize,
    tasks: u32,
    total: u64,
    hub_commits: u64,
    commits_per_s: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    requests: Option<f64>,
    fork_retries: Option<f64>,
    forks: Option<f64>,
    cpu: Option<f64>,
    bytes_per_commit: Option<f64>,
}

type Points = BTreeMap<String, BTreeMap<u32, Point>>;

fn median(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let mut v: Vec<f64> = values.flatten().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
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
fn points(runs: &[Run], pairs: bool) -> Points {
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
        let point = Point {
            runs: rs.len(),
            tasks: rs[0].tasks,
            total: rs[0].total.unwrap_or(0),
            hub_commits: rs.iter().filter_map(|r| r.hub_commits).min().unwrap_or(0),
            commits_per_s: m(|r| r.commits_per_s),
            p50: m(|r| r.p50_commit_ms),
            p99: m(|r| r.p99_commit_ms),
            requests: m(|r| r.hub_requests_per_commit),
            fork_retries: m(|r| r.fork_retries),
            forks: m(|r| r.forks),
            cpu: m(|r| r.cpu_ms_per_commit),
            bytes_per_commit: median(rs.iter().map(|r| {
                let commits = r.hub_commits.filter(|&c| c > 0)? as f64;
                Some(r.bytes_pulled.unwrap_or(0.0) / commits)
            })),
        };
        out.entry(series).or_default().insert(agents, point);
    }
    out
}

/// What `herd plot` writes.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// The CSV, one row per run.
    pub csv: PathBuf,
    /// The charts.
    pub svg: PathBuf,
    /// The markdown tables.
    pub markdown: PathBuf,
    /// The charts' title.
    pub title: String,
}

/// Reads `jsonl` and writes the outputs.
pub fn plot(jsonl: &Path, out: &Outputs) -> Result<(), SweepError> {
    let text = std::fs::read_to_string(jsonl).map_err(|source| SweepError::Io {
        what: "read",
        path: jsonl.into(),
        source,
    })?;
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| SweepError::BadLine {
            path: jsonl.into(),
            line: i + 1,
            why,
        };
        let value: Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        if !value.is_object() {
            return Err(bad("not an object".into()));
        }
        runs.push(Run::deserialize(&value).map_err(|e| bad(e.to_string()))?);
        rows.push(value);
    }
    let plotted = points(&runs, false);
    if plotted.is_empty() {
        return Err(SweepError::Empty { path: jsonl.into() });
    }
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|source| SweepError::Io {
            what: "write",
            path: path.into(),
            source,
        })
    };
    write(&out.csv, csv(&rows))?;
    write(&out.markdown, markdown(&plotted, &points(&runs, true)))?;
    write(&out.svg, charts(&plotted, &out.title)?)?;
    Ok(())
}

/// One CSV row per run, [`COLUMNS`] in order; a missing figure is empty.
fn csv(rows: &[Value]) -> String {
    let mut out = COLUMNS.join(",") + "\n";
    for row in rows {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|c| {
                let cell = match row.get(*c) {
                    None | Some(Value::Null) => match *c {
                        "hub_kind" => "herd".into(),
                        "side_by_side" => "false".into(),
                        _ => String::new(),
                    },
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                };
                if cell.contains([',', '"', '\n']) {
                    format!("\"{}\"", cell.replace('"', "\"\""))
                } else {
                    cell
                }
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.decimals$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

fn markdown(plotted: &Points, pairs: &Points) -> String {
    let mut md = String::from(
        "| series | agents | runs | hub commits / total | commits/s | P50 ms | P99 ms | requests/commit | fork retries | forks | CPU ms/commit |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (series, by_agents) in plotted {
        for (agents, p) in by_agents {
            let _ = writeln!(
                md,
                "| {series} | {agents} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} |",
                p.runs,
                p.hub_commits,
                p.total,
                fmt(p.commits_per_s, 1),
                fmt(p.p50, 2),
                fmt(p.p99, 2),
                fmt(p.requests, 2),
                fmt(p.fork_retries, 0),
                fmt(p.forks, 0),
                fmt(p.cpu, 2),
            );
        }
    }
    let empty = BTreeMap::new();
    let hub = plotted.get("herd, hub landing").unwrap_or(&empty);
    let leaf = plotted.get("herd, leaf landing").unwrap_or(&empty);
    let both: Vec<u32> = hub
        .keys()
        .filter(|a| leaf.contains_key(a))
        .copied()
        .collect();
    if !both.is_empty() {
        md.push_str(
            "\nLanding strategies side by side: hub landing's figures over leaf landing's.\n\n\
             | agents | commits/s hub | commits/s leaf | commits/s ratio (hub ÷ leaf) | P50 ms hub | P50 ms leaf | CPU ms/commit hub | CPU ms/commit leaf | CPU ratio (hub ÷ leaf) |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for a in both {
            let (h, l) = (&hub[&a], &leaf[&a]);
            let _ = writeln!(
                md,
                "| {a} | {} | {} | {} | {} | {} | {} | {} | {} |",
                fmt(h.commits_per_s, 1),
                fmt(l.commits_per_s, 1),
                fmt(ratio(h.commits_per_s, l.commits_per_s), 2),
                fmt(h.p50, 2),
                fmt(l.p50, 2),
                fmt(h.cpu, 2),
                fmt(l.cpu, 2),
                fmt(ratio(h.cpu, l.cpu), 2),
            );
        }
    }
    for landing in ["hub", "leaf"] {
        let full = plotted
            .get(&format!("herd, {landing} landing"))
            .unwrap_or(&empty);
        let sparse = plotted
            .get(&format!("herd, {landing} landing, sparse leaves"))
            .unwrap_or(&empty);
        let both: Vec<u32> = full
            .keys()
            .filter(|a| sparse.contains_key(a))
            .copied()
            .collect();
        if both.is_empty() {
            continue;
        }
        let _ = write!(
            md,
            "\nFull leaves against sparse ones ({landing} landing): what staying current costs.\n\n\
             | agents | commits/s full | commits/s sparse | P50 ms full | P50 ms sparse | P99 ms full | P99 ms sparse | CPU ms/commit full | CPU ms/commit sparse | CPU ratio (full ÷ sparse) | bytes pulled/commit (full) |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        );
        for a in both {
            let (f, sp) = (&full[&a], &sparse[&a]);
            let _ = writeln!(
                md,
                "| {a} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                fmt(f.commits_per_s, 1),
                fmt(sp.commits_per_s, 1),
                fmt(f.p50, 2),
                fmt(sp.p50, 2),
                fmt(f.p99, 2),
                fmt(sp.p99, 2),
                fmt(f.cpu, 2),
                fmt(sp.cpu, 2),
                fmt(ratio(f.cpu, sp.cpu), 2),
                fmt(f.bytes_per_commit, 0),
            );
        }
    }
    let fossil = pairs.get("fossil").unwrap_or(&empty);
    let mut ratios = Vec::new();
    for (name, herd) in pairs.iter().filter(|(n, _)| n.as_str() != "fossil") {
        for (a, h) in herd {
            if let Some(f) = fossil.get(a) {
                ratios.push((name, a, h, f));
            }
        }
    }
    if !ratios.is_empty() {
        md.push_str(
            "\nSide by side: the same agents, tasks and seed on herd's hub and on a stock \
             `fossil server` (fossil accepts forks: its forks column counts trunk leaves − 1).\n\n\
             | herd series | agents | tasks | herd commits/s | fossil commits/s | commits/s ratio (herd ÷ fossil) | herd P50 ms | fossil P50 ms | P50 ratio (fossil ÷ herd) | fossil commits / total | fossil forks |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for (name, a, h, f) in ratios {
            let _ = writeln!(
                md,
                "| {name} | {a} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} |",
                h.tasks,
                fmt(h.commits_per_s, 1),
                fmt(f.commits_per_s, 2),
                fmt(ratio(h.commits_per_s, f.commits_per_s), 1),
                fmt(h.p50, 2),
                fmt(f.p50, 1),
                fmt(ratio(f.p50, h.p50), 1),
                f.hub_commits,
                f.total,
                fmt(f.forks, 0),
            );
        }
    }
    md
}

/// Four charts against the agent count (log scale): commits/s, P50 and
/// P99, hub requests per commit, CPU per commit; one colour per series.
fn charts(plotted: &Points, title: &str) -> Result<String, PlotError> {
    let agents = || Axis::log("agents (log scale)");
    let mut rate = Vec::new();
    let mut latency = Vec::new();
    let mut requests = Vec::new();
    let mut cpu = Vec::new();
    for (i, (name, by_agents)) in plotted.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let line = |label: String, mark, f: fn(&Point) -> Option<f64>| Series {
            label,
            color,
            mark,
            points: by_agents
                .iter()
                .filter_map(|(a, p)| Some((f64::from(*a), f(p)?)))
                .collect(),
        };
        rate.push(line(name.clone(), Mark::LinePoints, |p| p.commits_per_s));
        latency.push(line(format!("{name} P50"), Mark::LinePoints, |p| p.p50));
        latency.push(line(format!("{name} P99"), Mark::DashedPoints, |p| p.p99));
        requests.push(line(name.clone(), Mark::LinePoints, |p| p.requests));
        cpu.push(line(name.clone(), Mark::LinePoints, |p| p.cpu));
    }
    let frame = |title: &str, y: Axis, legend| Frame {
        title: title.into(),
        size: (560, 400),
        x: agents(),
        y,
        legend,
    };
    let panels = [
        (
            frame(
                "Hub throughput",
                Axis::log("commits per second (log)"),
                LegendAt::UpperRight,
            ),
            rate,
        ),
        (
            frame(
                "Commit latency: P50 solid, P99 dashed",
                Axis::log("ms (log)"),
                LegendAt::UpperLeft,
            ),
            latency,
        ),
        (
            frame(
                "Hub requests per commit",
                Axis::linear("requests"),
                LegendAt::LowerRight,
            ),
            requests,
        ),
        (
            frame(
                "CPU per commit, all processes",
                Axis::log("ms (log)"),
                LegendAt::LowerRight,
            ),
            cpu,
        ),
    ];
    xy_grid(title, (560, 400), 2, &panels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: &str, landing: &str, agents: u32, rate: f64, pair: bool) -> String {
        format!(
            r#"{{"hub_kind":"{kind}","landing":"{landing}","leaf":"full","agents":{agents},"tasks":5,"total":{},"hub_commits":{},"p50_commit_ms":2.0,"p99_commit_ms":9.0,"commits_per_s":{rate},"hub_requests_per_commit":1.1,"forks":0,"fork_retries":0,"cpu_ms_per_commit":4.0,"side_by_side":{pair},"repeat":1,"exit_code":0}}"#,
            agents * 5,
            agents * 5
        )
    }

    fn plot_lines(lines: &[String]) -> Result<(String, String, String), SweepError> {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("runs.jsonl");
        std::fs::write(&jsonl, lines.join("\n")).unwrap();
        let out = Outputs {
            csv: dir.path().join("runs.csv"),
            svg: dir.path().join("sweep.svg"),
            markdown: dir.path().join("table.md"),
            title: "test sweep".into(),
        };
        plot(&jsonl, &out)?;
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        Ok((read(&out.csv), read(&out.svg), read(&out.markdown)))
    }

    #[test]
    fn medians_ratios_and_charts_come_out_of_the_runs() {
        let lines = vec![
            run("herd", "hub", 1, 100.0, false),
            run("herd", "hub", 1, 300.0, false),
            run("herd", "hub", 1, 200.0, false),
            run("herd", "leaf", 1, 50.0, false),
            run("herd", "hub", 4, 400.0, false),
            run("herd", "hub", 4, 40.0, true),
            run("fossil", "hub", 4, 4.0, true),
        ];
        let (csv, svg, md) = plot_lines(&lines).unwrap();
        assert_eq!(csv.lines().count(), 1 + lines.len());
        assert!(csv.starts_with("hub_kind,agents,tasks,repeat,"));
        // The median of 100, 300 and 200, and its ratio over leaf landing.
        assert!(
            md.contains("| herd, hub landing | 1 | 3 | 5 / 5 | 200.0 |"),
            "{md}"
        );
        assert!(md.contains("| 1 | 200.0 | 50.0 | 4.00 |"), "{md}");
        // The pair's herd twin feeds only the fossil ratio (40 / 4).
        assert!(
            md.contains("| herd, hub landing | 4 | 1 | 20 / 20 | 400.0 |"),
            "{md}"
        );
        assert!(md.contains("| 40.0 | 4.00 | 10.0 |"), "{md}");
        assert!(svg.starts_with("<svg"));
        for title in [
            "Hub throughput",
            "Commit latency",
            "requests per commit",
            "CPU per commit",
        ] {
            assert!(svg.contains(title), "{title}");
        }
        for series in ["herd, hub landing", "herd, leaf landing", "fossil"] {
            assert!(svg.contains(series), "{series}");
        }
    }

    #[test]
    fn bad_input_is_named_by_line() {
        let err = plot_lines(&[run("herd", "hub", 1, 1.0, false), "[1,2]".into()]).unwrap_err();
        assert!(
            err.to_string().contains(":2: not a run's JSON object"),
            "{err}"
        );
        let err = plot_lines(&[r#"{"agents":1,"tasks":5}"#.into()]).unwrap_err();
        assert!(err.to_string().contains("no run produced figures"), "{err}");
    }
}

//! `herd plot`: a sweep's runs (`herd run --json` lines, one per run, as
//! `scripts/sweep` writes them to `runs.jsonl`) as a CSV, an SVG of charts
//! against the agent count and a markdown table.
//!
//! Each input line is one trial's report plus what the sweep adds:
//! `repeat`, `exit_code`, `zero_think` and `side_by_side`. A point is the
//! median over the repeats of one agent count in one series; the series
//! are herd's hub per landing strategy (rows without `landing` predate hub
//! landing: leaf), leaf mode and catch-up (full leaves pulling are labeled
//! `pull catch-up`; the stream, the default, is not) and the stock `fossil
//! server`. The fossil series comes
//! from the side-by-side rows, whose herd twins (same agents, tasks and
//! seed) only feed the ratio table.
//!
//! This file reads the runs and writes the outputs; the points are made in
//! `points`, the outputs drawn in `csv`, `table` and `charts`, and each
//! series' capacity model fitted in `capacity` (capacity.json, the last
//! tables of table.md, a curve on the throughput chart). A sweep over
//! `--overlap` also gets `overlap.svg` (`overlap`) beside the charts.

mod capacity;
mod charts;
mod csv;
mod overlap;
pub(crate) mod points;
mod table;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::PlotError;
use points::{points, Run};

pub use csv::COLUMNS;

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

/// What `herd plot` writes.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// The CSV, one row per run.
    pub csv: PathBuf,
    /// The charts.
    pub svg: PathBuf,
    /// The markdown tables.
    pub markdown: PathBuf,
    /// The capacity model of each series (JSON).
    pub capacity: PathBuf,
    /// The charts' title.
    pub title: String,
    /// Fit the capacity model only to points with at most this many
    /// agents, and show its predictions for the points beyond.
    pub fit_max_agents: Option<u32>,
}

/// Reads `jsonl` and writes the outputs.
pub fn plot(jsonl: &Path, out: &Outputs) -> Result<(), SweepError> {
    let (rows, runs) = read_runs(jsonl)?;
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
    let caps = capacity::capacities(&plotted, out.fit_max_agents);
    let mut md = table::markdown(&plotted, &points(&runs, true));
    capacity::markdown(&mut md, &caps, &plotted, out.fit_max_agents);
    write(&out.csv, csv::csv(&rows))?;
    write(&out.markdown, md)?;
    write(&out.capacity, capacity::json(&caps))?;
    write(&out.svg, charts::charts(&plotted, &caps, &out.title)?)?;
    if let Some(chart) = overlap::chart(&runs, &out.title) {
        write(&out.svg.with_file_name("overlap.svg"), chart?)?;
    }
    Ok(())
}

/// The runs in `jsonl`, each as its JSON object (for the CSV, which keeps
/// every column) and as the figures the points use; blank lines skipped.
pub(crate) fn read_runs(jsonl: &Path) -> Result<(Vec<Value>, Vec<Run>), SweepError> {
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
    Ok((rows, runs))
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
        plot_fitted(lines, None).map(|(csv, svg, md, _)| (csv, svg, md))
    }

    /// The CSV, SVG, markdown and capacity.json of `lines`, the capacity
    /// model fitted to at most `fit_max_agents`.
    fn plot_fitted(
        lines: &[String],
        fit_max_agents: Option<u32>,
    ) -> Result<(String, String, String, String), SweepError> {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("runs.jsonl");
        std::fs::write(&jsonl, lines.join("\n")).unwrap();
        let out = Outputs {
            csv: dir.path().join("runs.csv"),
            svg: dir.path().join("sweep.svg"),
            markdown: dir.path().join("table.md"),
            capacity: dir.path().join("capacity.json"),
            title: "test sweep".into(),
            fit_max_agents,
        };
        plot(&jsonl, &out)?;
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        Ok((
            read(&out.csv),
            read(&out.svg),
            read(&out.markdown),
            read(&out.capacity),
        ))
    }

    #[test]
    fn series_with_three_agent_counts_get_a_capacity_fit() {
        // Rates on the curve σ = 0.05, κ = 0.001, λ = 100, three repeats
        // each (10 % either side of it); leaf landing has two agent counts.
        let usl = |n: f64| 100.0 * n / (1.0 + 0.05 * (n - 1.0) + 0.001 * n * (n - 1.0));
        let mut lines = Vec::new();
        for agents in [1, 2, 4, 8, 16, 32, 64] {
            for spread in [0.9, 1.0, 1.1] {
                lines.push(run(
                    "herd",
                    "hub",
                    agents,
                    usl(f64::from(agents)) * spread,
                    false,
                ));
            }
        }
        lines.push(run("herd", "leaf", 1, 50.0, false));
        lines.push(run("herd", "leaf", 2, 80.0, false));
        let (_, svg, md, capacity) = plot_fitted(&lines, Some(16)).unwrap();
        let fits: Vec<Value> = serde_json::from_str(&capacity).unwrap();
        assert_eq!(fits.len(), 1, "{capacity}");
        let f = &fits[0];
        assert_eq!(f["series"], "herd, hub landing");
        assert_eq!(f["points"], 5, "agents 1 to 16");
        let near = |key: &str, want: f64| {
            let got = f[key].as_f64().unwrap();
            assert!(
                (got - want).abs() < 1e-4 * want,
                "{key}: {got} against {want}"
            );
        };
        near("sigma", 0.05);
        near("kappa", 0.001);
        near("lambda", 100.0);
        near("n_max", (0.95f64 / 0.001).sqrt());
        near("x_max", usl((0.95f64 / 0.001).sqrt()));
        near("r2", 1.0);
        assert!(
            md.contains("Capacity (Universal Scalability Law fit to commits/s, agents ≤ 16)."),
            "{md}"
        );
        assert!(
            md.contains("| herd, hub landing | 0.0500 | 0.00100 | 100.0 | 30.8 | 903.8 | 1.000 |"),
            "{md}"
        );
        // The points beyond 16 agents, predicted from the fit on 1 to 16.
        let row = |n: f64| {
            format!(
                "| herd, hub landing | {n} | {0:.1} | {0:.1} | +0.0 |",
                usl(n)
            )
        };
        assert!(md.contains(&row(32.0)), "{md}");
        assert!(md.contains(&row(64.0)), "{md}");
        assert!(svg.contains("USL fit"), "the fits' legend entry");
        assert!(svg.contains("min–max of repeats"), "the bars' title");
    }

    #[test]
    fn too_few_agent_counts_give_an_empty_capacity_list() {
        let lines = [
            run("herd", "hub", 1, 10.0, false),
            run("herd", "hub", 2, 0.0, false),
        ];
        let (_, svg, md, capacity) = plot_fitted(&lines, Some(1)).unwrap();
        assert_eq!(capacity.trim(), "[]");
        assert!(
            md.contains("No series has commits/s at 3 agent counts"),
            "{md}"
        );
        assert!(!svg.contains("USL fit"));
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
    fn catch_up_values_are_series_of_their_own_with_a_table() {
        let with = |catch_up: &str, rate: f64, bytes: f64| {
            run("herd", "hub", 2, rate, false).replace(
                r#""leaf":"full","#,
                &format!(
                    r#""leaf":"full","catch_up":"{catch_up}","hub_bytes_out_per_commit":{bytes},"apply_us_per_checkin":12.5,"cpu_ms_per_commit_by_kind":{{"hub":1.5,"nats":0.5,"leaves":2.0,"herd":0.1}},"#
                ),
            )
        };
        let lines = vec![with("stream", 300.0, 900.0), with("pull", 100.0, 5000.0)];
        let (csv, svg, md) = plot_lines(&lines).unwrap();
        for series in ["herd, hub landing", "herd, hub landing, pull catch-up"] {
            assert!(svg.contains(series), "{series}");
            assert!(md.contains(&format!("| {series} | 2 |")), "{md}");
        }
        assert!(md.contains("catching up from the stream against pulling (hub landing)"));
        assert!(
            md.contains("| 2 | 300.0 | 100.0 | 2.00 | 2.00 | 4.00 | 4.00 | 1.00 | 1.50 | 1.50 | 2.00 | 2.00 | 900 | 5000 | 12.5 | 12.5 |"),
            "{md}"
        );
        // The by-kind object is flattened into a column per kind.
        let mut rows = csv.lines().map(|l| l.split(',').collect::<Vec<_>>());
        let header = rows.next().unwrap();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        for row in rows {
            assert_eq!(row.len(), header.len(), "{row:?}");
            assert_eq!(row[col("cpu_ms_per_commit_hub")], "1.5");
            assert_eq!(row[col("cpu_ms_per_commit_herd")], "0.1");
            assert_eq!(row[col("apply_us_per_checkin")], "12.5");
        }
        assert!(csv.contains(",pull,5000,12.5,"), "{csv}");
    }

    #[test]
    fn stock_servers_are_series_of_their_own_with_herd_over_them() {
        let lines = vec![
            run("herd", "hub", 16, 400.0, false),
            run("git", "hub", 16, 8.0, false)
                .replace(r#""cpu_ms_per_commit":4.0"#, r#""cpu_ms_per_commit":200.0"#),
            run("fossil", "hub", 16, 40.0, false),
        ];
        let (_, svg, md) = plot_lines(&lines).unwrap();
        for series in ["herd, hub landing", "git", "fossil"] {
            assert!(svg.contains(series), "{series}");
        }
        assert!(md.contains("against a stock server (git)"), "{md}");
        // 400 ÷ 8 commits/s, 200 ÷ 4 CPU ms per commit.
        assert!(
            md.contains("| 16 | 400.0 | 8.00 | 50.0 | 4.00 | 200.0 | 50.0 |"),
            "{md}"
        );
        assert!(md.contains("| 16 | 400.0 | 40.00 | 10.0 |"), "{md}");
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

//! `herd compare`: two sets of runs side by side, point by point, with a
//! verdict per figure: better, worse, or within the noise.
//!
//! Each input is JSON lines, one `herd run --json` report a line: a
//! sweep's `runs.jsonl` (which adds `repeat`, `exit_code`, `zero_think`
//! and `side_by_side`) or the output of single trials. A point is a series
//! (named as `herd plot` names it), an agent count and a task count; the
//! runs of a point are its repeats. Runs that failed (an `exit_code` other
//! than 0, or none of the figures) are left out and counted.
//!
//! For every point in both files, each of [`FIGURES`] that both sides
//! have gets a row: each side's median and range, the change of the
//! medians, and the verdict of the rule in `verdict`. A point only one
//! file has gets a row saying so. Where the runs of a point disagree on a
//! setting the point does not name ([`SETTINGS`], such as zero think
//! time), the row says which.
//!
//! This file reads and groups the runs; `verdict` holds the rule and
//! `text` draws the table. The `--json` rows are [`Row`]s, one a line:
//!
//! ```json
//! {"series":"herd, hub landing","agents":16,"tasks":30,"figure":"p99_commit_ms","higher_is_better":false,"a":{"runs":3,"median":41.2,"min":39.8,"max":44.0},"b":{"runs":3,"median":30.1,"min":29.5,"max":31.0},"change_pct":-26.9,"verdict":"better","basis":{"test":"repeats","p":0.008,"overlap":false}}
//! {"series":"fossil","agents":4,"tasks":5,"only_in":"A","runs":1}
//! ```
//!
//! `verdict` is `better`, `worse` or `within_noise`; `change_pct` is null
//! when A's median is 0; `basis` is `{"test":"repeats","p":…,"overlap":…}`
//! or, with a single run on a side, `{"test":"threshold","noise_pct":…}`;
//! `settings_differ` (`[{"setting":"zero_think","a":"true","b":"false"}]`)
//! is there only when the runs differ in a setting.

mod text;
mod verdict;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::plot::sweep::{read_runs, SweepError};
pub use verdict::{judge, Basis, Better, Judgement, Sample, Verdict, SIGNIFICANCE};

/// The exit code of `herd compare --fail-on-worse` when a figure got worse.
pub const EXIT_WORSE: u8 = 1;

/// The threshold for single runs, in percent, unless `--noise` says.
pub const DEFAULT_NOISE_PCT: f64 = 5.0;

/// A figure the comparison looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figure {
    /// Its name in the report's JSON.
    pub key: &'static str,
    /// Its name in the table.
    pub label: &'static str,
    /// Which way it improves.
    pub better: Better,
}

/// The figures compared, in the order of the rows.
pub const FIGURES: [Figure; 5] = [
    Figure {
        key: "commits_per_s",
        label: "commits/s",
        better: Better::Higher,
    },
    Figure {
        key: "p50_commit_ms",
        label: "P50 commit ms",
        better: Better::Lower,
    },
    Figure {
        key: "p99_commit_ms",
        label: "P99 commit ms",
        better: Better::Lower,
    },
    Figure {
        key: "cpu_ms_per_commit",
        label: "CPU ms/commit",
        better: Better::Lower,
    },
    Figure {
        key: "hub_requests_per_commit",
        label: "hub requests/commit",
        better: Better::Lower,
    },
];

/// Settings a run records that its point does not name; runs of one point
/// that disagree on them were not the same trial.
pub const SETTINGS: [&str; 3] = ["zero_think", "mode", "seed"];

impl Serialize for Figure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.key)
    }
}

/// Why two sets of runs could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A file could not be read, or a line is not a run.
    #[error(transparent)]
    Read(#[from] SweepError),
    /// No run of a file can be compared.
    #[error("{}: no run to compare ({excluded} failed, left out)", path.display())]
    NoRuns {
        /// The file.
        path: PathBuf,
        /// Its failed runs.
        excluded: usize,
    },
}

/// A point: the runs of one series at one agent and task count.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Point {
    /// The series, named as `herd plot` names it.
    pub series: String,
    /// Leaf-agents.
    pub agents: u32,
    /// Tasks per agent.
    pub tasks: u32,
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, {} × {}", self.series, self.agents, self.tasks)
    }
}

/// One of the two inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Side {
    /// The first file (before).
    A,
    /// The second file (after).
    B,
}

/// A row of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The point.
    #[serde(flatten)]
    pub point: Point,
    /// What the row says of it.
    #[serde(flatten)]
    pub cell: Cell,
}

/// What a row says of its point.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    /// One figure on both sides.
    Figure(Box<FigureRow>),
    /// The point is in one file only.
    OnlyIn {
        /// The file that has it.
        only_in: Side,
        /// Its runs there.
        runs: usize,
    },
}

/// One figure of a point on both sides, and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FigureRow {
    /// The figure (its JSON name).
    pub figure: Figure,
    /// Whether more is better.
    pub higher_is_better: bool,
    /// The first file's runs.
    pub a: Sample,
    /// The second file's runs.
    pub b: Sample,
    /// The change and what it means.
    #[serde(flatten)]
    pub judgement: Judgement,
    /// Settings the two sides' runs disagree on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub settings_differ: Vec<Difference>,
}

/// A setting the runs of a point disagree on between the files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The setting's name in the report.
    pub setting: &'static str,
    /// Its values in the first file's runs.
    pub a: String,
    /// Its values in the second file's.
    pub b: String,
}

/// What was read from one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The file.
    pub path: PathBuf,
    /// Runs compared.
    pub runs: usize,
    /// Failed runs left out.
    pub excluded: usize,
}

/// Two sets of runs compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The first file.
    pub a: Input,
    /// The second file.
    pub b: Input,
    /// The threshold for single runs, in percent.
    pub noise_pct: f64,
    /// The rows: the points both files have, each with its figures in the
    /// order of [`FIGURES`], then the points only A has, then only B.
    pub rows: Vec<Row>,
}

impl Comparison {
    /// Whether any figure got worse beyond the noise.
    pub fn any_worse(&self) -> bool {
        self.rows
            .iter()
            .any(|r| matches!(&r.cell, Cell::Figure(f) if f.judgement.verdict == Verdict::Worse))
    }

    /// A line for each file with failed runs, saying how many were left
    /// out.
    pub fn left_out(&self) -> Vec<String> {
        [&self.a, &self.b]
            .into_iter()
            .filter(|input| input.excluded > 0)
            .map(|input| {
                format!(
                    "{}: {} left out",
                    input.path.display(),
                    text::plural(input.excluded, "failed run")
                )
            })
            .collect()
    }

    /// The aligned table, with the files above it and the rule below.
    pub fn text(&self) -> String {
        text::render(self)
    }

    /// One JSON object a row, each on its own line.
    pub fn json_lines(&self) -> Result<String, serde_json::Error> {
        let mut out = String::new();
        for row in &self.rows {
            out.push_str(&serde_json::to_string(row)?);
            out.push('\n');
        }
        Ok(out)
    }
}

/// `--noise PCT` as clap parses it: a finite percentage, 0 or more.
pub fn noise_pct(text: &str) -> Result<f64, String> {
    match text.trim().trim_end_matches('%').parse::<f64>() {
        Ok(pct) if pct.is_finite() && pct >= 0.0 => Ok(pct),
        _ => Err(format!("not a percentage of 0 or more: {text}")),
    }
}

/// The runs of `a` and `b` compared point by point; `noise_pct` is the
/// threshold for a point with a single run on either side.
pub fn compare(a: &Path, b: &Path, noise_pct: f64) -> Result<Comparison, CompareError> {
    let (a, runs_a) = read(a)?;
    let (b, runs_b) = read(b)?;
    let points: BTreeSet<&Point> = runs_a.keys().chain(runs_b.keys()).collect();
    let mut rows = Vec::new();
    for point in points {
        let cells = match (runs_a.get(point), runs_b.get(point)) {
            (Some(a), Some(b)) => figure_rows(a, b, noise_pct),
            (Some(a), None) => vec![only_in(Side::A, a)],
            (None, Some(b)) => vec![only_in(Side::B, b)],
            (None, None) => Vec::new(),
        };
        rows.extend(cells.into_iter().map(|cell| Row {
            point: point.clone(),
            cell,
        }));
    }
    // The points both files have first, then each file's own.
    rows.sort_by_key(|r| match r.cell {
        Cell::Figure(_) => 0,
        Cell::OnlyIn {
            only_in: Side::A, ..
        } => 1,
        Cell::OnlyIn {
            only_in: Side::B, ..
        } => 2,
    });
    Ok(Comparison {
        a,
        b,
        noise_pct,
        rows,
    })
}

/// A file's runs by point, failed runs left out and counted.
fn read(path: &Path) -> Result<(Input, BTreeMap<Point, Vec<Value>>), CompareError> {
    let (rows, runs) = read_runs(path)?;
    let mut input = Input {
        path: path.into(),
        runs: 0,
        excluded: 0,
    };
    let mut points: BTreeMap<Point, Vec<Value>> = BTreeMap::new();
    for (row, run) in rows.into_iter().zip(&runs) {
        let code = row.get("exit_code").and_then(Value::as_i64).unwrap_or(0);
        if code != 0 || FIGURES.iter().all(|f| figure(&row, f).is_none()) {
            input.excluded += 1;
            continue;
        }
        input.runs += 1;
        let point = Point {
            series: run.series(),
            agents: run.agents,
            tasks: run.tasks,
        };
        points.entry(point).or_default().push(row);
    }
    if input.runs == 0 {
        return Err(CompareError::NoRuns {
            path: input.path,
            excluded: input.excluded,
        });
    }
    Ok((input, points))
}

/// A run's value of `f`, when it has a finite one.
fn figure(row: &Value, f: &Figure) -> Option<f64> {
    row.get(f.key)?.as_f64().filter(|v| v.is_finite())
}

fn only_in(side: Side, runs: &[Value]) -> Cell {
    Cell::OnlyIn {
        only_in: side,
        runs: runs.len(),
    }
}

/// A row for each figure both sides of a point have.
fn figure_rows(a: &[Value], b: &[Value], noise_pct: f64) -> Vec<Cell> {
    let differ = differences(a, b);
    FIGURES
        .iter()
        .filter_map(|f| {
            let a = Sample::new(a.iter().filter_map(|r| figure(r, f)))?;
            let b = Sample::new(b.iter().filter_map(|r| figure(r, f)))?;
            Some(Cell::Figure(Box::new(FigureRow {
                figure: *f,
                higher_is_better: f.better == Better::Higher,
                judgement: judge(&a, &b, f.better, noise_pct),
                a,
                b,
                settings_differ: differ.clone(),
            })))
        })
        .collect()
}

/// The [`SETTINGS`] both sides record and disagree on.
fn differences(a: &[Value], b: &[Value]) -> Vec<Difference> {
    let values = |runs: &[Value], setting: &str| {
        let seen: BTreeSet<String> = runs
            .iter()
            .filter_map(|r| r.get(setting).filter(|v| !v.is_null()))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
            .collect();
        seen.into_iter().collect::<Vec<_>>().join(", ")
    };
    SETTINGS
        .iter()
        .filter_map(|&setting| {
            let (a, b) = (values(a, setting), values(b, setting));
            (!a.is_empty() && !b.is_empty() && a != b).then_some(Difference { setting, a, b })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sweep's row of herd's hub, full leaves, at 4 agents × 10 tasks.
    fn run(repeat: u32, rate: f64, p99: f64, exit: i32) -> String {
        format!(
            r#"{{"repeat":{repeat},"exit_code":{exit},"zero_think":true,"side_by_side":false,"hub_kind":"herd","landing":"hub","leaf":"full","catch_up":"stream","agents":4,"tasks":10,"mode":"disjoint","seed":1,"p50_commit_ms":2.0,"p99_commit_ms":{p99},"commits_per_s":{rate},"cpu_ms_per_commit":4.0,"hub_requests_per_commit":null}}"#
        )
    }

    fn compare_lines(a: &[String], b: &[String]) -> Result<Comparison, CompareError> {
        let dir = tempfile::tempdir().unwrap();
        let (pa, pb) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
        std::fs::write(&pa, a.join("\n")).unwrap();
        std::fs::write(&pb, b.join("\n")).unwrap();
        compare(&pa, &pb, DEFAULT_NOISE_PCT)
    }

    fn figures(c: &Comparison) -> Vec<(&'static str, Verdict)> {
        c.rows
            .iter()
            .filter_map(|r| match &r.cell {
                Cell::Figure(f) => Some((f.figure.key, f.judgement.verdict)),
                Cell::OnlyIn { .. } => None,
            })
            .collect()
    }

    #[test]
    fn repeats_make_a_point_and_failed_runs_are_left_out() {
        let a = [
            run(1, 100.0, 30.0, 0),
            run(2, 101.0, 31.0, 0),
            run(3, 99.0, 29.0, 0),
            run(4, 500.0, 1.0, 1),
        ];
        let b = [
            run(1, 150.0, 30.5, 0),
            run(2, 151.0, 29.5, 0),
            run(3, 149.0, 31.0, 0),
        ];
        let c = compare_lines(&a, &b).unwrap();
        assert_eq!((c.a.runs, c.a.excluded, c.b.runs), (3, 1, 3));
        // Requests per commit is null on both sides: no row.
        assert_eq!(
            figures(&c),
            [
                ("commits_per_s", Verdict::Better),
                ("p50_commit_ms", Verdict::WithinNoise),
                ("p99_commit_ms", Verdict::WithinNoise),
                ("cpu_ms_per_commit", Verdict::WithinNoise),
            ]
        );
        assert!(!c.any_worse());
        let Cell::Figure(f) = &c.rows[0].cell else {
            panic!("{:?}", c.rows[0]);
        };
        assert_eq!(c.rows[0].point.series, "herd, hub landing");
        assert_eq!(
            (f.a.runs, f.a.median, f.a.min, f.a.max),
            (3, 100.0, 99.0, 101.0)
        );
        assert!(f.settings_differ.is_empty());
    }

    #[test]
    fn points_of_one_file_and_other_settings_are_said() {
        let a = [run(1, 100.0, 30.0, 0)];
        let b = [
            run(1, 80.0, 30.0, 0).replace(r#""zero_think":true"#, r#""zero_think":false"#),
            run(1, 80.0, 30.0, 0).replace(r#""agents":4"#, r#""agents":8"#),
        ];
        let c = compare_lines(&a, &b).unwrap();
        assert_eq!(figures(&c)[0], ("commits_per_s", Verdict::Worse));
        assert!(c.any_worse());
        let Cell::Figure(f) = &c.rows[0].cell else {
            panic!("{:?}", c.rows[0]);
        };
        assert_eq!(f.settings_differ[0].setting, "zero_think");
        let last = c.rows.last().unwrap();
        assert_eq!(last.point.agents, 8);
        assert_eq!(
            last.cell,
            Cell::OnlyIn {
                only_in: Side::B,
                runs: 1
            }
        );
        let text = c.text();
        assert!(text.contains("only in B"), "{text}");
        assert!(text.contains("No repeats"), "{text}");
        assert!(
            text.contains("herd, hub landing, 4 × 10 *  commits/s"),
            "{text}"
        );
        assert!(
            text.contains("\n  herd, hub landing, 4 × 10: zero_think (A true, B false)\n"),
            "{text}"
        );
        let json = c.json_lines().unwrap();
        let rows: Vec<Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), c.rows.len());
        assert_eq!(rows[0]["figure"], "commits_per_s");
        assert_eq!(rows[0]["verdict"], "worse");
        assert_eq!(rows[0]["basis"]["test"], "threshold");
        assert_eq!(rows[0]["change_pct"], -20.0);
        assert_eq!(rows.last().unwrap()["only_in"], "B");
    }

    #[test]
    fn bad_lines_and_empty_files_are_errors_naming_the_file() {
        let err = compare_lines(&[run(1, 1.0, 1.0, 0), "{oops".into()], &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("a.jsonl:2: not a run's JSON object"),
            "{err}"
        );
        let err = compare_lines(&[run(1, 1.0, 1.0, 0)], &[run(1, 1.0, 1.0, 2)]).unwrap_err();
        assert!(
            err.to_string()
                .contains("b.jsonl: no run to compare (1 failed"),
            "{err}"
        );
    }

    #[test]
    fn noise_is_a_percentage() {
        assert_eq!(noise_pct("2.5"), Ok(2.5));
        assert_eq!(noise_pct("10%"), Ok(10.0));
        for bad in ["-1", "nan", "inf", "five"] {
            assert!(noise_pct(bad).is_err(), "{bad}");
        }
    }
}

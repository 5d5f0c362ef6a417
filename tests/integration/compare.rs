//! `herd compare` on two fixed sets of runs (tests/data/compare): the
//! verdicts of repeated and single points, the points of one file only,
//! the JSON rows, and the exit codes for a worse figure and a bad line.

use std::path::PathBuf;
use std::process::{Command, Output};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/compare")
        .join(name)
}

fn herd_compare(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herd"))
        .arg("compare")
        .args(args)
        .output()
        .expect("run herd compare")
}

fn before_after(extra: &[&str]) -> Output {
    let (a, b) = (data("before.jsonl"), data("after.jsonl"));
    let mut args = vec![a.as_os_str(), b.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    herd_compare(&args)
}

/// The table row of `point` and `figure`, split into its cells.
fn row<'a>(table: &'a str, point: &str, figure: &str) -> Vec<&'a str> {
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("{point} ")) && l.contains(&format!("  {figure}  ")))
        .unwrap_or_else(|| panic!("no row {point} / {figure}:\n{table}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn compare_says_better_worse_and_noise_per_figure() {
    let out = before_after(&[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(
        table.contains("before.jsonl, 5 runs (1 run failed, left out)"),
        "{table}"
    );
    let repeated = "herd, hub landing, 4 × 10";
    let single = "herd, hub landing, sparse leaves, 16 × 10";
    for (point, figure, verdict) in [
        (repeated, "commits/s", "better"),
        (repeated, "P50 commit ms", "within noise"),
        (repeated, "P99 commit ms", "worse"),
        (repeated, "CPU ms/commit", "within noise"),
        (repeated, "hub requests/commit", "within noise"),
        (single, "commits/s", "better"),
        (single, "P50 commit ms", "within noise"),
        (single, "CPU ms/commit", "worse"),
    ] {
        let cells = row(&table, point, figure);
        assert_eq!(cells[5], verdict, "{point} / {figure}: {cells:?}");
    }
    let cells = row(&table, repeated, "commits/s");
    assert_eq!(
        cells[2..5],
        [
            "202.0 (200.0–204.0, n=3)",
            "240.0 (238.0–243.0, n=3)",
            "+18.8%"
        ]
    );
    assert_eq!(cells[6], "p<0.001", "{cells:?}");
    assert_eq!(row(&table, single, "commits/s")[6], "no repeats, ±5%");
    assert!(table.contains("fossil, 4 × 5"), "{table}");
    for (point, only) in [("fossil, 4 × 5", "only in A"), ("git, 4 × 10", "only in B")] {
        let line = table.lines().find(|l| l.starts_with(point)).unwrap();
        assert!(line.ends_with(only), "{line}");
    }
    assert!(table.contains("Welch's t-test"), "{table}");
    assert!(table.contains("No repeats"), "{table}");

    // A wider threshold makes the single run's 12.5 % more CPU noise.
    let wide = before_after(&["--noise", "15"]);
    let table = String::from_utf8_lossy(&wide.stdout);
    assert_eq!(row(&table, single, "CPU ms/commit")[5], "within noise");
}

#[test]
fn compare_json_is_a_row_a_line_and_fail_on_worse_fails() {
    let out = before_after(&["--json", "--fail-on-worse"]);
    assert_eq!(out.status.code(), Some(1), "a figure got worse");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // 5 figures at each shared point, and a row per point of one file.
    assert_eq!(rows.len(), 12, "{stdout}");
    let p99 = rows
        .iter()
        .find(|r| r["agents"] == 4 && r["tasks"] == 10 && r["figure"] == "p99_commit_ms")
        .expect("the repeated point's P99");
    assert_eq!(p99["series"], "herd, hub landing");
    assert_eq!(p99["verdict"], "worse");
    assert_eq!(p99["higher_is_better"], false);
    assert_eq!(p99["a"]["runs"], 3);
    assert_eq!(p99["basis"]["test"], "repeats");
    assert!(p99["basis"]["p"].as_f64().unwrap() < 0.05, "{p99}");
    assert!(rows
        .iter()
        .any(|r| r["only_in"] == "B" && r["series"] == "git"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("before.jsonl: 1 failed run left out"),
        "{stderr}"
    );

    // The same file on both sides: nothing is worse.
    let a = data("before.jsonl");
    let same = herd_compare(&[a.as_os_str(), a.as_os_str(), "--fail-on-worse".as_ref()]);
    assert_eq!(same.status.code(), Some(0));
}

#[test]
fn a_bad_line_is_named_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    let good = std::fs::read_to_string(data("before.jsonl")).unwrap();
    let first = good.lines().next().unwrap();
    std::fs::write(&bad, format!("{first}\n{{\"agents\": 4,\n")).unwrap();
    let a = data("after.jsonl");
    let out = herd_compare(&[a.as_os_str(), bad.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("herd compare: ")
            && stderr.contains("bad.jsonl:2: not a run's JSON object"),
        "{stderr}"
    );
    let missing = dir.path().join("missing.jsonl");
    let out = herd_compare(&[missing.as_os_str(), a.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

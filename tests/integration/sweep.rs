//! `scripts/sweep --quick`: the sweep users drive from the shell produces a
//! well-formed CSV and an SVG with the expected series.

use std::path::Path;
use std::process::Command;

#[test]
fn quick_sweep_writes_csv_and_svg() {
    let out = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = Command::new(root.join("scripts/sweep"))
        .args(["--quick", "--herd", env!("CARGO_BIN_EXE_herd"), "--out"])
        .arg(out.path())
        .args(["--", "--max-think-ms", "5", "--min-think-ms", "0"])
        .env("NATS_SERVER", crate::helpers::nats_server_binary())
        .output()
        .expect("run scripts/sweep");
    assert!(
        run.status.success(),
        "sweep failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let csv = std::fs::read_to_string(out.path().join("runs.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("column {name} missing: {header:?}"))
    };
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "one row per point of --quick:\n{csv}");
    let agents: Vec<&str> = rows.iter().map(|r| r[col("agents")]).collect();
    assert_eq!(agents, ["1", "2", "4"]);
    for row in &rows {
        assert_eq!(row.len(), header.len(), "ragged row {row:?}");
        assert_eq!(row[col("exit_code")], "0", "{row:?}");
        assert_eq!(row[col("hub_commits")], row[col("total")], "{row:?}");
        let p50: f64 = row[col("p50_commit_ms")].parse().unwrap();
        let p99: f64 = row[col("p99_commit_ms")].parse().unwrap();
        assert!(p50 > 0.0 && p99 >= p50, "{row:?}");
        assert!(row[col("commits_per_s")].parse::<f64>().unwrap() > 0.0);
    }

    let svg = std::fs::read_to_string(out.path().join("sweep.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for series in [
        "herd P50 commit ms",
        "herd P99 commit ms",
        "herd hub commits/s",
    ] {
        let tag = svg
            .lines()
            .find(|l| l.contains(&format!("data-name=\"{series}\"")))
            .unwrap_or_else(|| panic!("series {series} missing"));
        let points = tag
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(points.split_whitespace().count(), 3, "{series}: {points}");
    }
    let table = std::fs::read_to_string(out.path().join("table.md")).unwrap();
    assert_eq!(table.lines().count(), 2 + 3, "{table}");
}

//! The sweep's CSV: every run as it came, one row each, in a fixed set of
//! columns so that spreadsheets and scripts can rely on the order.

use serde_json::Value;

/// The columns of the CSV, in order.
pub const COLUMNS: [&str; 46] = [
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
    "catch_up",
    "hub_bytes_out_per_commit",
    "apply_us_per_checkin",
    "cpu_ms_per_commit_hub",
    "cpu_ms_per_commit_nats",
    "cpu_ms_per_commit_leaves",
    "cpu_ms_per_commit_herd",
    "overlap",
    "hold_hot",
    "edits_expected",
    "edits_lost",
    "edits_doubled",
    "hub_merges",
    "conflicts",
    "leaf_resolutions",
];

/// The object whose keys the `<object>_<key>` columns flatten: a CSV cell
/// holds no object.
const BY_KIND: &str = "cpu_ms_per_commit_by_kind";

/// The run's value for column `c`.
fn value<'a>(row: &'a Value, c: &str) -> Option<&'a Value> {
    match c.strip_prefix("cpu_ms_per_commit_") {
        Some(kind @ ("hub" | "nats" | "leaves" | "herd")) => row.get(BY_KIND)?.get(kind),
        _ => row.get(c),
    }
}

/// One CSV row per run, [`COLUMNS`] in order; a missing figure is empty.
pub(super) fn csv(rows: &[Value]) -> String {
    let mut out = COLUMNS.join(",") + "\n";
    for row in rows {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|c| {
                let cell = match value(row, c) {
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

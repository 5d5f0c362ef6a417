//! The sweep's CSV: every run as it came, one row each, in a fixed set of
//! columns so that spreadsheets and scripts can rely on the order.

use serde_json::Value;

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

/// One CSV row per run, [`COLUMNS`] in order; a missing figure is empty.
pub(super) fn csv(rows: &[Value]) -> String {
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

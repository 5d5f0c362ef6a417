//! Full leaves catching up from the stream (`--catch-up stream`, the
//! default) and by pulling (`--catch-up pull`): both end with every
//! worktree equal to the hub's trunk at the check-in it last updated to and
//! leaf repositories that pass `fossil test-integrity`, over the same
//! trunk; with the stream the hub serves no catch-up pulls; and a leaf that
//! falls further behind than it holds pulls and ends equal. Real
//! herd, hub, leaf-agents, nats-server and fossil.

use std::path::Path;

use serde_json::Value;

use crate::full::{assert_worktrees_follow_trunk, tree};
use crate::helpers::{fossil_ok, fossil_sql, herd_command, run_ok};

/// A kept 4 × 6 trial with full leaves and `catch_up`; its JSON report.
fn trial(workdir: &Path, catch_up: &str) -> Value {
    let mut cmd = herd_command();
    cmd.args([
        "run", "--json", "--agents", "4", "--tasks", "6", "--seed", "7",
    ])
    .args(["--min-think-ms", "5", "--max-think-ms", "30"])
    .args(["--catch-up", catch_up, "--timeout", "120", "--workdir"])
    .arg(workdir);
    let out = run_ok(&mut cmd, "herd run");
    let report: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("one JSON object");
    assert_eq!(report["hub_commits"], 24, "{report}");
    assert_eq!(report["catch_up"], catch_up, "{report}");
    report
}

/// The hub's trunk tip, checked out by the real fossil: path → content.
fn trunk_tree(home: &Path, hub: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let tip = fossil_sql(
        home,
        hub,
        "SELECT uuid FROM blob JOIN leaf ON leaf.rid=blob.rid",
    );
    let checkout = tempfile::tempdir().unwrap();
    fossil_ok(
        home,
        checkout.path(),
        &["open", hub.to_str().unwrap(), &tip],
    );
    tree(checkout.path())
}

#[test]
fn stream_and_pull_catch_up_end_equal_to_the_same_trunk() {
    let home = tempfile::tempdir().unwrap();
    let stream_dir = tempfile::tempdir().unwrap();
    let pull_dir = tempfile::tempdir().unwrap();
    let stream = trial(stream_dir.path(), "stream");
    let pull = trial(pull_dir.path(), "pull");
    assert_worktrees_follow_trunk(stream_dir.path(), 4);
    assert_worktrees_follow_trunk(pull_dir.path(), 4);
    // The same seed writes the same files: both trunks end byte-identical.
    let a = trunk_tree(home.path(), &stream_dir.path().join("hub.fossil"));
    let b = trunk_tree(home.path(), &pull_dir.path().join("hub.fossil"));
    assert_eq!(a.len(), b.len());
    assert!(a == b, "the two trunks differ");
    // Streamed, the hub serves no catch-up: fewer bytes per commit, and
    // the leaves pull less than a tenth of what pulling leaves do.
    let out = |r: &Value| r["hub_bytes_out_per_commit"].as_f64().unwrap();
    assert!(out(&stream) < out(&pull), "stream {stream}\npull {pull}");
    let pulled = |r: &Value| r["bytes_pulled"].as_u64().unwrap();
    assert!(
        pulled(&stream) * 10 < pulled(&pull),
        "stream {stream}\npull {pull}"
    );
    for r in [&stream, &pull] {
        assert!(r["apply_us_per_checkin"].as_f64().unwrap() > 0.0, "{r}");
    }
}

/// Leaves that fall further behind than they hold (a buffer of a few
/// batches, while each task thinks long enough for more to land) drop the
/// oldest, find the gap, pull, and end equal to trunk like the others.
#[test]
fn a_leaf_that_falls_behind_what_it_holds_pulls_and_ends_equal() {
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().join("trial");
    let (agents, tasks) = (4u32, 8u32);
    let mut cmd = herd_command();
    cmd.env("HERD_STREAM_BUFFER_BYTES", "6000")
        .args(["run", "--json", "--agents", &agents.to_string()])
        .args(["--tasks", &tasks.to_string()])
        .args(["--min-think-ms", "20", "--max-think-ms", "200"])
        .args(["--timeout", "120", "--workdir"])
        .arg(&workdir);
    let out = run_ok(&mut cmd, "herd run");
    let report: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("one JSON object");
    assert_eq!(report["catch_up"], "stream", "{report}");
    assert_eq!(report["hub_commits"], u64::from(agents * tasks), "{report}");
    assert_eq!(report["trunk_leaves"], 1, "{report}");
    // The gaps were pulled over.
    assert!(report["bytes_pulled"].as_u64().unwrap() > 0, "{report}");
    assert_worktrees_follow_trunk(&workdir, agents);
}

/// A leaf that starts after the others have landed clones the trunk so
/// far, reads the stream from before its clone began, and ends equal to
/// trunk without a pull.
#[test]
fn a_leaf_started_late_catches_up_from_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().join("trial");
    // The others take about 1.5 s; slot 3 starts half a second in.
    let (agents, tasks) = (4u32, 20u32);
    let mut cmd = herd_command();
    cmd.args(["run", "--json", "--agents", &agents.to_string()])
        .args(["--tasks", &tasks.to_string()])
        .args(["--min-think-ms", "40", "--max-think-ms", "80"])
        .args([
            "--leaf-launcher",
            "if [ {slot} = 3 ]; then sleep 0.5; fi; exec {cmd}",
        ])
        .args(["--timeout", "120", "--workdir"])
        .arg(&workdir);
    let out = run_ok(&mut cmd, "herd run");
    let report: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("one JSON object");
    assert_eq!(report["hub_commits"], u64::from(agents * tasks), "{report}");
    assert_eq!(report["bytes_pulled"], 0, "no gap, no pull: {report}");
    // Every worktree, the late leaf's too, is trunk at its tip and holds
    // more than its own files.
    assert_worktrees_follow_trunk(&workdir, agents);
}

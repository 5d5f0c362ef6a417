//! What a commit costs, as `herd run --json` reports it: CPU per commit by
//! kind of process, the hub's response bytes per commit, the leaves' CPU
//! per applied check-in, and the catch-up the trial asked for. Real herd,
//! hub, leaf-agents and nats-server.

use serde_json::Value;

use crate::helpers::{herd_command, run_ok, QUICK_TASKS};

/// A small trial's JSON report, after it passed.
fn trial(extra: &[&str]) -> Value {
    let mut cmd = herd_command();
    cmd.args([
        "run",
        "--json",
        "--agents",
        "3",
        "--tasks",
        "4",
        "--timeout",
        "120",
    ])
    .args(QUICK_TASKS)
    .args(extra);
    let out = run_ok(&mut cmd, "herd run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).expect("one JSON object")
}

/// A positive number at `field` of `report`.
fn positive(report: &Value, field: &Value, name: &str) -> f64 {
    let n = field
        .as_f64()
        .unwrap_or_else(|| panic!("{name} is not a number: {report}"));
    assert!(n > 0.0, "{name} = {n}: {report}");
    n
}

#[test]
fn a_trial_reports_cpu_by_kind_hub_bytes_out_and_its_catch_up() {
    for (asked, extra) in [("stream", &[][..]), ("pull", &["--catch-up", "pull"][..])] {
        let report = trial(extra);
        assert_eq!(report["catch_up"], asked, "{report}");
        assert_eq!(report["hub_commits"], 12, "{report}");
        let by_kind = report["cpu_ms_per_commit_by_kind"]
            .as_object()
            .unwrap_or_else(|| panic!("no cpu_ms_per_commit_by_kind: {report}"));
        let mut kinds: Vec<&str> = by_kind.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        assert_eq!(kinds, ["herd", "hub", "leaves", "nats"], "{report}");
        let hub = positive(&report, &by_kind["hub"], "hub cpu ms/commit");
        let leaves = positive(&report, &by_kind["leaves"], "leaves cpu ms/commit");
        // The kinds are read at the ends of their processes' lives; the
        // total is the kernel's count of every reaped child, a little more.
        let total = positive(&report, &report["cpu_ms_per_commit"], "cpu ms/commit");
        assert!(hub + leaves <= total * 1.05, "{report}");
        positive(
            &report,
            &report["hub_bytes_out_per_commit"],
            "hub bytes out/commit",
        );
        assert!(report.get("apply_us_per_checkin").is_some(), "{report}");
    }
}

/// Needs the leaf side of issue 26: full leaves count the check-ins they
/// apply and the CPU it takes (`checkins_applied`, `apply_us`).
#[test]
fn full_leaves_pulling_report_their_cpu_per_applied_check_in() {
    let report = trial(&["--catch-up", "pull", "--leaf", "full"]);
    assert_eq!(report["catch_up"], "pull", "{report}");
    positive(
        &report,
        &report["apply_us_per_checkin"],
        "apply µs/check-in",
    );
}

#[test]
fn an_unknown_catch_up_is_one_line_and_exit_2() {
    for mut cmd in [
        {
            let mut cmd = herd_command();
            cmd.args(["run", "--catch-up", "bogus"]);
            cmd
        },
        {
            let mut cmd = herd_command();
            cmd.arg("run").env("HERD_CATCH_UP", "bogus");
            cmd
        },
    ] {
        let out = cmd.output().expect("run herd");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
        assert!(stderr.starts_with("herd: "), "{stderr}");
        assert!(
            stderr.contains("unknown catch-up \"bogus\" (expected stream or pull)"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
}

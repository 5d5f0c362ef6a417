//! `herd run` end to end: real nats-server, real hub, real leaf-agents.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::children_named;

use crate::helpers::{herd_command as herd, run_ok, QUICK_TASKS};

/// A small, quick trial: think time 0-5 ms, small files.
fn small_trial(agents: u32, tasks: u32) -> Command {
    let mut cmd = herd();
    cmd.args([
        "run",
        "--agents",
        &agents.to_string(),
        "--tasks",
        &tasks.to_string(),
    ])
    .args(QUICK_TASKS)
    .args(["--timeout", "120"]);
    cmd
}

fn json_report(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "herd --json printed no JSON object ({e}):\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn assert_consistent(report: &Value, total: u64) {
    let n = |k: &str| {
        report[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {report}"))
    };
    assert_eq!(n("total"), total, "{report}");
    assert_eq!(n("hub_commits"), total, "{report}");
    assert_eq!(n("claims_won"), total, "{report}");
    assert_eq!(n("fork_unrecoverable"), 0, "{report}");
    assert_eq!(n("trunk_leaves"), 1, "{report}");
    assert!(
        report["failed_slots"].as_array().unwrap().is_empty(),
        "{report}"
    );
    for key in [
        "agents",
        "tasks",
        "fork_retries",
        "claims_lost",
        "broadcasts_pulled",
        "broadcasts_skipped",
        "p50_commit_ms",
        "p99_commit_ms",
        "runtime_s",
        "think_floor_s",
        "hub_requests_per_commit",
    ] {
        assert!(report.get(key).is_some(), "{key} missing in {report}");
    }
    assert!(report["p50_commit_ms"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["p99_commit_ms"].as_f64().unwrap() >= report["p50_commit_ms"].as_f64().unwrap());
}

#[test]
fn disjoint_run_lands_every_task_and_prints_the_summary() {
    let out = run_ok(&mut small_trial(4, 5), "herd");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected_head =
        "herd-hub-leaf trial: agents=4 tasks=5 total=20\n  hub commits:        20\n";
    assert!(stdout.starts_with(expected_head), "{stdout}");
    for label in [
        "  fork retries:       ",
        "  fork unrecoverable: 0\n",
        "  claims won:         20\n",
        "  claims lost:        0\n",
        "  broadcasts pulled:  ",
        "  broadcasts skipped (idempotent): ",
        "  P50/P99 commit ms:  ",
        "  total runtime:      ",
    ] {
        assert!(stdout.contains(label), "missing {label:?} in\n{stdout}");
    }
}

/// A trial with each landing strategy: the same counts hold, and the
/// figures that tell the strategies apart say what happened.
#[test]
fn json_output_parses_and_counts_agree_with_either_landing() {
    for landing in ["hub", "leaf"] {
        let out = run_ok(
            small_trial(4, 5).args(["--json", "--landing", landing]),
            landing,
        );
        let report = json_report(&out);
        assert_consistent(&report, 20);
        assert_eq!(report["landing"], landing, "{report}");
        let cpu = report["cpu_ms_per_commit"]
            .as_f64()
            .expect("cpu per commit");
        assert!(cpu > 0.0 && cpu < 10_000.0, "{report}");
        // Open, claim, one hold per file (1–4), fence, close, release.
        let nats = report["nats_ops_per_task"]
            .as_f64()
            .expect("nats ops per task");
        assert!((7.0..=16.0).contains(&nats), "{report}");
        let rebases = report["hub_rebases"].as_u64().expect("hub rebases");
        match landing {
            // Four leaves on one trunk: most landings found it moved. The
            // leaves are full (the default) and caught up on what they
            // missed from the stream (the default), writing others' files.
            "hub" => {
                assert!(rebases > 0, "{report}");
                assert_eq!(report["fork_retries"], 0, "no conflicts: {report}");
                assert!(report["broadcasts_pulled"].as_u64() > Some(0), "{report}");
                assert!(report["files_updated"].as_u64() > Some(0), "{report}");
            }
            _ => assert_eq!(rebases, 0, "leaves rebase their own: {report}"),
        }
    }
}

#[test]
fn shared_mode_commits_each_pool_task_once() {
    let out = run_ok(
        small_trial(4, 5).args(["--mode", "shared", "--json"]),
        "herd",
    );
    let report = json_report(&out);
    assert_consistent(&report, 20);
}

#[test]
fn workdir_keeps_a_hub_that_fossil_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().join("trial");
    // Info lines, so every log has something in it.
    let out = run_ok(
        small_trial(3, 4)
            .arg("--workdir")
            .arg(&workdir)
            .env("RUST_LOG", "info"),
        "herd",
    );
    // Logs a person can read: no colour escapes in files or piped stderr.
    assert!(
        !out.stderr.contains(&0x1b),
        "herd's piped stderr has escapes"
    );
    for log in std::fs::read_dir(workdir.join("logs")).unwrap() {
        let path = log.unwrap().path();
        let text = std::fs::read(&path).unwrap();
        assert!(
            !text.is_empty() || path.ends_with("nats.log"),
            "{} is empty",
            path.display()
        );
        assert!(!text.contains(&0x1b), "{} has escapes", path.display());
    }
    let hub = workdir.join("hub.fossil");
    for path in [
        "hub.fossil",
        "slot-0/leaf.fossil",
        "slot-2/wt",
        "logs/hub.log",
        "logs/slot-1.log",
    ] {
        assert!(
            workdir.join(path).exists(),
            "{path} missing in the work directory"
        );
    }
    let integrity = fossil(dir.path(), &["test-integrity", "-R"], &hub);
    assert!(
        integrity.status.success(),
        "{}",
        String::from_utf8_lossy(&integrity.stdout)
    );
    let leaves = fossil(dir.path(), &["leaves", "-R"], &hub);
    let text = String::from_utf8_lossy(&leaves.stdout);
    let count = text
        .lines()
        .filter(|l| l.trim_start().starts_with('('))
        .count();
    assert_eq!(count, 1, "fossil leaves:\n{text}");
    // Stored as Fossil stores: the tip's manifest is whole (one read), older
    // ones are deltas of newer ones, and `fossil rebuild` of the hub and of
    // a leaf runs to exactly 100 % (forward deltas made it pass 100 %).
    let db = rusqlite::Connection::open(&hub).unwrap();
    let (tip_is_delta, deltas): (bool, i64) = db
        .query_row(
            "SELECT EXISTS(SELECT 1 FROM delta WHERE rid=(SELECT rid FROM leaf)), \
             (SELECT count(*) FROM delta)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    drop(db);
    assert!(!tip_is_delta, "the tip's manifest is stored as a delta");
    assert!(deltas > 0, "no older version is a delta");
    for repo in ["hub.fossil", "slot-0/leaf.fossil"] {
        let copy = dir.path().join("rebuilt.fossil");
        std::fs::copy(workdir.join(repo), &copy).unwrap();
        let rebuild = fossil(dir.path(), &["rebuild"], &copy);
        let text = String::from_utf8_lossy(&rebuild.stdout);
        assert!(rebuild.status.success(), "{text}");
        let figures: Vec<f64> = text
            .split(['\r', '\n'])
            .filter_map(|l| l.trim().strip_suffix("% complete..."))
            .filter_map(|f| f.parse().ok())
            .collect();
        assert!(
            figures.iter().all(|&f| f <= 100.0) && figures.last() == Some(&100.0),
            "fossil rebuild of {repo}: {figures:?}"
        );
        std::fs::remove_file(&copy).unwrap();
    }
}

fn fossil(home: &Path, args: &[&str], repo: &Path) -> Output {
    Command::new("fossil")
        .args(args)
        .arg(repo)
        .env("HOME", home)
        .output()
        .expect("the real fossil binary is installed by scripts/install-deps")
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, tail)| tail.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Waits (bounded) until herd has started `n` leaf-agents; returns every
/// child pid of herd (nats-server, hub, leaves).
fn wait_for_leaves(herd_pid: u32, n: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let leaves = children_named(herd_pid, "leaf-agent");
        if leaves.len() >= n {
            let mut all = leaves;
            all.extend(children_named(herd_pid, "hub"));
            all.extend(children_named(herd_pid, "nats-server"));
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "herd did not start {n} leaf-agents in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_all_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| alive(p)) {
        assert!(
            Instant::now() < deadline,
            "children still alive: {:?}",
            pids.iter().filter(|&&p| alive(p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn slow_trial(agents: u32) -> Command {
    let mut cmd = herd();
    cmd.args(["run", "--agents", &agents.to_string(), "--tasks", "400"])
        .args([
            "--min-think-ms",
            "20",
            "--max-think-ms",
            "40",
            "--timeout",
            "120",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn a_killed_leaf_fails_the_trial_and_names_its_slot() {
    let child = slow_trial(3).arg("--json").spawn().expect("start herd");
    let herd_pid = child.id();
    let pids = wait_for_leaves(herd_pid, 3);
    let victim = children_named(herd_pid, "leaf-agent")[1];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The other leaves go on; stop them so the test stays short.
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(herd_pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_report(&out);
    let failed: Vec<&Value> = report["failed_slots"].as_array().unwrap().iter().collect();
    assert!(
        failed
            .iter()
            .any(|f| f["reason"].as_str().unwrap_or("").contains("signal")),
        "no slot reported as killed: {report}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("slot "), "{stderr}");
    assert_all_gone(&pids);
}

#[test]
fn sigint_leaves_no_child_behind() {
    let child = slow_trial(3).spawn().expect("start herd");
    let herd_pid = child.id();
    let pids = wait_for_leaves(herd_pid, 3);
    assert!(
        pids.len() >= 5,
        "expected nats-server, hub and 3 leaves: {pids:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(herd_pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_ne!(
        out.status.code(),
        Some(0),
        "an interrupted trial is not a pass"
    );
    assert_all_gone(&pids);
}

#[test]
fn sigkill_of_herd_takes_every_child_with_it() {
    let mut child = slow_trial(2).spawn().expect("start herd");
    let pids = wait_for_leaves(child.id(), 2);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_all_gone(&pids);
}

#[test]
fn invalid_flags_are_usage_errors() {
    for args in [
        &["run", "--agents", "0"][..],
        &["run", "--tasks", "x"],
        &["run", "--min-files", "5", "--max-files", "2"],
        &["run", "--mode", "sideways"],
        &["run", "--leaf", "shallow"],
    ] {
        let out = herd().args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty());
    }
    let out = herd()
        .env("HERD_AGENTS", "many")
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = herd().env("HERD_LEAF", "thin").arg("run").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("unknown leaf mode \"thin\""), "{text}");
}

#[test]
fn a_missing_nats_server_is_one_clear_line() {
    let out = herd()
        .args([
            "run",
            "--agents",
            "1",
            "--tasks",
            "1",
            "--nats-server",
            "/nonexistent/nats-server",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nats-server not found"), "{stderr}");
    assert!(stderr.contains("scripts/install-deps"), "{stderr}");
}

//! `herd run --hub-kind git`: the same herd against a real `git daemon`,
//! checked here with git's own tools, independently of herd: every task's
//! commit on `main` once, history linear, the full leaves' clones at the
//! server's tip, `git fsck` clean; a rejected push is a fork retry; the
//! server killed mid-trial is started again and nothing acknowledged is
//! lost.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::{children_named, herd_command as herd, QUICK_TASKS};

/// `git` with the arguments, without the user's configuration; its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the server's `main` holds: every task's commit once (by its
/// message), no merge commit, `git fsck` clean.
fn assert_main_holds_every_task_once(bare: &Path, agents: u32, tasks: u32) {
    let messages = git(bare, &["log", "--format=%s", "main"]);
    let messages: Vec<&str> = messages.lines().collect();
    let tasks_seen: BTreeSet<&str> = messages
        .iter()
        .copied()
        .filter(|m| m.starts_with("slot "))
        .collect();
    let expected: BTreeSet<String> = (0..agents)
        .flat_map(|s| (0..tasks).map(move |t| format!("slot {s} task {t}")))
        .collect();
    assert_eq!(
        tasks_seen,
        expected.iter().map(String::as_str).collect(),
        "every task once on main"
    );
    let task_commits = messages.iter().filter(|m| m.starts_with("slot ")).count();
    assert_eq!(task_commits, expected.len(), "no task twice: {messages:?}");
    assert_eq!(
        git(bare, &["rev-list", "--count", "--merges", "main"]).trim(),
        "0"
    );
    git(bare, &["fsck", "--strict", "--no-progress"]);
}

/// A git trial of 4 agents with quick tasks and `extra` flags, kept in
/// `workdir`, which must succeed; its `--json` report.
fn quick_git_trial(workdir: &Path, extra: &[&str]) -> Value {
    let out = herd()
        .args(["run", "--hub-kind", "git", "--agents", "4", "--json"])
        .args(QUICK_TASKS)
        .args(extra)
        .args(["--timeout", "120", "--workdir"])
        .arg(workdir)
        .output()
        .expect("run herd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "herd failed: {:?}\n{stderr}",
        out.status
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no JSON report ({e}): {stderr}"))
}

#[test]
fn a_git_hub_trial_lands_every_commit_once_on_a_linear_main() {
    let tmp = TempDir::new().unwrap();
    let workdir = tmp.path().join("trial");
    let report = quick_git_trial(&workdir, &["--tasks", "5"]);
    assert_eq!(report["hub_kind"], "git", "{report}");
    assert_eq!(report["hub_commits"], 20, "{report}");
    assert_eq!(report["trunk_leaves"], 1, "{report}");
    // Four agents pushing with almost no think time: some pushes found
    // main moved, and each such refusal is a fork retry.
    assert!(report["fork_retries"].as_u64() > Some(0), "{report}");
    assert!(
        report["git_processes_per_commit"].as_f64() > Some(3.0),
        "{report}"
    );
    assert!(
        report["hub_requests_per_commit"].as_f64() > Some(1.0),
        "{report}"
    );

    let bare = workdir.join("hub.git");
    assert_main_holds_every_task_once(&bare, 4, 5);
    // Full leaves: each clone ends on the server's main as it stood at
    // the leaf's last pull (the last leaf to finish, at main itself), with
    // nothing left uncommitted.
    let tip = git(&bare, &["rev-parse", "main"]);
    let mut at_tip = 0;
    for slot in 0..4 {
        let clone = workdir.join(format!("slot-{slot}/wt"));
        let head = git(&clone, &["rev-parse", "HEAD"]);
        assert_eq!(git(&clone, &["status", "--porcelain"]), "", "slot {slot}");
        git(&bare, &["merge-base", "--is-ancestor", head.trim(), "main"]);
        at_tip += usize::from(head == tip);
    }
    assert!(at_tip >= 1, "the last leaf to finish is at main");
}

#[test]
fn a_killed_git_daemon_is_started_again_and_nothing_acknowledged_is_lost() {
    let tmp = TempDir::new().unwrap();
    let workdir = tmp.path().join("trial");
    let (agents, tasks) = (3u32, 25u32);
    let child = herd()
        .args(["run", "--hub-kind", "git", "--agents", &agents.to_string()])
        .args(["--tasks", &tasks.to_string()])
        .args([
            "--min-think-ms",
            "20",
            "--max-think-ms",
            "40",
            "--max-bytes",
            "300",
        ])
        .args(["--timeout", "120", "--json", "--workdir"])
        .arg(&workdir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start herd");
    let herd_pid = child.id();
    let bare = workdir.join("hub.git");
    let deadline = Instant::now() + Duration::from_secs(60);
    let commits = || {
        Command::new("git")
            .arg("--git-dir")
            .arg(&bare)
            .args(["rev-list", "--count", "main"])
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    while !matches!(commits(), Some(n) if n >= 10) {
        assert!(Instant::now() < deadline, "10 commits on main");
        std::thread::sleep(Duration::from_millis(20));
    }
    let daemon = children_named(herd_pid, "git-daemon")
        .into_iter()
        .next()
        .expect("herd's git daemon");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill the git daemon");
    let out = child.wait_with_output().expect("herd's output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stderr}"));
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{report}");
    assert_eq!(report["restarts"]["hub"], 1, "{report}");
    assert_eq!(report["hub_commits"], u64::from(agents * tasks), "{report}");
    assert!(stderr.contains("herd: the hub died (SIGKILL)"), "{stderr}");
    assert_main_holds_every_task_once(&bare, agents, tasks);
}

#[test]
fn git_leaves_editing_one_hot_file_lose_no_edit() {
    let tmp = TempDir::new().unwrap();
    let r = quick_git_trial(
        &tmp.path().join("trial"),
        &[
            "--tasks",
            "6",
            "--overlap",
            "0.7",
            "--hot-files",
            "1",
            "--hot-append",
            "0.5",
        ],
    );
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert_eq!(n("hub_commits"), 24, "{r}");
    assert!(n("edits_expected") > 0, "{r}");
    assert_eq!(n("edits_found"), n("edits_expected"), "{r}");
    assert_eq!((n("edits_lost"), n("edits_doubled")), (0, 0), "{r}");
    // git's own merge in `pull --rebase` joined what it could; the rest
    // was redone by the leaves.
    assert!(n("fork_retries") > 0, "{r}");
}

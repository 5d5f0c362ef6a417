//! `herd run --hub-kind fossil`: the same trial against a real `fossil
//! server`, counted here with fossil's own tools, independently of herd.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use herd::xfer::Client;
use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::{fossil_checkout, fossil_ok, fossil_sql, FossilServer};

use crate::helpers::{herd_command as herd, QUICK_TASKS};

#[test]
fn a_fossil_hub_trial_lands_every_commit_on_the_real_server() {
    let tmp = TempDir::new().unwrap();
    let home = tmp.path();
    let workdir = tmp.path().join("trial");
    let out = herd()
        .args([
            "run",
            "--hub-kind",
            "fossil",
            "--agents",
            "2",
            "--tasks",
            "3",
        ])
        .args(QUICK_TASKS)
        .args(["--timeout", "120", "--json", "--workdir"])
        .arg(&workdir)
        .output()
        .expect("run herd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "herd failed: {:?}\n{stderr}",
        out.status
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stderr}"));

    // fossil's own view of the server's repository.
    let repo = workdir.join("hub.fossil");
    let repo_s = repo.to_str().unwrap();
    let checkins: u64 = fossil_sql(home, &repo, "SELECT count(*) FROM event WHERE type='ci'")
        .parse()
        .unwrap();
    assert_eq!(checkins, 1 + 6, "the initial check-in and one per task");
    let comments = fossil_ok(
        home,
        home,
        &[
            "sql",
            "-R",
            repo_s,
            "SELECT comment FROM event WHERE type='ci' AND objid IN (SELECT cid FROM plink)",
        ],
    );
    let comments: BTreeSet<&str> = comments.lines().map(|l| l.trim_matches('\'')).collect();
    let expected: BTreeSet<String> = (0..2)
        .flat_map(|slot| (0..3).map(move |task| format!("slot {slot} task {task}")))
        .collect();
    assert_eq!(
        comments,
        expected.iter().map(String::as_str).collect(),
        "every task's check-in, once"
    );
    let leaves = fossil_ok(home, home, &["leaves", "-R", repo_s]);
    let leaves = leaves.lines().filter(|l| l.contains("tags: trunk")).count() as u64;
    assert!(leaves >= 1, "{leaves}");
    let integrity = fossil_ok(home, home, &["test-integrity", "-R", repo_s]);
    assert!(integrity.contains(" 0 errors"), "{integrity}");
    assert!(integrity.contains("integrity-check: ok"), "{integrity}");

    // herd's report agrees, reports the forks and makes nothing up.
    assert_eq!(report["hub_kind"], "fossil", "{report}");
    assert_eq!(report["hub_commits"], 6, "{report}");
    assert_eq!(report["committed"], 6, "{report}");
    assert_eq!(report["trunk_leaves"], leaves, "{report}");
    assert_eq!(report["forks"], leaves - 1, "{report}");
    assert_eq!(report["fork_retries"], 0, "{report}");
    assert_eq!(report["broadcasts_pulled"], 0, "{report}");
    assert!(report["hub_requests_per_commit"].is_null(), "{report}");
    assert!(report["hub_peak_rss_kb"].is_null(), "{report}");
    assert!(report["p50_commit_ms"].as_f64().unwrap() > 0.0, "{report}");
    assert!(
        report["failed_slots"].as_array().unwrap().is_empty(),
        "{report}"
    );
}

#[test]
fn an_unknown_hub_kind_is_a_usage_error() {
    let out = herd()
        .args(["run", "--hub-kind", "svn", "--agents", "1", "--tasks", "1"])
        .output()
        .expect("run herd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown hub kind \"svn\" (expected herd, fossil or git)"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    let out = herd()
        .args(["run", "--agents", "1", "--tasks", "1"])
        .env("HERD_HUB_KIND", "svn")
        .output()
        .expect("run herd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown hub kind \"svn\""), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_leaf-agent"))
        .args([
            "--hub",
            "http://127.0.0.1:1/",
            "--nats-url",
            "nats://127.0.0.1:1",
        ])
        .args([
            "--slot",
            "0",
            "--workdir",
            "/nonexistent",
            "--hub-kind",
            "svn",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run leaf-agent");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown hub kind"));
}

/// A stock server deltifies a check-in against its parent even when the
/// client lacks the parent: here the parent went into a cluster (built while
/// serving another client's pull), so the client's first gimme brings the
/// new check-in as a delta against a manifest it has never heard of. The
/// plain pull must still end with everything.
#[test]
fn a_plain_pull_takes_deltas_against_parents_it_does_not_hold_yet() {
    let tmp = TempDir::new().unwrap();
    let home = tmp.path();
    let (repo_path, work) = fossil_checkout(home);
    let server = FossilServer::start(home, &repo_path);

    // A clone from before the history below.
    let a = Client::new(&server.url);
    let a_repo = a.clone_into(&tmp.path().join("a.fossil")).unwrap();

    // One check-in of 120 files: over 100 unclustered artifacts, so the
    // next pull anyone makes puts them in a cluster.
    for i in 0..120 {
        let text = format!("file {i}\n").repeat(20);
        std::fs::write(work.join(format!("f{i:03}.txt")), text).unwrap();
    }
    fossil_ok(home, &work, &["add", "."]);
    fossil_ok(
        home,
        &work,
        &["commit", "-m", "many files", "--no-warnings"],
    );
    let b = Client::new(&server.url);
    let b_repo = b.clone_into(&tmp.path().join("b.fossil")).unwrap();
    b.pull_plain(&b_repo).unwrap();
    let clusters = "SELECT count(*) FROM tagxref WHERE tagid=7";
    assert_ne!(
        fossil_sql(home, &repo_path, clusters),
        "0",
        "a cluster was built"
    );

    // A child of the clustered check-in, outside any cluster.
    std::fs::write(work.join("f000.txt"), "changed\n".repeat(30)).unwrap();
    fossil_ok(
        home,
        &work,
        &["commit", "-m", "one change", "--no-warnings"],
    );

    let pulled = a.pull_plain(&a_repo).unwrap();
    assert!(pulled.received >= 123, "{pulled:?}");
    assert!(a_repo.phantoms().unwrap().is_empty(), "{pulled:?}");
    let tip_sql =
        "SELECT uuid FROM blob JOIN event ON objid=rid WHERE type='ci' ORDER BY mtime DESC LIMIT 1";
    assert_eq!(
        a_repo.trunk_tip().unwrap().unwrap().as_str(),
        fossil_sql(home, &repo_path, tip_sql)
    );
    assert_eq!(
        a_repo.trunk_commits().unwrap().to_string(),
        fossil_sql(
            home,
            &repo_path,
            "SELECT count(*) FROM event WHERE type='ci'"
        )
    );
}

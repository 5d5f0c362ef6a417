//! `herd soak`: the nemesis's checker fails on a dropped or a doubled
//! commit, and a short soak with a fixed seed injects faults of several
//! kinds and loses nothing.

use std::path::Path;
use std::process::Stdio;

use herd::soak::check::check_trunk;
use herd::supervisor::{read_acks, Ack};

/// Runs a small clean trial keeping its files and its acknowledgements.
fn small_trial(dir: &Path) -> (std::path::PathBuf, Vec<Ack>) {
    let (workdir, acks) = (dir.join("w"), dir.join("acks.jsonl"));
    let mut cmd = crate::helpers::herd_command();
    cmd.args([
        "run", "--agents", "2", "--tasks", "4", "--json", "--leaf", "sparse",
    ])
    .arg("--workdir")
    .arg(&workdir)
    .arg("--acks")
    .arg(&acks);
    crate::helpers::run_ok(&mut cmd, "a small trial");
    (
        workdir.join("hub.fossil"),
        read_acks(&acks).expect("the acks"),
    )
}

#[test]
fn the_checker_holds_on_a_clean_trial_and_fails_on_a_dropped_or_doubled_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let (hub, acks) = small_trial(tmp.path());
    assert_eq!(acks.len(), 8, "every task acknowledged once: {acks:?}");
    let clean = check_trunk(&hub, &acks).expect("the hub reads");
    assert!(clean.holds(), "{clean:?}");
    assert_eq!(
        (clean.acked, clean.on_trunk),
        (8, 9),
        "8 tasks and the first check-in"
    );

    // A check-in the leaves were told landed but the hub does not hold.
    let mut dropped = acks.clone();
    dropped[3].checkin = "0".repeat(64);
    let check = check_trunk(&hub, &dropped).unwrap();
    assert!(!check.holds());
    assert_eq!(check.lost.len(), 1, "{check:?}");
    assert!(check.lost[0].contains(&format!("slot {} task {}", acks[3].slot, acks[3].task)));

    // One task's check-in on the trunk twice: two check-ins claim it.
    let db = rusqlite::Connection::open(&hub).unwrap();
    let changed = db
        .execute(
            "UPDATE event SET comment = 'slot 0 task 0' WHERE comment = 'slot 0 task 1'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    let check = check_trunk(&hub, &acks).unwrap();
    assert_eq!(
        check.doubled,
        vec!["slot 0 task 0 ×2".to_string()],
        "{check:?}"
    );
    assert!(check.lost.is_empty() && !check.holds());

    // A second trunk leaf: the trunk forked.
    let db = rusqlite::Connection::open(&hub).unwrap();
    db.execute(
        "INSERT INTO leaf SELECT pid FROM plink WHERE pid NOT IN (SELECT rid FROM leaf) LIMIT 1",
        [],
    )
    .unwrap();
    drop(db);
    let check = check_trunk(&hub, &acks).unwrap();
    assert!(check.forks >= 1, "{check:?}");
}

#[test]
fn a_two_minute_soak_with_a_fixed_seed_injects_faults_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("soak");
    let result = crate::helpers::herd_command()
        .args([
            "soak",
            "--minutes",
            "2",
            "--seed",
            "7",
            "--trial-timeout",
            "60",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run herd soak");
    let stderr = String::from_utf8_lossy(&result.stderr);
    let summary: serde_json::Value = serde_json::from_slice(&result.stdout)
        .unwrap_or_else(|e| panic!("no summary line ({e}): {stderr}"));
    assert_eq!(result.status.code(), Some(0), "{summary}\n{stderr}");
    for zero in ["lost", "doubled", "hung", "panics", "left_running"] {
        assert_eq!(summary[zero], 0, "{zero}: {summary}");
    }
    assert_eq!(
        summary["failed_verdicts"],
        serde_json::json!([]),
        "{summary}"
    );
    let trials = summary["trials"].as_u64().unwrap();
    let faults = summary["faults"].as_u64().unwrap();
    assert!(trials >= 5 && faults >= trials, "{summary}");
    let kinds = summary["by_kind"]
        .as_object()
        .unwrap()
        .values()
        .filter(|n| n.as_u64() > Some(0))
        .count();
    assert!(kinds >= 4, "faults of several kinds: {summary}");
    assert!(summary["acked"].as_u64() > Some(trials * 50), "{summary}");
    let lines = std::fs::read_to_string(out.join("trials.jsonl")).unwrap();
    assert_eq!(lines.lines().count() as u64, trials);
    println!(
        "soak: {trials} trials, {faults} faults ({}), {} acknowledged check-ins checked",
        summary["by_kind"], summary["acked"]
    );
}

//! Full leaves (`herd run --leaf full`, the default): at the end of a trial
//! every leaf's worktree equals the hub's trunk at the check-in it last
//! updated to, compared file by file with a real `fossil open` of that
//! check-in from the hub's repository; every leaf repository passes `fossil
//! test-integrity`; and what the leaves pulled stays within 1.5 times the
//! bytes of the check-ins they missed. Real herd, hub, leaf-agents,
//! nats-server and fossil, with each landing strategy and in shared mode.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::helpers::{fossil_ok, fossil_sql};

/// A kept trial (full leaves unless `extra` says `--leaf sparse`); returns
/// herd's JSON report.
fn full_trial(workdir: &Path, agents: u32, tasks: u32, extra: &[&str]) -> Value {
    let mut cmd = crate::helpers::herd_command();
    cmd.args(["run", "--json"])
        .args(["--agents", &agents.to_string()])
        .args(["--tasks", &tasks.to_string()])
        .args(if extra.contains(&"--min-think-ms") {
            &[][..]
        } else {
            &["--min-think-ms", "5", "--max-think-ms", "30"][..]
        })
        .args(["--timeout", "120", "--workdir"])
        .arg(workdir)
        .args(extra);
    let out = crate::helpers::run_ok(&mut cmd, "herd");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    let total = u64::from(agents * tasks);
    assert_eq!(report["hub_commits"], total, "{report}");
    let leaf = if extra.contains(&"sparse") {
        "sparse"
    } else {
        "full"
    };
    assert_eq!(report["leaf"], leaf, "{report}");
    report
}

/// Every regular file under `dir` (path relative to it → content), leaving
/// out Fossil's checkout database.
pub(crate) fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read a directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(root, &path, out);
                continue;
            }
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if name == ".fslckout" || name == "_FOSSIL_" {
                continue;
            }
            out.insert(name, std::fs::read(&path).expect("read a file"));
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The check, for every slot: the worktree equals `fossil open` of the
/// check-in it says it was last brought to, holds other slots' files, and
/// the repository passes `fossil test-integrity`. Returns each slot's tip.
pub(crate) fn assert_worktrees_follow_trunk(workdir: &Path, agents: u32) -> Vec<String> {
    let home = tempfile::tempdir().unwrap();
    let hub = workdir.join("hub.fossil");
    let hub_s = hub.to_str().unwrap();
    let mut tips = Vec::new();
    for slot in 0..agents {
        let dir = workdir.join(format!("slot-{slot}"));
        let repo = dir.join("leaf.fossil");
        let tip = fossil_sql(
            home.path(),
            &repo,
            "SELECT value FROM config WHERE name='herd-worktree'",
        );
        assert_eq!(
            tip.len(),
            64,
            "slot {slot} recorded no worktree tip: {tip:?}"
        );
        let on_trunk = fossil_sql(
            home.path(),
            &hub,
            &format!(
                "SELECT count(*) FROM blob JOIN tagxref ON tagxref.rid=blob.rid \
                 WHERE blob.uuid='{tip}' AND tagxref.tagid=8 AND tagxref.value='trunk'"
            ),
        );
        assert_eq!(
            on_trunk, "1",
            "slot {slot}: {tip} is not on the hub's trunk"
        );

        let checkout = tempfile::tempdir().unwrap();
        fossil_ok(home.path(), checkout.path(), &["open", hub_s, &tip]);
        let expected = tree(checkout.path());
        let actual = tree(&dir.join("wt"));
        let missing: Vec<&String> = expected
            .keys()
            .filter(|k| !actual.contains_key(*k))
            .collect();
        let extra: Vec<&String> = actual
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .collect();
        let differ: Vec<&String> = expected
            .iter()
            .filter(|(k, v)| actual.get(*k).is_some_and(|a| a != *v))
            .map(|(k, _)| k)
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty() && differ.is_empty(),
            "slot {slot}'s worktree is not trunk at {tip}: missing {missing:?}, \
             extra {extra:?}, different {differ:?}"
        );
        let own: usize = fossil_sql(
            home.path(),
            &hub,
            &format!(
                "SELECT count(*) FROM mlink JOIN event ON event.objid=mlink.mid \
                 WHERE mlink.fid>0 AND event.user='slot-{slot}'"
            ),
        )
        .parse()
        .unwrap();
        assert!(
            actual.len() > own,
            "slot {slot}'s worktree holds {} files, no more than its own {own}",
            actual.len()
        );
        let integrity = fossil_ok(
            home.path(),
            home.path(),
            &["test-integrity", "-R", repo.to_str().unwrap()],
        );
        assert!(
            integrity.contains("low-level database integrity-check: ok"),
            "slot {slot}: {integrity}"
        );
        tips.push(tip);
    }
    tips
}

/// Bytes of the trunk check-ins up to `tip` that `slot` did not write:
/// each manifest and the files it introduced, as stored on the hub.
fn missed_bytes(home: &Path, hub: &Path, slot: u32, tip: &str) -> u64 {
    let sql = format!(
        "WITH RECURSIVE line(rid) AS ( \
           SELECT rid FROM blob WHERE uuid='{tip}' \
           UNION SELECT plink.pid FROM plink JOIN line ON plink.cid=line.rid WHERE plink.isprim) \
         SELECT (SELECT coalesce(sum(blob.size),0) FROM blob JOIN event ON event.objid=blob.rid \
                  WHERE blob.rid IN line AND event.user<>'slot-{slot}') \
              + (SELECT coalesce(sum(size),0) FROM blob WHERE rid IN ( \
                  SELECT mlink.fid FROM mlink JOIN event ON event.objid=mlink.mid \
                  WHERE mlink.mid IN line AND mlink.fid>0 AND event.user<>'slot-{slot}'))"
    );
    fossil_sql(home, hub, &sql)
        .parse()
        .unwrap_or_else(|e| panic!("missed bytes of slot {slot}: {e}"))
}

#[test]
fn full_leaves_end_with_worktrees_equal_to_trunk_with_hub_landing() {
    let dir = tempfile::tempdir().unwrap();
    let report = full_trial(dir.path(), 4, 5, &["--landing", "hub"]);
    let tips = assert_worktrees_follow_trunk(dir.path(), 4);

    // Staying current: at most one pull per task (plus one at the end),
    // and the bytes pulled within 1.5 × the bytes of what each leaf missed.
    let pulled = report["broadcasts_pulled"].as_u64().unwrap();
    assert!((1..=24).contains(&pulled), "{report}");
    assert!(report["files_updated"].as_u64().unwrap() > 0, "{report}");
    let home = tempfile::tempdir().unwrap();
    let hub = dir.path().join("hub.fossil");
    let missed: u64 = tips
        .iter()
        .enumerate()
        .map(|(slot, tip)| missed_bytes(home.path(), &hub, slot as u32, tip))
        .sum();
    let bytes = report["bytes_pulled"].as_u64().unwrap();
    assert!(missed > 0, "{report}");
    assert!(
        bytes as f64 <= 1.5 * missed as f64,
        "pulled {bytes} bytes for {missed} bytes of missed check-ins: {report}"
    );
}

#[test]
fn full_leaves_follow_trunk_with_leaf_landing() {
    let dir = tempfile::tempdir().unwrap();
    let report = full_trial(dir.path(), 4, 5, &["--landing", "leaf"]);
    assert_eq!(report["landing"], "leaf", "{report}");
    assert_worktrees_follow_trunk(dir.path(), 4);
}

#[test]
fn full_leaves_follow_trunk_in_shared_mode() {
    let dir = tempfile::tempdir().unwrap();
    let report = full_trial(dir.path(), 4, 5, &["--mode", "shared"]);
    assert_eq!(report["mode"], "shared", "{report}");
    assert_worktrees_follow_trunk(dir.path(), 4);
}

/// A task that works (thinks and catches up) longer than its claim's lease
/// keeps the claim: the leaf renews it while it works, so the fence before
/// the commit finds it still its own.
#[test]
fn a_lease_shorter_than_the_work_is_renewed() {
    let dir = tempfile::tempdir().unwrap();
    let report = full_trial(
        dir.path(),
        2,
        2,
        &[
            "--hold-ttl-ms",
            "300",
            "--min-think-ms",
            "700",
            "--max-think-ms",
            "800",
        ],
    );
    assert_eq!(report["committed"], 4, "{report}");
}

#[test]
fn sparse_leaves_pull_nothing_and_keep_only_their_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let report = full_trial(dir.path(), 3, 3, &["--leaf", "sparse"]);
    assert_eq!(report["bytes_pulled"], 0, "{report}");
    assert_eq!(report["files_updated"], 0, "{report}");
    for slot in 0..3 {
        let files = tree(&dir.path().join(format!("slot-{slot}/wt")));
        assert!(
            files
                .keys()
                .all(|k| k.starts_with(&format!("slot-{slot}/"))),
            "sparse slot {slot} holds others' files: {:?}",
            files.keys().collect::<Vec<_>>()
        );
    }
}

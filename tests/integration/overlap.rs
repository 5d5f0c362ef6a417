//! Agents that edit the same files: the hub merges stale pushes by lines
//! (against the real `hub` binary, checked by the real `fossil`), refuses
//! lines both sides changed, naming them, and a herd with `--overlap`
//! loses no edit and doubles none, whether edits run concurrently or
//! behind holds; the set check fails when an edit is missing.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Barrier};
use std::time::SystemTime;

use herd::repo::{ArtifactHash, CheckinSpec, FileChange, Repository};
use herd::supervisor::edits::{expected_markers, markers_on_trunk, EditCheck};
use herd::workload::{find_markers, HotEdit, Marker, Place, WorkloadConfig};
use herd::xfer::PushOutcome;
use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::{fossil_ok, herd_command, leaf_clone as clone, HubProcess, QUICK_TASKS};

const HOT: &str = "hot/file-0.txt";

fn commit(repo: &Repository, parent: &ArtifactHash, path: &str, text: &[u8]) -> ArtifactHash {
    repo.commit(&CheckinSpec {
        parent: parent.clone(),
        changes: vec![FileChange {
            path: path.into(),
            content: Some(text.to_vec()),
        }],
        comment: format!("edit {path}"),
        user: "agent".into(),
        time: SystemTime::now(),
    })
    .unwrap()
    .hash
}

/// Slot `slot`'s edit: one marked line after line `after` (0-based) of a
/// file of `lines` lines.
fn edit(slot: u32, after: u32, lines: u32) -> HotEdit {
    let marker = Marker {
        slot,
        task: 0,
        n: 0,
    };
    // The place is a fraction of the file's length: the middle of line
    // `after`'s share of 2^32.
    let pick = ((u64::from(after) << 32) + (1 << 31)) / u64::from(lines);
    HotEdit {
        path: HOT.into(),
        lines: vec![format!("inserted by slot {slot} {marker}\n")],
        place: Place::AfterLine(u32::try_from(pick).unwrap()),
        markers: vec![marker],
    }
}

/// A hub whose trunk holds the hot file (40 lines), and its tip.
fn seeded_hub(tmp: &TempDir) -> (HubProcess, ArtifactHash, Vec<u8>) {
    let hub = HubProcess::start(&tmp.path().join("hub.fossil"), None, &[]);
    let (client, seed) = clone(&hub.url(), tmp.path(), "seed");
    let text: String = (1..=40).map(|i| format!("line {i}\n")).collect();
    let root = seed.trunk_tip().unwrap().unwrap();
    let tip = commit(&seed, &root, HOT, text.as_bytes());
    assert!(matches!(
        client.push_landing(&seed, &tip).unwrap(),
        PushOutcome::Accepted { .. }
    ));
    (hub, tip, text.into_bytes())
}

#[test]
fn eight_stale_pushes_into_one_file_merge_and_fossil_reads_the_result() {
    const LEAVES: u32 = 8;
    let tmp = TempDir::new().unwrap();
    let (hub, base, text) = seeded_hub(&tmp);
    let url = hub.url();
    let barrier = Arc::new(Barrier::new(LEAVES as usize));
    let outcomes: Vec<PushOutcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..LEAVES)
            .map(|slot| {
                let (client, repo) = clone(&url, tmp.path(), &format!("leaf-{slot}"));
                let (barrier, base, text) = (Arc::clone(&barrier), base.clone(), text.clone());
                s.spawn(move || {
                    // Every leaf inserts after its own line, five apart.
                    let mine = edit(slot, slot * 5, 40).apply(&text);
                    let pushed = commit(&repo, &base, HOT, &mine);
                    barrier.wait();
                    client.push_landing(&repo, &pushed).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let merged = outcomes
        .iter()
        .filter(|o| matches!(o, PushOutcome::Landed { merged: 1, .. }))
        .count();
    let stats = hub.stats();
    assert_eq!(stats["trunk_commits"], u64::from(LEAVES) + 1, "{stats}");
    assert_eq!(stats["pushes_refused"], 0, "{stats}");
    assert_eq!(stats["conflicts"], 0, "{stats}");
    assert_eq!(stats["hub_merges"], merged as u64, "{stats}");
    assert!(
        merged >= 1,
        "stale pushes into one file were merged: {outcomes:?}"
    );

    // The tip holds every inserted line once, each after its own line, and
    // every seed line in order.
    let hub_path = tmp.path().join("hub.fossil");
    let repo = Repository::open(&hub_path).unwrap();
    let tip = repo.trunk_tip().unwrap().unwrap();
    let on_tip = repo.file_at(&tip, HOT).unwrap().unwrap();
    let mut expected = Vec::new();
    for (i, line) in text.split_inclusive(|&b| b == b'\n').enumerate() {
        expected.extend_from_slice(line);
        if i % 5 == 0 && i / 5 < LEAVES as usize {
            expected.extend_from_slice(edit(i as u32 / 5, 0, 1).lines[0].as_bytes());
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&on_tip),
        String::from_utf8_lossy(&expected)
    );
    let found: BTreeSet<Marker> = find_markers(&on_tip).into_iter().collect();
    assert_eq!(found.len(), LEAVES as usize);
    drop(repo);
    drop(hub);

    // The real fossil checks the repository and reads the merged text.
    let home = tmp.path();
    fossil_ok(
        home,
        home,
        &["test-integrity", "-R", hub_path.to_str().unwrap()],
    );
    let cat = fossil_ok(home, home, &["cat", "-R", hub_path.to_str().unwrap(), HOT]);
    assert_eq!(cat.as_bytes(), &expected[..]);
}

#[test]
fn overlapping_lines_are_refused_naming_them_and_the_leaf_redoes_its_edit() {
    let tmp = TempDir::new().unwrap();
    let (hub, base, text) = seeded_hub(&tmp);
    let url = hub.url();
    let (client_a, a) = clone(&url, tmp.path(), "a");
    let (client_b, b) = clone(&url, tmp.path(), "b");
    // Both insert after line 10: the same place.
    let first = commit(&a, &base, HOT, &edit(1, 9, 40).apply(&text));
    assert!(matches!(
        client_a.push_landing(&a, &first).unwrap(),
        PushOutcome::Accepted { .. }
    ));
    let mine = edit(2, 9, 40);
    let second = commit(&b, &base, HOT, &mine.apply(&text));
    let tip = match client_b.push_landing(&b, &second).unwrap() {
        PushOutcome::Refused { message, tip, .. } => {
            assert!(message.contains(&format!("{HOT} (")), "{message}");
            assert!(
                message.contains("after line 10"),
                "names the lines: {message}"
            );
            tip
        }
        other => panic!("an overlapping push answered {other:?}"),
    };
    assert_eq!(tip, first);
    assert_eq!(hub.stat("conflicts"), 1);
    // The refusal brought the tip's text: the leaf's own rebase meets the
    // same conflict, and redoing its edit on the new text lands.
    assert!(matches!(
        b.rebase(&second, &tip),
        Err(herd::repo::RebaseError::Conflict { .. })
    ));
    let newer = b.file_at(&tip, HOT).unwrap().unwrap();
    let redone = commit(&b, &tip, HOT, &mine.apply(&newer));
    assert!(matches!(
        client_b.push_landing(&b, &redone).unwrap(),
        PushOutcome::Accepted { .. }
    ));
    let hub_repo = Repository::open(&tmp.path().join("hub.fossil")).unwrap();
    let on_tip = hub_repo.file_at(&redone, HOT).unwrap().unwrap();
    let markers = find_markers(&on_tip);
    assert_eq!(markers.len(), 2, "both edits, once each");
    assert!(!String::from_utf8_lossy(&on_tip).contains("<<<<"));
}

fn overlap_trial(workdir: &Path, extra: &[&str]) -> Output {
    let out = herd_command()
        .args(["run", "--agents", "4", "--tasks", "6", "--json"])
        .args(QUICK_TASKS)
        .args(["--overlap", "0.7", "--hot-files", "1", "--timeout", "120"])
        .arg("--workdir")
        .arg(workdir)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "herd failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn report(out: &Output) -> Value {
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("one JSON object")
}

#[test]
fn a_herd_editing_one_hot_file_loses_no_edit_concurrently_or_held() {
    for (mode, extra) in [
        ("concurrent", &["--hot-append", "0.5"][..]),
        ("held", &["--hold-hot"][..]),
        (
            "leaf landing",
            &["--landing", "leaf", "--hot-append", "0.5"][..],
        ),
    ] {
        let tmp = TempDir::new().unwrap();
        let out = overlap_trial(&tmp.path().join("w"), extra);
        let r = report(&out);
        let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
        assert_eq!(n("hub_commits"), 24, "{mode}: {r}");
        assert_eq!(n("trunk_leaves"), 1, "{mode}: {r}");
        assert!(n("edits_expected") > 0, "{mode}: {r}");
        assert_eq!(n("edits_found"), n("edits_expected"), "{mode}: {r}");
        assert_eq!((n("edits_lost"), n("edits_doubled")), (0, 0), "{mode}: {r}");
        assert_eq!(r["hold_hot"], mode == "held", "{r}");
        match mode {
            "held" => assert_eq!(n("conflicts"), 0, "holds keep edits apart: {r}"),
            // The leaves rebase, merging by lines themselves.
            "leaf landing" => assert!(n("fork_retries") > 0, "{r}"),
            _ => assert!(n("hub_merges") + n("conflicts") > 0, "edits met: {r}"),
        }
    }
}

#[test]
fn the_set_check_names_an_edit_removed_from_the_tip() {
    let tmp = TempDir::new().unwrap();
    let workdir = tmp.path().join("w");
    let out = overlap_trial(&workdir, &[]);
    assert_eq!(report(&out)["edits_lost"], 0);
    // Remove one marked line from the hub's tip, with a check-in of its own.
    let hub_path = workdir.join("hub.fossil");
    let repo = Repository::open(&hub_path).unwrap();
    let tip = repo.trunk_tip().unwrap().unwrap();
    let text = repo.file_at(&tip, HOT).unwrap().unwrap();
    let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    let victim = lines
        .iter()
        .position(|l| !find_markers(l).is_empty())
        .expect("a marked line");
    let removed = find_markers(lines[victim])[0];
    let kept: Vec<u8> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .flat_map(|(_, l)| l.iter().copied())
        .collect();
    commit(&repo, &tip, HOT, &kept);
    drop(repo);

    let mut workload = WorkloadConfig::default();
    workload.hot.overlap = 0.7;
    workload.hot.files = 1;
    let all = (0..4).flat_map(|slot| (0..6).map(move |task| (slot, task)));
    let expected = expected_markers(&workload, 1, 6, all);
    let check = EditCheck::compare(&expected, &markers_on_trunk(&hub_path, 1).unwrap());
    assert_eq!(check.edits_lost, 1);
    let why = check.failure().expect("the check fails");
    assert!(why.contains(&removed.to_string()), "{why}");
}

#[test]
fn overlap_needs_full_leaves() {
    let out = herd_command()
        .args(["run", "--agents", "2", "--tasks", "1", "--overlap", "0.3"])
        .args(["--leaf", "sparse"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--overlap needs --leaf full"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn against_a_stock_fossil_server_edits_land_on_forks_and_none_is_lost() {
    let tmp = TempDir::new().unwrap();
    let out = overlap_trial(
        &tmp.path().join("w"),
        &["--hub-kind", "fossil", "--hot-append", "0.5"],
    );
    let r = report(&out);
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert_eq!(n("hub_commits"), 24, "{r}");
    assert_eq!((n("edits_lost"), n("edits_doubled")), (0, 0), "{r}");
    // Each edit is on the tip or on a fork nobody merged, never both.
    assert_eq!(
        n("edits_found") + n("edits_off_tip"),
        n("edits_expected"),
        "{r}"
    );
    assert!(
        n("edits_off_tip") == 0 || n("forks") > 0,
        "edits are off the tip only where the server took forks: {r}"
    );
}

#[test]
fn a_merged_landing_repeated_after_a_lost_reply_sends_the_merged_text_again() {
    let tmp = TempDir::new().unwrap();
    let (hub, base, text) = seeded_hub(&tmp);
    let url = hub.url();
    let (client_a, a) = clone(&url, tmp.path(), "a");
    let (client_b, b) = clone(&url, tmp.path(), "b");
    let first = commit(&a, &base, HOT, &edit(1, 4, 40).apply(&text));
    assert!(matches!(
        client_a.push_landing(&a, &first).unwrap(),
        PushOutcome::Accepted { .. }
    ));
    let stale = commit(&b, &base, HOT, &edit(2, 29, 40).apply(&text));
    let landed = match client_b.push_landing(&b, &stale).unwrap() {
        PushOutcome::Landed {
            checkin, merged: 1, ..
        } => checkin,
        other => panic!("a stale push into the hot file merges: {other:?}"),
    };
    // The reply was lost (say): the same push again is answered with the
    // same landing and the merged text again, not landed twice.
    match client_b.push_landing(&b, &stale).unwrap() {
        PushOutcome::Landed {
            checkin, merged, ..
        } => {
            assert_eq!(checkin, landed);
            assert_eq!(merged, 1, "the merged text travels again");
        }
        other => panic!("a repeated push answered {other:?}"),
    }
    assert_eq!(hub.stat("trunk_commits"), 3, "seed, a, b: landed once");
    // Both edits in one text, which the pusher now holds.
    let merged_text = edit(1, 4, 40).apply(&edit(2, 29, 40).apply(&text));
    let on_hub = Repository::open(&tmp.path().join("hub.fossil")).unwrap();
    assert_eq!(
        on_hub.file_at(&landed, HOT).unwrap(),
        Some(merged_text.clone())
    );
    let held = b.rid_of(&ArtifactHash::sha3_of(&merged_text)).unwrap();
    assert!(
        matches!(held, Some((_, false))),
        "the pusher holds the merged text"
    );
}

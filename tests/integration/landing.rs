//! Hub landing (`pragma herd-land`) against the real `hub` binary: pushes
//! on one stale parent with disjoint files all land, written anew by the
//! hub on its tip; overlapping files are refused, naming them; a push
//! repeated after a lost reply lands once; a SIGKILL in the middle of the
//! writer's batches loses no acknowledged landing and lands none twice. The
//! real `fossil` checks what the hub wrote.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use herd::repo::{parse_artifact, Artifact, ArtifactHash, CheckinSpec, FileChange, Repository};
use herd::xfer::{Client, PushOutcome};
use tempfile::TempDir;

use crate::helpers::{fossil_ok, fossil_sql, leaf_clone as clone, HubProcess};

/// Commits `files` (path, body) on `parent` with `comment`.
fn commit(
    repo: &Repository,
    parent: &ArtifactHash,
    files: &[(String, String)],
    comment: &str,
) -> ArtifactHash {
    repo.commit(&CheckinSpec {
        parent: parent.clone(),
        changes: files
            .iter()
            .map(|(path, body)| FileChange {
                path: path.clone(),
                content: Some(body.as_bytes().to_vec()),
            })
            .collect(),
        comment: comment.into(),
        user: "lander".into(),
        time: SystemTime::now(),
    })
    .unwrap()
    .hash
}

/// The manifest of check-in `hash` in `repo`, parsed.
fn manifest(repo: &Repository, hash: &ArtifactHash) -> herd::repo::Manifest {
    match parse_artifact(&repo.content(hash).unwrap().expect("held")) {
        Artifact::Checkin(m) => *m,
        other => panic!("{hash} is not a check-in: {other:?}"),
    }
}

/// The check-in the hub holds for a push's verdict.
fn landed(outcome: &PushOutcome, pushed: &ArtifactHash) -> ArtifactHash {
    match outcome {
        PushOutcome::Landed { checkin, .. } => checkin.clone(),
        PushOutcome::Accepted { .. } => pushed.clone(),
        other => panic!("disjoint push of {pushed} answered {other:?}"),
    }
}

/// fossil's own checks of a hub repository, and of a rebuilt copy.
fn fossil_agrees(home: &Path, hub_path: &Path) {
    fossil_ok(
        home,
        home,
        &["test-integrity", "-R", hub_path.to_str().unwrap()],
    );
    let copy = home.join("rebuilt.fossil");
    std::fs::copy(hub_path, &copy).unwrap();
    fossil_ok(home, home, &["rebuild", copy.to_str().unwrap()]);
    fossil_ok(
        home,
        home,
        &["test-integrity", "-R", copy.to_str().unwrap()],
    );
    let leaves = fossil_sql(
        home,
        &copy,
        "SELECT count(*) FROM leaf JOIN event ON event.objid=leaf.rid WHERE event.type='ci'",
    );
    assert_eq!(leaves, "1", "fossil rebuilds a linear trunk");
}

#[test]
fn disjoint_pushes_on_one_stale_parent_all_land_once_each() {
    const LEAVES: usize = 8;
    let tmp = TempDir::new().unwrap();
    let hub_path = tmp.path().join("hub.fossil");
    let hub = HubProcess::start(&hub_path, None, &[]);
    let url = hub.url();
    let leaves: Vec<_> = (0..LEAVES)
        .map(|i| clone(&url, tmp.path(), &format!("leaf-{i}")))
        .collect();
    let root = leaves[0].1.trunk_tip().unwrap().unwrap();

    // Every leaf commits two files on the root, then all push at once.
    let barrier = Arc::new(Barrier::new(LEAVES));
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = leaves
            .into_iter()
            .enumerate()
            .map(|(i, (client, repo))| {
                let barrier = Arc::clone(&barrier);
                let root = root.clone();
                s.spawn(move || {
                    let files: Vec<(String, String)> = (0..2)
                        .map(|j| (format!("slot-{i}/f{j}.txt"), format!("{i} {j}\n")))
                        .collect();
                    let pushed = commit(&repo, &root, &files, &format!("task of leaf {i}"));
                    let mine: BTreeMap<String, ArtifactHash> = repo
                        .file_list(&pushed)
                        .unwrap()
                        .into_iter()
                        .map(|(name, (hash, _))| (name, hash))
                        .collect();
                    barrier.wait();
                    let outcome = client.push_landing(&repo, &pushed).unwrap();
                    (client, repo, pushed, outcome, mine)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let stats = hub.stats();
    assert_eq!(stats["trunk_commits"], LEAVES as u64, "{stats}");
    assert_eq!(stats["trunk_leaves"], 1, "{stats}");
    assert_eq!(stats["pushes_refused"], 0, "{stats}");
    assert_eq!(
        stats["hub_rebases"],
        (LEAVES - 1) as u64,
        "all but the first were written anew: {stats}"
    );
    let repo = Repository::open(&hub_path).unwrap();
    assert_eq!(repo.trunk_after(None).unwrap().len(), LEAVES + 1);
    let mut union = BTreeMap::new();
    for (i, (_, _, pushed, outcome, mine)) in results.iter().enumerate() {
        let on_hub = landed(outcome, pushed);
        if on_hub != *pushed {
            assert!(
                repo.rid_of(pushed).unwrap().is_none(),
                "the pushed manifest {pushed} is never stored on the hub"
            );
        }
        let m = manifest(&repo, &on_hub);
        assert_eq!(m.comment, format!("task of leaf {i}"));
        assert_eq!(m.user, "lander");
        let list = repo.file_list(&on_hub).unwrap();
        for (name, hash) in mine {
            assert_eq!(
                list.get(name).map(|(h, _)| h),
                Some(hash),
                "{name} of leaf {i} as pushed"
            );
        }
        union.extend(mine.clone());
    }
    let tip = repo.trunk_tip().unwrap().unwrap();
    let tip_files: BTreeMap<String, ArtifactHash> = repo
        .file_list(&tip)
        .unwrap()
        .into_iter()
        .map(|(name, (hash, _))| (name, hash))
        .collect();
    assert_eq!(tip_files, union, "the tip holds every leaf's files");

    // A push repeated (its reply lost) answers with the same landing.
    let (client, leaf, pushed, outcome, _) = &results[LEAVES - 1];
    let again = client.push_landing(leaf, pushed).unwrap();
    assert_eq!(landed(&again, pushed), landed(outcome, pushed));
    assert_eq!(hub.stat("trunk_commits"), LEAVES as u64, "landed once");

    drop(repo);
    drop(hub);
    fossil_agrees(tmp.path(), &hub_path);
}

#[test]
fn a_push_whose_files_changed_on_trunk_is_refused_naming_them() {
    let tmp = TempDir::new().unwrap();
    let hub_path = tmp.path().join("hub.fossil");
    let hub = HubProcess::start(&hub_path, None, &[]);
    let url = hub.url();
    let (client_a, a) = clone(&url, tmp.path(), "a");
    let (client_b, b) = clone(&url, tmp.path(), "b");
    let root = a.trunk_tip().unwrap().unwrap();
    let file = |path: &str, body: &str| (path.to_string(), body.to_string());

    let first = commit(
        &a,
        &root,
        &[file("shared/x.txt", "a\n"), file("shared/y.txt", "a\n")],
        "a",
    );
    assert!(matches!(
        client_a.push_landing(&a, &first).unwrap(),
        PushOutcome::Accepted { .. }
    ));
    let second = commit(
        &b,
        &root,
        &[
            file("shared/y.txt", "b\n"),
            file("shared/x.txt", "b\n"),
            file("b-only.txt", "b\n"),
        ],
        "b",
    );
    match client_b.push_landing(&b, &second).unwrap() {
        PushOutcome::Refused { message, tip, .. } => {
            assert_eq!(tip, first);
            // One line each, replaced on both sides: no line merge joins them.
            assert!(
                message.contains("not mergeable: shared/x.txt (")
                    && message.contains("; shared/y.txt ("),
                "{message}"
            );
            assert!(!message.contains("b-only.txt"), "{message}");
        }
        other => panic!("an overlapping push answered {other:?}"),
    }
    assert_eq!(hub.stat("trunk_commits"), 1);
    assert_eq!(hub.stat("pushes_refused"), 1);
    assert_eq!(hub.stat("hub_rebases"), 0);
    // The refusal brought the tip: the leaf's own rebase meets the conflict.
    assert!(matches!(
        b.rebase(&second, &first),
        Err(herd::repo::RebaseError::Conflict { .. })
    ));
}

/// A pusher that lands check-ins one after another with hub landing,
/// committing each on the newest hub check-in it holds.
struct Lander {
    client: Client,
    repo: Repository,
    base: ArtifactHash,
    slot: usize,
    made: usize,
    /// The check-in pushed but not yet acknowledged.
    in_flight: Option<ArtifactHash>,
}

impl Lander {
    fn next(&mut self) -> Result<ArtifactHash, herd::xfer::ClientError> {
        let pushed = match self.in_flight.clone() {
            Some(pushed) => pushed,
            None => {
                let path = format!("slot-{}/task-{}.txt", self.slot, self.made);
                let files = [(path.clone(), format!("{path}\n"))];
                let pushed = commit(&self.repo, &self.base, &files, &path);
                self.made += 1;
                self.in_flight = Some(pushed.clone());
                pushed
            }
        };
        let outcome = self.client.push_landing(&self.repo, &pushed)?;
        self.in_flight = None;
        match &outcome {
            PushOutcome::Landed {
                checkin,
                stored: true,
                ..
            } => self.base = checkin.clone(),
            PushOutcome::Accepted { .. } => self.base = pushed.clone(),
            _ => {}
        }
        Ok(landed(&outcome, &pushed))
    }
}

#[test]
fn a_sigkill_between_batches_loses_no_landing_and_lands_none_twice() {
    const LANDERS: usize = 6;
    const ACKS_BEFORE_KILL: usize = 40;
    let tmp = TempDir::new().unwrap();
    let hub_path = tmp.path().join("hub.fossil");
    let mut hub = HubProcess::start(&hub_path, None, &[]);
    let url = hub.url();
    let landers: Vec<Lander> = (0..LANDERS)
        .map(|slot| {
            let (client, repo) = clone(&url, tmp.path(), &format!("leaf-{slot}"));
            let base = repo.trunk_tip().unwrap().unwrap();
            Lander {
                client,
                repo,
                base,
                slot,
                made: 0,
                in_flight: None,
            }
        })
        .collect();
    let (acks, acked) = std::sync::mpsc::channel::<ArtifactHash>();
    let threads: Vec<_> = landers
        .into_iter()
        .map(|mut lander| {
            let acks = acks.clone();
            std::thread::spawn(move || {
                // Land until the hub dies under us; keep what was in flight.
                while let Ok(hash) = lander.next() {
                    if acks.send(hash).is_err() {
                        break;
                    }
                }
                lander
            })
        })
        .collect();
    drop(acks);
    let mut landed_before = Vec::new();
    while landed_before.len() < ACKS_BEFORE_KILL {
        let hash = acked
            .recv_timeout(Duration::from_secs(30))
            .expect("landings are acknowledged");
        landed_before.push(hash);
    }
    hub.kill();
    let landers: Vec<Lander> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    landed_before.extend(acked.try_iter());

    // Restarted, the hub answers every push that was in flight: with the
    // landing it made before the kill, or with a new one if it made none.
    let hub = HubProcess::start(&hub_path, None, &[]);
    let url = hub.url();
    let mut after = Vec::new();
    for mut lander in landers {
        assert!(lander.in_flight.is_some(), "the kill cut a push short");
        lander.client = Client::new(&url);
        after.push(lander.next().unwrap());
    }
    let repo = Repository::open(&hub_path).unwrap();
    for hash in landed_before.iter().chain(&after) {
        assert!(
            repo.rid_of(hash).unwrap().is_some_and(|(_, p)| !p),
            "acknowledged landing {hash} was lost"
        );
    }
    let stats = hub.stats();
    assert_eq!(stats["trunk_leaves"], 1, "{stats}");
    let trunk = repo.trunk_after(None).unwrap();
    assert_eq!(
        trunk.len() as u64,
        stats["trunk_commits"].as_u64().unwrap() + 1
    );
    let mut comments: Vec<String> = trunk
        .iter()
        .skip(1)
        .map(|h| manifest(&repo, h).comment)
        .collect();
    let n = comments.len();
    comments.sort();
    comments.dedup();
    assert_eq!(comments.len(), n, "no task landed twice");
    drop(repo);
    drop(hub);
    fossil_ok(
        tmp.path(),
        tmp.path(),
        &["test-integrity", "-R", hub_path.to_str().unwrap()],
    );
}

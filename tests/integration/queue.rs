//! The hub's push queue and the sparse fast path, against the `hub` binary:
//! a stale push that asks to wait is held while another pusher has the
//! turn, each waiting pusher is refused once with a turn and then lands,
//! a turn nobody uses runs out, pushers outside the queue are never held,
//! and a sparse client is sent the tip's manifest and nothing else.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use herd::repo::{ArtifactHash, CheckinSpec, FileChange, Repository};
use herd::xfer::{Client, PushOutcome, QueueAsk};
use tempfile::TempDir;

use crate::helpers::HubProcess;

fn commit(repo: &Repository, parent: &ArtifactHash, path: &str) -> ArtifactHash {
    repo.commit(&CheckinSpec {
        parent: parent.clone(),
        changes: vec![FileChange {
            path: path.into(),
            content: Some(format!("{path}\n").repeat(20).into_bytes()),
        }],
        comment: format!("add {path}"),
        user: "tester".into(),
        time: SystemTime::now(),
    })
    .unwrap()
    .hash
}

/// A clone of the hub with its own client.
struct Pusher {
    client: Client,
    repo: Repository,
}

impl Pusher {
    fn clone_of(hub: &HubProcess, dir: &Path, name: &str) -> Pusher {
        let client = Client::new(&hub.url());
        let repo = client
            .clone_into(&dir.join(format!("{name}.fossil")))
            .unwrap();
        Pusher { client, repo }
    }

    fn tip(&self) -> ArtifactHash {
        self.client
            .known_tip()
            .or_else(|| self.repo.trunk_tip().unwrap())
            .unwrap()
    }

    fn push(&self, checkin: &ArtifactHash, ask: Option<QueueAsk>) -> PushOutcome {
        self.client
            .push_queued(&self.repo, std::slice::from_ref(checkin), ask)
            .unwrap()
    }
}

/// Waits until the hub reports `want` pushes held.
fn wait_for_waiting(hub: &HubProcess, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.stat("pushes_waiting") != want {
        assert!(
            Instant::now() < deadline,
            "the hub never held {want} pushes: {}",
            hub.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn waiting_pushers_take_turns_and_each_is_refused_once() {
    let tmp = TempDir::new().unwrap();
    let hub = HubProcess::start(
        &tmp.path().join("hub.fossil"),
        None,
        &["--turn-lease-ms", "5000"],
    );
    let a = Pusher::clone_of(&hub, tmp.path(), "a");
    let b = Pusher::clone_of(&hub, tmp.path(), "b");
    let c = Pusher::clone_of(&hub, tmp.path(), "c");
    let root = a.tip();
    let (ca, cb, cc) = (
        commit(&a.repo, &root, "a.txt"),
        commit(&b.repo, &root, "b.txt"),
        commit(&c.repo, &root, "c.txt"),
    );

    // A lands; B, stale, is refused with the turn (no one held it).
    assert!(matches!(
        a.push(&ca, Some(QueueAsk::Wait)),
        PushOutcome::Accepted { .. }
    ));
    let PushOutcome::Refused {
        tip,
        turn: Some(turn_b),
        ..
    } = b.push(&cb, Some(QueueAsk::Wait))
    else {
        panic!("B should be refused with a turn");
    };
    assert_eq!(tip, ca);

    // C, stale too, waits: B holds the turn.
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let outcome = c.push(&cc, Some(QueueAsk::Wait));
        tx.send(()).unwrap();
        (c, cc, outcome)
    });
    wait_for_waiting(&hub, 1);
    assert!(
        rx.try_recv().is_err(),
        "C was answered while B held the turn"
    );

    // B rebases onto the tip it was sent and lands with its turn.
    let rebased_b = b.repo.rebase(&cb, &tip).unwrap().hash;
    assert!(matches!(
        b.push(&rebased_b, Some(QueueAsk::Turn(turn_b))),
        PushOutcome::Accepted { .. }
    ));

    // Now C gets its turn: refused once, rebased, landed.
    let (c, cc, outcome) = waiter.join().unwrap();
    let PushOutcome::Refused {
        tip,
        turn: Some(turn_c),
        ..
    } = outcome
    else {
        panic!("C should be refused with a turn, got {outcome:?}");
    };
    assert_eq!(tip, rebased_b);
    assert_ne!(turn_c, turn_b);
    let rebased_c = c.repo.rebase(&cc, &tip).unwrap().hash;
    assert!(matches!(
        c.push(&rebased_c, Some(QueueAsk::Turn(turn_c))),
        PushOutcome::Accepted { .. }
    ));

    assert_eq!(hub.stat("trunk_commits"), 3);
    assert_eq!(hub.stat("trunk_leaves"), 1);
    assert_eq!(
        hub.stat("pushes_refused"),
        2,
        "one refusal each for B and C"
    );
    assert_eq!(hub.stat("turns_granted"), 2);
    assert_eq!(hub.stat("turns_expired"), 0);
    assert_eq!(hub.stat("pushes_waiting"), 0);
}

#[test]
fn an_unused_turn_runs_out_and_outsiders_never_wait() {
    let tmp = TempDir::new().unwrap();
    let hub = HubProcess::start(
        &tmp.path().join("hub.fossil"),
        None,
        &["--turn-lease-ms", "300"],
    );
    let a = Pusher::clone_of(&hub, tmp.path(), "a");
    let b = Pusher::clone_of(&hub, tmp.path(), "b");
    let c = Pusher::clone_of(&hub, tmp.path(), "c");
    let d = Pusher::clone_of(&hub, tmp.path(), "d");
    let root = a.tip();
    let ca = commit(&a.repo, &root, "a.txt");
    let cb = commit(&b.repo, &root, "b.txt");
    assert!(matches!(
        a.push(&ca, Some(QueueAsk::Wait)),
        PushOutcome::Accepted { .. }
    ));
    // B takes a turn and walks away.
    assert!(matches!(
        b.push(&cb, Some(QueueAsk::Wait)),
        PushOutcome::Refused { turn: Some(_), .. }
    ));

    // D does not take part: answered at once although B holds the turn.
    let cd = commit(&d.repo, &root, "d.txt");
    let started = Instant::now();
    assert!(matches!(
        d.push(&cd, None),
        PushOutcome::Refused { turn: None, .. }
    ));
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "an outsider was held"
    );

    // C waits, and gets its turn once B's lease has run out.
    let cc = commit(&c.repo, &root, "c.txt");
    let started = Instant::now();
    let outcome = c.push(&cc, Some(QueueAsk::Wait));
    let PushOutcome::Refused {
        tip,
        turn: Some(turn),
        ..
    } = outcome
    else {
        panic!("C should get a turn, got {outcome:?}");
    };
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "C did not wait"
    );
    assert_eq!(hub.stat("turns_expired"), 1);
    let rebased = c.repo.rebase(&cc, &tip).unwrap().hash;
    assert!(matches!(
        c.push(&rebased, Some(QueueAsk::Turn(turn))),
        PushOutcome::Accepted { .. }
    ));
    assert_eq!(hub.stat("trunk_commits"), 2);
    assert_eq!(hub.stat("trunk_leaves"), 1);
}

#[test]
fn a_sparse_client_is_sent_the_tip_manifest_alone() {
    let tmp = TempDir::new().unwrap();
    let hub = HubProcess::start(&tmp.path().join("hub.fossil"), None, &[]);
    let writer = Pusher::clone_of(&hub, tmp.path(), "writer");
    let reader = Pusher {
        client: Client::new(&hub.url()).sparse(),
        repo: Client::new(&hub.url())
            .clone_into(&tmp.path().join("reader.fossil"))
            .unwrap(),
    };
    let mut tip = writer.tip();
    let mut files = Vec::new();
    let mut checkins = Vec::new();
    for i in 0..12 {
        let path = format!("w/{i}.txt");
        tip = commit(&writer.repo, &tip, &path);
        assert!(matches!(
            writer.push(&tip, None),
            PushOutcome::Accepted { .. }
        ));
        files.push(path);
        checkins.push(tip.clone());
    }
    let pulled = reader.client.pull(&reader.repo).unwrap();
    assert_eq!(pulled.tip.as_ref().map(|(t, _)| t), Some(&tip));
    assert!(
        (1..=2).contains(&pulled.received),
        "the tip's manifest and at most its baseline, got {}",
        pulled.received
    );
    let held = checkins
        .iter()
        .filter(|c| reader.repo.is_checkin(c).unwrap())
        .count();
    assert_eq!(held, pulled.received, "no check-in in between was sent");
    // The reader can build on the tip: its file list is complete, while
    // the writer's files and the check-ins in between stay phantoms.
    let list = reader.repo.file_list(&tip).unwrap();
    for path in &files {
        let (hash, _) = &list[path.as_str()];
        assert_eq!(
            reader
                .repo
                .rid_of(hash)
                .unwrap()
                .map(|(_, phantom)| phantom),
            Some(true)
        );
    }
    // Without the files it cannot compute the optional R card (an MD5 over
    // the whole tree), so it writes none, as leaves do.
    reader.repo.config_set("repo-cksum", "0").unwrap();
    let mine = commit(&reader.repo, &tip, "r.txt");
    assert!(matches!(
        reader.push(&mine, None),
        PushOutcome::Accepted { .. }
    ));
    assert_eq!(hub.stat("trunk_commits"), 13);
}

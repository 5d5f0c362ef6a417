//! Coordination against a real nats-server: claim lifecycle, races, hold
//! conflicts and rollback, expiry of a killed process's holds, fencing on a
//! moved epoch, scope isolation, 32-way contention, and the tip stream under
//! a slow subscriber and a server restart.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use herd::coord::{
    ClaimError, Coord, CoordConfig, CoordError, FenceError, TaskId, TaskStatus, Tip, TipPublisher,
};
use rand::seq::SliceRandom;

use crate::helpers::NatsServer;

/// Env vars that turn `child_claimer` into the child half of the expiry test.
const CHILD_URL: &str = "HERD_COORD_CHILD_URL";
const CHILD_SCOPE: &str = "HERD_COORD_CHILD_SCOPE";
const CHILD_TASK: &str = "HERD_COORD_CHILD_TASK";
const CHILD_TTL_MS: &str = "HERD_COORD_CHILD_TTL_MS";
const CLAIMED_MARKER: &str = "HERD-CHILD-CLAIMED";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn coord(server: &NatsServer, scope: &str, leaf: &str) -> Coord {
    Coord::connect(CoordConfig::new(server.url(), scope), leaf)
        .await
        .unwrap()
}

async fn coord_ttl(server: &NatsServer, scope: &str, leaf: &str, ttl: Duration) -> Coord {
    let mut config = CoordConfig::new(server.url(), scope);
    config.hold_ttl = ttl;
    Coord::connect(config, leaf).await.unwrap()
}

async fn status(coord: &Coord, id: &TaskId) -> TaskStatus {
    coord.task(id).await.unwrap().unwrap().0.status
}

#[tokio::test]
async fn claim_check_close_lifecycle() {
    let server = NatsServer::start();
    let a = coord(&server, "life", "slot-0-a").await;
    let id = a
        .open_task("write two files", ["src/b.rs", "src/a.rs", "src/a.rs"])
        .await
        .unwrap();
    let (record, _) = a.task(&id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Open);
    assert_eq!(record.files, vec!["src/a.rs", "src/b.rs"]);
    assert_eq!(record.claim_epoch, 0);

    let claim = a.claim(&id).await.unwrap();
    assert_eq!(claim.epoch, 1);
    assert_eq!(claim.files, vec!["src/a.rs", "src/b.rs"]);
    assert_eq!(claim.holds.len(), 2);
    let (record, _) = a.task(&id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Claimed);
    assert_eq!(record.claimed_by.as_deref(), Some("slot-0-a"));
    assert_eq!(record.claim_epoch, 1);
    let hold = a.hold("src/a.rs").await.unwrap().unwrap();
    assert_eq!(hold.holder, "slot-0-a");
    assert_eq!(hold.task, id);
    assert_eq!(hold.epoch, 1);
    assert!(hold.expires_at_unix_ms > now_ms());

    a.check(&claim).await.unwrap();
    let mut renewed = claim.clone();
    a.renew(&mut renewed).await.unwrap();
    a.check(&renewed).await.unwrap();
    // The pre-renewal copy no longer matches the record's revision, so it
    // cannot close the task; the renewed claim can.
    let leftover = renewed.clone();
    a.close(renewed).await.unwrap();
    assert_eq!(status(&a, &id).await, TaskStatus::Closed);
    assert!(a.hold("src/a.rs").await.unwrap().is_none());
    assert!(a.hold("src/b.rs").await.unwrap().is_none());

    // Releasing again (abandoning the closed claim) is a harmless no-op.
    a.abandon(leftover).await.unwrap();
    assert_eq!(status(&a, &id).await, TaskStatus::Closed);
    match a.claim(&id).await {
        Err(ClaimError::AlreadyClaimed { status, .. }) => {
            assert_eq!(status, Some(TaskStatus::Closed))
        }
        other => panic!("claim of a closed task gave {other:?}"),
    }

    // Deterministic ids: only the first open wins; bad input is typed.
    let fixed = TaskId::new("pool-task-7").unwrap();
    assert!(a.open_task_with_id(&fixed, "t", ["x.txt"]).await.unwrap());
    assert!(!a.open_task_with_id(&fixed, "t2", ["y.txt"]).await.unwrap());
    assert_eq!(a.task(&fixed).await.unwrap().unwrap().0.title, "t");
    assert!(matches!(
        a.open_task("bad", ["../escape.txt"]).await,
        Err(CoordError::InvalidPath { .. })
    ));
    let missing = TaskId::new("no-such-task").unwrap();
    assert!(matches!(
        a.claim(&missing).await,
        Err(ClaimError::NoSuchTask { .. })
    ));

    // Abandon gives the task back with its holds released.
    let claim = a.claim(&fixed).await.unwrap();
    a.abandon(claim).await.unwrap();
    assert_eq!(status(&a, &fixed).await, TaskStatus::Open);
    assert!(a.hold("x.txt").await.unwrap().is_none());
    assert_eq!(a.claim(&fixed).await.unwrap().epoch, 2);
}

#[tokio::test]
async fn two_leaves_racing_for_one_task_one_wins() {
    let server = NatsServer::start();
    let a = coord(&server, "race", "slot-0-a").await;
    let b = coord(&server, "race", "slot-1-b").await;
    for i in 0..20 {
        let id = a
            .open_task("race", [format!("race/{i}.txt")])
            .await
            .unwrap();
        let (ra, rb) = tokio::join!(a.claim(&id), b.claim(&id));
        let (winner, loser) = match (ra, rb) {
            (Ok(claim), Err(lost)) => ((&a, claim), lost),
            (Err(lost), Ok(claim)) => ((&b, claim), lost),
            (ra, rb) => panic!("task {i}: expected exactly one winner, got {ra:?} and {rb:?}"),
        };
        assert!(
            matches!(loser, ClaimError::AlreadyClaimed { .. }),
            "loser saw {loser:?}"
        );
        let (record, _) = a.task(&id).await.unwrap().unwrap();
        assert_eq!(record.claimed_by.as_deref(), Some(winner.0.leaf_id()));
        assert_eq!(record.claim_epoch, 1);
        winner.0.close(winner.1).await.unwrap();
    }
}

#[tokio::test]
async fn hold_conflict_rolls_the_task_back_to_open() {
    let server = NatsServer::start();
    let a = coord(&server, "conflict", "slot-0-a").await;
    let b = coord(&server, "conflict", "slot-1-b").await;
    let first = a
        .open_task("first", ["m/shared.txt", "m/x.txt"])
        .await
        .unwrap();
    let second = b
        .open_task("second", ["a/own.txt", "m/shared.txt"])
        .await
        .unwrap();
    let claim_a = a.claim(&first).await.unwrap();

    match b.claim(&second).await {
        Err(ClaimError::HeldByAnother { file, holder, task }) => {
            assert_eq!(file, "m/shared.txt");
            assert_eq!(holder, "slot-0-a");
            assert_eq!(task, second);
        }
        other => panic!("expected a hold conflict, got {other:?}"),
    }
    // Rolled back: the task is open again and the hold taken before the
    // conflict (a/own.txt sorts first) was released.
    let (record, _) = b.task(&second).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Open);
    assert_eq!(record.claimed_by, None);
    assert!(b.hold("a/own.txt").await.unwrap().is_none());
    assert_eq!(
        b.hold("m/shared.txt").await.unwrap().unwrap().holder,
        "slot-0-a"
    );
    a.check(&claim_a).await.unwrap();

    a.close(claim_a).await.unwrap();
    let claim_b = b.claim(&second).await.unwrap();
    assert_eq!(claim_b.epoch, 2);
    b.check(&claim_b).await.unwrap();
}

/// The child half of `killed_process_holds_expire_after_the_ttl`: with the
/// env vars set it claims a task, says so on stdout and blocks until it is
/// killed. Without them (a normal test run) it does nothing.
#[tokio::test]
async fn child_claimer() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let mut config = CoordConfig::new(url, std::env::var(CHILD_SCOPE).unwrap());
    config.hold_ttl = Duration::from_millis(std::env::var(CHILD_TTL_MS).unwrap().parse().unwrap());
    let leaf = format!("child-{}", std::process::id());
    let coord = Coord::connect(config, leaf).await.unwrap();
    let id = TaskId::new(std::env::var(CHILD_TASK).unwrap()).unwrap();
    let claim = coord.claim(&id).await.unwrap();
    println!("\n{CLAIMED_MARKER} {}", claim.epoch);
    // Bounded, so an orphan cannot linger if the parent dies first.
    tokio::time::sleep(Duration::from_secs(120)).await;
}

/// Kills and reaps the child on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn killed_process_holds_expire_after_the_ttl() {
    let server = NatsServer::start();
    let ttl = Duration::from_millis(1500);
    let parent = coord_ttl(&server, "expiry", "slot-0-parent", ttl).await;
    let held = parent
        .open_task("child's task", ["shared/f.txt"])
        .await
        .unwrap();
    let blocked = parent
        .open_task("parent's task", ["shared/f.txt"])
        .await
        .unwrap();

    let mut child = ChildGuard(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "coord::child_claimer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_URL, server.url())
            .env(CHILD_SCOPE, "expiry")
            .env(CHILD_TASK, held.as_str())
            .env(CHILD_TTL_MS, ttl.as_millis().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let marker = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find(|line| line.contains(CLAIMED_MARKER))
        }),
    )
    .await
    .expect("child claims within 20s")
    .unwrap();
    assert!(marker.is_some(), "child exited without claiming");
    let child_leaf = format!("child-{}", child.0.id());
    // SIGKILL: the child gets no chance to release anything.
    child.0.kill().unwrap();
    child.0.wait().unwrap();

    let hold = parent.hold("shared/f.txt").await.unwrap().unwrap();
    assert_eq!(hold.holder, child_leaf);
    let expires = hold.expires_at_unix_ms;

    // Before expiry the dead child's hold still blocks, and the refused
    // claim is rolled back; from expiry on, the claim succeeds.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut refusals = 0;
    let claim = loop {
        assert!(Instant::now() < deadline, "hold never expired");
        let asked_at = now_ms();
        match parent.claim(&blocked).await {
            Ok(claim) => {
                assert!(
                    now_ms() >= expires,
                    "claim succeeded before the hold expired"
                );
                break claim;
            }
            Err(ClaimError::HeldByAnother { holder, .. }) => {
                assert_eq!(holder, child_leaf);
                assert!(asked_at <= expires + 50, "live-looking hold after expiry");
                assert_eq!(status(&parent, &blocked).await, TaskStatus::Open);
                refusals += 1;
            }
            Err(other) => panic!("unexpected claim error {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(refusals > 0, "the first claim must have been refused");
    parent.check(&claim).await.unwrap();
    assert_eq!(
        parent.hold("shared/f.txt").await.unwrap().unwrap().holder,
        "slot-0-parent"
    );
    parent.close(claim).await.unwrap();

    // The dead child's task itself is reclaimable once its lease ran out.
    let taken_over = parent.claim(&held).await.unwrap();
    assert_eq!(taken_over.epoch, 2);
    parent.close(taken_over).await.unwrap();
}

#[tokio::test]
async fn a_stale_epoch_blocks_the_commit() {
    let server = NatsServer::start();
    let a = coord_ttl(&server, "fence", "slot-0-a", Duration::from_millis(800)).await;
    let b = coord(&server, "fence", "slot-1-b").await;
    let id = a
        .open_task("fenced", ["f/one.txt", "f/two.txt"])
        .await
        .unwrap();
    let claim_a = a.claim(&id).await.unwrap();
    a.check(&claim_a).await.unwrap();
    assert!(matches!(
        b.claim(&id).await,
        Err(ClaimError::AlreadyClaimed { .. })
    ));

    // a stalls past its lease; b takes the task over.
    let deadline = Instant::now() + Duration::from_secs(10);
    let claim_b = loop {
        assert!(Instant::now() < deadline, "lease never expired");
        match b.claim(&id).await {
            Ok(claim) => break claim,
            Err(ClaimError::AlreadyClaimed { .. }) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(other) => panic!("unexpected claim error {other:?}"),
        }
    };
    assert_eq!(claim_b.epoch, 2);
    match a.check(&claim_a).await {
        Err(FenceError::EpochMoved { mine, now, .. }) => assert_eq!((mine, now), (1, 2)),
        other => panic!("stale check gave {other:?}"),
    }
    assert!(matches!(
        a.close(claim_a.clone()).await,
        Err(FenceError::EpochMoved { .. })
    ));
    let mut stale = claim_a.clone();
    assert!(a.renew(&mut stale).await.is_err());
    // The stale owner's abandon must not undo the new owner's holds.
    a.abandon(claim_a).await.unwrap();
    b.check(&claim_b).await.unwrap();
    b.close(claim_b).await.unwrap();
    assert_eq!(status(&b, &id).await, TaskStatus::Closed);
}

#[tokio::test]
async fn an_expired_lease_fails_the_check() {
    let server = NatsServer::start();
    let a = coord_ttl(&server, "lease", "slot-0-a", Duration::from_millis(300)).await;
    let id = a.open_task("slow", ["l.txt"]).await.unwrap();
    let claim = a.claim(&id).await.unwrap();
    let expires = claim.record().lease_expires_unix_ms.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        assert!(Instant::now() < deadline, "check never failed");
        match a.check(&claim).await {
            Ok(()) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(err) => break err,
        }
    };
    assert!(now_ms() > expires);
    assert!(
        matches!(err, FenceError::LeaseExpired { .. }),
        "got {err:?}"
    );
}

#[tokio::test]
async fn two_scopes_on_one_server_do_not_interfere() {
    let server = NatsServer::start();
    let one = coord(&server, "scope-one", "slot-0").await;
    let two = coord(&server, "scope-two", "slot-0").await;
    let id = TaskId::new("same-id").unwrap();
    assert!(one
        .open_task_with_id(&id, "one", ["same.txt"])
        .await
        .unwrap());
    assert!(two
        .open_task_with_id(&id, "two", ["same.txt"])
        .await
        .unwrap());
    let claim_one = one.claim(&id).await.unwrap();
    let claim_two = two.claim(&id).await.unwrap();
    assert_eq!((claim_one.epoch, claim_two.epoch), (1, 1));
    one.close(claim_one).await.unwrap();
    assert_eq!(status(&two, &id).await, TaskStatus::Claimed);
    two.check(&claim_two).await.unwrap();

    let tip = Tip {
        hash: "aa11".into(),
        seq: 1,
        parent: None,
        ..Tip::default()
    };
    one.tip_publisher()
        .await
        .unwrap()
        .publish(&tip, &herd::telemetry::W3c::default())
        .await
        .unwrap();
    assert_eq!(one.latest_tip().await.unwrap(), Some(tip));
    assert_eq!(two.latest_tip().await.unwrap(), None);
}

#[tokio::test]
async fn contention_32_claimers_200_tasks_each_closed_once() {
    const CLAIMERS: usize = 32;
    const TASKS: usize = 200;
    let server = NatsServer::start();
    let opener = coord(&server, "herd", "opener").await;
    let mut ids = Vec::new();
    for i in 0..TASKS {
        // Every task shares one of 16 files with others, so claims also
        // lose to hold conflicts and roll back, not only to the CAS.
        let id = TaskId::new(format!("pool-{i}")).unwrap();
        let files = [format!("pool/{i}.txt"), format!("shared/{}.txt", i % 16)];
        assert!(opener.open_task_with_id(&id, "pool", files).await.unwrap());
        ids.push(id);
    }
    let wins: Arc<Mutex<HashMap<TaskId, u32>>> = Arc::default();
    let closes: Arc<Mutex<HashMap<TaskId, u32>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..CLAIMERS {
        let coord = coord(&server, "herd", &format!("slot-{w}")).await;
        let (wins, closes) = (Arc::clone(&wins), Arc::clone(&closes));
        let mut pending = ids.clone();
        pending.shuffle(&mut rand::thread_rng());
        workers.push(tokio::spawn(async move {
            let mut lost = 0u64;
            let mut passes = 0;
            while !pending.is_empty() {
                passes += 1;
                assert!(passes < 10_000, "worker {w} never finished");
                let mut still = Vec::new();
                for id in pending {
                    match coord.claim(&id).await {
                        Ok(claim) => {
                            *wins.lock().unwrap().entry(id.clone()).or_default() += 1;
                            coord.check(&claim).await.unwrap();
                            coord.close(claim).await.unwrap();
                            *closes.lock().unwrap().entry(id).or_default() += 1;
                        }
                        Err(ClaimError::AlreadyClaimed {
                            status: Some(TaskStatus::Closed),
                            ..
                        }) => lost += 1,
                        Err(
                            ClaimError::AlreadyClaimed { .. } | ClaimError::HeldByAnother { .. },
                        ) => {
                            lost += 1;
                            still.push(id);
                        }
                        Err(other) => panic!("worker {w}: {other}"),
                    }
                }
                pending = still;
                tokio::task::yield_now().await;
            }
            lost
        }));
    }
    let lost: u64 = tokio::time::timeout(Duration::from_secs(120), async {
        let mut lost = 0;
        for worker in workers {
            lost += worker.await.unwrap();
        }
        lost
    })
    .await
    .expect("contention finished within 120s");

    let wins = wins.lock().unwrap().clone();
    let closes = closes.lock().unwrap().clone();
    assert_eq!(wins.values().sum::<u32>() as usize, TASKS);
    assert_eq!(wins.len(), TASKS);
    assert!(wins.values().all(|&n| n == 1), "a task was claimed twice");
    assert!(closes.values().all(|&n| n == 1) && closes.len() == TASKS);
    // Every worker met every task, so all but one meeting per task lost.
    assert!(lost >= ((CLAIMERS - 1) * TASKS) as u64, "lost {lost}");
    let mut seen = HashSet::new();
    for id in &ids {
        let (record, _) = opener.task(id).await.unwrap().unwrap();
        assert_eq!(record.status, TaskStatus::Closed, "{id}");
        seen.insert(record.claimed_by.unwrap());
        for file in &record.files {
            assert!(
                opener.hold(file).await.unwrap().is_none(),
                "{file} still held"
            );
        }
    }
    assert!(seen.len() > 1, "only one worker ever won");
}

/// Publishes tips 1..=count, retrying a publish that fails (as it may while
/// the server restarts) until `deadline`.
async fn publish_tips(publisher: &TipPublisher, range: std::ops::RangeInclusive<u64>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for seq in range {
        let tip = Tip {
            hash: format!("{seq:064x}"),
            seq,
            parent: (seq > 1).then(|| format!("{:064x}", seq - 1)),
            ..Tip::default()
        };
        let trace = herd::telemetry::W3c {
            traceparent: Some(format!("00-{seq:032x}-00f067aa0ba902b7-01")),
            tracestate: None,
        };
        loop {
            match publisher.publish(&tip, &trace).await {
                Ok(()) => break,
                Err(err) => {
                    assert!(
                        Instant::now() < deadline,
                        "publish {seq} kept failing: {err}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Reads tips slowly (`pause` per tip) until `last`, with `next` or, when
/// `coalesce`, `next_latest`, asserting they never go back and carry their
/// own trace context; returns how many arrived and how many were coalesced.
async fn follow_tips(
    mut subscription: herd::coord::TipSubscription,
    last: u64,
    coalesce: bool,
    pause: Duration,
) -> (usize, u64) {
    let mut superseded = 0;
    let mut previous = 0;
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while previous < last {
        assert!(
            Instant::now() < deadline,
            "subscriber stuck at tip {previous}"
        );
        let next = if coalesce {
            tokio::time::timeout(Duration::from_secs(30), subscription.next_latest()).await
        } else {
            tokio::time::timeout(Duration::from_secs(30), subscription.next()).await
        };
        let next = next
            .expect("a tip or an error within 30s")
            .expect("subscription ended");
        let event = match next {
            Ok(event) => event,
            // Transient while the server is away; the subscription carries on.
            Err(_) => continue,
        };
        assert!(
            event.tip.seq > previous,
            "tip went from {previous} to {}",
            event.tip.seq
        );
        assert_eq!(
            event.trace.traceparent,
            Some(format!("00-{:032x}-00f067aa0ba902b7-01", event.tip.seq))
        );
        if !coalesce {
            assert_eq!(event.superseded, 0);
        }
        superseded += event.superseded;
        previous = event.tip.seq;
        received += 1;
        // The slow part of a leaf: a pull per broadcast.
        tokio::time::sleep(pause).await;
    }
    (received, superseded)
}

#[tokio::test]
async fn slow_subscriber_ends_on_the_last_of_1000_tips() {
    let server = NatsServer::start();
    let leaf = coord(&server, "tips", "slot-0").await;
    let publisher = TipPublisher::new(async_nats::connect(server.url()).await.unwrap(), "tips")
        .await
        .unwrap();
    assert_eq!(leaf.latest_tip().await.unwrap(), None);
    let subscription = leaf.subscribe_tips().await.unwrap();
    let follower = tokio::spawn(follow_tips(
        subscription,
        1000,
        false,
        Duration::from_millis(3),
    ));
    let started = Instant::now();
    publish_tips(&publisher, 1..=1000).await;
    let publish_time = started.elapsed();
    let (received, _) = follower.await.unwrap();
    assert!((1..=1000).contains(&received));
    assert_eq!(leaf.latest_tip().await.unwrap().unwrap().seq, 1000);
    // A late joiner starts at the latest tip.
    let late = leaf.subscribe_tips().await.unwrap().into_stream();
    futures::pin_mut!(late);
    let first = late.next().await.unwrap().unwrap();
    assert_eq!(first.tip.seq, 1000);
    eprintln!("published 1000 tips in {publish_time:?}; slow subscriber saw {received}");
}

#[tokio::test]
async fn coalescing_subscriber_skips_superseded_tips() {
    let server = NatsServer::start();
    let leaf = coord(&server, "coalesce", "slot-0").await;
    let publisher = leaf.tip_publisher().await.unwrap();
    let subscription = leaf.subscribe_tips().await.unwrap();
    let follower = tokio::spawn(follow_tips(
        subscription,
        1000,
        true,
        Duration::from_millis(20),
    ));
    publish_tips(&publisher, 1..=1000).await;
    let (received, superseded) = follower.await.unwrap();
    // 1000 tips take well under 20 s to publish, so a leaf that needs 20 ms
    // per tip must have coalesced.
    assert!(received < 1000, "no tip was coalesced");
    assert!(superseded > 0);
    eprintln!("coalescing subscriber handled {received} tips, dropped {superseded} superseded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tips_survive_a_server_restart_mid_stream() {
    let mut server = NatsServer::start();
    let mut config = CoordConfig::new(server.url(), "restart");
    config.op_timeout = Duration::from_secs(2);
    let leaf = Coord::connect(config, "slot-0").await.unwrap();
    let publisher = TipPublisher::with_op_timeout(
        async_nats::connect(server.url()).await.unwrap(),
        "restart",
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let subscription = leaf.subscribe_tips().await.unwrap();
    let follower = tokio::spawn(follow_tips(
        subscription,
        1000,
        false,
        Duration::from_millis(1),
    ));
    publish_tips(&publisher, 1..=500).await;
    tokio::task::block_in_place(|| server.restart());
    publish_tips(&publisher, 501..=1000).await;
    let (received, _) = tokio::time::timeout(Duration::from_secs(60), follower)
        .await
        .expect("subscriber reached the last tip within 60s")
        .unwrap();
    assert!(received >= 2);
    assert_eq!(leaf.latest_tip().await.unwrap().unwrap().seq, 1000);
}

#[tokio::test]
async fn concurrent_connects_share_one_set_of_buckets() {
    let server = NatsServer::start();
    let connects = (0..8).map(|i| {
        let url = server.url();
        async move {
            Coord::connect(CoordConfig::new(url, "many"), format!("slot-{i}"))
                .await
                .unwrap()
        }
    });
    let coords = futures::future::join_all(connects).await;
    let id = coords[0].open_task("shared", ["s.txt"]).await.unwrap();
    for coord in &coords {
        assert_eq!(coord.task(&id).await.unwrap().unwrap().0.id, id);
    }
}

#[tokio::test]
async fn operations_are_bounded_when_the_server_is_gone() {
    let mut server = NatsServer::start();
    let mut config = CoordConfig::new(server.url(), "gone");
    config.op_timeout = Duration::from_millis(300);
    let a = Coord::connect(config, "slot-0").await.unwrap();
    let id = a.open_task("orphan", ["o.txt"]).await.unwrap();
    server.stop();
    let started = Instant::now();
    let err = a.claim(&id).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("claim task {id}: read record")),
        "unexpected error {message}"
    );
    assert!(matches!(err, ClaimError::Coord(_)));
}

//! Faults injected into a running trial, with real processes: a leaf-agent
//! SIGKILLed while it holds a claim, the hub SIGKILLed and restarted on the
//! same repository and port, the nats-server restarted on the same store,
//! and the hub's disk filling up under a push (a file-size limit lowered on
//! the live hub with `prlimit`). Each test prints its figures: faults
//! injected, commits acknowledged, commits lost (always 0). Herd's own
//! faults (a SIGKILLed herd leaves no child, a SIGKILLed leaf fails the
//! trial naming its slot) are in `herd.rs`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use herd::coord::{subscribe_tips, ClaimError, Coord, CoordConfig, Scope, TaskId};
use herd::repo::{CheckinSpec, FileChange, Repository};
use herd::soak::procs::SmallFs;
use herd::wire::{LeafLine, LeafSummary, TaskOutcome};
use herd::xfer::{Client, ClientError, PushOutcome};

use crate::helpers::{
    file_len, fossil_ok, fossil_sql, free_port, set_file_size_limit, HubProcess, NatsServer,
};

/// Bound on one leaf-agent's whole run, and on waiting for one of its lines.
const LEAF_TIMEOUT: Duration = Duration::from_secs(60);
/// A short hold TTL, so a dead leaf's claim expires within the test.
const HOLD_TTL: Duration = Duration::from_secs(2);
/// How long the hub stays down: longer than a leaf's start-up retries
/// (about 3 s), so only the in-trial retry deadline carries the leaves over.
const HUB_OUTAGE: Duration = Duration::from_secs(4);

/// A leaf-agent process owned by a test: its stdout parsed into
/// [`LeafLine`]s as they come, its stderr in `slot-<i>.log` of the work
/// directory; `Drop` kills and reaps it.
struct Leaf {
    slot: u32,
    child: Option<Child>,
    lines: mpsc::Receiver<LeafLine>,
    seen: Vec<LeafLine>,
    log: PathBuf,
}

impl Leaf {
    /// Starts slot `slot` of a disjoint trial against `hub` and `nats`.
    fn spawn(hub: &HubProcess, nats: &NatsServer, dir: &Path, slot: u32, args: &[&str]) -> Leaf {
        let log = dir.join(format!("slot-{slot}.log"));
        let workdir = dir.join(format!("slot-{slot}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_leaf-agent"))
            .args(["--hub", &hub.ready.http, "--nats-url", &nats.url()])
            .args([
                "--slot",
                &slot.to_string(),
                "--seed",
                "7",
                "--mode",
                "disjoint",
            ])
            .arg("--workdir")
            .arg(workdir)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("create a leaf log"))
            .spawn()
            .expect("spawn leaf-agent");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let parsed = LeafLine::parse(&line).expect("leaf-agent prints LeafLines");
                if tx.send(parsed).is_err() {
                    break;
                }
            }
        });
        Leaf {
            slot,
            child: Some(child),
            lines,
            seen: Vec::new(),
            log,
        }
    }

    /// Waits (bounded) for the first line that `want` accepts.
    fn wait_for(&mut self, what: &str, want: impl Fn(&LeafLine) -> bool) -> LeafLine {
        if let Some(line) = self.seen.iter().find(|l| want(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + LEAF_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "slot {} printed no {what} within {LEAF_TIMEOUT:?}; log:\n{}",
                    self.slot,
                    self.log_text()
                ),
            }
        }
    }

    /// Tasks committed so far, by the lines read so far.
    fn committed_so_far(&mut self) -> usize {
        self.seen.extend(self.lines.try_iter());
        self.seen.iter().filter(|l| is_committed(l)).count()
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits (bounded) for the leaf to print its last line and exit, and
    /// asserts it succeeded.
    fn finish(self) -> (ExitStatus, Vec<LeafLine>) {
        let slot = self.slot;
        let log = self.log.clone();
        let (status, seen) = self.exit();
        assert!(
            status.success(),
            "slot {slot} exited with {status}; lines {seen:?}; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        (status, seen)
    }

    /// Waits (bounded) for the leaf to print its last line and exit.
    fn exit(mut self) -> (ExitStatus, Vec<LeafLine>) {
        let deadline = Instant::now() + LEAF_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "slot {} did not finish within {LEAF_TIMEOUT:?}; log:\n{}",
                    self.slot,
                    self.log_text()
                ),
            }
        }
        // Its stdout is closed: the process is exiting.
        let mut child = self.child.take().expect("leaf is running");
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for leaf-agent") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("slot {} closed stdout but did not exit", self.slot);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        (status, std::mem::take(&mut self.seen))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Leaf {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts slots `0..n`, each with `args`.
fn spawn_leaves(
    hub: &HubProcess,
    nats: &NatsServer,
    dir: &Path,
    n: u32,
    args: &[&str],
) -> Vec<Leaf> {
    (0..n)
        .map(|slot| Leaf::spawn(hub, nats, dir, slot, args))
        .collect()
}

/// Waits (bounded) until the leaves have committed `n` tasks between them.
fn wait_for_commits(leaves: &mut [Leaf], n: usize) {
    let deadline = Instant::now() + LEAF_TIMEOUT;
    while leaves.iter_mut().map(Leaf::committed_so_far).sum::<usize>() < n {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} commits within {LEAF_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_committed(line: &LeafLine) -> bool {
    matches!(line, LeafLine::Task(t) if t.outcome == TaskOutcome::Committed)
}

/// The check-ins a leaf's task lines report as accepted.
fn accepted(lines: &[LeafLine]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| match l {
            LeafLine::Task(t) if t.outcome == TaskOutcome::Committed => Some(
                t.checkin
                    .clone()
                    .expect("a committed task names its check-in"),
            ),
            _ => None,
        })
        .collect()
}

fn summary(lines: &[LeafLine]) -> &LeafSummary {
    match lines.last() {
        Some(LeafLine::Summary(s)) => s,
        other => panic!("the last line is not a summary: {other:?}"),
    }
}

/// The hub's trunk after its root, oldest first. The hub must be stopped.
fn trunk_of(hub_path: &Path) -> Vec<String> {
    let repo = Repository::open(hub_path).expect("open the hub repository");
    let trunk = repo
        .trunk_after(None)
        .expect("walk the trunk")
        .iter()
        .map(|h| h.to_string())
        .collect();
    trunk
}

/// Asserts every accepted check-in is on the hub's trunk exactly once, the
/// trunk holds nothing else, is linear, and the repository passes `fossil
/// test-integrity`. The hub must be stopped. Returns the commits lost.
fn assert_trunk_holds_exactly(hub_path: &Path, home: &Path, accepted: &[String]) -> usize {
    let trunk = trunk_of(hub_path);
    let on_trunk: HashSet<&str> = trunk.iter().map(String::as_str).collect();
    let lost = accepted
        .iter()
        .filter(|h| !on_trunk.contains(h.as_str()))
        .count();
    assert_eq!(lost, 0, "accepted check-ins missing from trunk");
    let unique: HashSet<&String> = accepted.iter().collect();
    assert_eq!(unique.len(), accepted.len(), "a check-in reported twice");
    // The root plus exactly the accepted check-ins: none landed twice.
    assert_eq!(trunk.len(), accepted.len() + 1, "trunk {trunk:?}");
    let repeated = fossil_sql(
        home,
        hub_path,
        "SELECT count(*) FROM (SELECT comment FROM event WHERE type='ci' \
         GROUP BY comment HAVING count(*) > 1)",
    );
    assert_eq!(repeated, "0", "a task's change landed twice");
    let leaves = fossil_sql(home, hub_path, "SELECT count(*) FROM leaf");
    assert_eq!(leaves, "1", "trunk is linear");
    fossil_ok(
        home,
        home,
        &[
            "test-integrity",
            "-R",
            hub_path.to_str().expect("utf-8 path"),
        ],
    );
    lost
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("the clock is after 1970");
    u64::try_from(since.as_millis()).expect("ms fit u64")
}

#[test]
fn a_leaf_killed_holding_a_claim_frees_its_task_after_the_ttl() {
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub_path = tmp.path().join("hub.fossil");
    let mut hub = HubProcess::start(&hub_path, Some(&nats.url()), &[]);
    let ttl = HOLD_TTL.as_millis().to_string();
    // The victim thinks far longer than the test runs: it holds its first
    // claim from the moment it takes it until it is killed.
    let mut victim = Leaf::spawn(
        &hub,
        &nats,
        tmp.path(),
        0,
        &[
            "--tasks",
            "2",
            "--min-think-ms",
            "600000",
            "--max-think-ms",
            "600000",
            "--hold-ttl-ms",
            &ttl,
        ],
    );
    let others: Vec<Leaf> = (1..3)
        .map(|slot| {
            Leaf::spawn(
                &hub,
                &nats,
                tmp.path(),
                slot,
                &[
                    "--tasks",
                    "4",
                    "--min-think-ms",
                    "0",
                    "--max-think-ms",
                    "20",
                    "--hold-ttl-ms",
                    &ttl,
                ],
            )
        })
        .collect();
    let LeafLine::Ready(ready) = victim.wait_for("ready line", |l| matches!(l, LeafLine::Ready(_)))
    else {
        unreachable!("wait_for returns the line asked for")
    };

    let rt = runtime();
    let scope = Scope::for_project(&hub.ready.project_code).expect("a scope");
    let mut config = CoordConfig::new(nats.url(), scope.as_str());
    config.hold_ttl = HOLD_TTL;
    let observer = rt
        .block_on(Coord::connect(config, "faults-observer"))
        .expect("join the trial");
    // The victim's first task writes this file first (disjoint layout).
    let file = "slot-0/task-0/file-0.txt";
    let deadline = Instant::now() + LEAF_TIMEOUT;
    let hold = loop {
        match rt.block_on(observer.hold(file)).expect("read a hold") {
            Some(hold) if hold.holder == ready.leaf_id => break hold,
            _ => {
                assert!(Instant::now() < deadline, "the victim never claimed");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    victim.kill();
    let task: TaskId = hold.task.clone();
    let expires = hold.expires_at_unix_ms;
    eprintln!(
        "faults: SIGKILLed slot 0 (pid gone) holding task {task} until {expires} (ttl {HOLD_TTL:?})"
    );

    // Before the lease runs out the dead leaf's claim still stands; from
    // then on the task is claimed again, at the next epoch.
    let mut refusals = 0;
    let claim = loop {
        assert!(
            Instant::now() < deadline,
            "the dead leaf's claim never expired"
        );
        let asked_at = now_ms();
        match rt.block_on(observer.claim(&task)) {
            Ok(claim) => {
                assert!(now_ms() >= expires, "claimed before the lease expired");
                break claim;
            }
            Err(ClaimError::AlreadyClaimed { by, .. }) => {
                assert!(
                    asked_at <= expires + 50,
                    "a live-looking claim after expiry"
                );
                if let Some(by) = by {
                    assert_eq!(by, ready.leaf_id);
                }
                refusals += 1;
            }
            Err(other) => panic!("unexpected claim error {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        refusals > 0,
        "the first claim, before expiry, must be refused"
    );
    assert_eq!(claim.epoch, hold.epoch + 1, "taken over at the next epoch");
    rt.block_on(observer.check(&claim))
        .expect("the takeover holds every file");
    rt.block_on(observer.abandon(claim))
        .expect("give the task back");

    // The other leaves finish every task.
    let mut acked = Vec::new();
    for leaf in others {
        let (_, lines) = leaf.finish();
        assert_eq!(summary(&lines).committed, 4);
        acked.extend(accepted(&lines));
    }
    assert_eq!(hub.stat("trunk_commits"), acked.len() as u64);
    let status = hub.terminate();
    assert!(status.success(), "hub stops cleanly: {status}");
    let lost = assert_trunk_holds_exactly(&hub_path, tmp.path(), &acked);
    eprintln!(
        "faults: leaf SIGKILL: faults injected 1, claim refusals before expiry {refusals}, \
         commits acknowledged {}, commits lost {lost}",
        acked.len()
    );
}

#[test]
fn a_hub_killed_and_restarted_mid_trial_loses_no_acknowledged_commit() {
    const TASKS: usize = 6;
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub_path = tmp.path().join("hub.fossil");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut hub = HubProcess::start(&hub_path, Some(&nats.url()), &["--listen", &listen]);
    let tasks = TASKS.to_string();
    let think = ["--min-think-ms", "50", "--max-think-ms", "150"];
    let args = [&["--tasks", tasks.as_str()][..], &think[..]].concat();
    let mut leaves = spawn_leaves(&hub, &nats, tmp.path(), 3, &args);
    // Kill once the trial is under way, with tasks still to go.
    wait_for_commits(&mut leaves, 3);
    let before = hub.stat("trunk_commits");
    hub.kill();
    // The outage itself is the fault: leaves meet a refused port meanwhile.
    std::thread::sleep(HUB_OUTAGE);
    let mut hub = HubProcess::start(&hub_path, Some(&nats.url()), &["--listen", &listen]);
    assert_eq!(hub.ready.http, format!("http://{listen}"));

    let mut acked = Vec::new();
    let mut last_slot = 0;
    let mut retried = 0;
    for leaf in leaves {
        last_slot = leaf.slot;
        // A leaf warns once per exchange that meets the hub down.
        retried += leaf
            .log_text()
            .matches("hub does not answer; retrying")
            .count();
        let (_, lines) = leaf.finish();
        let s = summary(&lines);
        assert_eq!(s.committed as usize, TASKS, "slot {last_slot}: {lines:?}");
        acked.extend(accepted(&lines));
    }
    assert!(
        before < acked.len() as u64,
        "the kill came before the trial's end"
    );
    assert!(retried > 0, "no leaf met the hub down");

    // A push whose reply was lost is pushed again as it was: the hub finds
    // its earlier landing of that check-in and answers with it, and nothing
    // lands twice. Replay the last leaf's last pushed check-in exactly so
    // (the leaf's own check-in, which the hub wrote anew on its tip).
    let landed = acked.last().expect("a check-in").clone();
    let hub_repo = Repository::open(&hub_path).expect("open the hub's repository");
    let landed_hash = herd::repo::ArtifactHash::parse(&landed).expect("a hash");
    let comment =
        match herd::repo::parse_artifact(&hub_repo.content(&landed_hash).unwrap().unwrap()) {
            herd::repo::Artifact::Checkin(m) => m.comment,
            other => panic!("{landed} is not a check-in: {other:?}"),
        };
    drop(hub_repo);
    let slot_repo = tmp.path().join(format!("slot-{last_slot}/leaf.fossil"));
    let pushed = fossil_sql(
        tmp.path(),
        &slot_repo,
        &format!(
            "SELECT blob.uuid FROM event JOIN blob ON blob.rid=event.objid \
             WHERE event.type='ci' AND event.comment='{comment}' ORDER BY event.mtime LIMIT 1"
        ),
    );
    let repo = Repository::open(&slot_repo).expect("open the leaf's repository");
    let hash = herd::repo::ArtifactHash::parse(&pushed).expect("a hash");
    let trunk_before = hub.stat("trunk_commits");
    let verdict = Client::new(&hub.url())
        .push_landing(&repo, &hash)
        .expect("the repeated push is answered");
    match verdict {
        PushOutcome::Landed { checkin, .. } => assert_eq!(checkin.as_str(), landed),
        PushOutcome::Accepted { .. } => assert_eq!(pushed, landed, "landed as sent"),
        other => panic!("a repeated push is not refused: {other:?}"),
    }
    assert_eq!(
        hub.stat("trunk_commits"),
        trunk_before,
        "nothing landed twice"
    );
    drop(repo);

    assert_eq!(hub.stat("trunk_commits"), acked.len() as u64);
    let status = hub.terminate();
    assert!(status.success(), "hub stops cleanly: {status}");
    let lost = assert_trunk_holds_exactly(&hub_path, tmp.path(), &acked);
    eprintln!(
        "faults: hub SIGKILL + restart after {before} commits ({HUB_OUTAGE:?} down): \
         faults injected 1, exchanges retried {retried}, commits acknowledged {}, \
         commits lost {lost}",
        acked.len()
    );
}

#[test]
fn a_restarted_nats_server_is_rejoined_and_its_tips_are_seen() {
    const TASKS: usize = 8;
    let mut nats = NatsServer::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub_path = tmp.path().join("hub.fossil");
    let mut hub = HubProcess::start(&hub_path, Some(&nats.url()), &[]);
    let tasks = TASKS.to_string();
    let think = ["--min-think-ms", "100", "--max-think-ms", "200"];
    // A claim whose answer the restart swallowed may stand half-written;
    // the leaf takes it again when its lease runs out, so keep that short.
    let ttl = HOLD_TTL.as_millis().to_string();
    // Leaf landing: its leaves follow the tip stream (hub landing's do not).
    let args = [
        &["--tasks", tasks.as_str(), "--hold-ttl-ms", ttl.as_str()][..],
        &["--landing", "leaf"][..],
        &think[..],
    ]
    .concat();
    let mut leaves = spawn_leaves(&hub, &nats, tmp.path(), 3, &args);
    wait_for_commits(&mut leaves, 3);
    nats.stop();
    // Tips published before the server went away; any tip a leaf counts
    // beyond these was published after the restart.
    let published_before = hub.stat("broadcasts_published");
    nats.restart();

    let rt = runtime();
    // A subscription unsubscribes on drop (also when a failed assertion
    // unwinds), which needs the runtime's context.
    let _context = rt.enter();
    let scope = Scope::for_project(&hub.ready.project_code).expect("a scope");
    let config = CoordConfig::new(nats.url(), scope.as_str());
    let client = rt
        .block_on(herd::coord::connect_client(&config, "faults-observer"))
        .expect("connect after the restart");
    let mut tips = rt
        .block_on(subscribe_tips(client, scope.as_str(), config.op_timeout))
        .expect("subscribe after the restart");

    let mut acked = Vec::new();
    let mut seen = Vec::new();
    let mut retried = 0;
    for leaf in leaves {
        retried += leaf
            .log_text()
            .matches("nats did not answer; retrying")
            .count();
        let (_, lines) = leaf.finish();
        let s = summary(&lines);
        assert_eq!(s.committed as usize, TASKS, "slot {}: {lines:?}", s.slot);
        seen.push(u64::from(s.broadcasts_pulled + s.broadcasts_skipped));
        acked.extend(accepted(&lines));
    }
    for (slot, &n) in seen.iter().enumerate() {
        assert!(
            n > published_before,
            "slot {slot} saw {n} tips, none after the restart ({published_before} before)"
        );
    }
    // The subscriber that joined after the restart sees the last tip.
    let total = acked.len() as u64;
    let last = rt.block_on(async {
        tokio::time::timeout(LEAF_TIMEOUT, async {
            loop {
                let event = tips.next().await.expect("the subscription stays open");
                let event = event.expect("a tip event");
                if event.tip.seq == total {
                    return event;
                }
            }
        })
        .await
        .expect("the last tip is broadcast after the restart")
    });
    assert_eq!(hub.stat("trunk_commits"), total);
    assert_eq!(hub.stats()["tip"], last.tip.hash.as_str());
    let status = hub.terminate();
    assert!(status.success(), "hub stops cleanly: {status}");
    let lost = assert_trunk_holds_exactly(&hub_path, tmp.path(), &acked);
    eprintln!(
        "faults: nats restart after {published_before} tips: faults injected 1, \
         coordination steps retried {retried}, tips seen per leaf {seen:?}, \
         commits acknowledged {total}, commits lost {lost}"
    );
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

#[test]
fn a_full_disk_refuses_the_push_whole_and_the_hub_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path();
    let hub_path = tmp.path().join("hub.fossil");
    let mut hub = HubProcess::start(&hub_path, None, &[]);
    let client = Client::new(&hub.url());
    let leaf = client
        .clone_into(&tmp.path().join("leaf.fossil"))
        .expect("clone the hub");
    let commit = |path: &str, content: Vec<u8>| {
        let parent = leaf.trunk_tip().expect("tip").expect("a tip");
        leaf.commit(&CheckinSpec {
            parent,
            changes: vec![FileChange {
                path: path.into(),
                content: Some(content),
            }],
            comment: format!("add {path}"),
            user: "tester".into(),
            time: SystemTime::now(),
        })
        .expect("commit")
        .hash
    };
    let small = commit("small.txt", b"fits anywhere\n".to_vec());
    let first = client
        .push(&leaf, std::slice::from_ref(&small))
        .expect("push a small change");
    assert!(matches!(first, PushOutcome::Accepted { .. }), "{first:?}");

    // A little room above the largest file the hub writes; the next push
    // carries 512 KiB that cannot be compressed, far more than that.
    let wal = with_suffix(&hub_path, "-wal");
    let room = 16 * 1024;
    let limit = file_len(&hub_path).max(file_len(&wal)) + room;
    set_file_size_limit(hub.pid(), limit);
    let blobs_before = fossil_sql(home, &hub_path, "SELECT count(*) FROM blob");
    let commits_before = hub.stat("trunk_commits");
    let big: Vec<u8> = (0..512 * 1024).map(|_| rand::random::<u8>()).collect();
    let large = commit("large.bin", big);
    let refused = client.push(&leaf, std::slice::from_ref(&large));
    let Err(ClientError::Server { text, .. }) = &refused else {
        panic!("a push past the file-size limit must get an error card: {refused:?}");
    };
    assert!(
        text.contains("cannot be written") || text.contains("disk is full"),
        "the error card says why: {text}"
    );
    assert!(text.contains("nothing of this push was stored"), "{text}");
    // Nothing partial: no new blob, no new check-in, and the hub serves.
    assert_eq!(hub.stat("trunk_commits"), commits_before);
    assert_eq!(
        fossil_sql(home, &hub_path, "SELECT count(*) FROM blob"),
        blobs_before
    );
    for file in [hub_path.clone(), wal.clone()] {
        assert!(
            file_len(&file) <= limit,
            "{} grew past the limit",
            file.display()
        );
    }
    // Still full: refused again, the same way, not crashed.
    let again = client.push(&leaf, std::slice::from_ref(&large));
    assert!(
        matches!(again, Err(ClientError::Server { .. })),
        "{again:?}"
    );

    // Space returns: the same push lands.
    set_file_size_limit(hub.pid(), u64::MAX);
    let landed = client
        .push(&leaf, std::slice::from_ref(&large))
        .expect("push after space returns");
    assert!(matches!(landed, PushOutcome::Accepted { .. }), "{landed:?}");
    assert_eq!(hub.stat("trunk_commits"), commits_before + 1);
    assert_eq!(hub.stats()["tip"], large.as_str());
    let status = hub.terminate();
    assert!(status.success(), "hub stops cleanly: {status}");
    assert_eq!(file_len(&wal), 0, "the stopped hub leaves no WAL content");
    let lost = assert_trunk_holds_exactly(&hub_path, home, &[small.to_string(), large.to_string()]);
    eprintln!(
        "faults: disk full (RLIMIT_FSIZE {limit} B, card {text:?}): faults injected 1, pushes refused 2, \
         commits acknowledged 2, commits lost {lost}"
    );
}

#[test]
fn a_trial_whose_disk_fills_ends_with_its_reason_and_no_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = SmallFs::mount(&tmp.path().join("small"), 64).ok() else {
        println!("skipped: this machine cannot mount a small tmpfs (needs root)");
        return;
    };
    let workdir = fs.dir.join("w");
    let herd = crate::helpers::herd_command()
        .args(["run", "--agents", "4", "--tasks", "200", "--json"])
        .args([
            "--min-think-ms",
            "0",
            "--max-think-ms",
            "5",
            "--timeout",
            "120",
        ])
        .arg("--workdir")
        .arg(&workdir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start herd");
    // Let the trial land some commits, then fill its file system, as a
    // neighbour's big write would.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !workdir.join("slot-3/wt").exists() {
        assert!(Instant::now() < deadline, "the leaves started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let filled = Instant::now();
    {
        use std::io::Write as _;
        let mut filler = File::create(fs.dir.join("filler")).expect("create the filler");
        let chunk = vec![b'x'; 1 << 20];
        while filler.write_all(&chunk).is_ok() {}
    }
    let out = herd.wait_with_output().expect("herd's output");
    let stopped = filled.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the trial fails: {stderr}");
    // A panicking child exits 101; the digits alone also occur in hashes.
    let panicked = ["status: 101", "exit code 101", "panicked"]
        .iter()
        .any(|p| stderr.contains(p));
    assert!(!panicked, "a child panicked: {stderr}");
    assert!(
        stderr.contains("is full (") && stderr.contains("bytes free of"),
        "the verdict names the full file system and its free space: {stderr}"
    );
    assert!(
        stopped < Duration::from_secs(15),
        "stopped {stopped:?} after the disk filled"
    );
    // Every check-in a leaf saw acknowledged is on the hub's trunk (a
    // landing whose reply was cut off by the stop may be there too).
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stderr}"));
    let (hub, committed) = (report["hub_commits"].as_u64(), report["committed"].as_u64());
    assert!(
        matches!((hub, committed), (Some(h), Some(c)) if h >= c && c > 0),
        "{report}"
    );
    let _ = std::fs::remove_file(fs.dir.join("filler"));
    let hub_path = workdir.join("hub.fossil");
    let integrity = crate::helpers::fossil_ok(
        tmp.path(),
        tmp.path(),
        &["test-integrity", "-R", hub_path.to_str().unwrap()],
    );
    assert!(integrity.contains("0 errors"), "{integrity}");
    println!(
        "faults: the work directory's file system filled mid-trial; herd stopped {:.1} s later",
        stopped.as_secs_f64()
    );
}

#[test]
fn a_trial_too_big_for_its_disk_is_refused_up_front_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = SmallFs::mount(&tmp.path().join("small"), 12).ok() else {
        println!("skipped: this machine cannot mount a small tmpfs (needs root)");
        return;
    };
    let out = crate::helpers::herd_command()
        .args(["run", "--agents", "16", "--tasks", "100", "--workdir"])
        .arg(fs.dir.join("w"))
        .output()
        .expect("run herd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains("the trial needs about")
            && lines[0].contains("leaves")
            && lines[0].contains("MiB free"),
        "{stderr}"
    );
    assert!(!fs.dir.join("w").exists(), "nothing was started");
}

#[test]
fn a_leaf_whose_disk_fills_exits_1_naming_it_and_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = SmallFs::mount(&tmp.path().join("small"), 3).ok() else {
        println!("skipped: this machine cannot mount a small tmpfs (needs root)");
        return;
    };
    let nats = NatsServer::start();
    let hub_path = tmp.path().join("hub.fossil");
    let mut hub = HubProcess::start(&hub_path, Some(&nats.url()), &[]);
    // Only the leaf's own files are on the small file system; a full leaf
    // keeps every commit and its worktree, so it fills in seconds.
    let leaf = Leaf::spawn(
        &hub,
        &nats,
        &fs.dir,
        0,
        &[
            "--tasks",
            "2000",
            "--min-think-ms",
            "0",
            "--max-think-ms",
            "0",
            "--min-bytes",
            "4000",
            "--max-bytes",
            "8000",
        ],
    );
    let started = Instant::now();
    let (status, lines) = leaf.exit();
    let took = started.elapsed();
    assert_eq!(
        status.code(),
        Some(1),
        "a full disk is exit 1, never a panic (101)"
    );
    let fatal: Vec<&str> = lines
        .iter()
        .filter_map(|l| match l {
            LeafLine::Error(e) if e.fatal => Some(e.message.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        fatal
            .iter()
            .any(|m| m.contains("disk is full") && m.contains(fs.dir.to_str().unwrap())),
        "the leaf names the full disk and its path: {fatal:?}"
    );
    let acked = accepted(&lines);
    assert!(
        acked.len() > 5,
        "it committed before the disk filled: {acked:?}"
    );
    let status = hub.terminate();
    assert!(status.success(), "the hub serves on: {status}");
    let trunk: HashSet<String> = trunk_of(&hub_path).into_iter().collect();
    let lost = acked.iter().filter(|h| !trunk.contains(*h)).count();
    assert_eq!(lost, 0, "every acknowledged check-in is on the hub's trunk");
    fossil_ok(
        tmp.path(),
        tmp.path(),
        &["test-integrity", "-R", hub_path.to_str().unwrap()],
    );
    println!(
        "faults: a leaf's 3 MiB disk filled after {} commits; it exited 1 in {:.1} s naming it; \
         commits lost {lost}",
        acked.len(),
        took.as_secs_f64()
    );
}

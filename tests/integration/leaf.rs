//! leaf-agent end to end: a real nats-server, the real `hub` binary and
//! several real `leaf-agent` processes. Every task lands on a linear trunk,
//! the leaves' lines add up to the hub's own count, the shared pool is
//! committed exactly once with lost claims, the same seed gives the same
//! files, bad flags and unreachable endpoints exit 2, SIGTERM abandons the
//! task in progress, and scripts/debug-one-leaf does what the guide (docs/guide/debugging.md) says.

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use herd::repo::Repository;
use herd::wire::{HubReady, LeafLine, LeafSummary, TaskLine, TaskOutcome};

use crate::helpers::{free_port, NatsServer};

/// Bound on any one leaf-agent run in these tests.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on the hub's readiness.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Sends SIGTERM to a process this test started.
fn terminate(pid: u32) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid fits i32"));
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
}

/// A running `hub` binary; Drop stops it (SIGTERM, then SIGKILL) and reaps it.
struct Hub {
    child: Option<Child>,
    ready: HubReady,
    repo: PathBuf,
}

impl Hub {
    fn start(dir: &Path, nats_url: &str) -> Hub {
        let repo = dir.join("hub.fossil");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hub"))
            .arg("--repo")
            .arg(&repo)
            .args(["--listen", "127.0.0.1:0", "--nats-url", nats_url])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hub");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep draining so the hub never blocks on a full pipe.
            for _ in lines {}
        });
        let mut hub = Hub {
            child: Some(child),
            ready: HubReady {
                http: String::new(),
                project_code: String::new(),
                tip: String::new(),
            },
            repo,
        };
        let line = rx
            .recv_timeout(READY_TIMEOUT)
            .expect("hub ready in time")
            .expect("hub printed a line")
            .expect("readable line");
        hub.ready = serde_json::from_str(&line).expect("hub ready line parses");
        hub
    }

    fn stats(&self) -> serde_json::Value {
        let url = format!("{}/stats", self.ready.http.trim_end_matches('/'));
        let body = ureq::get(&url)
            .call()
            .expect("GET /stats")
            .into_string()
            .expect("stats body");
        serde_json::from_str(&body).expect("stats json")
    }

    /// Stops the hub and waits for it, so its repository is quiet.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(child.id());
            let (tx, rx) = mpsc::channel();
            let pid = child.id();
            std::thread::spawn(move || {
                let _ = tx.send(child.wait());
            });
            if rx.recv_timeout(Duration::from_secs(10)).is_err() {
                let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid"));
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = rx.recv_timeout(Duration::from_secs(10));
            }
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What one leaf-agent process did.
#[derive(Debug)]
struct LeafResult {
    status: ExitStatus,
    lines: Vec<LeafLine>,
}

impl LeafResult {
    fn tasks(&self) -> Vec<&TaskLine> {
        self.lines
            .iter()
            .filter_map(|l| match l {
                LeafLine::Task(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    fn summary(&self) -> &LeafSummary {
        match self.lines.last() {
            Some(LeafLine::Summary(s)) => s,
            other => panic!("last line is not a summary: {other:?}\n{:?}", self.lines),
        }
    }
}

/// Killing guard for leaf-agents still running when a test fails.
struct Pids(Vec<u32>);

impl Drop for Pids {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid fits i32"));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn leaf_command(hub: &Hub, nats: &NatsServer, dir: &Path, slot: u32, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leaf-agent"));
    cmd.arg("--hub")
        .arg(&hub.ready.http)
        .arg("--nats-url")
        .arg(nats.url())
        .arg("--slot")
        .arg(slot.to_string())
        .arg("--workdir")
        .arg(dir.join(format!("slot-{slot}")))
        .args(extra)
        .env_remove("HERD_SEED")
        .env_remove("HERD_MODE")
        .env_remove("HERD_LANDING")
        .env_remove("HERD_LEAF")
        .env_remove("HERD_CATCH_UP")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if !extra.contains(&"--min-think-ms") {
        cmd.args(["--min-think-ms", "0", "--max-think-ms", "5"]);
    }
    cmd
}

/// Runs `agents` leaf-agents at once and collects their lines and statuses.
fn run_leaves(
    hub: &Hub,
    nats: &NatsServer,
    dir: &Path,
    agents: u32,
    extra: &[&str],
) -> Vec<LeafResult> {
    let (tx, rx) = mpsc::channel();
    let mut pids = Pids(Vec::new());
    for slot in 0..agents {
        let mut child = leaf_command(hub, nats, dir, slot, extra)
            .spawn()
            .expect("spawn leaf-agent");
        pids.0.push(child.id());
        let stdout = child.stdout.take().expect("piped stdout");
        let tx = tx.clone();
        std::thread::spawn(move || {
            let lines: Vec<LeafLine> = BufReader::new(stdout)
                .lines()
                .map(|l| LeafLine::parse(&l.expect("readable line")).expect("a LeafLine"))
                .collect();
            let status = child.wait().expect("wait for leaf-agent");
            let _ = tx.send((slot, LeafResult { status, lines }));
        });
    }
    let mut results: Vec<Option<LeafResult>> = (0..agents).map(|_| None).collect();
    for _ in 0..agents {
        let (slot, result) = rx
            .recv_timeout(RUN_TIMEOUT)
            .expect("every leaf-agent finishes in time");
        results[slot as usize] = Some(result);
    }
    pids.0.clear();
    results.into_iter().map(|r| r.expect("a result")).collect()
}

/// `fossil leaves` on the hub's repository: the count of trunk leaves.
fn fossil_leaves(repo: &Path) -> usize {
    let home = tempfile::tempdir().expect("home");
    let out = Command::new("fossil")
        .args(["leaves", "-R"])
        .arg(repo)
        .env("HOME", home.path())
        .output()
        .expect("run fossil");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with('('))
        .count()
}

/// Every file on the hub's trunk tip, with its artifact hash.
fn trunk_files(repo: &Path) -> BTreeSet<(String, String)> {
    let repo = Repository::open(repo).expect("open hub repository");
    let tip = repo.trunk_tip().expect("trunk tip").expect("a tip");
    repo.file_list(&tip)
        .expect("file list")
        .iter()
        .map(|(name, (hash, _))| (name.clone(), hash.to_string()))
        .collect()
}

/// Full leaves catching up from the stream (the default) against a hub
/// started by hand without `--broadcast-files`, whose broadcasts carry no
/// files (manifests at most): the leaves see that the stream cannot bring
/// what it announces and pull (with leaf landing, refusals bring the tip
/// too), and every worktree ends equal to trunk.
#[test]
fn stream_leaves_against_a_hub_without_broadcast_files_pull_and_follow_trunk() {
    for landing in ["hub", "leaf"] {
        let nats = NatsServer::start();
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::start(dir.path(), &nats.url());
        let extra = [
            "--tasks",
            "6",
            "--agents",
            "3",
            "--landing",
            landing,
            "--min-think-ms",
            "10",
            "--max-think-ms",
            "30",
        ];
        let results = run_leaves(&hub, &nats, dir.path(), 3, &extra);
        for r in &results {
            assert!(r.status.success(), "{landing}: {r:?}");
        }
        if landing == "hub" {
            // Nothing else brings a hub-landing leaf others' check-ins.
            let pulled: u64 = results.iter().map(|r| r.summary().bytes_pulled).sum();
            assert!(pulled > 0, "{landing}: the leaves pulled");
            // And during the trial, not only at its end: 6 pushes, the
            // clone and one last pull would be 8 requests a leaf.
            let requests: u64 = results.iter().map(|r| r.summary().hub_requests).sum();
            assert!(requests >= 30, "{landing}: {requests} hub requests in all");
        }
        let updated: u64 = results.iter().map(|r| r.summary().files_updated).sum();
        assert!(
            updated > 0,
            "{landing}: others' files reached the worktrees"
        );
        crate::full::assert_worktrees_follow_trunk(dir.path(), 3);
    }
}

#[test]
fn four_leaves_land_every_task_on_one_linear_trunk_by_hub_landing() {
    four_leaves_land_every_task_on_one_linear_trunk("hub");
}

#[test]
fn four_leaves_land_every_task_on_one_linear_trunk_by_leaf_landing() {
    four_leaves_land_every_task_on_one_linear_trunk("leaf");
}

fn four_leaves_land_every_task_on_one_linear_trunk(landing: &str) {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hub = Hub::start(dir.path(), &nats.url());
    let results = run_leaves(
        &hub,
        &nats,
        dir.path(),
        4,
        &["--tasks", "5", "--agents", "4", "--landing", landing],
    );

    let mut committed = 0;
    let mut checkins = HashSet::new();
    for (slot, r) in results.iter().enumerate() {
        assert!(
            r.status.success(),
            "slot {slot}: {:?} {:?}",
            r.status,
            r.lines
        );
        assert!(
            matches!(&r.lines[0], LeafLine::Ready(ready) if ready.slot == slot as u32),
            "{:?}",
            r.lines[0]
        );
        let tasks = r.tasks();
        assert_eq!(tasks.len(), 5);
        for (k, t) in tasks.iter().enumerate() {
            assert_eq!(t.outcome, TaskOutcome::Committed, "{t:?}");
            assert_eq!(t.task, k as u32);
            assert!(t.commit_ms.is_some_and(|ms| ms > 0.0));
            assert!(checkins.insert(t.checkin.clone().expect("a check-in")));
            assert_timeline_in_order(t);
        }
        let s = r.summary();
        assert_eq!((s.tasks, s.committed, s.claims_won), (5, 5, 5));
        assert_eq!(
            s.fork_retries,
            tasks.iter().map(|t| t.fork_retries).sum::<u32>()
        );
        assert_eq!(s.fork_unrecoverable, 0);
        // At least one push per landed commit. Full leaves (the default)
        // follow the tip broadcasts with either landing strategy.
        assert!(s.hub_requests >= 5, "{s:?}");
        let broadcasts = s.broadcasts_pulled + s.broadcasts_skipped;
        assert!(broadcasts >= 1, "{s:?}");
        if landing == "hub" {
            assert_eq!(s.fork_retries, 0, "disjoint files: {s:?}");
        }
        committed += s.committed;
    }
    let stats = hub.stats();
    if landing == "hub" {
        assert!(stats["hub_rebases"].as_u64().unwrap() > 0, "{stats}");
    }
    assert_eq!(stats["trunk_commits"], u64::from(committed), "{stats}");
    assert_eq!(stats["trunk_leaves"], 1, "{stats}");
    assert_eq!(committed, 20);
    hub.stop();
    assert_eq!(fossil_leaves(&hub.repo), 1);
    // Every slot's files are on the trunk tip.
    let files = trunk_files(&hub.repo);
    for slot in 0..4 {
        for k in 0..5 {
            let dir = format!("slot-{slot}/task-{k}/");
            assert!(
                files.iter().any(|(name, _)| name.starts_with(&dir)),
                "{dir}"
            );
        }
    }
}

/// A landed task's timeline: its steps in order, one push per refusal
/// plus the one that landed, each with what it got.
fn assert_timeline_in_order(t: &TaskLine) {
    use herd::wire::PushResult;
    let tl = t.timeline.as_ref().expect("a timeline");
    let think = tl.think_end_ms.expect("thought");
    let commit = tl.commit_start_ms.expect("committed");
    assert!(tl.claim_start_ms <= tl.claim_end_ms, "{tl:?}");
    assert!(tl.claim_end_ms <= think && think <= commit, "{tl:?}");
    assert_eq!(tl.pushes.len() as u32, t.fork_retries + 1, "{tl:?}");
    let mut at = commit;
    for (i, push) in tl.pushes.iter().enumerate() {
        assert!(
            at <= push.start_ms && push.start_ms <= push.end_ms,
            "{tl:?}"
        );
        at = push.end_ms;
        let expected = if i + 1 == tl.pushes.len() {
            PushResult::Landed
        } else {
            PushResult::Refused
        };
        assert_eq!(push.result, expected, "{tl:?}");
    }
    assert!(at <= tl.end_ms, "{tl:?}");
    // The commit's latency is the stretch from its start to its landing,
    // plus the hand-over from the repository thread that heard the answer:
    // two thread wake-ups, a few milliseconds on a loaded machine.
    let span = tl.landed_ms().expect("landed") - commit;
    let ms = t.commit_ms.unwrap();
    assert!(
        span <= ms + 0.01 && ms - span < 25.0,
        "{ms} ms against {tl:?}"
    );
}

/// A sparse leaf that joins after others have landed copies none of what
/// they wrote: its clone holds the tip's manifest (and its baseline), its
/// worktree only its own files, and it reports its start-up cost.
#[test]
fn a_sparse_leaf_joining_a_long_trunk_copies_none_of_it() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(dir.path(), &nats.url());
    let sparse = ["--leaf", "sparse"];
    let first = run_leaves(
        &hub,
        &nats,
        dir.path(),
        2,
        &[&sparse[..], &["--tasks", "30"]].concat(),
    );
    assert!(first.iter().all(|r| r.status.success()));
    let late_dir = dir.path().join("late");
    let late = run_leaves(
        &hub,
        &nats,
        &late_dir,
        1,
        &[&sparse[..], &["--tasks", "2", "--seed", "2"]].concat(),
    );
    let late = &late[0];
    assert!(late.status.success(), "{:?}", late.lines);
    assert_eq!(late.summary().committed, 2);
    assert!(late.summary().start_cpu_us > 0);
    let hub_repo = Repository::open(&hub.repo).expect("open hub repository");
    assert_eq!(hub_repo.trunk_commits().expect("count"), 63);
    // 60 check-ins of the first two leaves, each with its files: none came.
    let leaf = Repository::open(&late_dir.join("slot-0/leaf.fossil")).expect("open leaf");
    let held = leaf.artifact_count().expect("count");
    let hub_held = hub_repo.artifact_count().expect("count");
    assert!(
        held * 5 < hub_held,
        "the late leaf holds {held} of {hub_held}"
    );
    let mut worktree = Vec::new();
    for entry in walk(&late_dir.join("slot-0/wt")) {
        worktree.push(entry);
    }
    assert!(
        worktree.iter().all(|p| p.starts_with("slot-0/")),
        "{worktree:?}"
    );
    assert_eq!(fossil_leaves(&hub.repo), 1);
}

/// The files under `root`, as paths relative to it.
fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[test]
fn shared_pool_is_committed_once_with_claims_lost() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hub = Hub::start(dir.path(), &nats.url());
    let args = ["--tasks", "4", "--agents", "4", "--mode", "shared"];
    let results = run_leaves(&hub, &nats, dir.path(), 4, &args);

    let mut committed_ids = Vec::new();
    let (mut won, mut lost, mut unrecoverable) = (0, 0, 0);
    for r in &results {
        assert!(r.status.success(), "{:?} {:?}", r.status, r.lines);
        for t in r.tasks() {
            assert!(
                matches!(t.outcome, TaskOutcome::Committed | TaskOutcome::ClaimLost),
                "{t:?}"
            );
            if t.outcome == TaskOutcome::Committed {
                committed_ids.push(t.task_id.clone());
            }
        }
        let s = r.summary();
        won += s.claims_won;
        lost += s.claims_lost;
        unrecoverable += s.fork_unrecoverable;
    }
    let unique: HashSet<&String> = committed_ids.iter().collect();
    assert_eq!(committed_ids.len(), 16, "{committed_ids:?}");
    assert_eq!(
        unique.len(),
        16,
        "a task committed twice: {committed_ids:?}"
    );
    assert_eq!(won, 16);
    assert!(lost > 0, "four leaves over one pool lost no claim");
    assert_eq!(unrecoverable, 0);
    let stats = hub.stats();
    assert_eq!(stats["trunk_commits"], 16, "{stats}");
    assert_eq!(stats["trunk_leaves"], 1, "{stats}");
    hub.stop();
    let files = trunk_files(&hub.repo);
    for k in 0..16 {
        let dir = format!("pool/task-{k}/");
        assert!(
            files.iter().any(|(name, _)| name.starts_with(&dir)),
            "{dir}"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_files_on_the_hub() {
    let run = |seed: &str| {
        let nats = NatsServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut hub = Hub::start(dir.path(), &nats.url());
        let args = ["--tasks", "3", "--agents", "2", "--seed", seed];
        for r in run_leaves(&hub, &nats, dir.path(), 2, &args) {
            assert!(r.status.success(), "{:?}", r.lines);
        }
        hub.stop();
        trunk_files(&hub.repo)
    };
    let first = run("7");
    assert!(first.len() >= 6, "{first:?}");
    assert_eq!(first, run("7"));
    assert_ne!(first, run("8"));
}

#[test]
fn bad_flags_and_an_unreachable_hub_exit_2_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = Command::new(env!("CARGO_BIN_EXE_leaf-agent"))
        .args([
            "--hub",
            "http://127.0.0.1:1",
            "--nats-url",
            "nats://127.0.0.1:1",
        ])
        .args(["--slot", "0", "--workdir"])
        .arg(dir.path())
        .args(["--min-files", "5", "--max-files", "2"])
        .output()
        .expect("run leaf-agent");
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("minimum 5 is larger than maximum 2"),
        "{stderr}"
    );
    assert!(bad.stdout.is_empty());

    let unreachable = Command::new(env!("CARGO_BIN_EXE_leaf-agent"))
        .arg("--hub")
        .arg(format!("http://127.0.0.1:{}/", free_port()))
        .args([
            "--nats-url",
            "nats://127.0.0.1:1",
            "--slot",
            "3",
            "--workdir",
        ])
        .arg(dir.path().join("slot-3"))
        .env_remove("RUST_LOG")
        .output()
        .expect("run leaf-agent");
    assert_eq!(unreachable.status.code(), Some(2), "{unreachable:?}");
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("leaf-agent: clone http://127.0.0.1:"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&unreachable.stdout);
    match LeafLine::parse(stdout.trim()).expect("one fatal error line") {
        LeafLine::Error(e) => assert!(e.fatal && e.slot == 3, "{e:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sigterm_abandons_the_task_in_progress_and_prints_the_summary() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(dir.path(), &nats.url());
    // Think times of a minute: the leaf is surely thinking when it is told to stop.
    let args = [
        "--tasks",
        "3",
        "--min-think-ms",
        "60000",
        "--max-think-ms",
        "60000",
    ];
    let mut child = leaf_command(&hub, &nats, dir.path(), 0, &args)
        .spawn()
        .expect("spawn leaf-agent");
    let guard = Pids(vec![child.id()]);
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let line = LeafLine::parse(&line.expect("readable")).expect("a LeafLine");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let ready = rx.recv_timeout(READY_TIMEOUT).expect("ready line");
    assert!(matches!(ready, LeafLine::Ready(_)), "{ready:?}");
    // The claim follows the ready line; wait until the bucket shows it.
    wait_for_claim(&nats, &hub);
    terminate(child.id());
    let mut rest = Vec::new();
    while let Ok(line) = rx.recv_timeout(RUN_TIMEOUT) {
        rest.push(line);
    }
    let status = child.wait().expect("wait");
    drop(guard);
    assert_eq!(status.code(), Some(1), "{rest:?}");
    match rest.as_slice() {
        [LeafLine::Task(t), LeafLine::Summary(s)] => {
            assert_eq!(t.outcome, TaskOutcome::Abandoned);
            assert_eq!((s.tasks, s.committed), (1, 0));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(hub.stats()["trunk_commits"], 0);
}

/// Waits (under a timeout) until some task in the trial's bucket is claimed.
fn wait_for_claim(nats: &NatsServer, hub: &Hub) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let scope = herd::coord::Scope::for_project(&hub.ready.project_code).expect("scope");
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let js = async_nats::jetstream::new(client);
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            assert!(tokio::time::Instant::now() < deadline, "no claim in time");
            if let Ok(kv) = js.get_key_value(scope.tasks_bucket()).await {
                use futures::StreamExt;
                if let Ok(mut keys) = kv.keys().await {
                    while let Some(Ok(key)) = keys.next().await {
                        if let Ok(Some(value)) = kv.get(&key).await {
                            let record: herd::coord::TaskRecord =
                                serde_json::from_slice(&value).expect("task record");
                            if record.status == herd::coord::TaskStatus::Claimed {
                                return;
                            }
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn the_debug_one_leaf_script_runs_as_documented() {
    let home = tempfile::tempdir().expect("home");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_leaf-agent"))
        .parent()
        .expect("binary directory")
        .to_path_buf();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/debug-one-leaf");
    let nats = crate::helpers::nats_server_binary();
    let out = Command::new(&script)
        .arg(&bin_dir)
        .env("HOME", home.path())
        .env("NATS_SERVER", &nats)
        .env("TASKS", "2")
        .env("TMPDIR", home.path())
        .output()
        .expect("run scripts/debug-one-leaf");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}\n{stdout}");
    let lines: Vec<LeafLine> = stdout
        .lines()
        .filter(|l| l.starts_with(r#"{"event""#) && l.contains(r#""slot""#))
        .map(|l| LeafLine::parse(l).expect("a LeafLine"))
        .collect();
    let committed = lines
        .iter()
        .filter(|l| matches!(l, LeafLine::Task(t) if t.outcome == TaskOutcome::Committed))
        .count();
    assert_eq!(committed, 2, "{stdout}");
    assert!(
        matches!(lines.last(), Some(LeafLine::Summary(_))),
        "{stdout}"
    );
    // The timeline shows both tasks and the initial check-in.
    assert!(stdout.contains("slot 0 task 1"), "{stdout}");
    assert!(stdout.contains("initial empty check-in"), "{stdout}");
    // The script cleaned up after itself.
    let left: Vec<_> = std::fs::read_dir(home.path())
        .expect("read home")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("herd-debug."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

//! When the infrastructure fails (issue 21): one hub per repository, one
//! trial per work directory, a `fossil` client whose push failed recovers,
//! herd restarts a killed nats-server or hub and names what it could not
//! restart, and refuses up front a herd the machine cannot hold. Real
//! processes on loopback; every kill is by the pid of a process the test
//! found as herd's child or started itself.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{
    children_named, file_len, fossil_ok, fossil_sql, set_file_size_limit, HubProcess,
};

#[test]
fn a_second_hub_on_the_same_repository_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path().join("hub.fossil");
    let first = HubProcess::start(&repo, None, &[]);
    let started = Instant::now();
    let exit = HubProcess::run_to_exit(&[
        "--repo".as_ref(),
        repo.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
    ]);
    assert_eq!(exit.status.code(), Some(2), "{exit:?}");
    let lines: Vec<&str> = exit.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {:?}", exit.stderr);
    assert!(
        lines[0].starts_with("hub: repository ")
            && lines[0].contains(&repo.display().to_string())
            && lines[0].contains("another hub"),
        "{}",
        lines[0]
    );
    assert!(
        exit.stdout.is_empty(),
        "no readiness line: {:?}",
        exit.stdout
    );
    // The first hub still serves, and its lock goes with it.
    assert_eq!(first.stat("trunk_commits"), 0);
    drop(first);
    let again = HubProcess::start(&repo, None, &[]);
    assert_eq!(again.stat("trunk_commits"), 0);
    println!(
        "infra: second hub refused in {} ms",
        started.elapsed().as_millis()
    );
}

use crate::helpers::{herd_command as herd, run_ok, QUICK_TASKS};

/// `herd run` with small, quick tasks.
fn trial(agents: u32, tasks: u32, workdir: &Path) -> Command {
    let mut cmd = herd();
    cmd.args(["run", "--agents", &agents.to_string()])
        .args(["--tasks", &tasks.to_string()])
        .args(QUICK_TASKS)
        .args(["--timeout", "120", "--json", "--workdir"])
        .arg(workdir);
    cmd
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the work directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_used_work_directory_is_refused_with_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let workdir = dir.path().join("trial");
    run_ok(&mut trial(2, 2, &workdir), "first trial");
    let hub = workdir.join("hub.fossil");
    let before = (
        entries(&workdir),
        std::fs::metadata(&hub).expect("hub").len(),
    );

    // The same directory again: refused before anything starts.
    let started = Instant::now();
    let out = trial(2, 2, &workdir).output().expect("run herd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(
        stderr.starts_with("herd: work directory ")
            && stderr.contains(&workdir.display().to_string())
            && stderr.contains("not empty"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no report: {:?}", out.stdout);
    let after = (
        entries(&workdir),
        std::fs::metadata(&hub).expect("hub").len(),
    );
    assert_eq!(before, after, "the first trial's files are untouched");

    // A directory holding anything else is refused too, and left as it was.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("notes.txt"), b"mine").expect("write");
    let out = trial(1, 1, &other).output().expect("run herd");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("notes.txt"));
    assert_eq!(entries(&other), ["notes.txt"]);

    // An empty directory is fine.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    run_ok(&mut trial(1, 1, &empty), "a trial in an empty directory");
    println!(
        "infra: used work directory refused in {} ms",
        started.elapsed().as_millis()
    );
}

fn random_text(bytes: usize) -> String {
    (0..bytes)
        .map(|i| {
            if i % 64 == 63 {
                '\n'
            } else {
                char::from(b'a' + rand::random::<u8>() % 26)
            }
        })
        .collect()
}

/// The stuck client: a real `fossil` whose push failed on a full
/// disk sends, in its next push, deltas against artifacts the hub never
/// stored (its parent check-in's manifest, the file's earlier version).
/// The hub keeps them against phantoms and asks for the sources; the push
/// succeeds and the repository verifies.
#[test]
fn a_fossil_client_whose_push_failed_on_a_full_disk_pushes_again() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let home = tmp.path();
    let hub_path = home.join("hub.fossil");
    let port = crate::helpers::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut hub = HubProcess::start(&hub_path, None, &["--listen", &listen]);
    let url = hub.url();
    let clone = home.join("client.fossil");
    let clone_s = clone.to_str().expect("utf-8 path");
    fossil_ok(home, home, &["clone", &url, clone_s]);
    let work = home.join("work");
    std::fs::create_dir(&work).expect("mkdir");
    fossil_ok(home, &work, &["open", clone_s]);
    fossil_ok(home, &work, &["settings", "autosync", "off"]);

    // A: lands.
    std::fs::write(work.join("a.txt"), random_text(4_000)).expect("write");
    fossil_ok(home, &work, &["add", "a.txt"]);
    fossil_ok(home, &work, &["commit", "-m", "A", "--no-warnings"]);
    fossil_ok(home, &work, &["push", &url]);
    assert_eq!(hub.stat("trunk_commits"), 1);

    // B: a large file that cannot fit under the file-size limit.
    let room = 16 * 1024;
    let wal = home.join("hub.fossil-wal");
    let limit = file_len(&hub_path).max(file_len(&wal)) + room;
    set_file_size_limit(hub.pid(), limit);
    let big = random_text(512 * 1024);
    std::fs::write(work.join("big.txt"), &big).expect("write");
    let a2 = format!(
        "{}{}",
        random_text(100),
        std::fs::read_to_string(work.join("a.txt")).unwrap()
    );
    std::fs::write(work.join("a.txt"), a2).expect("write");
    fossil_ok(home, &work, &["add", "big.txt"]);
    fossil_ok(home, &work, &["commit", "-m", "B", "--no-warnings"]);
    let failed = crate::helpers::fossil(home, &work, &["push", &url]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&failed.stdout),
        String::from_utf8_lossy(&failed.stderr)
    );
    assert!(
        text.contains("disk is full") || text.contains("cannot be written"),
        "the push fails on the full disk: {text}"
    );
    assert_eq!(hub.stat("trunk_commits"), 1, "nothing of B landed");

    // C: changes both files again, so the client sends deltas against B's
    // manifest and B's file versions, which the hub does not hold.
    std::fs::write(work.join("big.txt"), format!("{big}tail\n")).expect("write");
    let a3 = format!(
        "{}{}",
        random_text(100),
        std::fs::read_to_string(work.join("a.txt")).unwrap()
    );
    std::fs::write(work.join("a.txt"), a3).expect("write");
    fossil_ok(home, &work, &["commit", "-m", "C", "--no-warnings"]);

    // Space returns: the hub restarts without the limit, on the same port.
    hub.kill();
    let mut hub = HubProcess::start(&hub_path, None, &["--listen", &listen]);
    let out = fossil_ok(home, &work, &["push", &url]);
    assert!(!out.contains("Error"), "{out}");
    assert_eq!(hub.stat("trunk_commits"), 3, "B and C landed: {out}");
    assert_eq!(hub.stat("trunk_leaves"), 1);
    // The client's tip is the hub's tip.
    let tip = fossil_sql(home, &clone, "SELECT uuid FROM blob WHERE rid=(SELECT objid FROM event WHERE type='ci' ORDER BY mtime DESC LIMIT 1)");
    assert_eq!(hub.stats()["tip"], tip.as_str());
    assert!(hub.terminate().success());
    let phantoms = fossil_sql(home, &hub_path, "SELECT count(*) FROM phantom");
    assert_eq!(phantoms, "0", "every artifact is whole");
    let integrity = fossil_ok(
        home,
        home,
        &["test-integrity", "-R", hub_path.to_str().unwrap()],
    );
    assert!(integrity.contains("0 errors"), "{integrity}");
    println!(
        "infra: stuck client recovered; push output: {}",
        out.replace('\n', " | ")
    );
}

/// A trial long enough to kill its infrastructure while it runs.
fn long_trial(agents: u32, tasks: u32, workdir: &Path) -> std::process::Child {
    herd()
        .args(["run", "--agents", &agents.to_string()])
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
        .arg(workdir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start herd")
}

/// Polls `probe` every 20 ms until it gives a value, for at most `limit`.
fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The one child of `herd` named `name`, other than `not`.
fn child_named(herd: u32, name: &str, not: Option<u32>) -> Option<u32> {
    children_named(herd, name)
        .into_iter()
        .find(|&p| Some(p) != not)
}

/// The hub URL herd gave its leaves (from a leaf-agent's argv).
fn hub_url(herd: u32) -> String {
    let leaf = wait_for("a leaf-agent", Duration::from_secs(60), || {
        child_named(herd, "leaf-agent", None)
    });
    let cmdline = std::fs::read(format!("/proc/{leaf}/cmdline")).expect("leaf argv");
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let at = args
        .iter()
        .position(|a| a == "--hub")
        .expect("--hub in argv");
    args[at + 1].clone()
}

/// The hub's trunk count, or `None` while it does not answer.
fn trunk_commits(url: &str) -> Option<u64> {
    let body = ureq::get(&format!("{url}/stats"))
        .timeout(Duration::from_secs(2))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["trunk_commits"].as_u64()
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid fits i32"));
    nix::sys::signal::kill(pid, sig).expect("signal a process of this test's trial");
}

/// The report and stderr of a herd that exits within `limit`.
fn finish(herd: std::process::Child, limit: Duration) -> (Option<i32>, serde_json::Value, String) {
    let pid = herd.id();
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(herd.wait_with_output());
    });
    let out = match rx.recv_timeout(limit) {
        Ok(out) => out.expect("herd's output"),
        Err(_) => {
            signal(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("herd still running after {limit:?}");
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stdout}\nstderr: {stderr}"));
    eprintln!(
        "herd ended {:.1} s after the wait began",
        started.elapsed().as_secs_f64()
    );
    (out.status.code(), report, stderr)
}

#[test]
fn herd_restarts_a_killed_hub_and_nats_server_and_every_commit_lands_once() {
    use nix::sys::signal::Signal;
    let dir = tempfile::tempdir().expect("temp dir");
    let workdir = dir.path().join("trial");
    let (agents, tasks) = (4u32, 80u32);
    let herd = long_trial(agents, tasks, &workdir);
    let herd_pid = herd.id();
    let url = hub_url(herd_pid);
    let hub = child_named(herd_pid, "hub", None).expect("herd's hub");
    let landed = wait_for("20 commits", Duration::from_secs(60), || {
        trunk_commits(&url).filter(|&n| n >= 20)
    });
    signal(hub, Signal::SIGKILL);
    let restarted = Instant::now();
    let new_hub = wait_for("the hub started again", Duration::from_secs(30), || {
        child_named(herd_pid, "hub", Some(hub))
    });
    // The restarted hub serves the same repository on the same port, and
    // trunk moves on.
    wait_for("trunk to move on", Duration::from_secs(60), || {
        trunk_commits(&url).filter(|&n| n > landed + 10)
    });
    let hub_back_ms = restarted.elapsed().as_millis();
    let nats = child_named(herd_pid, "nats-server", None).expect("herd's nats-server");
    signal(nats, Signal::SIGKILL);
    wait_for("nats-server started again", Duration::from_secs(30), || {
        child_named(herd_pid, "nats-server", Some(nats))
    });
    let (code, report, stderr) = finish(herd, Duration::from_secs(150));

    let total = u64::from(agents * tasks);
    assert_eq!(code, Some(0), "{stderr}\n{report}");
    assert_eq!(
        report["hub_commits"], total,
        "every commit landed once: {report}"
    );
    assert_eq!(report["committed"], total, "{report}");
    assert_eq!(report["trunk_leaves"], 1, "{report}");
    assert_eq!(report["restarts"]["hub"], 1, "{report}");
    assert_eq!(report["restarts"]["nats"], 1, "{report}");
    assert!(report["infra_failure"].is_null(), "{report}");
    // A restarted hub counts its requests from zero: not a trial figure.
    assert!(report["hub_requests_per_commit"].is_null(), "{report}");
    let events: Vec<&str> = report["infra_events"]
        .as_array()
        .expect("infra_events")
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events[0].starts_with("the hub died (SIGKILL) at ") && events[0].contains("restarted in"),
        "{events:?}"
    );
    assert!(
        events[1].starts_with("the nats-server died (SIGKILL) at "),
        "{events:?}"
    );
    assert!(
        stderr.contains("herd: the hub died (SIGKILL)"),
        "said at once: {stderr}"
    );
    assert!(stderr.contains("herd: the hub restarted in"), "{stderr}");
    assert!(child_named(herd_pid, "hub", None).is_none() && new_hub != hub);
    let hub_path = workdir.join("hub.fossil");
    let integrity = fossil_ok(
        dir.path(),
        dir.path(),
        &["test-integrity", "-R", hub_path.to_str().unwrap()],
    );
    assert!(integrity.contains("0 errors"), "{integrity}");
    // Full leaves catching up from the stream lost nothing across the
    // restarts: every worktree is trunk at the tip it last updated to.
    assert_eq!(report["catch_up"], "stream", "{report}");
    crate::full::assert_worktrees_follow_trunk(&workdir, agents);
    println!(
        "infra: hub and nats-server SIGKILLed mid-trial: restarts hub 1, nats 1; trunk moved again \
         {hub_back_ms} ms after the hub's kill; {total}/{total} landed; events {events:?}"
    );
}

#[test]
fn a_hub_that_cannot_restart_stops_the_trial_within_10_s_naming_it() {
    use nix::sys::signal::Signal;
    let dir = tempfile::tempdir().expect("temp dir");
    let workdir = dir.path().join("trial");
    let herd = long_trial(4, 400, &workdir);
    let herd_pid = herd.id();
    let url = hub_url(herd_pid);
    let hub = child_named(herd_pid, "hub", None).expect("herd's hub");
    wait_for("5 commits", Duration::from_secs(60), || {
        trunk_commits(&url).filter(|&n| n >= 5)
    });
    // Take the hub's port while herd cannot act: stop herd, kill the hub,
    // bind its port, let herd go on.
    let addr = url.trim_start_matches("http://").to_string();
    signal(herd_pid, Signal::SIGSTOP);
    signal(hub, Signal::SIGKILL);
    let squatter = wait_for("the hub's port", Duration::from_secs(10), || {
        std::net::TcpListener::bind(&addr).ok()
    });
    signal(herd_pid, Signal::SIGCONT);
    let resumed = Instant::now();
    let (code, report, stderr) = finish(herd, Duration::from_secs(30));
    let took = resumed.elapsed();
    drop(squatter);

    assert!(
        took < Duration::from_secs(10),
        "stopped in {took:?}: {stderr}"
    );
    assert_eq!(code, Some(1), "{stderr}");
    let cause = report["infra_failure"].as_str().expect("infra_failure");
    assert!(cause.starts_with("the hub died (SIGKILL) at "), "{cause}");
    assert!(cause.contains("restarting it failed 3 time(s)"), "{cause}");
    assert!(cause.contains(&addr), "names the port: {cause}");
    assert_eq!(report["restarts"]["hub"], 0, "{report}");
    // Nothing unknown shows as a number.
    assert!(report["hub_commits"].is_null(), "{report}");
    assert!(report["trunk_leaves"].is_null(), "{report}");
    let verdict = stderr
        .lines()
        .find(|l| l.starts_with("herd: trial failed: "))
        .unwrap_or_else(|| panic!("a verdict line: {stderr}"));
    assert!(verdict.contains("the hub died (SIGKILL)"), "{verdict}");
    assert!(
        !verdict.contains("but leaves committed"),
        "the cause, not a mismatch: {verdict}"
    );
    assert!(child_named(herd_pid, "nats-server", None).is_none());
    println!("infra: hub restart refused (port taken): trial stopped {took:?} after herd resumed; cause: {cause}");
}

/// MemAvailable, in KiB.
fn mem_available_kib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemAvailable")
}

#[test]
fn a_herd_the_machine_cannot_hold_is_refused_up_front() {
    let dir = tempfile::tempdir().expect("temp dir");

    // Open files: a hard limit of 512 cannot hold 200 leaves' pipes.
    let workdir = dir.path().join("files");
    let mut cmd = trial(200, 1, &workdir);
    // SAFETY: setrlimit is async-signal-safe; it lowers the limits of the
    // child alone, between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 512, 512)
                .map_err(std::io::Error::from)
        });
    }
    let started = Instant::now();
    let out = cmd.output().expect("run herd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("herd: 200 agents need about 1056 open files")
            && stderr.contains("RLIMIT_NOFILE) is 512")
            && stderr.contains("at most 64 agents"),
        "{stderr}"
    );
    assert!(!workdir.exists(), "nothing made");

    // Memory: 4,096 full leaves at 10 MiB each, where the machine has less.
    let need_kib = (4096 * 10 + 512) * 1024;
    let available = mem_available_kib();
    if available >= need_kib {
        println!("infra: {available} KiB available holds 4,096 leaves; memory refusal not tried");
        return;
    }
    let workdir = dir.path().join("memory");
    let out = trial(4096, 1, &workdir).output().expect("run herd");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("herd: 4096 agents need about ")
            && stderr.contains("(10 MiB per full leaf-agent, 512 MiB for the hub and nats-server")
            && stderr.contains("MemAvailable is"),
        "{stderr}"
    );
    assert!(!workdir.exists(), "nothing made");
    assert!(took < Duration::from_secs(10), "{took:?}");
    println!("infra: 4,096 agents refused in {took:?}: {}", stderr.trim());
}

/// One push to the sync server, in process: `cards` after a `push` card;
/// returns the reply's cards.
fn push_cards(hub: &herd::repo::Repository, cards: Vec<herd::xfer::Card>) -> Vec<herd::xfer::Card> {
    use herd::xfer::{self, Card, ContentType};
    let mut all = vec![Card::Push {
        server_code: "x".into(),
        project_code: hub.project_code().expect("project code"),
    }];
    all.extend(cards);
    let body = xfer::encode_body(ContentType::Fossil, &xfer::encode(&all));
    let response = xfer::handle(
        hub,
        &xfer::Request {
            content_type: ContentType::Fossil.as_str(),
            body: &body,
            peer: None,
        },
    );
    let text = xfer::decode_body(
        response.content_type,
        &response.body,
        &xfer::Limits::default(),
    )
    .expect("reply decodes");
    xfer::parse(&text).expect("reply parses")
}

fn gimmes(cards: &[herd::xfer::Card]) -> Vec<String> {
    cards
        .iter()
        .filter_map(|c| match c {
            herd::xfer::Card::Gimme(h) => Some(h.clone()),
            _ => None,
        })
        .collect()
}

fn no_errors(cards: &[herd::xfer::Card]) {
    let errors: Vec<_> = cards
        .iter()
        .filter(|c| matches!(c, herd::xfer::Card::Error(_)))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// Check-ins wait for every artifact they name, and deltas for their
/// source, across pushes: nothing lands half-held, nothing is refused.
#[test]
fn a_checkin_lands_only_once_whole_and_a_delta_waits_for_its_source() {
    use herd::repo::{ArtifactHash, CheckinSpec, CreateOptions, FileChange, Repository};
    use herd::xfer::Card;
    let dir = tempfile::tempdir().expect("temp dir");
    let hub_path = dir.path().join("hub.fossil");
    let hub = Repository::create(
        &hub_path,
        &CreateOptions {
            project_name: Some("infra".into()),
            admin_user: "admin".into(),
            nobody_caps: "gio".into(),
        },
    )
    .expect("hub repository");
    drop(hub);
    // The leaf is a copy: same project, same root.
    let leaf_path = dir.path().join("leaf.fossil");
    std::fs::copy(&hub_path, &leaf_path).expect("copy");
    let hub = Repository::open(&hub_path).expect("hub");
    let leaf = Repository::open(&leaf_path).expect("leaf");
    let root = leaf.trunk_tip().expect("tip").expect("root");
    let text = |n: u32| format!("version {n}\n{}", "shared line of text\n".repeat(40));
    let commit = |parent: &ArtifactHash, n: u32| {
        leaf.commit(&CheckinSpec {
            parent: parent.clone(),
            changes: vec![FileChange {
                path: "f.txt".into(),
                content: Some(text(n).into_bytes()),
            }],
            comment: format!("v{n}"),
            user: "tester".into(),
            time: std::time::SystemTime::now(),
        })
        .expect("commit")
        .hash
    };
    let c1 = commit(&root, 1);
    let c2 = commit(&c1, 2);
    let c3 = commit(&c2, 3);
    let file = |c: &ArtifactHash| leaf.file_list(c).expect("files")["f.txt"].0.clone();
    let (f1, f2, f3) = (file(&c1), file(&c2), file(&c3));
    let whole = |h: &ArtifactHash| Card::File {
        hash: h.to_string(),
        delta_source: None,
        payload: leaf.content(h).expect("read").expect("held"),
    };
    let delta = |h: &ArtifactHash, src: &ArtifactHash| Card::File {
        hash: h.to_string(),
        delta_source: Some(src.to_string()),
        payload: herd::delta::encode(
            &leaf.content(src).expect("read").expect("held"),
            &leaf.content(h).expect("read").expect("held"),
        ),
    };
    let held = |h: &ArtifactHash| hub.rid_of(h).expect("lookup").is_some_and(|(_, p)| !p);

    // C1 without its file: not landed, not refused; the file and C1 are
    // asked for.
    let reply = push_cards(&hub, vec![whole(&c1)]);
    no_errors(&reply);
    let tip = || hub.trunk_tip().expect("tip");
    assert_eq!(tip(), Some(root.clone()));
    let asked = gimmes(&reply);
    assert!(
        asked.contains(&f1.to_string()) && asked.contains(&c1.to_string()),
        "{asked:?}"
    );
    // The file alone: C1 is still asked for.
    let reply = push_cards(&hub, vec![whole(&f1)]);
    no_errors(&reply);
    assert!(gimmes(&reply).contains(&c1.to_string()));
    assert_eq!(tip(), Some(root.clone()));
    // C1 again: whole now, it lands.
    no_errors(&push_cards(&hub, vec![whole(&c1)]));
    assert_eq!(tip(), Some(c1.clone()));

    // C3 with its file as a delta against f2, which the hub lacks: kept,
    // f2 asked for, C3 waits.
    let reply = push_cards(&hub, vec![whole(&c3), delta(&f3, &f2)]);
    no_errors(&reply);
    assert!(gimmes(&reply).contains(&f2.to_string()), "{reply:?}");
    assert!(!held(&f3) && !held(&c3));
    assert_eq!(tip(), Some(c1.clone()));
    // C2 and f2 arrive: C2 lands and f3 is completed from the kept delta.
    no_errors(&push_cards(&hub, vec![whole(&c2), whole(&f2)]));
    assert!(held(&f3), "the kept delta is whole once its source is");
    assert_eq!(tip(), Some(c2.clone()));
    // C3 asked for again and sent: it lands; nothing is left missing.
    no_errors(&push_cards(&hub, vec![whole(&c3)]));
    assert_eq!(tip(), Some(c3.clone()));
    assert_eq!(hub.trunk_leaves().expect("leaves"), 1);
    assert!(hub.phantoms().expect("phantoms").is_empty());
    assert_eq!(hub.content(&f3).expect("read"), Some(text(3).into_bytes()));
    drop((hub, leaf));
    let integrity = fossil_ok(
        dir.path(),
        dir.path(),
        &["test-integrity", "-R", hub_path.to_str().unwrap()],
    );
    assert!(integrity.contains("0 errors"), "{integrity}");
}

#[test]
fn a_hub_refuses_a_repository_whose_trunk_forked_naming_the_leaves() {
    use herd::repo::{CheckinSpec, CreateOptions, FileChange, Repository};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("forked.fossil");
    let options = CreateOptions {
        project_name: None,
        admin_user: "admin".into(),
        nobody_caps: String::new(),
    };
    let repo = Repository::create(&path, &options).unwrap();
    let root = repo.trunk_tip().unwrap().unwrap();
    // Two check-ins on the root: two trunk leaves, as a stock fossil
    // server leaves after two racing pushes.
    let leaves: Vec<String> = ["a", "b"]
        .iter()
        .map(|name| {
            let spec = CheckinSpec {
                parent: root.clone(),
                changes: vec![FileChange {
                    path: format!("{name}.txt"),
                    content: Some(name.as_bytes().to_vec()),
                }],
                comment: format!("leaf {name}"),
                user: "forker".into(),
                time: std::time::SystemTime::now(),
            };
            repo.commit(&spec).unwrap().hash.as_str()[..12].to_string()
        })
        .collect();
    assert_eq!(repo.trunk_leaves().unwrap(), 2);
    drop(repo);
    let exit = HubProcess::run_to_exit(&[
        "--repo".as_ref(),
        path.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
    ]);
    assert_eq!(exit.status.code(), Some(2), "{exit:?}");
    let lines: Vec<&str> = exit.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {:?}", exit.stderr);
    for leaf in &leaves {
        assert!(
            lines[0].contains(leaf.as_str()),
            "names {leaf}: {}",
            lines[0]
        );
    }
    assert!(
        lines[0].contains("forked trunk") && lines[0].contains("fossil merge"),
        "{}",
        lines[0]
    );
    assert!(
        exit.stdout.is_empty(),
        "no readiness line: {:?}",
        exit.stdout
    );
}

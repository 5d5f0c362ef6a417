//! When the infrastructure fails (issue 21): one hub per repository, one
//! trial per work directory, a `fossil` client whose push failed recovers,
//! herd restarts a killed nats-server or hub and names what it could not
//! restart, and refuses up front a herd the machine cannot hold. Real
//! processes on loopback; every kill is by the pid of a process the test
//! found as herd's child or started itself.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::helpers::{fossil_ok, fossil_sql, HubProcess};

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

fn herd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herd"));
    cmd.env("NATS_SERVER", crate::helpers::nats_server_binary())
        .env_remove("HERD_AGENTS")
        .env_remove("HERD_TASKS_PER_AGENT")
        .env_remove("HERD_SEED")
        .env_remove("HERD_LANDING")
        .stdin(Stdio::null());
    cmd
}

/// `herd run` with small, quick tasks.
fn trial(agents: u32, tasks: u32, workdir: &Path) -> Command {
    let mut cmd = herd();
    cmd.args(["run", "--agents", &agents.to_string()])
        .args(["--tasks", &tasks.to_string()])
        .args([
            "--min-think-ms",
            "0",
            "--max-think-ms",
            "5",
            "--max-bytes",
            "300",
        ])
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
    let out = trial(2, 2, &workdir).output().expect("run herd");
    assert!(
        out.status.success(),
        "first trial: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let out = trial(1, 1, &empty).output().expect("run herd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "infra: used work directory refused in {} ms",
        started.elapsed().as_millis()
    );
}

/// Sets the soft file-size limit (RLIMIT_FSIZE) of a process this test
/// started.
fn set_file_size_limit(pid: u32, soft: u64) {
    use nix::libc;
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: both pointers are to live, initialized rlimit structs.
    let read = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, std::ptr::null(), &mut old) };
    assert_eq!(read, 0, "read the hub's file-size limit");
    let new = libc::rlimit {
        rlim_cur: soft.min(old.rlim_max),
        rlim_max: old.rlim_max,
    };
    // SAFETY: as above; the old value is not wanted.
    let set = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &new, std::ptr::null_mut()) };
    assert_eq!(set, 0, "set the hub's file-size limit");
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
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

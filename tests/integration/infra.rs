//! When the infrastructure fails (issue 21): one hub per repository, one
//! trial per work directory, a `fossil` client whose push failed recovers,
//! herd restarts a killed nats-server or hub and names what it could not
//! restart, and refuses up front a herd the machine cannot hold. Real
//! processes on loopback; every kill is by the pid of a process the test
//! found as herd's child or started itself.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::helpers::HubProcess;

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

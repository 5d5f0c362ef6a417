//! When the infrastructure fails (issue 21): one hub per repository, one
//! trial per work directory, a `fossil` client whose push failed recovers,
//! herd restarts a killed nats-server or hub and names what it could not
//! restart, and refuses up front a herd the machine cannot hold. Real
//! processes on loopback; every kill is by the pid of a process the test
//! found as herd's child or started itself.

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

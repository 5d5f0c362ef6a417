//! `herd run --hosts`: leaves on simulated hosts (network namespaces herd
//! makes and removes), a NATS cluster across them with leaf nodes, a
//! cluster member killed, a host cut off, a launcher template. Every
//! address used is loopback or one of the trial's own namespaces'.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn herd() -> Command {
    let mut cmd = crate::helpers::herd_command();
    cmd.args(["run", "--json", "--timeout", "180"]).args([
        "--min-think-ms",
        "5",
        "--max-think-ms",
        "40",
        "--max-bytes",
        "300",
    ]);
    cmd
}

/// The namespaces and bridges a herd with this pid made.
fn leftovers_of(pid: u32) -> Vec<String> {
    let mut found = Vec::new();
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for line in String::from_utf8_lossy(&netns.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if name.starts_with(&format!("herd{pid}h")) {
            found.push(name.to_string());
        }
    }
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&links.stdout).lines() {
        let name = line.split(':').nth(1).unwrap_or_default().trim();
        let name = name.split('@').next().unwrap_or_default();
        if name == format!("hb{pid}") || name.starts_with(&format!("hv{pid}h")) {
            found.push(name.to_string());
        }
    }
    found
}

/// Runs a trial to its end; its report and herd's pid.
fn trial(args: &[&str]) -> (Value, u32) {
    let child = herd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start herd");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "herd {args:?} failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not a report ({e}): {stderr}"));
    (report, pid)
}

/// Every commit landed once on a linear trunk.
fn all_landed(r: &Value) {
    assert_eq!(r["hub_commits"], r["total"], "{r}");
    assert_eq!(r["committed"], r["total"], "{r}");
    assert_eq!(r["trunk_leaves"], 1, "{r}");
    assert_eq!(r["failed_slots"].as_array().map(Vec::len), Some(0), "{r}");
}

#[test]
fn three_hosts_share_a_nats_cluster_and_leave_nothing_behind() {
    let (r, pid) = trial(&["--hosts", "3", "--agents", "4", "--tasks", "5"]);
    all_landed(&r);
    assert_eq!(r["hosts"], 3);
    assert_eq!(r["nats_nodes"], 3, "a member per host: {r}");
    // Slots 0 and 3 on host 0, 1 on host 1, 2 on host 2.
    assert_eq!(
        r["committed_per_host"],
        serde_json::json!([10, 5, 5]),
        "{r}"
    );
    assert_eq!(leftovers_of(pid), Vec::<String>::new());
}

#[test]
fn a_host_beyond_the_cluster_joins_it_as_a_leaf_node() {
    let (r, pid) = trial(&[
        "--hosts",
        "3",
        "--nats-cluster",
        "2",
        "--agents",
        "3",
        "--tasks",
        "5",
    ]);
    all_landed(&r);
    assert_eq!(r["nats_nodes"], 3, "two members and a leaf node: {r}");
    assert_eq!(r["committed_per_host"], serde_json::json!([5, 5, 5]), "{r}");
    assert_eq!(leftovers_of(pid), Vec::<String>::new());
}

#[test]
fn a_killed_nats_node_loses_no_commit() {
    let r = fault_trial("--kill-nats-node", "0.5");
    let faults = r["faults"].to_string();
    assert!(faults.contains("killed (SIGKILL) at"), "{faults}");
}

#[test]
fn a_host_cut_off_finishes_after_its_link_returns() {
    let r = fault_trial("--partition-host", "2:0.5:2");
    let faults = r["faults"].to_string();
    assert!(faults.contains("host 2 cut off at"), "{faults}");
    // Host 2's slots could not land while cut off: the trial outlasted it.
    assert!(r["runtime_s"].as_f64().unwrap() > 2.5, "{r}");
}

/// A 3-host, 6 × 40 trial with one fault (`flag value`): every commit
/// landed once and nothing of the hosts is left behind; its report.
fn fault_trial(flag: &str, value: &str) -> Value {
    let (r, pid) = trial(&[
        "--hosts", "3", "--agents", "6", "--tasks", "40", flag, value,
    ]);
    all_landed(&r);
    assert_eq!(leftovers_of(pid), Vec::<String>::new());
    r
}

#[test]
fn a_launcher_template_starts_every_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("launched");
    let template = format!(
        "echo {{slot}} {{host}} >> {}; exec ip netns exec {{netns}} {{cmd}}",
        marks.display()
    );
    let (r, _) = trial(&[
        "--hosts",
        "2",
        "--agents",
        "4",
        "--tasks",
        "3",
        "--leaf-launcher",
        &template,
    ]);
    all_landed(&r);
    let text = std::fs::read_to_string(&marks).unwrap();
    let mut slots: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    slots.sort_unstable();
    assert_eq!(slots, ["0", "1", "2", "3"], "{text}");
    assert!(text.lines().all(|l| l.contains(" 10.213.")), "{text}");
}

#[test]
fn a_killed_herd_s_namespaces_are_removed_by_the_next_herd() {
    // A long trial, killed once its hosts exist.
    let mut killed = herd()
        .args(["--hosts", "2", "--agents", "2", "--tasks", "1000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = killed.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while leftovers_of(pid).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!leftovers_of(pid).is_empty(), "herd made no hosts");
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert!(!leftovers_of(pid).is_empty(), "SIGKILL leaves them behind");

    let (r, next) = trial(&["--hosts", "2", "--agents", "2", "--tasks", "2"]);
    all_landed(&r);
    assert_eq!(leftovers_of(pid), Vec::<String>::new(), "the dead herd's");
    assert_eq!(leftovers_of(next), Vec::<String>::new(), "its own");
}

#[test]
fn host_flags_that_cannot_work_are_refused_up_front() {
    for (args, says) in [
        (
            &["--hosts", "2", "--nats-cluster", "3"][..],
            "needs as many hosts",
        ),
        (
            &["--hosts", "2", "--kill-nats-node", "1"][..],
            "cluster of 3 or more",
        ),
        (
            &["--hosts", "2", "--partition-host", "5:1:1"][..],
            "only hosts 0..2",
        ),
        (
            &["--hosts", "2", "--partition-host", "1:x"][..],
            "HOST:SECS:DURATION",
        ),
        (&["--leaf-launcher", "ssh box"][..], "has no {cmd}"),
    ] {
        let out = herd().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn shaped_links_delay_and_drop_packets_and_a_host_can_be_slowed() {
    let (r, pid) = trial(&[
        "--hosts",
        "2",
        "--agents",
        "4",
        "--tasks",
        "6",
        "--link-delay",
        "100:10",
        "--link-loss",
        "2",
        "--slow-host",
        "1:0.5:2:200",
    ]);
    all_landed(&r);
    let links = r["links"].as_str().unwrap_or_default();
    assert!(links.contains("100 ms ± 10 ms delay, 2 % loss"), "{r}");
    // Slots 1 and 3 run on host 1: each push is an HTTP round trip to the
    // hub on host 0, at least 2 × 90 ms with the delay both ways.
    let p99 = r["p99_commit_ms"].as_f64().unwrap();
    assert!(p99 >= 180.0, "host 1's commits wait for the delay: {r}");
    let faults = r["faults"].to_string();
    assert!(faults.contains("host 1's link slowed by 200 ms"), "{r}");
    assert!(leftovers_of(pid).is_empty(), "{:?}", leftovers_of(pid));
    println!("hosts: 2 shaped hosts, P99 {p99:.0} ms; {faults}");
}

#[test]
fn shaping_needs_hosts_and_bad_shapes_are_refused_in_one_line() {
    for (args, says) in [
        (&["--link-delay", "50"][..], "add --hosts 2 or more"),
        (
            &["--hosts", "2", "--link-delay", "5:9"][..],
            "jitter is larger",
        ),
        (
            &["--hosts", "2", "--link-loss", "70"][..],
            "percentage from 0 to 50",
        ),
        (
            &["--hosts", "2", "--slow-host", "2:1:1:100"][..],
            "only hosts 0..2",
        ),
    ] {
        let out = herd().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

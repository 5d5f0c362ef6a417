//! A long trunk landed in one process (`herd::repo::trunk_load`): 16 agents
//! each pushing one-file check-ins on what they last landed, landed by the
//! hub's own call in batches of 16, to `TRUNK_COMMITS` check-ins (default
//! 100,000). Prints, per tenth of the run, the landing rate and what a
//! landing touched (rows, SQL steps, blobs and bytes), then the last
//! tenth's rate over the first's: the writer's share of
//! `scripts/trunk-bench`, without processes or a network, for profiling
//! (`perf record cargo bench --bench trunk`).

use std::time::Instant;

use herd::repo::trunk_load::OneFileLoad;
use herd::repo::{CreateOptions, Repository, Work};

fn main() {
    let commits: u64 = std::env::var("TRUNK_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let window = (commits / 10).max(16);
    herd::hub::map_large_blocks_alone();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let opts = CreateOptions {
        project_name: None,
        admin_user: "admin".into(),
        nobody_caps: "gio".into(),
    };
    let repo = Repository::create(&dir.path().join("hub.fossil"), &opts).expect("create");
    repo.cache_for_many_leaves();
    repo.count_sql_steps();
    let mut load = OneFileLoad::new(&repo, 16).expect("start");
    println!("check-ins          commits/s  rows  sql-steps/100  blobs-w  bytes-w  blobs-r  bytes-r  bytes-hashed  (per landing)");
    let mut rates = Vec::new();
    while load.landed() < commits {
        let (first, before, started) = (load.landed() + 1, repo.work(), Instant::now());
        while load.landed() < first - 1 + window && load.landed() < commits {
            load.land_batch(&repo, 16).expect("landing");
        }
        let n = load.landed() + 1 - first;
        let rate = n as f64 / started.elapsed().as_secs_f64();
        rates.push(rate);
        let w: Work = repo.work() - before;
        let per = |x: u64| x as f64 / n as f64;
        println!(
            "{first:>7}-{:<9} {rate:9.0} {:5.1} {:14.1} {:8.2} {:8.0} {:8.3} {:8.0} {:13.0}",
            load.landed(),
            per(w.rows_changed),
            per(w.sql_steps),
            per(w.blobs_written),
            per(w.bytes_written),
            per(w.blobs_read),
            per(w.bytes_read),
            per(w.bytes_hashed),
        );
    }
    if let (Some(first), Some(last)) = (rates.first(), rates.last()) {
        println!("last / first: {:.2}", last / first);
    }
    println!("peak resident memory: {} MiB", peak_rss_kib() / 1024);
}

/// This process's peak resident set (Linux's VmHWM), 0 where unknown.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

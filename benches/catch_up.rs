//! What staying current costs a full leaf, per check-in it receives: the
//! stream's bundles for a batch of other slots' check-ins (files and
//! manifests, as the hub publishes them under `--broadcast-files`) stored
//! and crosslinked in one transaction, then the worktree moved from the
//! tip it held to the new one. The figure is the leaf thread's CPU time
//! per check-in it received over a whole 16 × 30 herd (the trunk and tree
//! grow as in a trial): the `apply_us_per_checkin` of a trial's report,
//! measured alone.

use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use herd::repo::{ArtifactHash, CheckinSpec, CreateOptions, FileChange, Repository};
use herd::telemetry::thread_cpu_us;
use herd::xfer::bundle;
use herd::xfer::fastpath::Artifacts;
use herd::xfer::Client;
use rand::{Rng, SeedableRng};

/// Batches the leaf catches up over: one per task of a 30-task herd.
const ROUNDS: usize = 30;
/// Check-ins in each (one per slot of a 16-agent herd: what a leaf misses
/// during one task).
const CATCH_UP: usize = 16;

fn lowercase(rng: &mut rand_pcg::Pcg64, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.gen_range(b'a'..=b'z')).collect()
}

/// A check-in like the default workload's: 1-4 new files of 50-2000 bytes.
fn task(
    repo: &Repository,
    parent: &ArtifactHash,
    rng: &mut rand_pcg::Pcg64,
    k: usize,
) -> ArtifactHash {
    let files = rng.gen_range(1..=4);
    let changes = (0..files)
        .map(|j| {
            let size = rng.gen_range(50..=2000);
            FileChange {
                path: format!("slot-{}/task-{k}/file-{j}.txt", k % 16),
                content: Some(lowercase(rng, size)),
            }
        })
        .collect();
    repo.commit(&CheckinSpec {
        parent: parent.clone(),
        changes,
        comment: format!("task {k}"),
        user: "slot".into(),
        time: SystemTime::now(),
    })
    .unwrap()
    .hash
}

/// One 16 × 30 herd as one full leaf sees it: the hub lands `ROUNDS`
/// batches of [`CATCH_UP`] check-ins (not timed), and after each the leaf
/// applies the batch's bundle and moves its worktree (timed). Returns the
/// CPU time the leaf's thread spent (what a leaf reports as `apply_us`).
fn one_herd(dir: &std::path::Path) -> Duration {
    let hub_path = dir.join("hub.fossil");
    let _ = std::fs::remove_file(&hub_path);
    let hub = Repository::create(
        &hub_path,
        &CreateOptions {
            project_name: None,
            admin_user: "admin".into(),
            nobody_caps: "gio".into(),
        },
    )
    .unwrap();
    // As herd's hub: no R card (an MD5 over the whole tree per check-in).
    hub.config_set("repo-cksum", "0").unwrap();
    hub.skip_fsync().unwrap();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
    let mut held = hub.trunk_tip().unwrap().unwrap();
    // The leaf: a clone of the new hub, checked out, set up as a full
    // leaf-agent sets up its copy.
    drop(hub);
    let leaf_path = dir.join("leaf.fossil");
    std::fs::copy(&hub_path, &leaf_path).unwrap();
    let hub = Repository::open(&hub_path).unwrap();
    let leaf = Repository::open(&leaf_path).unwrap();
    leaf.skip_fsync().unwrap();
    let worktree = dir.join("wt");
    let _ = std::fs::remove_dir_all(&worktree);
    leaf.checkout(&held, &worktree).unwrap();
    let client = Client::new("http://127.0.0.1:1");
    let mut spent = Duration::ZERO;
    for round in 0..ROUNDS {
        let mut batch = Vec::new();
        let mut tip = held.clone();
        for i in 0..CATCH_UP {
            tip = task(&hub, &tip, &mut rng, round * CATCH_UP + i);
            batch.push(tip.clone());
        }
        let parts = bundle::build(&hub, &batch, Artifacts::All, 1 << 20).unwrap();
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let start = thread_cpu_us();
        client.apply_bundles(&leaf, &parts, &tip, &held).unwrap();
        leaf.update_checkout(&worktree, &held, &tip, &Default::default())
            .unwrap();
        spent += Duration::from_micros(thread_cpu_us() - start);
        held = tip;
    }
    spent
}

fn catch_up(c: &mut Criterion) {
    let dir = tempfile::TempDir::new().unwrap();
    let checkins = (ROUNDS * CATCH_UP) as u32;
    c.bench_function(
        &format!("catch_up/a full leaf applies {ROUNDS} stream batches of {CATCH_UP} check-ins (per check-in)"),
        |b| b.iter_custom(|iters| (0..iters).map(|_| one_herd(dir.path()) / checkins).sum()),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = catch_up
}
criterion_main!(benches);

//! What staying current costs a full leaf, per check-in it receives: the
//! stream's bundles for a batch of other slots' check-ins (files and
//! manifests, as the hub publishes them under `--broadcast-files`) stored
//! and crosslinked in one transaction, then the worktree moved from the
//! tip it held to the new one. Criterion times the whole catch-up of
//! `CATCH_UP` check-ins; divide by it for the cost of one.

use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use herd::repo::{ArtifactHash, CheckinSpec, CreateOptions, FileChange, Repository};
use herd::xfer::bundle;
use herd::xfer::fastpath::Artifacts;
use herd::xfer::Client;
use rand::{Rng, SeedableRng};

/// Check-ins on trunk before the leaf's tip.
const HISTORY: usize = 300;
/// Check-ins the leaf catches up over at once (one per other slot of a
/// 16-agent herd: what a leaf misses during one task).
const CATCH_UP: usize = 16;

fn lowercase(rng: &mut rand_pcg::Pcg64, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.gen_range(b'a'..=b'z')).collect()
}

/// A check-in like the default workload's: 1-4 new files of 50-2000 bytes.
fn task(repo: &Repository, parent: &ArtifactHash, rng: &mut rand_pcg::Pcg64, k: usize) -> ArtifactHash {
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

fn catch_up(c: &mut Criterion) {
    let dir = tempfile::TempDir::new().unwrap();
    let hub_path = dir.path().join("hub.fossil");
    let hub = Repository::create(
        &hub_path,
        &CreateOptions {
            project_name: None,
            admin_user: "admin".into(),
            nobody_caps: "gio".into(),
        },
    )
    .unwrap();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
    let mut tip = hub.trunk_tip().unwrap().unwrap();
    for k in 0..HISTORY {
        tip = task(&hub, &tip, &mut rng, k);
    }
    let held = tip.clone();
    // The leaf holds the trunk up to here: a copy of the hub as it stands.
    drop(hub);
    let leaf_template = dir.path().join("leaf-template.fossil");
    std::fs::copy(&hub_path, &leaf_template).unwrap();
    let hub = Repository::open(&hub_path).unwrap();
    let mut batch = Vec::new();
    for k in HISTORY..HISTORY + CATCH_UP {
        tip = task(&hub, &tip, &mut rng, k);
        batch.push(tip.clone());
    }
    let parts = bundle::build(&hub, &batch, Artifacts::All, 1 << 20).unwrap();
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let client = Client::new("http://127.0.0.1:1");
    let mut round = 0;
    c.bench_function(
        &format!("catch_up/apply {CATCH_UP} check-ins from the stream and update the worktree"),
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let leaf_path = dir.path().join(format!("leaf-{round}.fossil"));
                    let worktree = dir.path().join(format!("wt-{round}"));
                    std::fs::copy(&leaf_template, &leaf_path).unwrap();
                    let leaf = Repository::open(&leaf_path).unwrap();
                    leaf.skip_fsync().unwrap();
                    leaf.checkout(&held, &worktree).unwrap();
                    let start = Instant::now();
                    client.apply_bundles(&leaf, &parts, &tip, &held).unwrap();
                    leaf.update_checkout(&worktree, &held, &tip, &Default::default())
                        .unwrap();
                    total += start.elapsed();
                    drop(leaf);
                    let _ = std::fs::remove_file(&leaf_path);
                    let _ = std::fs::remove_dir_all(&worktree);
                }
                total
            })
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = catch_up
}
criterion_main!(benches);

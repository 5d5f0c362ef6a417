//! Repository benchmarks: one 3-file check-in on a repository with history
//! (store blobs, build the delta manifest with its R card, crosslink),
//! parsing a manifest, and encoding/applying the delta that stores a ~1 MB
//! baseline manifest as a delta of the next one (older versions are stored
//! against newer ones, as Fossil does).

use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use herd::repo::{CheckinSpec, CreateOptions, FileChange, Manifest, Repository};

fn spec(parent: herd::repo::ArtifactHash, i: usize) -> CheckinSpec {
    CheckinSpec {
        parent,
        changes: (0..3)
            .map(|j| FileChange {
                path: format!("slot-{}/task-{i}/file-{j}.txt", i % 16),
                content: Some(format!("{i}-{j} ").repeat(60).into_bytes()),
            })
            .collect(),
        comment: format!("task {i}"),
        user: "leaf".into(),
        time: SystemTime::now(),
    }
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = CreateOptions {
        project_name: None,
        admin_user: "admin".into(),
        nobody_caps: "gio".into(),
    };
    let repo = Repository::create(&dir.path().join("bench.fossil"), &opts).expect("create");
    let history = 300;
    let mut tip = repo.trunk_tip().expect("tip").expect("initial check-in");
    for i in 0..history {
        tip = repo.commit(&spec(tip, i)).expect("commit").hash;
    }
    let mut i = history;
    c.bench_function("commit 3 files on 300-commit history", |b| {
        b.iter(|| {
            let ci = repo.commit(&spec(tip.clone(), i)).expect("commit");
            tip = ci.hash;
            i += 1;
        })
    });
    let manifest = repo.content(&tip).expect("read").expect("held");
    c.bench_function(&format!("parse a {}-byte manifest", manifest.len()), |b| {
        b.iter_batched(
            || manifest.clone(),
            |m| Manifest::parse(&m).expect("parses"),
            BatchSize::SmallInput,
        )
    });
}

/// A baseline-like manifest text listing `files` (sorted F cards).
fn baseline(files: impl Iterator<Item = usize>) -> Vec<u8> {
    let mut cards: Vec<String> = files
        .map(|i| {
            let hash = herd::repo::ArtifactHash::sha3_of(i.to_string().as_bytes());
            format!("F slot-{}/task-{i}/file-{}.txt {hash}\n", i % 16, i % 3)
        })
        .collect();
    cards.sort();
    let mut text = b"C task\nD 2024-01-01T00:00:00.000\n".to_vec();
    for c in cards {
        text.extend_from_slice(c.as_bytes());
    }
    text.extend_from_slice(b"P 0123\nU leaf\nZ 0123456789abcdef0123456789abcdef\n");
    text
}

fn delta_benches(c: &mut Criterion) {
    // 11,000 files (~1 MB); the next baseline adds 33, as a trunk of 3-file
    // check-ins does between baselines.
    let old = baseline(0..11_000);
    let new = baseline((0..11_000).chain(50_000..50_033));
    // The old baseline becomes a delta of the new one.
    let delta = herd::delta::encode(&new, &old);
    c.bench_function(
        &format!(
            "delta encode {} B baseline against the next (+33 files) -> {} B",
            old.len(),
            delta.len()
        ),
        |b| b.iter(|| herd::delta::encode(&new, &old)),
    );
    c.bench_function(&format!("delta apply to a {} B baseline", new.len()), |b| {
        b.iter(|| herd::delta::apply(&new, &delta, 1 << 24).expect("applies"))
    });
}

criterion_group! {
    name = repo_benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = benches, delta_benches
}
criterion_main!(repo_benches);

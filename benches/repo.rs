//! Repository benchmarks: one 3-file check-in on a repository with history
//! (store blobs, build the delta manifest with its R card, crosslink), and
//! parsing a manifest.

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

criterion_group! {
    name = repo_benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = benches
}
criterion_main!(repo_benches);

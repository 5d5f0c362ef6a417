//! Benchmarks of the sync protocol: the codec with zlib framing on a push of
//! three ~1 KB files and a manifest, and the server landing one fast-path
//! push of three files on a repository with history.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::time::{Duration, Instant, SystemTime};

use herd::repo::{ArtifactHash, CheckinSpec, CreateOptions, FileChange, Repository};
use herd::xfer::{
    decode_body, encode, encode_body, handle, parse_with, Card, ContentType, Limits, Request,
};
use rand::{Rng, SeedableRng};

fn lowercase(rng: &mut rand_pcg::Pcg64, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.gen_range(b'a'..=b'z')).collect()
}

fn push_message() -> Vec<Card> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
    let hash = |i: u8| format!("{:064x}", u64::from(i) * 0x9e37_79b9);
    let mut cards = vec![
        Card::pragma("client-version", &["22100", "20230226", "192424"]),
        Card::pragma("herd-push", &[]),
        Card::Push {
            server_code: "0".repeat(40),
            project_code: "d0119d97d5ec4de58b41fc12bd6d374d9cbd9f7d".into(),
        },
    ];
    for i in 0..3 {
        cards.push(Card::File {
            hash: hash(i),
            delta_source: None,
            payload: lowercase(&mut rng, 1000),
        });
    }
    let manifest = format!(
        "B {b}\nC task\\s7\nD 2026-11-27T03:43:25.168\nF slot-1/task-7/file-0.txt {h0}\n\
         F slot-1/task-7/file-1.txt {h1}\nF slot-1/task-7/file-2.txt {h2}\nP {b}\nR {r}\nU slot-1\nZ {r}\n",
        b = hash(9),
        h0 = hash(0),
        h1 = hash(1),
        h2 = hash(2),
        r = "d41d8cd98f00b204e9800998ecf8427e"
    );
    cards.push(Card::File {
        hash: hash(3),
        delta_source: None,
        payload: manifest.into_bytes(),
    });
    cards.push(Card::comment("526C6E3B81333E5822C92637036E8F21FC857556"));
    cards
}

fn codec(c: &mut Criterion) {
    let cards = push_message();
    let limits = Limits::default();
    let body = encode_body(ContentType::Fossil, &encode(&cards));
    c.bench_function("xfer/encode push 3 files + manifest (zlib)", |b| {
        b.iter(|| encode_body(ContentType::Fossil, &encode(black_box(&cards))))
    });
    c.bench_function("xfer/decode push 3 files + manifest (zlib)", |b| {
        b.iter(|| {
            let text = decode_body(ContentType::Fossil, black_box(&body), &limits).unwrap();
            parse_with(&text, &limits).unwrap()
        })
    });
}

/// A hub with `n` check-ins, and a leaf that is a byte copy of it (same
/// project, same history) to make pushes from.
fn hub_and_leaf(dir: &std::path::Path, n: usize) -> (Repository, Repository) {
    let hub_path = dir.join("hub.fossil");
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
    for i in 0..n {
        tip = commit3(&hub, &tip, &mut rng, i);
    }
    drop(hub);
    let leaf_path = dir.join("leaf.fossil");
    std::fs::copy(&hub_path, &leaf_path).unwrap();
    (
        Repository::open(&hub_path).unwrap(),
        Repository::open(&leaf_path).unwrap(),
    )
}

fn commit3(
    repo: &Repository,
    parent: &ArtifactHash,
    rng: &mut rand_pcg::Pcg64,
    k: usize,
) -> ArtifactHash {
    let changes = (0..3)
        .map(|j| FileChange {
            path: format!("slot-1/task-{k}/file-{j}.txt"),
            content: Some(lowercase(rng, 1000)),
        })
        .collect();
    repo.commit(&CheckinSpec {
        parent: parent.clone(),
        changes,
        comment: format!("task {k}"),
        user: "slot-1".into(),
        time: SystemTime::now(),
    })
    .unwrap()
    .hash
}

/// The body a leaf sends to push `checkin` on the fast path.
fn push_body(leaf: &Repository, checkin: &ArtifactHash) -> Vec<u8> {
    let mut cards = vec![
        Card::pragma("client-version", &["22100", "20230226", "192424"]),
        Card::pragma("herd-push", &[]),
        Card::Push {
            server_code: leaf.server_code().unwrap(),
            project_code: leaf.project_code().unwrap(),
        },
    ];
    for artifact in leaf.checkin_artifacts(checkin).unwrap() {
        cards.push(Card::File {
            hash: artifact.to_string(),
            delta_source: None,
            payload: leaf.content(&artifact).unwrap().unwrap(),
        });
    }
    encode_body(ContentType::Fossil, &encode(&cards))
}

fn server_push(c: &mut Criterion) {
    let dir = tempfile::TempDir::new().unwrap();
    let (hub, leaf) = hub_and_leaf(dir.path(), 300);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(2);
    let mut k = 10_000;
    c.bench_function(
        "xfer/server fast-path push of 3 files (300-commit hub)",
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let tip = leaf.trunk_tip().unwrap().unwrap();
                    k += 1;
                    let checkin = commit3(&leaf, &tip, &mut rng, k);
                    let body = push_body(&leaf, &checkin);
                    let request = Request {
                        content_type: ContentType::Fossil.as_str(),
                        body: &body,
                        peer: None,
                    };
                    let start = Instant::now();
                    let response = handle(&hub, &request);
                    total += start.elapsed();
                    assert_eq!(response.outcome.advances.len(), 1, "{:?}", response.outcome);
                }
                total
            })
        },
    );
}

criterion_group!(benches, codec, server_push);
criterion_main!(benches);

//! The hub's content merge of a stale push: one 2,000-line file (lines of
//! about 50 bytes) where the push inserted 3 lines and the trunk 3 others,
//! 500 lines further on. The hub's budget is 1 ms of CPU per merged file.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use herd::repo::merge::{merge3, Merge};

const LINES: usize = 2000;

fn base_lines() -> Vec<String> {
    (1..=LINES)
        .map(|n| format!("line {n} of the hot file, with some words in it\n"))
        .collect()
}

/// The base with 3 lines by `who` inserted before base line `at`.
fn with_insertion(base: &[String], at: usize, who: &str) -> Vec<u8> {
    let mut lines = base.to_vec();
    let inserted = (1..=3).map(|k| format!("{who} line {k}, inserted before base line {at}\n"));
    lines.splice(at..at, inserted);
    lines.concat().into_bytes()
}

fn stale_push(c: &mut Criterion) {
    let lines = base_lines();
    let base = lines.concat().into_bytes();
    let ours = with_insertion(&lines, 700, "pushed");
    let theirs = with_insertion(&lines, 1200, "trunk");
    assert!(
        matches!(merge3(&base, &ours, &theirs), Merge::Clean(_)),
        "the bench's inputs merge cleanly"
    );
    c.bench_function("merge3 of 2000 lines, 3 + 3 inserted 500 apart", |b| {
        b.iter(|| merge3(black_box(&base), black_box(&ours), black_box(&theirs)))
    });
}

criterion_group!(benches, stale_push);
criterion_main!(benches);

//! Benchmarks of the sync protocol: the codec with zlib framing on a push of
//! three ~1 KB files and a manifest.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use herd::xfer::{decode_body, encode, encode_body, parse_with, Card, ContentType, Limits};
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

criterion_group!(benches, codec);
criterion_main!(benches);

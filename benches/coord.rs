//! Coordination round-trip cost against a real nats-server on loopback: one
//! task's full cycle (open, claim with 3 holds, check, close). Criterion
//! measures the cycle; a manual run of the same cycle prints the median and
//! p99 of the cycle and of each step in microseconds.
//!
//! A bench cannot use the integration tests' helpers, so it carries its own
//! small nats-server guard.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use herd::coord::{Coord, CoordConfig};

/// Cycles timed by hand for the percentile report.
const MANUAL_CYCLES: usize = 1000;

/// A nats-server with JetStream on a free loopback port; killed on drop.
struct Server {
    child: Child,
    port: u16,
    _store: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let binary = binary();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral port")
            .port();
        let store = tempfile::tempdir().expect("create a store directory");
        let child = Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        Server {
            child,
            port,
            _store: store,
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        if let Some(found) = std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|p| p.is_file())
        {
            return found;
        }
    }
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/nats-server");
    assert!(
        tools.is_file(),
        "nats-server not found: set NATS_SERVER, put it on PATH or run scripts/install-deps"
    );
    tools
}

/// Connects once the server is up with JetStream (bounded wait).
async fn connect(server: &Server) -> Coord {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match Coord::connect(CoordConfig::new(server.url(), "bench"), "bench-leaf").await {
            Ok(coord) => return coord,
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("nats-server not ready: {err}"),
        }
    }
}

/// Step times of one cycle, in microseconds: open, claim, check, close.
async fn cycle(coord: &Coord, n: usize) -> [u64; 4] {
    let files = [
        format!("bench/{n}/a.txt"),
        format!("bench/{n}/b.txt"),
        format!("bench/{n}/c.txt"),
    ];
    let t0 = Instant::now();
    let id = coord.open_task("bench", &files).await.expect("open");
    let t1 = Instant::now();
    let claim = coord.claim(&id).await.expect("claim");
    let t2 = Instant::now();
    coord.check(&claim).await.expect("check");
    let t3 = Instant::now();
    coord.close(claim).await.expect("close");
    let t4 = Instant::now();
    let us = |a: Instant, b: Instant| b.duration_since(a).as_micros() as u64;
    [us(t0, t1), us(t1, t2), us(t2, t3), us(t3, t4)]
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank]
}

fn bench_coord(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let server = Server::start();
    let coord = runtime.block_on(connect(&server));

    let mut steps: [Vec<u64>; 4] = Default::default();
    let mut totals = Vec::with_capacity(MANUAL_CYCLES);
    for n in 0..MANUAL_CYCLES {
        let times = runtime.block_on(cycle(&coord, n));
        for (step, t) in steps.iter_mut().zip(times) {
            step.push(t);
        }
        totals.push(times.iter().sum::<u64>());
    }
    totals.sort_unstable();
    println!(
        "coord cycle (open, claim 3 holds, check, close) over {MANUAL_CYCLES} runs: median {} us, p99 {} us",
        percentile(&totals, 0.5),
        percentile(&totals, 0.99)
    );
    for (name, step) in ["open", "claim", "check", "close"]
        .iter()
        .zip(steps.iter_mut())
    {
        step.sort_unstable();
        println!(
            "  {name:<5} median {} us, p99 {} us",
            percentile(step, 0.5),
            percentile(step, 0.99)
        );
    }

    let mut n = MANUAL_CYCLES;
    let mut group = c.benchmark_group("coord");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("open_claim3_check_close", |b| {
        b.iter(|| {
            n += 1;
            runtime.block_on(cycle(&coord, n))
        })
    });
    group.finish();
}

criterion_group!(benches, bench_coord);
criterion_main!(benches);

//! Sustained accepted pushes per second through the real `hub` binary, for
//! 1, 4, 16 and 64 concurrent pushers with zero think time: landed by the
//! hub (`pragma herd-land`, the default strategy), and rebased by the
//! pushers with the writer's batching on (default) and off (`--max-batch
//! 1`); the hub's CPU per push and peak RSS (VmHWM) after each run.
//!
//! One criterion element is one accepted push: a pusher commits a new file
//! on the newest trunk check-in it holds and pushes it over HTTP (herd's
//! fast path). With hub landing the hub writes it anew on its tip; else
//! the pusher rebases and retries on refusal until it lands, so refusals
//! are part of the cost. Pushers run in this process on the same cores as the hub: the
//! figures are those of the whole machine, as in a trial.
//!
//! Run: `cargo bench --bench hub` (release profile).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use herd::repo::{ArtifactHash, CheckinSpec, FileChange, Repository};
use herd::xfer::{Client, PushOutcome};

const PUSHERS: [usize; 4] = [1, 4, 16, 64];

/// The hub binary as a child; killed on drop.
struct HubChild {
    child: Child,
    url: String,
}

impl HubChild {
    fn start(repo: &Path, max_batch: usize) -> HubChild {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hub"))
            .arg("--repo")
            .arg(repo)
            .args(["--max-batch", &max_batch.to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn hub");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the readiness line");
        let ready: herd::wire::HubReady = serde_json::from_str(&line).expect("a readiness line");
        HubChild {
            child,
            url: format!("{}/", ready.http),
        }
    }

    /// CPU time the hub has used so far (user + system), from /proc.
    fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the parenthesised command name; utime and stime are
        // fields 14 and 15 of the whole line, in USER_HZ ticks.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // /proc reports USER_HZ ticks, 100 per second on Linux.
        Some(Duration::from_millis(ticks * 10))
    }

    /// One counter of `/stats`.
    fn stat(&self, name: &str) -> u64 {
        let body = ureq::get(&format!("{}stats", self.url))
            .call()
            .expect("GET /stats")
            .into_string()
            .expect("read /stats");
        let v: serde_json::Value = serde_json::from_str(&body).expect("/stats is JSON");
        v[name].as_u64().expect("a numeric counter")
    }

    /// Peak resident set size in kB, from /proc.
    fn peak_rss_kb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for HubChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One leaf: its own clone, landing check-ins by hub landing or by
/// rebase-and-retry.
struct Pusher {
    client: Client,
    repo: Repository,
    slot: usize,
    made: u64,
    /// The newest hub check-in this pusher holds (hub landing).
    base: ArtifactHash,
    hub_landing: bool,
}

impl Pusher {
    fn land_one(&mut self) {
        let path = format!("slot-{}/file-{}.txt", self.slot, self.made);
        self.made += 1;
        if self.hub_landing {
            let mine = self.commit(&self.base.clone(), &path);
            match self.client.push_landing(&self.repo, &mine).unwrap() {
                PushOutcome::Landed {
                    checkin,
                    stored: true,
                    ..
                } => self.base = checkin,
                PushOutcome::Landed { .. } => {}
                PushOutcome::Accepted { .. } => self.base = mine,
                other => panic!("disjoint files, yet {other:?}"),
            }
            return;
        }
        let tip = self.repo.trunk_tip().unwrap().unwrap();
        let mut mine = self.commit(&tip, &path);
        loop {
            match self
                .client
                .push(&self.repo, std::slice::from_ref(&mine))
                .unwrap()
            {
                PushOutcome::Accepted { .. } => return,
                PushOutcome::Refused { tip, .. } => {
                    mine = self.repo.rebase(&mine, &tip).unwrap().hash;
                }
                other => panic!("a plain push answered {other:?}"),
            }
        }
    }

    fn commit(&self, parent: &ArtifactHash, path: &str) -> ArtifactHash {
        self.repo
            .commit(&CheckinSpec {
                parent: parent.clone(),
                changes: vec![FileChange {
                    path: path.into(),
                    content: Some(format!("{path}\n").repeat(40).into_bytes()),
                }],
                comment: path.into(),
                user: format!("slot-{}", self.slot),
                time: SystemTime::now(),
            })
            .unwrap()
            .hash
    }
}

/// `iters` accepted pushes shared by the pushers, all started together.
fn run(pushers: &mut [Pusher], iters: u64) -> Duration {
    let n = pushers.len() as u64;
    let barrier = Barrier::new(pushers.len() + 1);
    std::thread::scope(|s| {
        for (i, pusher) in pushers.iter_mut().enumerate() {
            let share = iters / n + u64::from((i as u64) < iters % n);
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for _ in 0..share {
                    pusher.land_one();
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // Leaving the scope joins every pusher.
        start
    })
    .elapsed()
}

fn pushes(c: &mut Criterion) {
    let batched = herd::hub::DEFAULT_MAX_BATCH;
    for (label, max_batch, hub_landing) in [
        ("hub landing", batched, true),
        ("leaf rebase, batched", batched, false),
        ("leaf rebase, unbatched", 1, false),
    ] {
        let mut group = c.benchmark_group(format!("hub/accepted pushes ({label})"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4))
            .throughput(Throughput::Elements(1));
        for n in PUSHERS {
            let dir = tempfile::tempdir().unwrap();
            let hub = HubChild::start(&dir.path().join("hub.fossil"), max_batch);
            let mut pushers: Vec<Pusher> = (0..n)
                .map(|slot| {
                    let client = Client::new(&hub.url);
                    let repo = client
                        .clone_into(&dir.path().join(format!("leaf-{slot}.fossil")))
                        .unwrap();
                    let base = repo.trunk_tip().unwrap().unwrap();
                    // A lander holds only its own files and its landings:
                    // no R card, which sums every file of the tree.
                    if hub_landing {
                        repo.config_set("repo-cksum", "0").unwrap();
                    }
                    Pusher {
                        client,
                        repo,
                        slot,
                        made: 0,
                        base,
                        hub_landing,
                    }
                })
                .collect();
            group.bench_with_input(BenchmarkId::new("pushers", n), &n, |b, _| {
                b.iter_custom(|iters| run(&mut pushers, iters))
            });
            // Hub CPU per accepted push does not depend on how busy the
            // machine's other processes keep the cores.
            let accepted = hub.stat("pushes_accepted");
            let cpu = hub.cpu_time().unwrap_or_default();
            eprintln!(
                "hub ({label}, {n} pushers): {accepted} accepted, {} landed by the hub, {} refused, \
                 {} write transactions, {:.2} ms hub CPU per accepted push, peak RSS {} kB",
                hub.stat("hub_rebases"),
                hub.stat("pushes_refused"),
                hub.stat("batches"),
                cpu.as_secs_f64() * 1000.0 / accepted.max(1) as f64,
                hub.peak_rss_kb()
                    .map_or("unknown".to_string(), |kb| kb.to_string())
            );
        }
        group.finish();
    }
}

criterion_group!(benches, pushes);
criterion_main!(benches);

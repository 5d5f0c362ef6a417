//! The `hub` binary end to end: the real `fossil` client and our own client
//! against it, tip broadcasts seen by a JetStream subscriber, durability
//! across SIGKILL, many concurrent pushers on a moving tip, bad HTTP, and
//! the exit-2 startup failures.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime};

use herd::coord::{subscribe_tips, Scope, TipEvent, TipSubscription};
use herd::repo::{ArtifactHash, CheckinSpec, FileChange, Repository};
use herd::xfer::{encode, encode_body, parse, Card, Client, ContentType, PushOutcome};
use tempfile::TempDir;

use crate::helpers::{fossil, fossil_ok, fossil_sql, free_port, HubProcess, NatsServer};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

const COUNT_CHECKINS: &str = "SELECT count(*) FROM event WHERE type='ci'";

fn commit(repo: &Repository, parent: &ArtifactHash, path: &str, body: &str) -> ArtifactHash {
    repo.commit(&CheckinSpec {
        parent: parent.clone(),
        changes: vec![FileChange {
            path: path.into(),
            content: Some(body.as_bytes().to_vec()),
        }],
        comment: format!("change {path}"),
        user: "tester".into(),
        time: SystemTime::now(),
    })
    .unwrap()
    .hash
}

/// Pushes `checkin` with a hand-built request carrying W3C trace headers
/// (the xfer client sets none); returns the reply's cards.
fn push_traced(url: &str, repo: &Repository, checkin: &ArtifactHash) -> Vec<Card> {
    let mut cards = vec![Card::Push {
        server_code: repo.server_code().unwrap(),
        project_code: repo.project_code().unwrap(),
    }];
    for artifact in repo.checkin_artifacts(checkin).unwrap() {
        cards.push(Card::File {
            hash: artifact.to_string(),
            delta_source: None,
            payload: repo.content(&artifact).unwrap().unwrap(),
        });
    }
    let body = encode_body(ContentType::Fossil, &encode(&cards));
    let reply = ureq::post(url)
        .set("Content-Type", ContentType::Fossil.as_str())
        .set("traceparent", TRACEPARENT)
        .set("tracestate", "herd=test")
        .timeout(Duration::from_secs(30))
        .send_bytes(&body)
        .expect("push request");
    assert_eq!(reply.content_type(), ContentType::Fossil.as_str());
    let mut raw = Vec::new();
    reply.into_reader().read_to_end(&mut raw).unwrap();
    let text = herd::xfer::decode_body(ContentType::Fossil, &raw, &Default::default()).unwrap();
    parse(&text).unwrap()
}

/// Collects `n` tip events, each within a timeout.
fn next_tips(rt: &tokio::runtime::Runtime, sub: &mut TipSubscription, n: usize) -> Vec<TipEvent> {
    (0..n)
        .map(|i| {
            rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(15), sub.next())
                    .await
                    .unwrap_or_else(|_| panic!("tip {i} not broadcast within 15s"))
                    .expect("subscription open")
                    .expect("tip decodes")
            })
        })
        .collect()
}

fn subscribe(
    rt: &tokio::runtime::Runtime,
    nats: &NatsServer,
    project_code: &str,
) -> TipSubscription {
    let scope = Scope::for_project(project_code).unwrap();
    rt.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        subscribe_tips(client, scope.as_str(), Duration::from_secs(5))
            .await
            .unwrap()
    })
}

#[test]
fn real_fossil_syncs_through_the_hub_and_every_advance_is_broadcast() {
    let tmp = TempDir::new().unwrap();
    let home = tmp.path();
    let nats = NatsServer::start();
    let hub_path = tmp.path().join("hub.fossil");
    let mut hub = HubProcess::start(&hub_path, Some(&nats.url()), &["--project-name", "t"]);
    assert_eq!(
        hub.ready.tip.len(),
        64,
        "a new repository's tip is its root"
    );
    assert_eq!(hub.stat("trunk_commits"), 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The subscription must be dropped inside the runtime.
    let _rt_guard = rt.enter();
    let mut tips = subscribe(&rt, &nats, &hub.ready.project_code);

    // fossil clones, commits and pushes.
    let clone = tmp.path().join("f.fossil");
    let url = hub.url();
    fossil_ok(home, home, &["clone", &url, clone.to_str().unwrap()]);
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    fossil_ok(home, &work, &["open", clone.to_str().unwrap()]);
    fossil_ok(home, &work, &["settings", "autosync", "off"]);
    std::fs::write(work.join("a.txt"), "from real fossil\n").unwrap();
    fossil_ok(home, &work, &["add", "a.txt"]);
    fossil_ok(home, &work, &["commit", "-m", "fossil", "--no-warnings"]);
    let out = fossil_ok(home, &work, &["push", &url]);
    assert!(!out.contains("Error"), "{out}");
    let fossil_tip = fossil_sql(
        home,
        &clone,
        "SELECT uuid FROM blob JOIN event ON objid=rid WHERE type='ci' ORDER BY mtime DESC LIMIT 1",
    );
    assert_eq!(hub.stats()["tip"], fossil_tip.as_str());

    // Our client clones and pushes with trace context; fossil pulls it.
    let client = Client::new(&url);
    let leaf = client.clone_into(&tmp.path().join("leaf.fossil")).unwrap();
    let ours = commit(
        &leaf,
        &leaf.trunk_tip().unwrap().unwrap(),
        "b.txt",
        "ours\n",
    );
    let reply = push_traced(&url, &leaf, &ours);
    assert!(
        !reply.iter().any(|c| matches!(c, Card::Error(_))),
        "push refused: {reply:?}"
    );
    let out = fossil_ok(home, &work, &["pull", &url]);
    assert!(!out.contains("Error"), "{out}");
    assert_eq!(fossil_sql(home, &clone, COUNT_CHECKINS), "3");

    // A stale push is refused and not broadcast.
    std::fs::write(work.join("a.txt"), "stale\n").unwrap();
    fossil_ok(
        home,
        &work,
        &["commit", "-m", "stale", "--no-warnings", "--allow-fork"],
    );
    let out = fossil(home, &work, &["push", &url]);
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("would fork"), "{text}");

    // One broadcast per advance, in order, the second with our trace.
    let events = next_tips(&rt, &mut tips, 2);
    assert_eq!(events[0].tip.hash, fossil_tip);
    assert_eq!(events[0].tip.seq, 1);
    assert_eq!(
        events[0].tip.parent.as_deref(),
        Some(hub.ready.tip.as_str())
    );
    assert_eq!(events[1].tip.hash, ours.as_str());
    assert_eq!(events[1].tip.seq, 2);
    assert_eq!(events[1].tip.parent.as_deref(), Some(fossil_tip.as_str()));
    assert_eq!(events[1].trace.traceparent.as_deref(), Some(TRACEPARENT));
    assert_eq!(events[1].trace.tracestate.as_deref(), Some("herd=test"));
    assert!(events[0].stream_seq < events[1].stream_seq);
    let stats = hub.stats();
    assert_eq!(stats["pushes_accepted"], 2);
    assert_eq!(stats["pushes_refused"], 1);
    assert_eq!(stats["broadcasts_published"], 2);
    assert_eq!(stats["trunk_leaves"], 1);

    // SIGTERM: a clean stop, then fossil agrees with what /stats said.
    let status = hub.terminate();
    assert_eq!(status.code(), Some(0), "log:\n{}", hub.log_tail());
    let wal = hub_path.with_extension("fossil-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "the WAL was checkpointed"
    );
    let count: u64 = fossil_sql(home, &hub_path, COUNT_CHECKINS).parse().unwrap();
    assert_eq!(count - 1, stats["trunk_commits"].as_u64().unwrap());
    assert_eq!(
        fossil_sql(home, &hub_path, "SELECT count(*) FROM blob WHERE size>=0"),
        stats["artifacts"].to_string()
    );
    fossil_ok(
        home,
        home,
        &["test-integrity", "-R", hub_path.to_str().unwrap()],
    );
}

/// A leaf for the concurrent tests: its own clone, pushing check-ins on the
/// moving tip with rebase-and-retry.
struct Pusher {
    client: Client,
    repo: Repository,
    slot: usize,
    made: usize,
}

impl Pusher {
    fn clone_from(url: &str, dir: &Path, slot: usize) -> Pusher {
        let client = Client::new(url);
        let repo = client
            .clone_into(&dir.join(format!("leaf-{slot}.fossil")))
            .unwrap();
        Pusher {
            client,
            repo,
            slot,
            made: 0,
        }
    }

    /// Commits one new file on the local tip and pushes it until it lands;
    /// returns the landed check-in and the refusals, or the client's error.
    fn land_one(&mut self) -> Result<(ArtifactHash, u32), herd::xfer::ClientError> {
        let tip = self.repo.trunk_tip().unwrap().unwrap();
        let path = format!("slot-{}/file-{}.txt", self.slot, self.made);
        self.made += 1;
        let mut mine = commit(&self.repo, &tip, &path, &format!("{path}\n").repeat(8));
        let mut refusals = 0;
        for _ in 0..10_000 {
            match self.client.push(&self.repo, std::slice::from_ref(&mine))? {
                PushOutcome::Accepted { .. } => return Ok((mine, refusals)),
                PushOutcome::Refused { tip, .. } => {
                    refusals += 1;
                    mine = self.repo.rebase(&mine, &tip).unwrap().hash;
                }
                other => panic!("a plain push answered {other:?}"),
            }
        }
        panic!("slot {} never landed a push", self.slot);
    }
}

#[test]
fn acknowledged_pushes_survive_sigkill() {
    const PUSHERS: usize = 4;
    const ACKS_BEFORE_KILL: usize = 24;
    let tmp = TempDir::new().unwrap();
    let hub_path = tmp.path().join("hub.fossil");
    let mut hub = HubProcess::start(&hub_path, None, &[]);
    let url = hub.url();
    let pushers: Vec<Pusher> = (0..PUSHERS)
        .map(|i| Pusher::clone_from(&url, tmp.path(), i))
        .collect();
    let (acks, acked) = std::sync::mpsc::channel::<ArtifactHash>();
    let threads: Vec<_> = pushers
        .into_iter()
        .map(|mut pusher| {
            let acks = acks.clone();
            std::thread::spawn(move || {
                // Push until the hub dies under us.
                while let Ok((hash, _)) = pusher.land_one() {
                    if acks.send(hash).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(acks);
    let mut landed = Vec::new();
    while landed.len() < ACKS_BEFORE_KILL {
        let hash = acked
            .recv_timeout(Duration::from_secs(30))
            .expect("pushes are acknowledged");
        landed.push(hash);
    }
    hub.kill();
    for t in threads {
        t.join().unwrap();
    }
    // Acknowledgements that arrived before the kill count too.
    landed.extend(acked.try_iter());

    let hub = HubProcess::start(&hub_path, None, &[]);
    let repo = Repository::open(&hub_path).unwrap();
    for hash in &landed {
        let held = repo.rid_of(hash).unwrap();
        assert!(
            held.is_some_and(|(_, phantom)| !phantom),
            "acknowledged check-in {hash} was lost"
        );
    }
    let stats = hub.stats();
    assert!(stats["trunk_commits"].as_u64().unwrap() >= landed.len() as u64);
    assert_eq!(stats["trunk_leaves"], 1, "trunk is linear");
    assert_eq!(
        repo.trunk_after(None).unwrap().len() as u64,
        stats["trunk_commits"].as_u64().unwrap() + 1,
        "every check-in is on one line from the root"
    );
    drop(repo);
    drop(hub);
    let home = tmp.path();
    fossil_ok(
        home,
        home,
        &["test-integrity", "-R", hub_path.to_str().unwrap()],
    );
}

#[test]
fn thirty_two_concurrent_pushers_all_land_on_a_linear_trunk() {
    const PUSHERS: usize = 32;
    const RUN_FOR: Duration = Duration::from_secs(3);
    let tmp = TempDir::new().unwrap();
    let hub_path = tmp.path().join("hub.fossil");
    let hub = HubProcess::start(&hub_path, None, &[]);
    let url = hub.url();
    let pushers: Vec<Pusher> = (0..PUSHERS)
        .map(|i| Pusher::clone_from(&url, tmp.path(), i))
        .collect();
    let barrier = Arc::new(Barrier::new(PUSHERS));
    let landed = Arc::new(Mutex::new(Vec::new()));
    let refusals = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for mut pusher in pushers {
            let barrier = Arc::clone(&barrier);
            let landed = Arc::clone(&landed);
            let refusals = Arc::clone(&refusals);
            s.spawn(move || {
                barrier.wait();
                let start = Instant::now();
                // Zero think time until the deadline; every push started lands.
                while start.elapsed() < RUN_FOR {
                    let (hash, refused) = pusher.land_one().expect("push");
                    refusals.fetch_add(u64::from(refused), Ordering::Relaxed);
                    landed.lock().unwrap().push(hash);
                }
            });
        }
    });
    let landed = landed.lock().unwrap().clone();
    assert!(landed.len() >= PUSHERS, "every pusher landed at least once");
    let stats = hub.stats();
    assert_eq!(stats["trunk_commits"], landed.len() as u64);
    assert_eq!(stats["pushes_accepted"], landed.len() as u64);
    assert_eq!(stats["pushes_refused"], refusals.load(Ordering::Relaxed));
    assert_eq!(stats["trunk_leaves"], 1);
    let repo = Repository::open(&hub_path).unwrap();
    let line = repo.trunk_after(None).unwrap();
    assert_eq!(line.len(), landed.len() + 1, "one line from the root");
    let on_line: std::collections::HashSet<_> = line.into_iter().collect();
    assert!(landed.iter().all(|h| on_line.contains(h)));
}

#[test]
fn broadcasts_resume_after_nats_comes_back() {
    let tmp = TempDir::new().unwrap();
    let mut nats = NatsServer::start();
    let hub_path = tmp.path().join("hub.fossil");
    let hub = HubProcess::start(&hub_path, Some(&nats.url()), &[]);
    let mut pusher = Pusher::clone_from(&hub.url(), tmp.path(), 0);
    pusher.land_one().unwrap();
    let health = |hub: &HubProcess| match ureq::get(&format!("{}/healthz", hub.ready.http)).call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("healthz: {e}"),
    };
    assert_eq!(health(&hub), 200);

    // NATS away: sync goes on, health says so.
    nats.stop();
    pusher.land_one().unwrap();
    let (latest, _) = pusher.land_one().unwrap();
    assert_eq!(hub.stats()["tip"], latest.as_str());
    assert_eq!(health(&hub), 503);

    // Back: the latest tip is published again without another push.
    nats.restart();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _rt_guard = rt.enter();
    let mut tips = subscribe(&rt, &nats, &hub.ready.project_code);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let event = &next_tips(&rt, &mut tips, 1)[0];
        if event.tip.hash == latest.as_str() {
            assert_eq!(event.tip.seq, 3);
            break;
        }
        assert!(Instant::now() < deadline, "latest tip never republished");
    }
    let (after, _) = pusher.land_one().unwrap();
    let event = &next_tips(&rt, &mut tips, 1)[0];
    assert_eq!(event.tip.hash, after.as_str());
    assert_eq!(event.tip.seq, 4);
    assert_eq!(health(&hub), 200);
}

/// Sends raw bytes and returns the status code of the reply.
fn raw_status(addr: &str, request: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    while !reply.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&reply).to_string();
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {line:?}"))
}

#[test]
fn bad_http_gets_400_413_and_404() {
    let tmp = TempDir::new().unwrap();
    let hub = HubProcess::start(&tmp.path().join("hub.fossil"), None, &[]);
    let addr = hub.ready.http.trim_start_matches("http://").to_string();
    assert_eq!(raw_status(&addr, b"NOT HTTP AT ALL\r\n\r\n"), 400);
    assert_eq!(
        raw_status(
            &addr,
            b"POST / HTTP/1.0\r\nContent-Type: application/x-fossil\r\nContent-Length: 99999999999\r\n\r\nxx"
        ),
        413
    );
    assert_eq!(raw_status(&addr, b"GET /nope HTTP/1.0\r\n\r\n"), 404);
    assert_eq!(
        raw_status(
            &addr,
            b"POST / HTTP/1.0\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n"
        ),
        404
    );
    assert_eq!(raw_status(&addr, b"GET /healthz HTTP/1.0\r\n\r\n"), 200);
    // A sync body that is not a card stream: HTTP 200 with an error card.
    let reply = ureq::post(&hub.url())
        .set("Content-Type", "application/x-fossil-debug")
        .send_bytes(b"file abc 99999\nshort")
        .unwrap();
    assert_eq!(reply.content_type(), "application/x-fossil-debug");
    let text = reply.into_string().unwrap();
    assert!(text.starts_with("error "), "{text}");
    // The hub is still serving.
    assert_eq!(hub.stat("trunk_commits"), 0);
    assert_eq!(
        hub.stat("requests"),
        2,
        "sync requests only: the 413 and the bad body"
    );
    assert!(hub.stat("http_requests") >= 7);
}

fn assert_startup_failure(args: &[&OsStr], expect: &str) {
    let exit = HubProcess::run_to_exit(args);
    assert_eq!(exit.status.code(), Some(2), "stderr:\n{}", exit.stderr);
    assert!(exit.stdout.is_empty(), "no readiness line: {}", exit.stdout);
    let errors: Vec<&str> = exit
        .stderr
        .lines()
        .filter(|l| l.starts_with("hub: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line:\n{}", exit.stderr);
    assert!(
        errors[0].contains(expect),
        "{expect:?} not in {:?}",
        errors[0]
    );
    assert!(!exit.stderr.contains("panicked"), "{}", exit.stderr);
    assert!(!exit.stderr.contains("stack backtrace"), "{}", exit.stderr);
}

#[test]
fn startup_failures_exit_2_with_one_line() {
    let tmp = TempDir::new().unwrap();
    let repo = tmp.path().join("hub.fossil");
    // Port in use.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    assert_startup_failure(
        &[
            OsStr::new("--repo"),
            repo.as_os_str(),
            OsStr::new("--listen"),
            OsStr::new(&listen),
        ],
        &format!("listen on {listen}"),
    );
    assert!(!repo.exists(), "a taken port leaves no repository behind");
    // A repository path in a directory that does not exist.
    let missing = tmp.path().join("no/such/dir/hub.fossil");
    assert_startup_failure(
        &[OsStr::new("--repo"), missing.as_os_str()],
        "create repository",
    );
    // A file that is not a repository.
    let junk = tmp.path().join("junk.fossil");
    std::fs::write(&junk, "not sqlite").unwrap();
    assert_startup_failure(&[OsStr::new("--repo"), junk.as_os_str()], "open repository");
    // NATS unreachable.
    let url = format!("nats://127.0.0.1:{}", free_port());
    assert_startup_failure(
        &[
            OsStr::new("--repo"),
            repo.as_os_str(),
            OsStr::new("--nats-url"),
            OsStr::new(&url),
        ],
        &format!("nats at {url}"),
    );
}

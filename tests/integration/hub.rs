//! The `hub` binary end to end: the real `fossil` client and our own client
//! against it, tip broadcasts seen by a JetStream subscriber, durability
//! across SIGKILL, many concurrent pushers on a moving tip, bad HTTP, and
//! the exit-2 startup failures.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime};

use herd::coord::{subscribe_tips, Scope, TipEvent, TipSubscription};
use herd::repo::{ArtifactHash, CheckinSpec, FileChange, Repository};
use herd::xfer::{encode, encode_body, parse, Card, Client, ContentType, PushOutcome};
use tempfile::TempDir;

use crate::helpers::{free_port, HubProcess, NatsServer};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Runs fossil with HOME and USER set, in `dir`.
fn fossil(home: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new("fossil")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("USER", "tester")
        .stdin(Stdio::null())
        .output()
        .expect("the fossil binary (2.21) must be on PATH")
}

fn fossil_ok(home: &Path, dir: &Path, args: &[&str]) -> String {
    let out = fossil(home, dir, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "fossil {args:?} failed: {text}");
    text
}

fn fossil_sql(home: &Path, repo: &Path, sql: &str) -> String {
    fossil_ok(home, home, &["sql", "-R", repo.to_str().unwrap(), sql])
        .trim()
        .trim_matches('\'')
        .to_string()
}

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

fn subscribe(rt: &tokio::runtime::Runtime, nats: &NatsServer, project_code: &str) -> TipSubscription {
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
    assert_eq!(hub.ready.tip.len(), 64, "a new repository's tip is its root");
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
    let ours = commit(&leaf, &leaf.trunk_tip().unwrap().unwrap(), "b.txt", "ours\n");
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
    fossil_ok(home, &work, &["commit", "-m", "stale", "--no-warnings", "--allow-fork"]);
    let out = fossil(home, &work, &["push", &url]);
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("would fork"), "{text}");

    // One broadcast per advance, in order, the second with our trace.
    let events = next_tips(&rt, &mut tips, 2);
    assert_eq!(events[0].tip.hash, fossil_tip);
    assert_eq!(events[0].tip.seq, 1);
    assert_eq!(events[0].tip.parent.as_deref(), Some(hub.ready.tip.as_str()));
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
    fossil_ok(home, home, &["test-integrity", "-R", hub_path.to_str().unwrap()]);
}

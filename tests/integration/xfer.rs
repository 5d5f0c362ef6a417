//! The sync protocol against the real `fossil` 2.21 binary, both ways, and
//! herd's fast path, concurrency and bad input against our own server (a
//! tiny_http server in the test, serving `xfer::handle` over a repository
//! behind a mutex, as the hub's single writer would).

use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;
use std::time::SystemTime;

use herd::repo::{ArtifactHash, CheckinSpec, CreateOptions, FileChange, Repository};
use herd::xfer::{
    self, encode, encode_body, Card, Client, ContentType, PushOutcome, Request, ServerConfig,
};
use tempfile::TempDir;

use crate::helpers::{fossil_checkout, fossil_ok, fossil_sql, FossilServer};

/// Our server on a loopback port; Drop stops it and joins its threads.
struct TestServer {
    url: String,
    http: Arc<tiny_http::Server>,
    threads: Vec<JoinHandle<()>>,
    repo: Arc<Mutex<Repository>>,
}

impl TestServer {
    fn start(repo: Repository, threads: usize) -> TestServer {
        TestServer::start_with(repo, threads, ServerConfig::default())
    }

    fn start_with(repo: Repository, threads: usize, config: ServerConfig) -> TestServer {
        let http = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind loopback"));
        let port = http.server_addr().to_ip().expect("ip listener").port();
        let repo = Arc::new(Mutex::new(repo));
        let threads = (0..threads)
            .map(|_| {
                let http = Arc::clone(&http);
                let repo = Arc::clone(&repo);
                std::thread::spawn(move || serve(&http, &repo, &config))
            })
            .collect();
        TestServer {
            url: format!("http://127.0.0.1:{port}/"),
            http,
            threads,
            repo,
        }
    }

    fn with_repo<T>(&self, f: impl FnOnce(&Repository) -> T) -> T {
        f(&self.repo.lock().unwrap())
    }
}

fn serve(http: &tiny_http::Server, repo: &Mutex<Repository>, config: &ServerConfig) {
    while let Ok(mut request) = http.recv() {
        let content_type = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Content-Type"))
            .map(|h| h.value.as_str().to_string())
            .unwrap_or_default();
        let mut body = Vec::new();
        if std::io::Read::read_to_end(request.as_reader(), &mut body).is_err() {
            continue;
        }
        let response = {
            let repo = repo.lock().unwrap();
            xfer::handle_with(
                &repo,
                &Request {
                    content_type: &content_type,
                    body: &body,
                    peer: Some("127.0.0.1"),
                },
                config,
            )
        };
        let header =
            tiny_http::Header::from_bytes("Content-Type", response.content_type.as_str()).unwrap();
        let _ = request.respond(tiny_http::Response::from_data(response.body).with_header(header));
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        for _ in &self.threads {
            self.http.unblock();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn new_repo(path: &Path, nobody_caps: &str) -> Repository {
    Repository::create(
        path,
        &CreateOptions {
            project_name: Some("xfer-test".into()),
            admin_user: "admin".into(),
            nobody_caps: nobody_caps.into(),
        },
    )
    .unwrap()
}

fn commit(repo: &Repository, parent: &ArtifactHash, path: &str, body: &str) -> ArtifactHash {
    repo.commit(&CheckinSpec {
        parent: parent.clone(),
        changes: vec![FileChange {
            path: path.into(),
            content: Some(body.as_bytes().to_vec()),
        }],
        comment: format!("change {path}"),
        user: "admin".into(),
        time: SystemTime::now(),
    })
    .unwrap()
    .hash
}

/// `n` linear check-ins on the trunk tip; returns the new tip.
fn history(repo: &Repository, n: usize, tag: &str) -> ArtifactHash {
    let mut tip = repo.trunk_tip().unwrap().unwrap();
    for i in 0..n {
        tip = commit(
            repo,
            &tip,
            &format!("{tag}/file {i}.txt"),
            &format!("{tag} {i}\n").repeat(20 + i),
        );
    }
    tip
}

#[test]
fn real_fossil_clones_pulls_and_pushes_against_our_server() {
    let tmp = TempDir::new().unwrap();
    let home = tmp.path();
    let hub_path = tmp.path().join("hub.fossil");
    let hub = new_repo(&hub_path, "gio");
    hub.set_user("alice", "secret-pw", "gio").unwrap();
    history(&hub, 5, "a");
    let server = TestServer::start(hub, 2);

    // Clone: every check-in arrives and fossil finds the clone sound.
    let clone = tmp.path().join("x.fossil");
    fossil_ok(home, home, &["clone", &server.url, clone.to_str().unwrap()]);
    let ours = server.with_repo(|r| r.trunk_commits().unwrap());
    let count = "SELECT count(*) FROM event WHERE type='ci'";
    assert_eq!(fossil_sql(home, &clone, count), ours.to_string());
    fossil_ok(
        home,
        home,
        &["test-integrity", "-R", clone.to_str().unwrap()],
    );

    // Pull: new check-ins on our side reach fossil.
    let tip = server.with_repo(|r| history(r, 3, "b"));
    let out = fossil_ok(home, home, &["pull", "-R", clone.to_str().unwrap()]);
    assert!(!out.contains("Error"), "{out}");
    assert_eq!(fossil_sql(home, &clone, count), (ours + 3).to_string());
    let has_tip = format!("SELECT count(*) FROM blob WHERE uuid='{tip}' AND size>=0");
    assert_eq!(fossil_sql(home, &clone, &has_tip), "1");

    // Push from a real checkout on the current tip, logged in as alice.
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let clone_s = clone.to_str().unwrap();
    fossil_ok(home, &work, &["open", clone_s]);
    fossil_ok(home, &work, &["settings", "autosync", "off"]);
    std::fs::write(work.join("from fossil.txt"), "written by real fossil\n").unwrap();
    fossil_ok(home, &work, &["add", "from fossil.txt"]);
    fossil_ok(
        home,
        &work,
        &["commit", "-m", "real fossil check-in", "--no-warnings"],
    );
    let fossil_tip = fossil_sql(
        home,
        &clone,
        "SELECT uuid FROM blob JOIN event ON objid=rid WHERE type='ci' ORDER BY mtime DESC LIMIT 1",
    );
    let port_url = server.url.replace("http://", "http://alice:secret-pw@");
    let out = fossil_ok(home, &work, &["push", &port_url]);
    assert!(!out.contains("Error"), "{out}");
    let hub_tip = server.with_repo(|r| r.trunk_tip().unwrap().unwrap());
    assert_eq!(hub_tip.as_str(), fossil_tip);
    assert_eq!(server.with_repo(|r| r.trunk_leaves().unwrap()), 1);

    // A check-in on a stale parent is refused, naming the tip; trunk unchanged.
    let moved = server.with_repo(|r| history(r, 1, "c"));
    std::fs::write(work.join("from fossil.txt"), "a stale change\n").unwrap();
    fossil_ok(home, &work, &["commit", "-m", "stale", "--no-warnings"]);
    let out = fossil_ok(home, &work, &["push", &server.url]);
    assert!(out.contains("Error: would fork"), "{out}");
    assert!(out.contains(moved.as_str()), "refusal names the tip: {out}");
    server.with_repo(|r| {
        assert_eq!(r.trunk_tip().unwrap().unwrap(), moved);
        assert_eq!(r.trunk_leaves().unwrap(), 1);
    });
}

#[test]
fn our_client_clones_pulls_and_pushes_against_fossil_server() {
    let tmp = TempDir::new().unwrap();
    let home = tmp.path();
    let (repo_path, work) = fossil_checkout(home);
    // A file edited several times, so fossil stores deltas.
    let mut text = String::new();
    for i in 0..4 {
        text.push_str(&format!("line {i} of a growing file with some text\n").repeat(10));
        std::fs::write(work.join("grow.txt"), &text).unwrap();
        if i == 0 {
            fossil_ok(home, &work, &["add", "grow.txt"]);
        }
        fossil_ok(
            home,
            &work,
            &["commit", "-m", &format!("edit {i}"), "--no-warnings"],
        );
    }
    let server = FossilServer::start(home, &repo_path);
    let client = Client::new(&server.url);

    let local_path = tmp.path().join("leaf.fossil");
    let local = client.clone_into(&local_path).unwrap();
    let count = "SELECT count(*) FROM event WHERE type='ci'";
    assert_eq!(
        local.trunk_commits().unwrap().to_string(),
        fossil_sql(home, &repo_path, count)
    );
    // fossil ignores the sparse pragma: a sparse clone is whole.
    let sparse = Client::new(&server.url).sparse();
    let whole = sparse
        .clone_into(&tmp.path().join("sparse.fossil"))
        .unwrap();
    assert_eq!(
        whole.artifact_count().unwrap(),
        local.artifact_count().unwrap()
    );
    let tip_sql =
        "SELECT uuid FROM blob JOIN event ON objid=rid WHERE type='ci' ORDER BY mtime DESC LIMIT 1";
    assert_eq!(
        local.trunk_tip().unwrap().unwrap().as_str(),
        fossil_sql(home, &repo_path, tip_sql)
    );

    // Pull a new fossil check-in (generic rounds).
    text.push_str("one more line\n");
    std::fs::write(work.join("grow.txt"), &text).unwrap();
    fossil_ok(home, &work, &["commit", "-m", "edit more", "--no-warnings"]);
    let pulled = client.pull(&local).unwrap();
    assert!(pulled.received >= 2, "{pulled:?}");
    assert!(
        pulled.rounds >= 2,
        "fossil needs igot/gimme rounds: {pulled:?}"
    );
    assert_eq!(
        local.trunk_tip().unwrap().unwrap().as_str(),
        fossil_sql(home, &repo_path, tip_sql)
    );

    // Push a check-in of ours; fossil takes it and stays sound.
    let parent = local.trunk_tip().unwrap().unwrap();
    let ours = commit(&local, &parent, "ours/new file.txt", "from herd's client\n");
    let outcome = client.push(&local, std::slice::from_ref(&ours)).unwrap();
    assert!(
        matches!(outcome, PushOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    assert_eq!(fossil_sql(home, &repo_path, tip_sql), ours.as_str());
    fossil_ok(
        home,
        home,
        &["test-integrity", "-R", repo_path.to_str().unwrap()],
    );
}

#[test]
fn fast_path_pull_push_and_refusal_take_one_round_trip_each() {
    let tmp = TempDir::new().unwrap();
    let hub = new_repo(&tmp.path().join("hub.fossil"), "gio");
    history(&hub, 4, "h");
    let server = TestServer::start(hub, 2);

    let a = Client::new(&server.url);
    let b = Client::new(&server.url);
    let ra = a.clone_into(&tmp.path().join("a.fossil")).unwrap();
    let rb = b.clone_into(&tmp.path().join("b.fossil")).unwrap();
    assert_eq!(ra.trunk_commits().unwrap(), 5);

    // Push: one round trip.
    let before = a.requests();
    let ca = commit(&ra, &ra.trunk_tip().unwrap().unwrap(), "a/1.txt", "a one\n");
    let outcome = a.push(&ra, std::slice::from_ref(&ca)).unwrap();
    assert_eq!(a.requests() - before, 1);
    assert_eq!(
        outcome,
        PushOutcome::Accepted {
            tip: Some(ca.clone()),
            // The root and four check-ins, then this one: position 5.
            seq: Some(5)
        }
    );

    // Pull of new check-ins: one round trip.
    let before = b.requests();
    let pulled = b.pull(&rb).unwrap();
    assert_eq!(b.requests() - before, 1);
    assert_eq!(pulled.tip, Some((ca.clone(), 5)));
    assert_eq!(rb.trunk_tip().unwrap().unwrap(), ca);
    assert_eq!(pulled.received, 2, "a.txt and its manifest");

    // A advances again; B commits on its stale tip and is refused in one
    // round trip that brings what it needs to rebase.
    let ca2 = commit(&ra, &ca, "a/2.txt", "a two\n");
    assert!(matches!(
        a.push(&ra, std::slice::from_ref(&ca2)).unwrap(),
        PushOutcome::Accepted { .. }
    ));
    let cb = commit(&rb, &ca, "b/1.txt", "b one\n");
    let before = b.requests();
    let outcome = b.push(&rb, std::slice::from_ref(&cb)).unwrap();
    assert_eq!(b.requests() - before, 1);
    let PushOutcome::Refused {
        tip,
        message,
        received,
        ..
    } = outcome
    else {
        panic!("expected a refusal, got {outcome:?}");
    };
    assert_eq!(tip, ca2);
    assert!(
        message.contains(cb.as_str()) && message.contains(ca2.as_str()),
        "{message}"
    );
    assert_eq!(received, 2);
    let rebased = rb.rebase(&cb, &tip).unwrap();
    let before = b.requests();
    let outcome = b.push(&rb, std::slice::from_ref(&rebased.hash)).unwrap();
    assert_eq!(b.requests() - before, 1);
    assert!(
        matches!(outcome, PushOutcome::Accepted { seq: Some(7), .. }),
        "{outcome:?}"
    );
    server.with_repo(|r| {
        assert_eq!(r.trunk_tip().unwrap().unwrap(), rebased.hash);
        assert_eq!(r.trunk_leaves().unwrap(), 1);
        assert_eq!(r.trunk_commits().unwrap(), 8);
    });
    // A catches up in one round trip and sees B's files.
    let before = a.requests();
    a.pull(&ra).unwrap();
    assert_eq!(a.requests() - before, 1);
    assert_eq!(ra.trunk_tip().unwrap().unwrap(), rebased.hash);
    assert!(ra.file_list(&rebased.hash).unwrap().contains_key("b/1.txt"));
}

#[test]
fn concurrent_pushes_on_one_parent_land_exactly_once_each_round() {
    const LEAVES: usize = 16;
    let tmp = TempDir::new().unwrap();
    let hub = new_repo(&tmp.path().join("hub.fossil"), "gio");
    history(&hub, 2, "h");
    let server = TestServer::start(hub, 4);
    let leaves: Vec<(Client, Repository)> = (0..LEAVES)
        .map(|i| {
            let c = Client::new(&server.url);
            let r = c
                .clone_into(&tmp.path().join(format!("leaf{i}.fossil")))
                .unwrap();
            (c, r)
        })
        .collect();
    let barrier = Arc::new(Barrier::new(LEAVES));
    let results: Vec<(usize, u32)> = std::thread::scope(|s| {
        let handles: Vec<_> = leaves
            .into_iter()
            .enumerate()
            .map(|(i, (client, repo))| {
                let barrier = Arc::clone(&barrier);
                s.spawn(move || {
                    let parent = repo.trunk_tip().unwrap().unwrap();
                    let mut mine = commit(&repo, &parent, &format!("slot-{i}/f.txt"), "x\n");
                    barrier.wait();
                    let mut refusals = 0;
                    for _ in 0..LEAVES * 2 {
                        match client.push(&repo, std::slice::from_ref(&mine)).unwrap() {
                            PushOutcome::Accepted { .. } => return (i, refusals),
                            PushOutcome::Refused { tip, .. } => {
                                refusals += 1;
                                mine = repo.rebase(&mine, &tip).unwrap().hash;
                            }
                            other => panic!("a plain push answered {other:?}"),
                        }
                    }
                    panic!("leaf {i} never landed");
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first_try = results.iter().filter(|(_, r)| *r == 0).count();
    assert_eq!(
        first_try, 1,
        "exactly one push on the shared parent lands: {results:?}"
    );
    server.with_repo(|r| {
        assert_eq!(r.trunk_commits().unwrap(), 3 + LEAVES as u64);
        assert_eq!(r.trunk_leaves().unwrap(), 1);
        let line = r.trunk_after(None).unwrap();
        assert_eq!(line.len(), 3 + LEAVES, "the trunk is one line");
        let tip = r.trunk_tip().unwrap().unwrap();
        let files = r.file_list(&tip).unwrap();
        for i in 0..LEAVES {
            assert!(files.contains_key(&format!("slot-{i}/f.txt")));
        }
    });
}

fn raw_request(server_repo: &Repository, content_type: &str, body: &[u8]) -> xfer::Response {
    xfer::handle(
        server_repo,
        &Request {
            content_type,
            body,
            peer: None,
        },
    )
}

fn reply_cards(response: &xfer::Response) -> Vec<Card> {
    let text = xfer::decode_body(
        response.content_type,
        &response.body,
        &xfer::Limits::default(),
    )
    .unwrap();
    xfer::parse(&text).unwrap()
}

fn errors(cards: &[Card]) -> Vec<String> {
    cards
        .iter()
        .filter_map(|c| match c {
            Card::Error(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn bad_input_gets_error_cards_and_stores_nothing() {
    let tmp = TempDir::new().unwrap();
    let repo = new_repo(&tmp.path().join("hub.fossil"), "gio");
    let pc = repo.project_code().unwrap();
    let count = || repo.artifact_count().unwrap();
    let before = count();
    let push = Card::Push {
        server_code: "x".into(),
        project_code: pc.clone(),
    };
    let good = b"good content\n".to_vec();
    let good_hash = ArtifactHash::sha3_of(&good).to_string();
    let fx = ContentType::Fossil.as_str();

    // Content not matching its hash, sent with a good file: nothing stored.
    let body = encode(&[
        push.clone(),
        Card::File {
            hash: good_hash.clone(),
            delta_source: None,
            payload: good.clone(),
        },
        Card::File {
            hash: ArtifactHash::sha3_of(b"other").to_string(),
            delta_source: None,
            payload: b"not other".to_vec(),
        },
    ]);
    let r = raw_request(&repo, fx, &encode_body(ContentType::Fossil, &body));
    let errs = errors(&reply_cards(&r));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("wrong hash on received artifact"),
        "{errs:?}"
    );
    assert_eq!(count(), before, "no partial artifact");

    // Wrong size in a file card (declares more than is there).
    let mut body = encode(std::slice::from_ref(&push));
    body.extend_from_slice(format!("file {good_hash} 999\n").as_bytes());
    body.extend_from_slice(&good);
    let r = raw_request(&repo, fx, &encode_body(ContentType::Fossil, &body));
    assert!(errors(&reply_cards(&r))[0].contains("truncated"));
    // A size too small: the rest of the payload is read as cards.
    let mut body = encode(std::slice::from_ref(&push));
    body.extend_from_slice(format!("file {good_hash} 4\n").as_bytes());
    body.extend_from_slice(&good);
    let r = raw_request(&repo, fx, &encode_body(ContentType::Fossil, &body));
    assert!(!errors(&reply_cards(&r)).is_empty());
    assert_eq!(count(), before);

    // Truncated bodies and bad zlib.
    let whole = encode_body(ContentType::Fossil, &encode(std::slice::from_ref(&push)));
    for body in [
        &whole[..2],
        &whole[..whole.len() - 3],
        b"\0\0\0\x10garbage-zlib".as_slice(),
    ] {
        let r = raw_request(&repo, fx, body);
        assert_eq!(r.outcome.errors, 1);
        assert!(errors(&reply_cards(&r))[0].starts_with("bad request"));
    }

    // Huge declared sizes fail before allocation.
    let huge = format!("push x {pc}\nfile {good_hash} 4294967296\n");
    let r = raw_request(&repo, "application/x-fossil-uncompressed", huge.as_bytes());
    assert!(errors(&reply_cards(&r))[0].contains("over the limit"));
    let r = raw_request(&repo, fx, &[0xff, 0xff, 0xff, 0xff, 0x78, 0x9c, 0, 0]);
    assert!(errors(&reply_cards(&r))[0].contains("over the limit"));

    // Unknown cards: `bad command`, processing goes on.
    let body =
        format!("pragma client-version 22100 20230226 192424\nfrobnicate now\npull x {pc}\n");
    let r = raw_request(&repo, "application/x-fossil-debug", body.as_bytes());
    let cards = reply_cards(&r);
    assert_eq!(
        errors(&cards),
        vec!["bad command: frobnicate now".to_string()]
    );
    assert!(
        cards.iter().any(|c| matches!(c, Card::Igot { .. })),
        "pull still served"
    );

    // Wrong project, missing capabilities, failed login.
    let r = raw_request(
        &repo,
        "application/x-fossil-debug",
        format!("pull x {}\n", "0".repeat(40)).as_bytes(),
    );
    assert_eq!(errors(&reply_cards(&r)), vec!["wrong project".to_string()]);
    repo.set_caps("nobody", "g").unwrap();
    let r = raw_request(
        &repo,
        "application/x-fossil-debug",
        format!("push x {pc}\n").as_bytes(),
    );
    assert_eq!(
        errors(&reply_cards(&r)),
        vec!["not authorized to write".to_string()]
    );
    let body = format!(
        "login admin {} {}\npull x {pc}\n",
        "1".repeat(40),
        "2".repeat(40)
    );
    let r = raw_request(&repo, "application/x-fossil-debug", body.as_bytes());
    assert_eq!(errors(&reply_cards(&r)), vec!["login failed".to_string()]);
    // Without the client-version pragma, SHA3 content is refused.
    repo.set_caps("nobody", "gio").unwrap();
    let tip = repo.trunk_tip().unwrap().unwrap();
    let body = format!("pull x {pc}\ngimme {tip}\n");
    let r = raw_request(&repo, "application/x-fossil-debug", body.as_bytes());
    let cards = reply_cards(&r);
    assert_eq!(
        errors(&cards),
        vec!["Fossil version 2.0 or later required.".to_string()]
    );
    assert!(
        !cards
            .iter()
            .any(|c| matches!(c, Card::File { .. } | Card::Igot { .. })),
        "nothing is sent after the refusal: {cards:?}"
    );
    assert_eq!(count(), before);
}

#[test]
fn clone_pages_with_clone_seqno() {
    // A small page budget makes the clone take several rounds.
    let tmp = TempDir::new().unwrap();
    let hub = new_repo(&tmp.path().join("hub.fossil"), "gio");
    let tip = history(&hub, 12, "p");
    let held = hub.artifact_count().unwrap();
    let config = ServerConfig {
        max_download: 600,
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(hub, 1, config);
    let client = Client::new(&server.url);
    let clone = client.clone_into(&tmp.path().join("c.fossil")).unwrap();
    assert!(
        client.requests() >= 4,
        "paged: {} requests",
        client.requests()
    );
    assert_eq!(clone.trunk_tip().unwrap().unwrap(), tip);
    assert_eq!(clone.trunk_commits().unwrap(), 13);
    assert_eq!(clone.trunk_leaves().unwrap(), 1);
    assert_eq!(clone.artifact_count().unwrap(), held);
    assert_eq!(
        clone.project_code().unwrap(),
        server.with_repo(|r| r.project_code().unwrap())
    );
}

#[test]
fn a_sparse_clone_is_one_round_holding_the_tip_manifest_only() {
    let tmp = TempDir::new().unwrap();
    let hub = new_repo(&tmp.path().join("hub.fossil"), "gio");
    let tip = history(&hub, 60, "s");
    let hub_artifacts = hub.artifact_count().unwrap();
    let server = TestServer::start(hub, 1);
    let client = Client::new(&server.url).sparse();
    let leaf = client.clone_into(&tmp.path().join("leaf.fossil")).unwrap();
    assert_eq!(client.requests(), 1, "one round");
    // The reply names the tip (the copy cannot tell trunk from its parts:
    // the branch tag propagates from the root, which it does not hold).
    assert_eq!(client.known_tip(), Some(tip.clone()));
    assert!(leaf.is_checkin(&tip).unwrap());
    assert_eq!(
        leaf.project_code().unwrap(),
        server.with_repo(|r| r.project_code().unwrap())
    );
    // The tip's manifest and at most its baseline: none of the 60 files,
    // none of the check-ins in between.
    let held = leaf.artifact_count().unwrap();
    assert!(
        (1..=2).contains(&held),
        "{held} of the hub's {hub_artifacts} artifacts"
    );
    // A check-in on it lands like any other.
    leaf.config_set("repo-cksum", "0").unwrap();
    let ours = commit(&leaf, &tip, "sparse/new.txt", "from a sparse clone\n");
    let outcome = client.push(&leaf, std::slice::from_ref(&ours)).unwrap();
    assert!(
        matches!(outcome, PushOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    server.with_repo(|r| {
        assert_eq!(r.trunk_tip().unwrap(), Some(ours.clone()));
        assert_eq!(r.trunk_leaves().unwrap(), 1);
        assert_eq!(r.trunk_commits().unwrap(), 62);
    });
}

#[test]
fn a_chain_of_checkins_lands_in_parent_order_from_one_push() {
    let tmp = TempDir::new().unwrap();
    let hub = new_repo(&tmp.path().join("hub.fossil"), "gio");
    let server = TestServer::start(hub, 1);
    let client = Client::new(&server.url);
    let leaf = client.clone_into(&tmp.path().join("leaf.fossil")).unwrap();
    let base = leaf.trunk_tip().unwrap().unwrap();
    let first = commit(&leaf, &base, "chain/1.txt", "one\n");
    let second = commit(&leaf, &first, "chain/2.txt", "two\n");
    // Children before parents in the request: the server orders them.
    let outcome = client
        .push(&leaf, &[second.clone(), first.clone()])
        .unwrap();
    assert_eq!(
        outcome,
        PushOutcome::Accepted {
            tip: Some(second.clone()),
            seq: Some(2)
        }
    );
    assert_eq!(client.requests(), 2, "one clone round, one push");
    server.with_repo(|r| {
        assert_eq!(r.trunk_after(Some(&base)).unwrap(), vec![first, second]);
        assert_eq!(r.trunk_leaves().unwrap(), 1);
    });
}

#[test]
fn a_tip_bundle_brings_a_leaf_one_step_forward_without_a_request() {
    let tmp = TempDir::new().unwrap();
    let hub = new_repo(&tmp.path().join("hub.fossil"), "gio");
    history(&hub, 3, "h");
    let server = TestServer::start(hub, 1);
    let client = Client::new(&server.url);
    let leaf = client.clone_into(&tmp.path().join("leaf.fossil")).unwrap();

    // Two advances on the hub; bundles are built after each, as the hub does.
    let (tip, one, two, bundle_one, bundle_two) = server.with_repo(|hub| {
        // A manifests-only bundle, in one part: what leaf landing reads.
        let bundle = |checkin: &herd::repo::ArtifactHash| {
            xfer::bundle::build(
                hub,
                std::slice::from_ref(checkin),
                xfer::fastpath::Artifacts::Manifests,
                1 << 20,
            )
            .unwrap()
            .pop()
            .expect("small bundle")
        };
        let tip = hub.trunk_tip().unwrap().unwrap();
        let one = commit(hub, &tip, "n/one.txt", &"one\n".repeat(40));
        let bundle_one = bundle(&one);
        let two = commit(hub, &one, "n/two.txt", &"two\n".repeat(40));
        let bundle_two = bundle(&two);
        (tip, one, two, bundle_one, bundle_two)
    });

    // Out of order: the second bundle's parent is not the leaf's tip.
    let before_tip = leaf.trunk_tip().unwrap();
    assert!(client.apply_bundle(&leaf, &bundle_two, &two, &one).is_err());
    assert_eq!(leaf.trunk_tip().unwrap(), before_tip, "nothing kept");

    // A bundle carries the manifest alone: a leaf keeps other writers'
    // manifests and leaves their files phantoms.
    let requests = client.requests();
    assert_eq!(
        client.apply_bundle(&leaf, &bundle_one, &one, &tip).unwrap(),
        1
    );
    assert_eq!(
        client.apply_bundle(&leaf, &bundle_two, &two, &one).unwrap(),
        1
    );
    assert_eq!(client.requests(), requests, "bundles cost no request");
    assert_eq!(leaf.trunk_tip().unwrap(), Some(two.clone()));
    assert_eq!(client.known_tip(), Some(two.clone()));
    let files = leaf.file_list(&two).unwrap();
    assert!(files.contains_key("n/one.txt") && files.contains_key("n/two.txt"));
    let (file, _) = &files["n/two.txt"];
    assert_eq!(
        leaf.rid_of(file).unwrap().map(|(_, phantom)| phantom),
        Some(true),
        "another writer's file is a phantom"
    );

    // Nothing left to pull afterwards.
    let pulled = client.pull(&leaf).unwrap();
    assert_eq!(pulled.received, 0);
}

//! Bad input and the hub's limits: the fuzz corpus replayed in-process
//! through the card codec, the manifest parser and the server function;
//! malformed, oversized, slow and idle HTTP clients against a real hub
//! process, each followed by a well-behaved client that must be served; and
//! a fake leaf printing garbage to a real `herd run`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use herd::repo::manifest::{parse_cluster, Manifest};
use herd::repo::{parse_artifact, CreateOptions, Repository};
use herd::xfer::{
    compress, decode_body, handle_with, parse_with, Card, ContentType, Limits, Request,
    ServerConfig,
};
use tempfile::TempDir;

use crate::helpers::{fossil, HubProcess};

/// The project code the server seeds carry (fuzz/fuzz_targets/server.rs).
const SEED_PROJECT_CODE: &str = "d0119d97d5ec4de58b41fc12bd6d374d9cbd9f7d";
/// A clone request as Fossil 2.21 sends it, uncompressed.
const CLONE: &[u8] = b"pragma client-version 22100 20230226 192424\nclone 3 1\n";

/// Every file of the committed seeds and of any local corpus, by target.
fn corpus_files(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in [
        fuzz.join("seeds").join(target),
        fuzz.join("corpus").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("read a corpus directory").path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// What the server may send back for one request: a clone page or a gimme
/// answer within its budget, plus the cards around it.
const REPLY_BOUND: usize = herd::xfer::server::MAX_DOWNLOAD as usize + (1 << 20);

#[test]
fn the_fuzz_corpus_replays_through_codec_manifest_and_server() {
    let limits = Limits {
        max_payload: 1 << 20,
        max_total: 4 << 20,
    };
    let config = ServerConfig {
        limits,
        ..ServerConfig::default()
    };
    let dir = TempDir::new().unwrap();
    let repo = Repository::create(
        &dir.path().join("replay.fossil"),
        &CreateOptions {
            project_name: None,
            admin_user: "admin".into(),
            nobody_caps: "gio".into(),
        },
    )
    .unwrap();
    repo.config_set("project-code", SEED_PROJECT_CODE).unwrap();

    let mut inputs = Vec::new();
    for target in ["codec", "server", "manifest"] {
        let files = corpus_files(target);
        assert!(!files.is_empty(), "no seeds for fuzz target {target}");
        inputs.extend(files);
    }
    let (mut cards_parsed, mut manifests, mut error_replies) = (0, 0, 0);
    for path in &inputs {
        let data = std::fs::read(path).unwrap();
        let name = path.display();
        // The codec: as a compressed body and as card text; what parses
        // re-encodes to the same cards.
        if let Ok(text) = decode_body(ContentType::Fossil, &data, &limits) {
            assert!(text.len() as u64 <= limits.max_total, "{name}");
            let _ = parse_with(&text, &limits);
        }
        if let Ok(cards) = parse_with(&data, &limits) {
            cards_parsed += 1;
            let again = parse_with(&herd::xfer::encode(&cards), &limits).unwrap();
            assert_eq!(again, cards, "{name}: re-encoded cards differ");
        }
        // The manifest parser, and its exact writer.
        let _ = parse_artifact(&data);
        let _ = parse_cluster(&data);
        if let Ok(m) = Manifest::parse(&data) {
            manifests += 1;
            assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m, "{name}");
        }
        // The server function, under every content type, and as the server
        // fuzz target reads its input (first byte picks the type).
        let as_target = data.split_first().map(|(&kind, body)| {
            let ct = [
                ContentType::Fossil,
                ContentType::Debug,
                ContentType::Uncompressed,
            ][usize::from(kind % 3)];
            (ct, body)
        });
        let plain = [
            ContentType::Fossil,
            ContentType::Debug,
            ContentType::Uncompressed,
        ]
        .map(|ct| (ct, &data[..]));
        for (ct, body) in as_target.into_iter().chain(plain) {
            let request = Request {
                content_type: ct.as_str(),
                body,
                peer: None,
            };
            let response = handle_with(&repo, &request, &config);
            assert!(!response.body.is_empty(), "{name}: empty reply");
            assert!(
                response.body.len() <= REPLY_BOUND,
                "{name}: reply of {} bytes",
                response.body.len()
            );
            // Clone pages answer a debug request uncompressed, as Fossil does.
            let text = decode_body(
                response.content_type,
                &response.body,
                &ServerConfig::default().limits,
            )
            .unwrap_or_else(|e| panic!("{name}: undecodable reply: {e}"));
            let cards = parse_with(&text, &ServerConfig::default().limits)
                .unwrap_or_else(|e| panic!("{name}: unparsable reply: {e}"));
            if matches!(cards.first(), Some(Card::Error(_))) {
                error_replies += 1;
            }
        }
    }
    // The corpus holds real traffic that parses and real manifests, not
    // only garbage.
    assert!(
        cards_parsed >= 5,
        "only {cards_parsed} inputs parsed as cards"
    );
    assert!(
        manifests >= 3,
        "only {manifests} inputs parsed as manifests"
    );
    assert!(error_replies > 0, "nothing in the corpus was refused");
    eprintln!(
        "replayed {} corpus files: {cards_parsed} card streams, {manifests} manifests, {error_replies} error replies",
        inputs.len()
    );
}

/// One HTTP reply as read off the wire.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    /// The cards of a sync reply.
    fn cards(&self) -> Vec<Card> {
        let ct = ContentType::parse(&self.content_type)
            .unwrap_or_else(|_| panic!("not a sync reply: {self:?}"));
        let limits = Limits::default();
        parse_with(&decode_body(ct, &self.body, &limits).unwrap(), &limits).unwrap()
    }

    /// A 4xx status, or a sync reply whose first card is `error`.
    fn is_refusal(&self) -> bool {
        (400..500).contains(&self.status)
            || (self.status == 200 && matches!(self.cards().first(), Some(Card::Error(_))))
    }
}

/// Reads one reply (head, then Content-Length bytes); `None` when the
/// connection ends first.
fn read_reply(reader: &mut impl BufRead) -> Option<Reply> {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).ok()?;
    let status = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let (mut length, mut content_type) = (0usize, String::new());
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "content-type" => content_type = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Reply {
        status,
        content_type,
        body,
    })
}

/// Connects to the hub with a read timeout.
fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the hub");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Sends `request` (then half-closes when `close_write`) and reads every
/// reply until the hub closes the connection.
fn exchange(addr: &str, request: &[u8], close_write: bool) -> Vec<Reply> {
    let mut stream = connect(addr);
    // A refused request may be closed on before all of it is written.
    let _ = stream.write_all(request);
    if close_write {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut reader = BufReader::new(stream);
    std::iter::from_fn(|| read_reply(&mut reader)).collect()
}

fn post(ct: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST / HTTP/1.1\r\nHost: hub\r\nConnection: close\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

fn addr_of(hub: &HubProcess) -> String {
    hub.ready.http.trim_start_matches("http://").to_string()
}

/// A clone request through the hub's front door must get its first page.
fn assert_clone_served(hub: &HubProcess) {
    let reply = ureq::post(&hub.url())
        .set("Content-Type", "application/x-fossil-debug")
        .timeout(Duration::from_secs(10))
        .send_bytes(CLONE)
        .expect("a well-behaved clone request is served");
    assert_eq!(reply.status(), 200);
    let text = reply.into_string().unwrap();
    assert!(text.contains("clone_seqno"), "not a clone page: {text}");
}

#[test]
fn malformed_requests_get_400_or_an_error_card_and_the_hub_keeps_serving() {
    let tmp = TempDir::new().unwrap();
    let hub = HubProcess::start(
        &tmp.path().join("hub.fossil"),
        None,
        &["--read-timeout-ms", "3000", "--max-request-bytes", "100000"],
    );
    let addr = addr_of(&hub);
    let pull =
        b"pull 0000000000000000000000000000000000000000 0000000000000000000000000000000000000000\n";
    let zlib = compress(pull);
    let mut truncated_zlib = zlib.clone();
    truncated_zlib.truncate(zlib.len() / 2);
    let mut lying_prefix = zlib.clone();
    lying_prefix[..4].copy_from_slice(&3u32.to_be_bytes());
    let huge_head = format!(
        "GET /healthz HTTP/1.1\r\nX-Junk: {}\r\n\r\n",
        "j".repeat(70_000)
    );
    // Keep-alive, so the bytes past the declared body are read as the next
    // request.
    let longer_than_declared = b"POST / HTTP/1.1\r\nContent-Type: application/x-fossil-debug\r\nContent-Length: 5\r\n\r\npull GARBAGE AFTER THE BODY\r\n\r\n".to_vec();
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("text content type", post("text/plain", b"hello"), false),
        ("unknown fossil-like type", post("application/x-fossil-bogus", pull), false),
        ("truncated zlib", post("application/x-fossil", &truncated_zlib), false),
        ("zlib size prefix lies", post("application/x-fossil", &lying_prefix), false),
        ("not zlib at all", post("application/x-fossil", b"\0\0\0\x10not zlib data"), false),
        ("garbage cards", post("application/x-fossil-debug", b"\x01\x02 not a card\nfile abc\n"), false),
        ("binary body", post("application/x-fossil-uncompressed", &[0xff; 300]), false),
        ("card declaring 4 GB", post("application/x-fossil-debug", b"file 0123 4000000000\nx"), false),
        ("push without login or project", post("application/x-fossil-debug", b"push a b\nfile 01 3\nabc"), false),
        ("empty body", post("application/x-fossil", b""), false),
        (
            "no content-length",
            b"POST / HTTP/1.0\r\nContent-Type: application/x-fossil\r\n\r\n".to_vec(),
            true,
        ),
        (
            "huge declared content-length",
            b"POST / HTTP/1.1\r\nContent-Type: application/x-fossil\r\nContent-Length: 99999999999\r\n\r\nxx".to_vec(),
            false,
        ),
        (
            "body shorter than declared",
            b"POST / HTTP/1.1\r\nContent-Type: application/x-fossil\r\nContent-Length: 100\r\n\r\nonly ten b".to_vec(),
            true,
        ),
        ("not http", b"\x16\x03\x01\x02\x00 tls hello?\r\n\r\n".to_vec(), false),
        ("head over 64 KiB", huge_head.into_bytes(), false),
        (
            "chunked body",
            b"POST / HTTP/1.1\r\nContent-Type: application/x-fossil\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
            false,
        ),
        (
            "two content-lengths",
            b"POST / HTTP/1.1\r\nContent-Type: application/x-fossil\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(),
            false,
        ),
        ("body longer than declared", longer_than_declared, false),
    ];
    let mut refused = 0;
    for (what, request, close_write) in &cases {
        let replies = exchange(&addr, request, *close_write);
        assert!(!replies.is_empty(), "{what}: no reply");
        for reply in &replies {
            assert!(
                reply.is_refusal(),
                "{what}: neither 4xx nor an error card: {} {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
            refused += 1;
        }
    }
    let statuses = |what: &str| {
        let (_, request, close) = cases.iter().find(|(w, _, _)| *w == what).unwrap();
        exchange(&addr, request, *close)
            .iter()
            .map(|r| r.status)
            .collect::<Vec<_>>()
    };
    assert_eq!(statuses("huge declared content-length"), [413]);
    assert_eq!(statuses("head over 64 KiB"), [431]);
    assert_eq!(statuses("chunked body"), [411]);
    assert_eq!(statuses("body shorter than declared"), [400]);
    assert_eq!(statuses("text content type"), [404]);
    // The declared body is answered; the bytes after it are a bad request.
    assert_eq!(statuses("body longer than declared"), [200, 400]);

    // Still serving: a well-behaved sync request and a real fossil clone.
    assert_clone_served(&hub);
    let home = tmp.path();
    let out = fossil(
        home,
        home,
        &[
            "clone",
            &hub.url(),
            home.join("clone.fossil").to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "fossil clone after the bad requests: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(hub.stat("trunk_commits"), 0);
    eprintln!("{refused} malformed requests refused; hub still serving");
}

#[test]
fn pipelined_requests_on_one_connection_are_answered_in_order() {
    let tmp = TempDir::new().unwrap();
    let hub = HubProcess::start(&tmp.path().join("hub.fossil"), None, &[]);
    let addr = addr_of(&hub);
    // Four requests in one write, a body among them; the last closes.
    let mut clone = post("application/x-fossil-debug", CLONE);
    let close = b"Connection: close\r\n";
    let keep = clone.windows(close.len()).position(|w| w == close).unwrap();
    clone.drain(keep..keep + close.len());
    let mut requests = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n".to_vec();
    requests.extend_from_slice(&clone);
    requests.extend_from_slice(b"GET /nowhere HTTP/1.1\r\nHost: hub\r\n\r\n");
    requests.extend_from_slice(b"GET /stats HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n");
    let replies = exchange(&addr, &requests, false);
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 404, 200], "{replies:?}");
    assert_eq!(replies[0].body, b"ok\n");
    assert!(replies[1]
        .cards()
        .iter()
        .any(|c| matches!(c, Card::CloneSeqno(_))));
    assert_eq!(replies[3].content_type, "application/json");
    let stats: serde_json::Value = serde_json::from_slice(&replies[3].body).unwrap();
    assert!(stats["http_requests"].as_u64().unwrap() >= 4, "{stats}");

    // The same requests a byte at a time: framing does not depend on reads.
    let mut stream = connect(&addr);
    for byte in &requests {
        stream.write_all(std::slice::from_ref(byte)).unwrap();
    }
    let mut reader = BufReader::new(stream);
    let trickled: Vec<u16> = std::iter::from_fn(|| read_reply(&mut reader))
        .map(|r| r.status)
        .collect();
    assert_eq!(trickled, [200, 200, 404, 200]);
}

#[test]
fn request_smuggling_attempts_are_refused_and_close_the_connection() {
    let tmp = TempDir::new().unwrap();
    let hub = HubProcess::start(&tmp.path().join("hub.fossil"), None, &[]);
    let addr = addr_of(&hub);
    // Each hides a second request where a server framing the body one way
    // would see it and a proxy framing it the other way would not.
    let smuggled = "GET /stats HTTP/1.1\r\nHost: hub\r\n\r\n";
    let attempts = [
        (
            "content-length with transfer-encoding",
            format!(
                "POST / HTTP/1.1\r\nHost: hub\r\nContent-Type: application/x-fossil-debug\r\n\
                 Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "transfer-encoding with content-length",
            format!(
                "POST / HTTP/1.1\r\nHost: hub\r\nContent-Type: application/x-fossil-debug\r\n\
                 Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "two content-lengths",
            format!(
                "POST / HTTP/1.1\r\nHost: hub\r\nContent-Type: application/x-fossil-debug\r\n\
                 Content-Length: 0\r\nContent-Length: {}\r\n\r\n{smuggled}",
                smuggled.len()
            ),
        ),
        (
            "a content-length list",
            format!(
                "POST / HTTP/1.1\r\nHost: hub\r\nContent-Type: application/x-fossil-debug\r\n\
                 Content-Length: 0, {}\r\n\r\n{smuggled}",
                smuggled.len()
            ),
        ),
        (
            "an obfuscated transfer-encoding",
            format!(
                "POST / HTTP/1.1\r\nHost: hub\r\nContent-Type: application/x-fossil-debug\r\n\
                 Content-Length: 0\r\nTransfer-Encoding: xchunked\r\n\r\n{smuggled}"
            ),
        ),
    ];
    for (what, request) in &attempts {
        let replies = exchange(&addr, request.as_bytes(), false);
        assert_eq!(
            replies.len(),
            1,
            "{what}: the hidden request was answered: {replies:?}"
        );
        let status = replies[0].status;
        assert!(
            [400, 411].contains(&status),
            "{what}: {status} {}",
            String::from_utf8_lossy(&replies[0].body)
        );
    }
    assert_eq!(
        hub.stat("requests"),
        2,
        "only the chunked ones reached routing"
    );
    assert_clone_served(&hub);
}

#[test]
fn http_1_0_clients_are_served() {
    let tmp = TempDir::new().unwrap();
    let hub = HubProcess::start(&tmp.path().join("hub.fossil"), None, &[]);
    let addr = addr_of(&hub);
    // HTTP/1.0 closes after the reply unless asked otherwise.
    let replies = exchange(&addr, b"GET /healthz HTTP/1.0\r\n\r\n", false);
    assert_eq!(replies.len(), 1);
    assert_eq!(
        (replies[0].status, &replies[0].body[..]),
        (200, &b"ok\n"[..])
    );
    // A sync request as Fossil 2.21 sends it: HTTP/1.0, its write side
    // shut once the body is out.
    let mut clone = format!(
        "POST /any/path HTTP/1.0\r\nHost: hub\r\nUser-Agent: Fossil/2.21\r\n\
         Content-Type: application/x-fossil-debug\r\nContent-Length: {}\r\n\r\n",
        CLONE.len()
    )
    .into_bytes();
    clone.extend_from_slice(CLONE);
    let replies = exchange(&addr, &clone, true);
    assert_eq!(replies.len(), 1);
    assert!(replies[0]
        .cards()
        .iter()
        .any(|c| matches!(c, Card::CloneSeqno(_))));
    // Keep-alive when asked for.
    let twice =
        b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /healthz HTTP/1.0\r\n\r\n";
    let replies = exchange(&addr, twice, false);
    assert_eq!(
        replies.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200]
    );
}

#[test]
fn an_oversized_body_is_refused_before_it_is_sent() {
    let tmp = TempDir::new().unwrap();
    // A long read timeout: a hub waiting for the body would answer 408
    // only after the client's own 10 s read timeout.
    let hub = HubProcess::start(
        &tmp.path().join("hub.fossil"),
        None,
        &["--max-request-bytes", "1000", "--read-timeout-ms", "60000"],
    );
    let addr = addr_of(&hub);
    for expect in ["", "Expect: 100-continue\r\n"] {
        let mut stream = connect(&addr);
        let head = format!(
            "POST / HTTP/1.1\r\nContent-Type: application/x-fossil\r\nContent-Length: 1001\r\n{expect}\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        let reply = read_reply(&mut BufReader::new(stream)).expect("a reply before the body");
        assert_eq!(
            reply.status,
            413,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(String::from_utf8_lossy(&reply.body).contains("over 1000 bytes"));
    }
    // At the limit is fine.
    let body = vec![b'#'; 1000];
    let replies = exchange(&addr, &post("application/x-fossil-debug", &body), false);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].status, 200);
    assert_clone_served(&hub);
}

#[test]
fn bodies_held_at_once_are_bounded() {
    let tmp = TempDir::new().unwrap();
    // Room for four bodies of 1000 bytes (BODY_BUDGET_FACTOR).
    let hub = HubProcess::start(
        &tmp.path().join("hub.fossil"),
        None,
        &["--max-request-bytes", "1000", "--read-timeout-ms", "30000"],
    );
    let addr = addr_of(&hub);
    let request = post("application/x-fossil-debug", &[b'#'; 1000]);
    // Four requests all but their last byte in: the budget is used up.
    let mut holding: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = connect(&addr);
            stream.write_all(&request[..request.len() - 1]).unwrap();
            stream
        })
        .collect();
    // A fifth body waits for room; a request without a body does not.
    let mut waiting = connect(&addr);
    waiting.write_all(&request).unwrap();
    assert_eq!(
        ureq::get(&format!("{}/healthz", hub.ready.http))
            .timeout(Duration::from_secs(10))
            .call()
            .unwrap()
            .status(),
        200
    );
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = waiting.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the fifth body was taken beyond the budget: {early:?}"
    );
    // One of the four completes: its reply comes, and the fifth gets room.
    holding[0].write_all(&request[request.len() - 1..]).unwrap();
    let done = read_reply(&mut BufReader::new(holding.remove(0))).unwrap();
    assert_eq!(done.status, 200);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let reply = read_reply(&mut BufReader::new(waiting)).expect("the fifth request is served");
    assert_eq!(reply.status, 200);
}

/// Sends `at_once` then `trickled` one byte per `pace` on a new connection
/// (until the hub closes it); returns the status the hub answered and when.
/// Tells `started` once it is trickling.
fn slow_client(
    addr: &str,
    at_once: &[u8],
    trickled: Vec<u8>,
    pace: Duration,
    started: mpsc::Sender<()>,
) -> (Option<u16>, Duration) {
    let mut stream = connect(addr);
    let begin = Instant::now();
    stream.write_all(at_once).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for (i, byte) in trickled.iter().enumerate() {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            if i == 3 {
                let _ = started.send(());
            }
            std::thread::sleep(pace);
        }
    });
    let reply = read_reply(&mut BufReader::new(stream));
    let elapsed = begin.elapsed();
    trickle.join().unwrap();
    (reply.map(|r| r.status), elapsed)
}

#[test]
fn slow_clients_are_dropped_at_the_read_timeout_and_do_not_block_others() {
    let tmp = TempDir::new().unwrap();
    let read_timeout = Duration::from_millis(2000);
    // One worker: a slow body holding it would block everyone.
    let hub = HubProcess::start(
        &tmp.path().join("hub.fossil"),
        None,
        &["--threads", "1", "--read-timeout-ms", "2000"],
    );
    let addr = addr_of(&hub);
    let pace = Duration::from_millis(250);
    let slow_head = post("application/x-fossil-debug", CLONE);
    let (started_tx, started) = mpsc::channel();
    let mut slow = Vec::new();
    for i in 0..4 {
        let addr = addr.clone();
        let tx = started_tx.clone();
        // Half trickle the head; half send the head at once and trickle
        // the body.
        let request = slow_head.clone();
        let head_len = request.len() - CLONE.len();
        let at_once = if i % 2 == 0 { 0 } else { head_len };
        slow.push(std::thread::spawn(move || {
            let (head, rest) = request.split_at(at_once);
            slow_client(&addr, head, rest.to_vec(), pace, tx)
        }));
    }
    for _ in 0..4 {
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("slow clients started");
    }
    // While all four trickle, well-behaved clients are served.
    let served_at = Instant::now();
    assert_clone_served(&hub);
    assert_eq!(
        ureq::get(&format!("{}/healthz", hub.ready.http))
            .timeout(Duration::from_secs(10))
            .call()
            .unwrap()
            .status(),
        200
    );
    let served_in = served_at.elapsed();
    for handle in slow {
        let (status, elapsed) = handle.join().unwrap();
        assert_eq!(status, Some(408), "a slow client was not timed out");
        assert!(
            elapsed >= read_timeout && elapsed < read_timeout * 4,
            "dropped after {elapsed:?}"
        );
    }
    eprintln!("well-behaved requests served in {served_in:?} beside 4 slow clients");
}

/// The hub's thread count (Linux).
fn threads_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a Threads line")
}

#[test]
fn two_thousand_idle_connections_do_not_starve_a_client_and_are_closed_when_idle() {
    const IDLE: usize = 2000;
    herd::supervisor::process::raise_nofile(IDLE as u64 + 512).unwrap();
    let tmp = TempDir::new().unwrap();
    let hub = HubProcess::start(
        &tmp.path().join("hub.fossil"),
        None,
        &["--threads", "4", "--idle-timeout-ms", "3000"],
    );
    let addr = addr_of(&hub);
    let threads_before = threads_of(hub.pid());
    let idle: Vec<TcpStream> = (0..IDLE).map(|_| connect(&addr)).collect();
    let served_at = Instant::now();
    assert_clone_served(&hub);
    let served_in = served_at.elapsed();
    // Connections cost no threads.
    let threads = threads_of(hub.pid());
    assert!(
        threads <= threads_before + 2,
        "{threads} threads with {IDLE} connections (was {threads_before})"
    );
    // Every idle connection is closed by the hub after the idle timeout.
    let mut closed = 0;
    for mut stream in idle {
        let mut buf = [0u8; 16];
        match stream.read(&mut buf) {
            Ok(0) => closed += 1,
            other => panic!("an idle connection was not closed: {other:?}"),
        }
    }
    assert_eq!(closed, IDLE);
    assert_clone_served(&hub);
    eprintln!("clone served in {served_in:?} beside {IDLE} idle connections; all closed when idle");
}

#[test]
fn a_full_connection_table_makes_room_from_idle_connections_else_answers_503() {
    const MAX: usize = 20;
    let tmp = TempDir::new().unwrap();
    let hub = HubProcess::start(
        &tmp.path().join("hub.fossil"),
        None,
        &["--max-connections", "20", "--idle-timeout-ms", "60000"],
    );
    let addr = addr_of(&hub);
    let healthz = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n";
    // A keep-alive connection, served once, now idle.
    let open_idle = || {
        let mut stream = connect(&addr);
        stream.write_all(healthz).unwrap();
        let mut reader = BufReader::new(stream);
        assert_eq!(read_reply(&mut reader).unwrap().status, 200);
        reader
    };
    let mut conns: Vec<BufReader<TcpStream>> = (0..MAX).map(|_| open_idle()).collect();
    // A newcomer is served: the longest-idle connection made room.
    let replies = exchange(&addr, &post("application/x-fossil-debug", CLONE), false);
    assert_eq!(replies.len(), 1);
    assert!(replies[0]
        .cards()
        .iter()
        .any(|c| matches!(c, Card::CloneSeqno(_))));
    let mut oldest = conns.remove(0);
    let mut buf = [0u8; 16];
    assert_eq!(
        oldest.read(&mut buf).unwrap(),
        0,
        "the longest-idle connection was not closed"
    );
    conns.push(open_idle());
    // Make every connection busy: each is sent a request and the start of
    // the next in one write, so when the first reply arrives the hub holds
    // the partial second one.
    for reader in &mut conns {
        let mut both = healthz.to_vec();
        both.extend_from_slice(b"GET /healthz HTTP/1.1\r\n");
        reader.get_mut().write_all(&both).unwrap();
        assert_eq!(read_reply(reader).unwrap().status, 200);
    }
    // Busy connections are not taken: the newcomer gets 503.
    let replies = exchange(&addr, b"GET /healthz HTTP/1.0\r\n\r\n", false);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].status, 503);
    assert!(String::from_utf8_lossy(&replies[0].body).contains("all 20 connections busy"));
    // Closing them frees the table.
    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let replies = exchange(&addr, b"GET /healthz HTTP/1.0\r\n\r\n", false);
        if replies.first().map(|r| r.status) == Some(200) {
            break;
        }
        assert!(Instant::now() < deadline, "the table never freed up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A hub started under a shell with a small open-file limit (soft and
/// hard, so the hub cannot raise it); killed and reaped on drop.
struct CrampedHub {
    child: std::process::Child,
    addr: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl CrampedHub {
    fn start(repo: &Path, nofile: u32) -> CrampedHub {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_hub"))
            .arg("--repo")
            .arg(repo)
            .args(["--listen", "127.0.0.1:0", "--threads", "2"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the hub under sh");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut hub = CrampedHub {
            child,
            addr: String::new(),
            log,
        };
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("hub not ready: {}", hub.log.lock().unwrap()));
        let ready: herd::wire::HubReady = serde_json::from_str(&line).unwrap();
        hub.addr = ready.http.trim_start_matches("http://").to_string();
        hub
    }
}

impl Drop for CrampedHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn running_out_of_descriptors_pauses_accepting_but_never_stops_the_hub() {
    let tmp = TempDir::new().unwrap();
    let hub = CrampedHub::start(&tmp.path().join("hub.fossil"), 64);
    // More connections than the hub has descriptors for.
    let flood: Vec<TcpStream> = (0..120).map(|_| connect(&hub.addr)).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hub.log.lock().unwrap().contains("accept failed") {
        assert!(
            Instant::now() < deadline,
            "the hub never ran out of descriptors: {}",
            hub.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(flood);
    // Descriptors come back as the flood closes; the hub serves again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let replies = exchange(&hub.addr, &post("application/x-fossil-debug", CLONE), false);
        if let Some(reply) = replies.first() {
            assert_eq!(reply.status, 200);
            assert!(reply
                .cards()
                .iter()
                .any(|c| matches!(c, Card::CloneSeqno(_))));
            break;
        }
        assert!(Instant::now() < deadline, "the hub stopped serving");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fake leaf-agent: a shell script printing garbage on stdout.
fn fake_leaf(dir: &Path) -> PathBuf {
    let script = dir.join("garbage-leaf");
    std::fs::write(
        &script,
        "#!/bin/sh\n\
         echo 'this is not json'\n\
         printf '\\377\\376\\000\\001 binary bytes\\n'\n\
         head -c 3000000 /dev/zero | tr '\\0' 'x'; echo\n\
         echo '{\"event\":\"task\",\"slot\":\"zero\",\"task\":[1,2]}'\n\
         echo '{\"event\":\"summary\",\"slot\":0,\"tasks\":\"all of them\"}'\n\
         echo '{\"event\":\"nonsense\"}'\n\
         exit 0\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn garbage_from_a_leaf_fails_its_slot_without_crashing_herd() {
    let tmp = TempDir::new().unwrap();
    let script = fake_leaf(tmp.path());
    let out = crate::helpers::herd_command()
        .args([
            "run",
            "--agents",
            "2",
            "--tasks",
            "1",
            "--json",
            "--timeout",
            "60",
        ])
        .env("HERD_LEAF_AGENT", &script)
        .env_remove("HERD_AGENTS")
        .env_remove("HERD_TASKS_PER_AGENT")
        .stdin(Stdio::null())
        .output()
        .expect("run herd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "herd must fail the trial: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("herd: trial failed"), "{stderr}");
    assert!(stderr.contains("malformed line"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stderr}"));
    let failed = report["failed_slots"].as_array().expect("failed_slots");
    for slot in [0, 1] {
        let f = failed
            .iter()
            .find(|f| f["slot"] == slot)
            .unwrap_or_else(|| panic!("slot {slot} not reported failed: {report}"));
        let reason = f["reason"].as_str().unwrap();
        assert!(reason.contains("malformed line"), "{reason}");
        assert!(reason.contains("this is not json"), "{reason}");
    }
    // The report quotes lines, never keeps them whole.
    assert!(
        out.stdout.len() < 100_000,
        "report of {} bytes",
        out.stdout.len()
    );
}

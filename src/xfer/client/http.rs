//! The client handle and one message exchange: the client-version pragma
//! first, a random comment last, a login card over the rest when a login is
//! set, zlib framing, one HTTP POST on a keep-alive agent, and the reply
//! decoded under the client's limits.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;

use super::error::ClientError;
use crate::repo::{ArtifactHash, RepoError};
use crate::xfer::card::{encode, parse_with, Card, Limits};
use crate::xfer::fastpath::PRAGMA_SPARSE;
use crate::xfer::frame::{decode_body, encode_body, ContentType};
use crate::xfer::login::build_login;
use crate::xfer::server::SERVER_VERSION;

/// A client for one server URL.
#[derive(Debug)]
pub struct Client {
    pub(super) url: String,
    pub(super) agent: ureq::Agent,
    pub(super) login: Option<(String, String)>,
    pub(super) limits: Limits,
    pub(super) requests: AtomicU64,
    /// Reply body bytes received so far, as they came off the wire.
    pub(super) bytes_received: AtomicU64,
    /// The server's trunk tip as last seen, sent with fast pulls.
    pub(super) known_tip: Mutex<Option<ArtifactHash>>,
    /// Extra HTTP headers for every request (e.g. `traceparent`).
    pub(super) headers: Mutex<Vec<(String, String)>>,
    /// Check-ins the hub landed for this client that it has not stored:
    /// their files are here, so the next fast pull names them (`pragma
    /// herd-have`) and gets their manifests only.
    pub(super) landed_unstored: Mutex<Vec<ArtifactHash>>,
    /// Fast pulls and refusals bring manifests only (`pragma herd-sparse`).
    pub(super) sparse: bool,
    /// How request bodies are framed; the server answers in kind.
    pub(super) framing: ContentType,
}

/// One reply's cards and whether it carried an `error` card.
pub(super) struct Reply {
    pub(super) cards: Vec<Card>,
}

impl Reply {
    pub(super) fn error(&self) -> Option<&str> {
        self.cards.iter().find_map(|c| match c {
            Card::Error(text) => Some(text.as_str()),
            _ => None,
        })
    }

    pub(super) fn pragma(&self, name: &str) -> Option<&[String]> {
        self.cards.iter().find_map(|c| match c {
            Card::Pragma { name: n, args } if n == name => Some(args.as_slice()),
            _ => None,
        })
    }
}

impl Client {
    /// A client for `url` (e.g. `http://127.0.0.1:8080/`), without login.
    pub fn new(url: &str) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build();
        Client {
            url: url.to_string(),
            agent,
            login: None,
            limits: Limits::default(),
            requests: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            known_tip: Mutex::new(None),
            headers: Mutex::new(Vec::new()),
            landed_unstored: Mutex::new(Vec::new()),
            sparse: false,
            framing: ContentType::Fossil,
        }
    }

    /// Sends requests as `application/x-fossil-uncompressed`, so replies
    /// come back uncompressed too (Fossil's server and ours answer in the
    /// request's type). For a hub on the same machine: neither side spends
    /// time in zlib, which for a reply carrying a new baseline manifest
    /// (the whole tree's file list) was a fifth of the hub's writer thread.
    pub fn uncompressed(mut self) -> Client {
        self.framing = ContentType::Uncompressed;
        self
    }

    /// This client keeps other writers' check-in manifests but not their
    /// files: fast pulls and push refusals bring manifests only (see
    /// `xfer::fastpath`), and a clone from a server that speaks the pragma
    /// holds only the trunk tip's manifest and its baseline (a real
    /// Fossil server ignores it and sends everything). A sparse repository lacks
    /// the files the optional R card hashes: turn it off (`repo-cksum` 0).
    pub fn sparse(mut self) -> Client {
        self.sparse = true;
        self
    }

    /// The `pragma herd-sparse` card, when this client is sparse.
    pub(super) fn sparse_card(&self) -> Option<Card> {
        self.sparse.then(|| Card::pragma(PRAGMA_SPARSE, &[]))
    }

    /// Sets extra HTTP headers sent with every following request, such as
    /// the W3C `traceparent` of the operation in progress.
    pub fn set_headers(&self, headers: Vec<(String, String)>) {
        if let Ok(mut h) = self.headers.lock() {
            *h = headers;
        }
    }

    /// Logs in as `user` with `password` (cleartext, or the 40-hex secret).
    pub fn with_login(mut self, user: &str, password: &str) -> Client {
        self.login = Some((user.to_string(), password.to_string()));
        self
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// HTTP round trips made so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Reply body bytes received so far (compressed or not, as sent).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }

    /// The server's trunk tip as last seen by this client.
    pub fn known_tip(&self) -> Option<ArtifactHash> {
        self.known_tip.lock().map_or(None, |t| t.clone())
    }

    /// Check-ins the hub landed for this client and it has not stored.
    pub(super) fn landed_unstored(&self) -> Vec<ArtifactHash> {
        self.landed_unstored
            .lock()
            .map_or_else(|_| Vec::new(), |l| l.clone())
    }

    /// Records `tip` as the server's trunk tip (e.g. after applying a tip
    /// broadcast), so the next fast pull starts from it.
    pub fn set_known_tip(&self, tip: Option<ArtifactHash>) {
        if let Ok(mut t) = self.known_tip.lock() {
            *t = tip;
        }
    }

    pub(super) fn repo_err(&self) -> impl Fn(RepoError) -> ClientError + '_ {
        move |source| ClientError::Repo {
            url: self.url.clone(),
            source,
        }
    }

    pub(super) fn protocol(&self, what: impl Into<String>) -> ClientError {
        ClientError::Protocol {
            url: self.url.clone(),
            what: what.into(),
        }
    }

    /// Sends one message and returns the reply's cards. The message gets the
    /// client-version pragma first, a random comment last (so the login nonce
    /// is unique), and a login card when a login is set and `project_code` is
    /// known.
    pub(super) fn exchange(
        &self,
        cards: &[Card],
        project_code: Option<&str>,
    ) -> Result<Reply, ClientError> {
        let mut rest = Vec::with_capacity(cards.len() + 2);
        rest.push(Card::pragma("client-version", &SERVER_VERSION));
        rest.extend_from_slice(cards);
        let noise: [u8; 20] = rand::thread_rng().gen();
        rest.push(Card::comment(&hex::encode_upper(noise)));
        let rest = encode(&rest);
        let mut text = Vec::new();
        if let (Some((user, password)), Some(pc)) = (&self.login, project_code) {
            build_login(user, password, pc, &rest).write_to(&mut text);
        }
        text.extend_from_slice(&rest);
        let body = encode_body(self.framing, &text);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .agent
            .post(&self.url)
            .set("Content-Type", self.framing.as_str());
        if let Ok(headers) = self.headers.lock() {
            for (name, value) in headers.iter() {
                request = request.set(name, value);
            }
        }
        let response = request.send_bytes(&body);
        let response = match response {
            Ok(r) => r,
            Err(ureq::Error::Status(status, _)) => {
                return Err(ClientError::Status {
                    url: self.url.clone(),
                    status,
                })
            }
            Err(e) => {
                return Err(ClientError::Transport {
                    url: self.url.clone(),
                    source: Box::new(e),
                })
            }
        };
        let content_type =
            ContentType::parse(response.content_type()).map_err(|source| ClientError::Codec {
                url: self.url.clone(),
                source,
            })?;
        let mut raw = Vec::new();
        response
            .into_reader()
            .take(self.limits.max_total + 1)
            .read_to_end(&mut raw)
            .map_err(|source| ClientError::Body {
                url: self.url.clone(),
                source,
            })?;
        self.bytes_received
            .fetch_add(raw.len() as u64, Ordering::Relaxed);
        let codec = |source| ClientError::Codec {
            url: self.url.clone(),
            source,
        };
        let text = decode_body(content_type, &raw, &self.limits).map_err(codec)?;
        let cards = parse_with(&text, &self.limits).map_err(codec)?;
        Ok(Reply { cards })
    }
}

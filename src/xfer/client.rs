//! A sync client for any Fossil server, ours or `fossil server`: clone, pull
//! and push over HTTP (ureq, one keep-alive agent), counting round trips.
//! Against a server that answers herd's pragmas (`fastpath.rs`) a pull and a
//! push are one round trip each; otherwise it runs Fossil's generic rounds
//! (reference 5.5): igot → phantom → gimme until no phantoms remain, and
//! push answering gimmes.
//!
//! Received artifacts are stored hash-checked, then crosslinked in an order
//! that keeps parents first: plain artifacts and clusters, then check-ins by
//! their `D` date.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use thiserror::Error;

use super::card::{encode, parse_with, Card, CloneFrom, Limits};
use super::error::CodecError;
use super::fastpath::{PRAGMA_ACCEPTED, PRAGMA_PUSH, PRAGMA_TIP};
use super::frame::{decode_body, encode_body, ContentType};
use super::login::build_login;
use super::server::SERVER_VERSION;
use crate::repo::{parse_artifact, Artifact, ArtifactHash, RepoError, Repository};

/// Most rounds one pull or push may take before the client gives up.
const MAX_ROUNDS: u32 = 1000;
/// Fossil's client asks for at most this many phantoms per round.
const MAX_GIMMES: usize = 200;

/// Why a sync operation failed. Every variant names the server URL.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The HTTP exchange failed (connection, I/O).
    #[error("request to {url} failed")]
    Transport {
        /// The server URL.
        url: String,
        /// The transport error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The server answered with a status other than 200.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The server URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The reply body could not be read.
    #[error("cannot read the reply from {url}")]
    Body {
        /// The server URL.
        url: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The reply could not be decoded.
    #[error("cannot decode the reply from {url}")]
    Codec {
        /// The server URL.
        url: String,
        /// The codec error.
        #[source]
        source: CodecError,
    },
    /// The server sent an `error` card.
    #[error("{url} says: {text}")]
    Server {
        /// The server URL.
        url: String,
        /// The card's text.
        text: String,
    },
    /// The server's reply breaks the protocol.
    #[error("protocol error from {url}: {what}")]
    Protocol {
        /// The server URL.
        url: String,
        /// What was wrong.
        what: String,
    },
    /// A received artifact does not match its name or cannot be rebuilt.
    #[error("bad artifact {hash} from {url}: {what}")]
    Artifact {
        /// The server URL.
        url: String,
        /// The artifact.
        hash: String,
        /// What was wrong.
        what: String,
    },
    /// The local repository failed.
    #[error("local repository failed while syncing with {url}")]
    Repo {
        /// The server URL.
        url: String,
        /// The repository error.
        #[source]
        source: RepoError,
    },
}

/// How a pull ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOutcome {
    /// New artifacts stored.
    pub received: usize,
    /// The server's trunk tip and length, when it said (fast path).
    pub tip: Option<(ArtifactHash, u64)>,
    /// HTTP round trips this pull took.
    pub rounds: u32,
}

/// How a push ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// Every check-in landed.
    Accepted {
        /// The server's new tip, when it said (fast path).
        tip: Option<ArtifactHash>,
        /// The trunk's length after the push, when the server said.
        seq: Option<u64>,
    },
    /// The server refused a check-in: its parent is not the trunk tip. The
    /// artifacts needed to rebase onto `tip` have been stored locally.
    Refused {
        /// The server's trunk tip.
        tip: ArtifactHash,
        /// The trunk's length.
        seq: u64,
        /// The server's error text.
        message: String,
        /// Artifacts received with the refusal.
        received: usize,
    },
}

/// A client for one server URL.
#[derive(Debug)]
pub struct Client {
    url: String,
    agent: ureq::Agent,
    login: Option<(String, String)>,
    limits: Limits,
    requests: AtomicU64,
    /// The server's trunk tip as last seen, sent with fast pulls.
    known_tip: Mutex<Option<ArtifactHash>>,
}

/// One reply's cards and whether it carried an `error` card.
struct Reply {
    cards: Vec<Card>,
}

impl Reply {
    fn error(&self) -> Option<&str> {
        self.cards.iter().find_map(|c| match c {
            Card::Error(text) => Some(text.as_str()),
            _ => None,
        })
    }

    fn pragma(&self, name: &str) -> Option<&[String]> {
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
            known_tip: Mutex::new(None),
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

    /// The server's trunk tip as last seen by this client.
    pub fn known_tip(&self) -> Option<ArtifactHash> {
        self.known_tip.lock().map_or(None, |t| t.clone())
    }

    fn set_known_tip(&self, tip: Option<ArtifactHash>) {
        if let Ok(mut t) = self.known_tip.lock() {
            *t = tip;
        }
    }

    fn repo_err(&self) -> impl Fn(RepoError) -> ClientError + '_ {
        move |source| ClientError::Repo {
            url: self.url.clone(),
            source,
        }
    }

    fn protocol(&self, what: impl Into<String>) -> ClientError {
        ClientError::Protocol {
            url: self.url.clone(),
            what: what.into(),
        }
    }

    /// Sends one message and returns the reply's cards. The message gets the
    /// client-version pragma first, a random comment last (so the login nonce
    /// is unique), and a login card when a login is set and `project_code` is
    /// known.
    fn exchange(&self, cards: &[Card], project_code: Option<&str>) -> Result<Reply, ClientError> {
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
        let body = encode_body(ContentType::Fossil, &text);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .agent
            .post(&self.url)
            .set("Content-Type", ContentType::Fossil.as_str())
            .send_bytes(&body);
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
        let codec = |source| ClientError::Codec {
            url: self.url.clone(),
            source,
        };
        let text = decode_body(content_type, &raw, &self.limits).map_err(codec)?;
        let cards = parse_with(&text, &self.limits).map_err(codec)?;
        Ok(Reply { cards })
    }

    /// Clones the server into a new repository at `path` (clone protocol 3,
    /// paged by `clone_seqno`), then crosslinks everything.
    pub fn clone_into(&self, path: &Path) -> Result<Repository, ClientError> {
        let mut seqno: u64 = 1;
        let mut project_code: Option<String> = None;
        let mut received = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let card = Card::Clone(Some(CloneFrom { version: 3, seqno }));
            let reply = self.exchange(&[card], project_code.as_deref())?;
            if let Some(text) = reply.error() {
                return Err(ClientError::Server {
                    url: self.url.clone(),
                    text: text.to_string(),
                });
            }
            let mut next = None;
            for card in reply.cards {
                match card {
                    Card::Push {
                        project_code: pc, ..
                    } => project_code = Some(pc),
                    Card::CloneSeqno(n) => next = Some(n),
                    card @ (Card::File { .. } | Card::Cfile { .. }) => received.push(card),
                    _ => {}
                }
            }
            match next {
                Some(0) => {
                    let pc = project_code
                        .ok_or_else(|| self.protocol("clone reply without push card"))?;
                    let repo = super::clone_target::create(path, &pc).map_err(self.repo_err())?;
                    self.in_transaction(&repo, |r| self.store_received(r, received, None))?;
                    self.set_known_tip(repo.trunk_tip().map_err(self.repo_err())?);
                    return Ok(repo);
                }
                Some(n) if n > seqno => seqno = n,
                Some(n) => {
                    return Err(self.protocol(format!("clone_seqno went from {seqno} to {n}")))
                }
                None => return Err(self.protocol("clone reply without clone_seqno")),
            }
        }
        Err(self.protocol("clone did not finish"))
    }

    /// Pulls what the server has and `repo` lacks.
    pub fn pull(&self, repo: &Repository) -> Result<PullOutcome, ClientError> {
        let project_code = repo.project_code().map_err(self.repo_err())?;
        let server_code = repo.server_code().map_err(self.repo_err())?;
        let pull = Card::Pull {
            server_code,
            project_code: project_code.clone(),
        };
        let tip = self
            .known_tip()
            .or(repo.trunk_tip().map_err(self.repo_err())?);
        let tip_args: Vec<&str> = tip.iter().map(|t| t.as_str()).collect();
        let first = [Card::pragma(PRAGMA_TIP, &tip_args), pull.clone()];
        let reply = self.exchange(&first, Some(&project_code))?;
        self.check_error(&reply)?;
        if let Some(args) = reply.pragma(PRAGMA_TIP) {
            let server_tip = parse_tip(args);
            let received =
                self.in_transaction(repo, |r| self.store_received(r, reply.cards, None))?;
            if let Some((tip, _)) = &server_tip {
                self.set_known_tip(Some(tip.clone()));
            }
            return Ok(PullOutcome {
                received,
                tip: server_tip,
                rounds: 1,
            });
        }
        self.generic_pull(repo, pull, reply, &project_code)
    }

    /// Fossil's rounds: igots become phantoms, phantoms are asked for, until
    /// a round brings nothing new.
    fn generic_pull(
        &self,
        repo: &Repository,
        pull: Card,
        mut reply: Reply,
        project_code: &str,
    ) -> Result<PullOutcome, ClientError> {
        let mut received = 0;
        let mut rounds = 1;
        loop {
            let (got, new_phantoms) = self.in_transaction(repo, |r| {
                let mut new_phantoms = 0;
                for card in &reply.cards {
                    if let Card::Igot { hash, .. } = card {
                        let h = self.hash(hash)?;
                        if r.rid_of(&h).map_err(self.repo_err())?.is_none() {
                            r.store_phantom(&h).map_err(self.repo_err())?;
                            new_phantoms += 1;
                        }
                    }
                }
                let got = self.store_received(r, std::mem::take(&mut reply.cards), None)?;
                Ok::<_, ClientError>((got, new_phantoms))
            })?;
            received += got;
            let phantoms = repo.phantoms().map_err(self.repo_err())?;
            if phantoms.is_empty() || (got == 0 && new_phantoms == 0 && rounds > 1) {
                break;
            }
            if rounds >= MAX_ROUNDS {
                return Err(self.protocol("pull did not converge"));
            }
            let mut cards = vec![pull.clone()];
            cards.extend(
                phantoms
                    .iter()
                    .take(MAX_GIMMES)
                    .map(|h| Card::Gimme(h.to_string())),
            );
            reply = self.exchange(&cards, Some(project_code))?;
            rounds += 1;
            self.check_error(&reply)?;
        }
        Ok(PullOutcome {
            received,
            tip: None,
            rounds,
        })
    }

    /// Pushes `checkins` (and the artifacts each introduced). On the fast
    /// path one round trip gives the verdict; a refusal brings the artifacts
    /// needed to rebase.
    pub fn push(
        &self,
        repo: &Repository,
        checkins: &[ArtifactHash],
    ) -> Result<PushOutcome, ClientError> {
        let project_code = repo.project_code().map_err(self.repo_err())?;
        let push = Card::Push {
            server_code: repo.server_code().map_err(self.repo_err())?,
            project_code: project_code.clone(),
        };
        let mut cards = vec![Card::pragma(PRAGMA_PUSH, &[]), push.clone()];
        let mut files = Vec::new();
        let mut manifests = Vec::new();
        for checkin in checkins {
            for artifact in repo.checkin_artifacts(checkin).map_err(self.repo_err())? {
                let content = self.local_content(repo, &artifact)?;
                let card = Card::File {
                    hash: artifact.to_string(),
                    delta_source: None,
                    payload: content,
                };
                if artifact == *checkin {
                    manifests.push(card);
                } else {
                    files.push(card);
                }
            }
        }
        cards.extend(files);
        cards.extend(manifests);
        let mut reply = self.exchange(&cards, Some(&project_code))?;
        for _ in 0..MAX_ROUNDS {
            if let Some(args) = reply.pragma(PRAGMA_ACCEPTED) {
                let tip = args.first().and_then(|h| ArtifactHash::parse(h).ok());
                let seq = args.get(1).and_then(|s| s.parse().ok());
                self.set_known_tip(tip.clone());
                repo.clear_unsent().map_err(self.repo_err())?;
                return Ok(PushOutcome::Accepted { tip, seq });
            }
            if let (Some(args), Some(message)) = (reply.pragma(PRAGMA_TIP), reply.error()) {
                let message = message.to_string();
                let (tip, seq) =
                    parse_tip(args).ok_or_else(|| self.protocol("refusal without a tip"))?;
                let received =
                    self.in_transaction(repo, |r| self.store_received(r, reply.cards, None))?;
                self.set_known_tip(Some(tip.clone()));
                return Ok(PushOutcome::Refused {
                    tip,
                    seq,
                    message,
                    received,
                });
            }
            self.check_error(&reply)?;
            // Generic protocol: answer gimmes until the server asks for nothing.
            let gimmes: Vec<ArtifactHash> = reply
                .cards
                .iter()
                .filter_map(|c| match c {
                    Card::Gimme(h) => ArtifactHash::parse(h).ok(),
                    _ => None,
                })
                .collect();
            if gimmes.is_empty() {
                repo.clear_unsent().map_err(self.repo_err())?;
                return Ok(PushOutcome::Accepted {
                    tip: None,
                    seq: None,
                });
            }
            let mut cards = vec![push.clone()];
            for hash in gimmes {
                if let Some(content) = repo.content(&hash).map_err(self.repo_err())? {
                    cards.push(Card::File {
                        hash: hash.to_string(),
                        delta_source: None,
                        payload: content,
                    });
                }
            }
            if cards.len() == 1 {
                return Err(self.protocol("server asks for artifacts this repository lacks"));
            }
            reply = self.exchange(&cards, Some(&project_code))?;
        }
        Err(self.protocol("push did not converge"))
    }

    fn local_content(
        &self,
        repo: &Repository,
        hash: &ArtifactHash,
    ) -> Result<Vec<u8>, ClientError> {
        repo.content(hash)
            .map_err(self.repo_err())?
            .ok_or_else(|| ClientError::Repo {
                url: self.url.clone(),
                source: RepoError::MissingArtifact {
                    hash: hash.to_string(),
                },
            })
    }

    /// Runs `f` in one transaction of `repo`, naming this server in errors.
    fn in_transaction<T>(
        &self,
        repo: &Repository,
        f: impl FnOnce(&Repository) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        repo.transaction(f).map_err(|e| match e {
            ClientError::Repo { url, source } if url.is_empty() => ClientError::Repo {
                url: self.url.clone(),
                source,
            },
            other => other,
        })
    }

    fn check_error(&self, reply: &Reply) -> Result<(), ClientError> {
        match reply.error() {
            Some(text) => Err(ClientError::Server {
                url: self.url.clone(),
                text: text.to_string(),
            }),
            None => Ok(()),
        }
    }

    fn hash(&self, text: &str) -> Result<ArtifactHash, ClientError> {
        ArtifactHash::parse(text).map_err(|_| self.protocol(format!("bad hash {text}")))
    }

    /// Stores the `file`/`cfile` cards among `cards` (deltas resolved against
    /// held or received artifacts, every hash checked), then crosslinks the
    /// new ones: non-check-ins first, then check-ins by date. Returns how
    /// many were new.
    fn store_received(
        &self,
        repo: &Repository,
        cards: Vec<Card>,
        rcvid: Option<i64>,
    ) -> Result<usize, ClientError> {
        let mut full: Vec<(String, Vec<u8>)> = Vec::new();
        let mut deltas: Vec<(String, String, Vec<u8>)> = Vec::new();
        for card in cards {
            let (hash, source, data) = match card {
                Card::File {
                    hash,
                    delta_source,
                    payload,
                } => (hash, delta_source, payload),
                Card::Cfile {
                    hash,
                    delta_source,
                    payload,
                    ..
                } => {
                    let data = crate::repo::decompress(&payload).map_err(|what| {
                        ClientError::Artifact {
                            url: self.url.clone(),
                            hash: hash.clone(),
                            what,
                        }
                    })?;
                    (hash, delta_source, data)
                }
                _ => continue,
            };
            match source {
                Some(src) => deltas.push((hash, src, data)),
                None => full.push((hash, data)),
            }
        }
        let mut stored = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (hash, data) in full {
            self.keep(repo, &mut stored, &mut index, &hash, data, rcvid)?;
        }
        // Deltas may be against later artifacts or each other: retry until
        // no progress.
        while !deltas.is_empty() {
            let before = deltas.len();
            let mut still = Vec::new();
            for (hash, src, delta) in deltas {
                let source = self.hash(&src)?;
                match repo.content(&source).map_err(self.repo_err())? {
                    Some(base) => {
                        let data = crate::delta::apply(&base, &delta, self.limits.max_payload)
                            .map_err(|e| ClientError::Artifact {
                                url: self.url.clone(),
                                hash: hash.clone(),
                                what: e.to_string(),
                            })?;
                        self.keep(repo, &mut stored, &mut index, &hash, data, rcvid)?;
                    }
                    None => still.push((hash, src, delta)),
                }
            }
            if still.len() == before {
                return Err(ClientError::Artifact {
                    url: self.url.clone(),
                    hash: still[0].0.clone(),
                    what: format!("unresolved delta against {}", still[0].1),
                });
            }
            deltas = still;
        }
        let new = stored.len();
        let mut checkins = Vec::new();
        for (rid, artifact) in stored {
            match artifact {
                Artifact::Checkin(m) => checkins.push((m.date.clone(), rid)),
                _ => {
                    repo.crosslink(rid).map_err(self.repo_err())?;
                }
            }
        }
        checkins.sort();
        for (_, rid) in checkins {
            repo.crosslink(rid).map_err(self.repo_err())?;
        }
        Ok(new)
    }

    /// Stores one received artifact (hash-checked by the repository) and
    /// remembers it for crosslinking if it is new.
    fn keep(
        &self,
        repo: &Repository,
        stored: &mut Vec<(crate::repo::Rid, Artifact)>,
        index: &mut HashMap<String, usize>,
        hash: &str,
        data: Vec<u8>,
        rcvid: Option<i64>,
    ) -> Result<(), ClientError> {
        let name = self.hash(hash)?;
        if !name.matches(&data) {
            return Err(ClientError::Artifact {
                url: self.url.clone(),
                hash: hash.to_string(),
                what: "content does not match its name".into(),
            });
        }
        let s = repo
            .store(&data, Some(&name), rcvid)
            .map_err(self.repo_err())?;
        if s.is_new && !index.contains_key(hash) {
            index.insert(hash.to_string(), stored.len());
            stored.push((s.rid, parse_artifact(&data)));
        }
        Ok(())
    }
}

/// A repository failure while beginning or committing a transaction; the
/// URL is filled in by [`Client::in_transaction`].
impl From<RepoError> for ClientError {
    fn from(source: RepoError) -> Self {
        ClientError::Repo {
            url: String::new(),
            source,
        }
    }
}

/// `herd-tip TIP SEQ` arguments.
fn parse_tip(args: &[String]) -> Option<(ArtifactHash, u64)> {
    let tip = ArtifactHash::parse(args.first()?).ok()?;
    let seq = args.get(1)?.parse().ok()?;
    Some((tip, seq))
}

//! The sync server as one function: a request body in, a reply body out,
//! over a [`Repository`] (reference section 5.3, src/xfer.c page_xfer). No
//! HTTP server and no threads here; the hub owns those.
//!
//! Cards are read in order, as Fossil does: capabilities are those in force
//! when a card is read, `gimme` needs an earlier `pull`, `file` an earlier
//! `push`. Pushed content is gathered during the pass and stored after it,
//! so the linear-trunk rule can order check-ins by parent: plain files first,
//! then each check-in whose primary parent is the trunk tip as it moves. A
//! check-in on any other parent is refused with an `error` card naming both
//! hashes and is neither stored nor crosslinked.
//!
//! All writes of a request happen in one savepoint (a transaction of its own
//! when the caller has none open), so a caller may batch several pushes into
//! one outer transaction, and two pushes on the same parent can never both
//! land. [`classify`] tells a caller whether a request writes at all, so
//! pulls and clones can be served on reader connections.

use std::collections::{HashMap, HashSet};

use thiserror::Error;

use super::caps::Caps;
use super::card::{parse_spanned, Card, CloneFrom, Limits, Spanned};
use super::error::CodecError;
use super::fastpath;
use super::frame::{decode_body, encode_body, ContentType};
use super::login::{is_anonymous, verify_login};
use super::time::timestamp_comment;
use crate::repo::{parse_artifact, Artifact, ArtifactHash, RepoError, Repository, Rid};

/// The client version (Fossil 2.21) we announce, and the one below which a
/// client cannot take SHA3 names.
pub const SERVER_VERSION: [&str; 3] = ["22100", "20230226", "192424"];
const MIN_SHA3_CLIENT: u64 = 20000;
/// Reply budget for clone pages and gimme answers (Fossil's max-download).
pub const MAX_DOWNLOAD: u64 = 5_000_000;
/// Fossil sends at most this many phantom gimmes per reply.
const MAX_PHANTOM_GIMMES: usize = 500;

/// How a server answers: size limits on requests, budget of replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Bounds on request bodies and the payloads they declare.
    pub limits: Limits,
    /// Stored bytes per clone page and per reply to `gimme` cards.
    pub max_download: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            max_download: MAX_DOWNLOAD,
        }
    }
}

/// One sync request as the HTTP layer received it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The `Content-Type` header value.
    pub content_type: &'a str,
    /// The raw body.
    pub body: &'a [u8],
    /// The peer's address, recorded with pushed content (`rcvfrom.ipaddr`).
    pub peer: Option<&'a str>,
}

/// Whether a request needs the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Clone, pull, or anything that cannot write: any connection will do.
    ReadOnly,
    /// Carries a `push` card: must run on the single writer.
    Write,
}

/// A trunk advance accepted by this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkAdvance {
    /// The new tip.
    pub hash: ArtifactHash,
    /// Its primary parent, the previous tip.
    pub parent: Option<ArtifactHash>,
    /// The trunk's length (count of check-ins) after the advance.
    pub seq: u64,
}

/// A pushed check-in refused because its parent is not the trunk tip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The refused check-in.
    pub pushed: ArtifactHash,
    /// Its primary parent (`None` for a root check-in).
    pub parent: Option<ArtifactHash>,
    /// The trunk tip at the time.
    pub tip: ArtifactHash,
}

/// What one request did, for logs, metrics and the hub's broadcasts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Cards read.
    pub cards_in: usize,
    /// Cards written.
    pub cards_out: usize,
    /// Artifacts received and newly stored.
    pub artifacts_received: usize,
    /// Artifacts sent (`file` and `cfile` cards).
    pub artifacts_sent: usize,
    /// Accepted trunk advances, oldest first.
    pub advances: Vec<TrunkAdvance>,
    /// Refused check-ins.
    pub refusals: Vec<Refusal>,
    /// `error` cards sent.
    pub errors: usize,
    /// The internal failure behind an error reply, if any (the reply itself
    /// carries only the card).
    pub failure: Option<String>,
}

/// The reply to one request.
#[derive(Debug, Clone)]
pub struct Response {
    /// The reply's content type: the request's, or uncompressed for a v3 clone.
    pub content_type: ContentType,
    /// The framed body.
    pub body: Vec<u8>,
    /// What happened.
    pub outcome: Outcome,
}

/// Why a request could not be served normally. Every variant becomes one
/// `error` card (see [`ServerError::card_text`]); none takes a thread down.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The body could not be decoded into cards.
    #[error("cannot decode the request")]
    Codec(#[from] CodecError),
    /// A pushed artifact's content does not match its name.
    #[error("wrong hash on received artifact: {0}")]
    WrongHash(String),
    /// A pushed delta's source is neither held nor pushed alongside it.
    #[error("delta source {source_hash} of pushed artifact {hash} is not held")]
    MissingDeltaSource {
        /// The pushed artifact.
        hash: String,
        /// Its delta source.
        source_hash: String,
    },
    /// A pushed delta could not be applied.
    #[error("cannot apply the delta of pushed artifact {hash}")]
    BadDelta {
        /// The pushed artifact.
        hash: String,
        /// Why.
        #[source]
        source: crate::delta::DeltaError,
    },
    /// A compressed `cfile` payload could not be inflated.
    #[error("cannot inflate pushed cfile {hash}: {reason}")]
    BadCfile {
        /// The pushed artifact.
        hash: String,
        /// Why.
        reason: String,
    },
    /// The repository failed.
    #[error("repository failure")]
    Repo(#[from] RepoError),
}

impl ServerError {
    /// The text of the `error` card a client sees: protocol faults are named,
    /// internal failures are not detailed.
    pub fn card_text(&self) -> String {
        match self {
            ServerError::Codec(e) => format!("bad request: {e}"),
            ServerError::Repo(_) => "server error".to_string(),
            other => other.to_string(),
        }
    }
}

/// A request decoded into cards, ready to classify and handle.
#[derive(Debug, Clone)]
pub struct Decoded {
    content_type: ContentType,
    text: Vec<u8>,
    cards: Vec<Spanned>,
}

impl Decoded {
    /// Decodes a request's body under `limits`.
    pub fn new(request: &Request<'_>, limits: &Limits) -> Result<Decoded, CodecError> {
        let content_type = ContentType::parse(request.content_type)?;
        let text = decode_body(content_type, request.body, limits)?;
        let cards = parse_spanned(&text, limits)?;
        Ok(Decoded {
            content_type,
            text,
            cards,
        })
    }

    /// Whether handling this request writes.
    pub fn kind(&self) -> Kind {
        if self
            .cards
            .iter()
            .any(|s| matches!(s.card, Card::Push { .. }))
        {
            Kind::Write
        } else {
            Kind::ReadOnly
        }
    }

    /// The cards, in order.
    pub fn cards(&self) -> impl Iterator<Item = &Card> {
        self.cards.iter().map(|s| &s.card)
    }
}

/// Whether `request` needs the writer. Undecodable requests are read-only:
/// they only earn an error reply.
pub fn classify(request: &Request<'_>) -> Kind {
    Decoded::new(request, &Limits::default()).map_or(Kind::ReadOnly, |d| d.kind())
}

/// Serves one request with the default [`ServerConfig`].
pub fn handle(repo: &Repository, request: &Request<'_>) -> Response {
    handle_with(repo, request, &ServerConfig::default())
}

/// Serves one request under `config`.
pub fn handle_with(repo: &Repository, request: &Request<'_>, config: &ServerConfig) -> Response {
    match Decoded::new(request, &config.limits) {
        Ok(decoded) => handle_decoded(repo, &decoded, request.peer, config),
        Err(e) => {
            let content_type =
                ContentType::parse(request.content_type).unwrap_or(ContentType::Fossil);
            error_response(content_type, &ServerError::Codec(e))
        }
    }
}

/// The single place an error becomes a reply: one `error` card and the
/// closing timestamp.
fn error_response(content_type: ContentType, error: &ServerError) -> Response {
    let cards = vec![
        Card::Error(error.card_text()),
        Card::Comment(timestamp_comment(1)),
    ];
    Response {
        content_type,
        body: encode_body(content_type, &super::card::encode(&cards)),
        outcome: Outcome {
            cards_out: cards.len(),
            errors: 1,
            failure: Some(error_chain(error)),
            ..Outcome::default()
        },
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Serves a decoded request. Writes run in one savepoint; a protocol fault
/// in pushed content rolls back everything the request wrote.
pub fn handle_decoded(
    repo: &Repository,
    decoded: &Decoded,
    peer: Option<&str>,
    config: &ServerConfig,
) -> Response {
    let mut session = Session::new(repo, decoded, peer, config);
    let result = match decoded.kind() {
        Kind::ReadOnly => session.run(),
        Kind::Write => atomically(repo, || session.run()),
    };
    match result {
        Ok(()) => session.finish(),
        Err(e) => error_response(session.reply_type(), &e),
    }
}

/// Runs `f` in a savepoint, inside the caller's transaction if one is open,
/// else in a `BEGIN IMMEDIATE` transaction of its own (so the write lock is
/// taken up front and a busy writer waits instead of failing mid-request).
fn atomically<T>(
    repo: &Repository,
    f: impl FnOnce() -> Result<T, ServerError>,
) -> Result<T, ServerError> {
    if repo.conn.is_autocommit() {
        repo.transaction(|r| r.savepoint(f))
    } else {
        repo.savepoint(f)
    }
}

/// One pushed artifact, decoded from a `file` or `cfile` card.
struct Pushed<'a> {
    hash: &'a str,
    delta_source: Option<&'a str>,
    /// Full content, a delta, or (cfile) a stored blob.
    payload: &'a [u8],
    compressed: bool,
}

struct Session<'a> {
    repo: &'a Repository,
    config: &'a ServerConfig,
    decoded: &'a Decoded,
    peer: Option<&'a str>,
    caps: Caps,
    user: String,
    nonce: Option<String>,
    client_version: u64,
    pulling: bool,
    pushing: bool,
    /// Reply cards so far.
    out: Vec<Card>,
    /// Error cards, sent last.
    errors: Vec<String>,
    gimmes: Vec<&'a str>,
    igots: Vec<&'a str>,
    pushed: Vec<Pushed<'a>>,
    clone: Option<Option<CloneFrom>>,
    fast_tip: Option<Option<&'a str>>,
    fast_push: bool,
    stopped: bool,
    uncompressed_reply: bool,
    outcome: Outcome,
}

impl<'a> Session<'a> {
    fn new(
        repo: &'a Repository,
        decoded: &'a Decoded,
        peer: Option<&'a str>,
        config: &'a ServerConfig,
    ) -> Session<'a> {
        Session {
            repo,
            config,
            decoded,
            peer,
            caps: Caps::default(),
            user: "nobody".to_string(),
            nonce: None,
            client_version: 0,
            pulling: false,
            pushing: false,
            out: Vec::new(),
            errors: Vec::new(),
            gimmes: Vec::new(),
            igots: Vec::new(),
            pushed: Vec::new(),
            clone: None,
            fast_tip: None,
            fast_push: false,
            stopped: false,
            uncompressed_reply: false,
            outcome: Outcome {
                cards_in: decoded.cards.len(),
                ..Outcome::default()
            },
        }
    }

    fn reply_type(&self) -> ContentType {
        if self.uncompressed_reply {
            ContentType::Uncompressed
        } else {
            self.decoded.content_type
        }
    }

    /// Fossil's fatal errors: whatever was queued is wiped and the pass stops.
    fn fail(&mut self, text: &str) {
        self.out.clear();
        self.errors.push(text.to_string());
        self.stopped = true;
    }

    fn run(&mut self) -> Result<(), ServerError> {
        let repo = self.repo;
        self.caps = Caps::new(&repo.user_caps("nobody")?.unwrap_or_default());
        let project_code = repo.project_code()?;
        let decoded = self.decoded;
        for spanned in &decoded.cards {
            if self.stopped {
                break;
            }
            self.card(spanned, &project_code)?;
        }
        if self.stopped {
            return Ok(());
        }
        if !self.pushed.is_empty() {
            self.store_pushed()?;
        }
        self.serve_gimmes()?;
        if let Some(from) = self.clone.clone() {
            self.serve_clone(from, &project_code)?;
        }
        if self.pulling {
            match self.fast_tip {
                Some(tip) if fastpath::serves_pull(repo, tip)? => {
                    let cards = fastpath::pull_reply(repo, tip)?;
                    self.count_sent(&cards);
                    self.out.extend(cards);
                }
                _ => {
                    for (_, hash) in repo.unclustered()? {
                        self.out.push(Card::Igot {
                            hash: hash.to_string(),
                            private: false,
                        });
                    }
                }
            }
        }
        if self.pushing {
            self.finish_push()?;
        }
        Ok(())
    }

    fn card(&mut self, spanned: &'a Spanned, project_code: &str) -> Result<(), ServerError> {
        let repo = self.repo;
        match &spanned.card {
            Card::Login {
                user,
                nonce,
                signature,
            } => {
                let after = &self.decoded.text[spanned.end..];
                let stored =
                    if is_anonymous(user) || matches!(user.as_str(), "developer" | "reader") {
                        None
                    } else {
                        repo.user_secret(user)?
                    };
                match verify_login(
                    user,
                    nonce,
                    signature,
                    after,
                    project_code,
                    stored.as_deref(),
                ) {
                    Ok(()) => {
                        if !is_anonymous(user) {
                            self.caps.add(&repo.user_caps(user)?.unwrap_or_default());
                        }
                        self.user = user.clone();
                        self.nonce = Some(nonce.clone());
                    }
                    Err(_) => self.fail("login failed"),
                }
            }
            Card::Pragma { name, args } => match name.as_str() {
                "client-version" => {
                    self.client_version = args.first().and_then(|v| v.parse().ok()).unwrap_or(0);
                    if args.len() >= 3 {
                        self.out
                            .push(Card::pragma("server-version", &SERVER_VERSION));
                    }
                }
                fastpath::PRAGMA_TIP => {
                    self.fast_tip = Some(args.first().map(String::as_str));
                }
                fastpath::PRAGMA_PUSH => self.fast_push = true,
                _ => {}
            },
            Card::Pull {
                project_code: pc, ..
            } => {
                if pc != project_code {
                    self.fail("wrong project");
                } else if !self.caps.may_read() {
                    self.fail("not authorized to read");
                } else {
                    self.pulling = true;
                }
            }
            Card::Push {
                project_code: pc, ..
            } => {
                if pc != project_code {
                    self.fail("wrong project");
                } else if self.caps.may_write() {
                    self.pushing = true;
                } else if self.pulling {
                    self.out
                        .push(Card::Message("pull only - not authorized to push".into()));
                } else {
                    self.fail("not authorized to write");
                }
            }
            Card::Clone(from) => {
                if !self.caps.may_clone() {
                    self.out.clear();
                    self.out.push(Card::Push {
                        server_code: repo.server_code()?,
                        project_code: project_code.to_string(),
                    });
                    self.errors.push("not authorized to clone".into());
                    self.stopped = true;
                } else {
                    if from.as_ref().is_some_and(|f| f.version >= 3) {
                        self.uncompressed_reply = true;
                    }
                    self.clone = Some(from.clone());
                }
            }
            Card::Igot { hash, .. } => {
                if self.pushing {
                    self.igots.push(hash);
                }
            }
            Card::Gimme(hash) => {
                if self.pulling || self.clone.is_some() {
                    self.gimmes.push(hash);
                }
            }
            Card::File {
                hash,
                delta_source,
                payload,
            } => self.accept(hash, delta_source.as_deref(), payload, false),
            Card::Cfile {
                hash,
                delta_source,
                payload,
                ..
            } => self.accept(hash, delta_source.as_deref(), payload, true),
            Card::Unknown(raw) => {
                // Fossil wipes the reply so far but keeps reading.
                self.out.clear();
                self.errors.push(format!(
                    "bad command: {}",
                    String::from_utf8_lossy(raw).trim_end()
                ));
            }
            // Ignored as the 2.21 server ignores them (or answers nothing).
            Card::Cookie(_)
            | Card::Reqconfig(_)
            | Card::Config { .. }
            | Card::Private
            | Card::Message(_)
            | Card::Error(_)
            | Card::CloneSeqno(_)
            | Card::Comment(_) => {}
        }
        Ok(())
    }

    fn accept(
        &mut self,
        hash: &'a str,
        delta_source: Option<&'a str>,
        payload: &'a [u8],
        compressed: bool,
    ) {
        if !self.pushing {
            self.fail("not authorized to write");
            return;
        }
        self.pushed.push(Pushed {
            hash,
            delta_source,
            payload,
            compressed,
        });
    }

    /// Resolves every pushed artifact to full, hash-checked content, stores
    /// the non-check-ins, then lands check-ins in parent order.
    fn store_pushed(&mut self) -> Result<(), ServerError> {
        let repo = self.repo;
        let contents = resolve_pushed(repo, &self.pushed, &self.config.limits)?;
        let rcvid = repo.new_rcvid(&self.user, self.nonce.as_deref(), self.peer)?;
        let mut checkins = Vec::new();
        for (hash, content) in &contents {
            match parse_artifact(content) {
                Artifact::Checkin(manifest) => {
                    if repo.rid_of(hash)?.is_some_and(|(_, phantom)| !phantom) {
                        continue; // already held: nothing to land
                    }
                    checkins.push((hash, content, manifest.parents.first().cloned()));
                }
                _ => {
                    let stored = repo.store(content, Some(hash), Some(rcvid))?;
                    if stored.is_new {
                        self.outcome.artifacts_received += 1;
                        repo.crosslink(stored.rid)?;
                    }
                }
            }
        }
        // Land check-ins whose parent is the moving tip, in chain order.
        let mut tip = repo.trunk_tip()?;
        while let Some(i) = checkins
            .iter()
            .position(|(_, _, parent)| parent.is_some() && *parent == tip)
        {
            let (hash, content, parent) = checkins.swap_remove(i);
            let stored = repo.store(content, Some(hash), Some(rcvid))?;
            repo.crosslink(stored.rid)?;
            self.outcome.artifacts_received += 1;
            self.outcome.advances.push(TrunkAdvance {
                hash: hash.clone(),
                parent,
                seq: repo.trunk_commits()?,
            });
            tip = Some(hash.clone());
        }
        let Some(tip) = tip.filter(|_| !checkins.is_empty()) else {
            return Ok(());
        };
        for (hash, _, parent) in checkins {
            let parent_text = parent
                .as_ref()
                .map_or("none".to_string(), |p| p.to_string());
            self.errors.push(format!(
                "would fork: check-in {hash} has parent {parent_text} but trunk tip is {tip}"
            ));
            self.outcome.refusals.push(Refusal {
                pushed: hash.clone(),
                parent,
                tip: tip.clone(),
            });
        }
        Ok(())
    }

    /// Answers `gimme` cards with full `file` cards while the reply is under
    /// budget, then with `igot`.
    fn serve_gimmes(&mut self) -> Result<(), ServerError> {
        let mut budget = self.config.max_download;
        let gimmes = std::mem::take(&mut self.gimmes);
        for hash in gimmes {
            let Ok(hash) = ArtifactHash::parse(hash) else {
                continue;
            };
            if !self.may_send(&hash) {
                return Ok(());
            }
            if budget == 0 {
                self.out.push(Card::Igot {
                    hash: hash.to_string(),
                    private: false,
                });
                continue;
            }
            if let Some(content) = self.repo.content(&hash)? {
                budget = budget.saturating_sub(content.len() as u64);
                self.outcome.artifacts_sent += 1;
                self.out.push(Card::File {
                    hash: hash.to_string(),
                    delta_source: None,
                    payload: content,
                });
            }
        }
        Ok(())
    }

    /// Fossil refuses SHA3 content to clients older than 2.0.
    fn may_send(&mut self, hash: &ArtifactHash) -> bool {
        if hash.as_str().len() == 64 && self.client_version < MIN_SHA3_CLIENT {
            self.fail("Fossil version 2.0 or later required.");
            return false;
        }
        true
    }

    /// `clone VER SEQ` (v2/v3 paging) and the legacy `clone`.
    fn serve_clone(
        &mut self,
        from: Option<CloneFrom>,
        project_code: &str,
    ) -> Result<(), ServerError> {
        let repo = self.repo;
        let push = Card::Push {
            server_code: repo.server_code()?,
            project_code: project_code.to_string(),
        };
        let Some(from) = from.filter(|f| f.version >= 2) else {
            // Legacy: announce everything, the client asks with gimme.
            self.out.push(push);
            let (rids, _) = repo.blobs_from(Rid(1), u64::MAX)?;
            for rid in rids {
                if let Some(hash) = repo.hash_of(rid)? {
                    self.out.push(Card::Igot {
                        hash: hash.to_string(),
                        private: false,
                    });
                }
            }
            return Ok(());
        };
        let start = i64::try_from(from.seqno).unwrap_or(i64::MAX).max(1);
        let (rids, next) = repo.blobs_from(Rid(start), self.config.max_download)?;
        for rid in rids {
            let Some(hash) = repo.hash_of(rid)? else {
                continue;
            };
            if !self.may_send(&hash) {
                return Ok(());
            }
            let card = if from.version >= 3 {
                let Some(raw) = repo.raw(rid)? else { continue };
                Card::Cfile {
                    hash: hash.to_string(),
                    delta_source: raw.delta_source.map(|h| h.to_string()),
                    full_size: raw.size,
                    payload: raw.stored,
                }
            } else {
                Card::File {
                    hash: hash.to_string(),
                    delta_source: None,
                    payload: repo.content_of(rid)?,
                }
            };
            self.outcome.artifacts_sent += 1;
            self.out.push(card);
        }
        // clone_seqno must come before push: push queues the next round.
        self.out
            .push(Card::CloneSeqno(next.map_or(0, |r| r.0.max(0) as u64)));
        self.out.push(push);
        Ok(())
    }

    /// End of a push: unknown igots and phantoms are asked for; the fast path
    /// gets its verdict.
    fn finish_push(&mut self) -> Result<(), ServerError> {
        let repo = self.repo;
        let refused: HashSet<&str> = self
            .outcome
            .refusals
            .iter()
            .map(|r| r.pushed.as_str())
            .collect();
        let mut asked = HashSet::new();
        for hash in std::mem::take(&mut self.igots) {
            let Ok(h) = ArtifactHash::parse(hash) else {
                continue;
            };
            if refused.contains(hash) || repo.rid_of(&h)?.is_some_and(|(_, phantom)| !phantom) {
                continue;
            }
            if asked.insert(h.clone()) {
                self.out.push(Card::Gimme(h.to_string()));
            }
        }
        for phantom in repo.phantoms()?.into_iter().take(MAX_PHANTOM_GIMMES) {
            if asked.insert(phantom.clone()) {
                self.out.push(Card::Gimme(phantom.to_string()));
            }
        }
        if self.fast_push {
            let cards = fastpath::push_reply(repo, &self.outcome)?;
            self.count_sent(&cards);
            self.out.extend(cards);
        }
        Ok(())
    }

    fn count_sent(&mut self, cards: &[Card]) {
        self.outcome.artifacts_sent += cards
            .iter()
            .filter(|c| matches!(c, Card::File { .. } | Card::Cfile { .. }))
            .count();
    }

    fn finish(mut self) -> Response {
        let content_type = self.reply_type();
        let mut cards = std::mem::take(&mut self.out);
        self.outcome.errors = self.errors.len();
        cards.extend(self.errors.drain(..).map(Card::Error));
        cards.push(Card::Comment(timestamp_comment(self.outcome.errors)));
        self.outcome.cards_out = cards.len();
        Response {
            content_type,
            body: encode_body(content_type, &super::card::encode(&cards)),
            outcome: self.outcome,
        }
    }
}

/// Turns pushed cards into (hash, full content), applying deltas against
/// held artifacts or other pushed ones, and checking every hash. Any fault
/// fails the whole request, so no partial artifact is ever stored.
fn resolve_pushed(
    repo: &Repository,
    pushed: &[Pushed<'_>],
    limits: &Limits,
) -> Result<Vec<(ArtifactHash, Vec<u8>)>, ServerError> {
    let mut done: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<(ArtifactHash, Vec<u8>)> = Vec::new();
    let mut pending: Vec<&Pushed<'_>> = Vec::new();
    let finish = |out: &mut Vec<(ArtifactHash, Vec<u8>)>,
                  done: &mut HashMap<String, usize>,
                  p: &Pushed<'_>,
                  content: Vec<u8>|
     -> Result<(), ServerError> {
        let hash =
            ArtifactHash::parse(p.hash).map_err(|_| ServerError::WrongHash(p.hash.to_string()))?;
        if !hash.matches(&content) {
            return Err(ServerError::WrongHash(p.hash.to_string()));
        }
        if !done.contains_key(p.hash) {
            done.insert(p.hash.to_string(), out.len());
            out.push((hash, content));
        }
        Ok(())
    };
    for p in pushed {
        let data = if p.compressed {
            crate::repo::decompress(p.payload).map_err(|reason| ServerError::BadCfile {
                hash: p.hash.to_string(),
                reason,
            })?
        } else {
            p.payload.to_vec()
        };
        match p.delta_source {
            None => finish(&mut out, &mut done, p, data)?,
            Some(_) => pending.push(p),
        }
    }
    // Deltas, possibly against each other: apply until nothing changes.
    while !pending.is_empty() {
        let before = pending.len();
        let mut still = Vec::new();
        for p in pending {
            let src = p.delta_source.unwrap_or_default();
            let source = match done.get(src) {
                Some(&i) => Some(out[i].1.clone()),
                None => match ArtifactHash::parse(src) {
                    Ok(h) => repo.content(&h)?,
                    Err(_) => None,
                },
            };
            let Some(source) = source else {
                still.push(p);
                continue;
            };
            let delta = if p.compressed {
                crate::repo::decompress(p.payload).map_err(|reason| ServerError::BadCfile {
                    hash: p.hash.to_string(),
                    reason,
                })?
            } else {
                p.payload.to_vec()
            };
            let content =
                crate::delta::apply(&source, &delta, limits.max_payload).map_err(|source| {
                    ServerError::BadDelta {
                        hash: p.hash.to_string(),
                        source,
                    }
                })?;
            finish(&mut out, &mut done, p, content)?;
        }
        if still.len() == before {
            let p = still[0];
            return Err(ServerError::MissingDeltaSource {
                hash: p.hash.to_string(),
                source_hash: p.delta_source.unwrap_or_default().to_string(),
            });
        }
        pending = still;
    }
    Ok(out)
}

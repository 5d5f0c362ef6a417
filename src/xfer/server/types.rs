//! The server's public types: its configuration, the request as the HTTP
//! layer hands it over, the decoded request and its kind, what a request did,
//! and why one failed.

use thiserror::Error;

use super::access::Access;
use crate::repo::{ArtifactHash, RepoError};
use crate::xfer::card::{parse_spanned, Card, Limits, Spanned};
use crate::xfer::error::CodecError;
use crate::xfer::fastpath;
use crate::xfer::frame::{decode_body, ContentType};

/// The client version (Fossil 2.21) we announce, and the one below which a
/// client cannot take SHA3 names.
pub const SERVER_VERSION: [&str; 3] = ["22100", "20230226", "192424"];
pub(super) const MIN_SHA3_CLIENT: u64 = 20000;
/// Reply budget for clone pages and gimme answers (Fossil's max-download).
pub const MAX_DOWNLOAD: u64 = 5_000_000;
/// Fossil sends at most this many phantom gimmes per reply.
pub(super) const MAX_PHANTOM_GIMMES: usize = 500;

/// How a server answers: size limits on requests, budget of replies, and
/// who may do what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Bounds on request bodies and the payloads they declare.
    pub limits: Limits,
    /// Stored bytes per clone page and per reply to `gimme` cards.
    pub max_download: u64,
    /// The user table read once at start; `None` reads it on every request
    /// (as Fossil does) with `nobody`'s capabilities for anonymous clients.
    /// `'static` keeps the config `Copy`: a server loads it once per process
    /// (see [`Access::leak`]).
    pub access: Option<&'static Access>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            max_download: MAX_DOWNLOAD,
            access: None,
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
    /// The new tip's trunk position
    /// ([`crate::repo::Repository::trunk_position`]).
    pub seq: u64,
    /// When the hub wrote this check-in anew on the tip (a hub landing):
    /// the pushed check-in it stands for, which is not stored.
    pub landed_from: Option<ArtifactHash>,
    /// A hub landing written as a delta against the same baseline as the
    /// pushed check-in: the pusher holds that baseline, so it can store the
    /// landed manifest and commit on it (the reply then carries it).
    pub pusher_can_keep: bool,
    /// Files of a hub landing that changed on trunk too and were merged by
    /// lines: their new texts, which the pusher lacks (the reply carries
    /// them).
    pub merged: Vec<ArtifactHash>,
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
    /// For a push that asked to be landed: the files it changed that were
    /// also changed on trunk since its parent and could not be merged, each
    /// with the lines in conflict (empty for a plain refusal).
    pub conflicts: Vec<crate::repo::FileConflict>,
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
    /// A push repeated after its reply was lost: the check-in the hub
    /// landed for it then (nothing new was written).
    pub landed_before: Option<ArtifactHash>,
    /// With `landed_before`: the texts that landing merged by lines (files
    /// the pushed check-in changed that the landed one holds otherwise),
    /// which the pusher lacks still.
    pub landed_before_merged: Vec<ArtifactHash>,
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
    pub(super) content_type: ContentType,
    pub(super) text: Vec<u8>,
    pub(super) cards: Vec<Spanned>,
    /// The push-queue turn this request is granted should it be refused
    /// (see `fastpath`); set by the server that keeps the queue.
    pub(super) turn_grant: Option<u64>,
}

/// What a push asks of a server's push queue (`pragma herd-queue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueAsk {
    /// The pusher will wait for a turn.
    Wait,
    /// The pusher holds this turn.
    Turn(u64),
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
            turn_grant: None,
        })
    }

    /// What the request asks of the push queue; `None` when it does not
    /// take part (a real fossil, or a push without the pragma).
    pub fn queue_ask(&self) -> Option<QueueAsk> {
        self.cards().find_map(|card| match card {
            Card::Pragma { name, args } if name == fastpath::PRAGMA_QUEUE => {
                Some(match args.first().and_then(|t| t.parse().ok()) {
                    Some(token) => QueueAsk::Turn(token),
                    None => QueueAsk::Wait,
                })
            }
            _ => None,
        })
    }

    /// Whether the request asks the hub to land its check-ins
    /// (`pragma herd-land`).
    pub fn asks_landing(&self) -> bool {
        self.cards()
            .any(|card| matches!(card, Card::Pragma { name, .. } if name == fastpath::PRAGMA_LAND))
    }

    /// Grants turn `token` to this request, announced if it is refused.
    pub fn grant_turn(&mut self, token: u64) {
        self.turn_grant = Some(token);
    }

    /// The turn granted to this request, if any.
    pub fn granted_turn(&self) -> Option<u64> {
        self.turn_grant
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

//! The entry points: decode, classify and serve a request; run writes in one
//! savepoint; and the single place an error becomes an `error` card reply.

use super::session::Session;
use super::types::{Decoded, Kind, Outcome, Request, Response, ServerConfig, ServerError};
use crate::chain::chain as error_chain;
use crate::repo::Repository;
use crate::xfer::card::Card;
use crate::xfer::frame::{encode_body, ContentType};
use crate::xfer::time::timestamp_comment;

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
        body: encode_body(content_type, &crate::xfer::card::encode(&cards)),
        outcome: Outcome {
            cards_out: cards.len(),
            errors: 1,
            failure: Some(error_chain(error)),
            ..Outcome::default()
        },
    }
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
    if !repo.in_transaction() {
        repo.transaction(|r| r.savepoint(f))
    } else {
        repo.savepoint(f)
    }
}

//! The sync server as one function: a request body in, a reply body out,
//! over a [`Repository`](crate::repo::Repository) (reference section 5.3, src/xfer.c page_xfer). No
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
//!
//! Files: `access` (the user table and the anonymous policy), `types`
//! (config, request, outcome, errors), `handle` (the entry
//! points and the one place errors become replies), `session` (the pass over
//! the cards), `push` (landing pushed content), `serve` (gimme and clone
//! answers).

mod access;
mod handle;
mod push;
mod serve;
mod session;
mod types;

pub use access::{Access, Account};
pub use handle::{handle, handle_decoded, handle_with};
pub use types::{
    classify, Decoded, Kind, Outcome, QueueAsk, Refusal, Request, Response, ServerConfig,
    ServerError, TrunkAdvance, MAX_DOWNLOAD, SERVER_VERSION,
};

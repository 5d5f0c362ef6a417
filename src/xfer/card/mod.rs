//! The card codec of Fossil's sync protocol (www/sync.wiki, src/xfer.c): one
//! message is a list of newline-terminated cards, some followed by a raw
//! payload. This module turns bytes into [`Card`]s and back, with no I/O and
//! no repository; HTTP framing is in `frame.rs`, meaning is in `server/` and
//! `client/`.
//!
//! Parsing follows Fossil's reader: blank lines are skipped, a line starting
//! `#` is a comment (kept, because the client's trailing random comment is
//! part of the login nonce), tokens are split on ASCII whitespace, and a card
//! Fossil would not recognise (wrong name or wrong arguments) is kept as
//! [`Card::Unknown`] so the server can answer `error bad\scommand`. Only a
//! payload card whose header is unreadable, or whose payload is cut short or
//! over the [`Limits`], is an error: after it the stream cannot be resynced.
//!
//! Files: `types` (the cards and limits), `write` (cards to bytes), `parse`
//! (bytes to cards, line cards), `payload` (`file`, `cfile` and `config`
//! cards), `token` (tokens as Fossil's reader reads them).

mod parse;
mod payload;
mod token;
mod types;
mod write;

pub use parse::{parse, parse_spanned, parse_with, Spanned};
pub use types::{Card, CloneFrom, Limits};
pub use write::encode;

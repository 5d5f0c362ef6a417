//! Fossil's HTTP sync protocol ("xfer"): the card codec, the server side over
//! a repository, and a client for any Fossil server. Knows no HTTP server and
//! no NATS: the hub wraps [`server::handle`] in its HTTP endpoint.
//!
//! - `card`: cards to bytes and back (no I/O).
//! - `frame`: HTTP content types and the zlib body framing.
//! - `login`: login card nonces and signatures.
//! - `bundle`: a trunk advance's artifacts, packed for its tip broadcast.
//! - `caps`: user capabilities as the server checks them.
//! - `server`: one request in, one reply out, over a repository.
//! - `fastpath`: herd's one-round pull and push pragmas (server side).
//! - `client`: clone, pull and push over HTTP.
//! - `time`: the reply's closing timestamp.
//! - `error`: codec and login errors.

pub mod bundle;
pub mod caps;
pub mod card;
pub mod client;
pub mod error;
pub mod fastpath;
pub mod frame;
pub mod login;
pub mod server;
pub mod time;

pub use card::{encode, parse, parse_spanned, parse_with, Card, CloneFrom, Limits, Spanned};
pub use client::{Client, ClientError, PullOutcome, PushOutcome};
pub use error::{CodecError, LoginError};
pub use frame::{compress, decode_body, encode_body, ContentType};
pub use login::{build_login, verify_login};
pub use server::{
    classify, handle, handle_decoded, handle_with, Decoded, Kind, Outcome, QueueAsk, Refusal,
    Request, Response, ServerConfig, ServerError, TrunkAdvance,
};

//! Fossil's HTTP sync protocol ("xfer"): the card codec, the server side over
//! a repository, and a client for any Fossil server.
//!
//! - `card`: cards to bytes and back (no I/O).
//! - `frame`: HTTP content types and the zlib body framing.
//! - `login`: login card nonces and signatures.
//! - `error`: codec and login errors.

pub mod card;
pub mod error;
pub mod frame;
pub mod login;

pub use card::{encode, parse, parse_spanned, parse_with, Card, CloneFrom, Limits, Spanned};
pub use error::{CodecError, LoginError};
pub use frame::{compress, decode_body, encode_body, ContentType};
pub use login::{build_login, verify_login};

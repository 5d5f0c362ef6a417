//! Errors of the sync protocol: the codec (cards and HTTP body framing) and
//! login verification. Server and client errors live beside their code.

use thiserror::Error;

/// Why a request or reply body could not be decoded into cards.
#[derive(Debug, Error)]
pub enum CodecError {
    /// A card line ended before its required newline, or a payload was cut short.
    #[error("card stream truncated at byte {at}: {what}")]
    Truncated {
        /// Offset into the card text where the missing bytes should start.
        at: usize,
        /// What was expected there.
        what: &'static str,
    },
    /// A payload card (`file`, `cfile`, `config`) whose header cannot be
    /// read, so the payload's end, and every card after it, is unknown.
    #[error("malformed {card} card at byte {at}: {line}")]
    MalformedPayloadCard {
        /// Offset of the card line.
        at: usize,
        /// The card name.
        card: &'static str,
        /// The line, lossily decoded.
        line: String,
    },
    /// A card declares a payload larger than the limit for one payload.
    #[error("{card} card at byte {at} declares {declared} bytes, over the limit of {limit}")]
    PayloadTooLarge {
        /// Offset of the card line.
        at: usize,
        /// The card name.
        card: &'static str,
        /// The declared size.
        declared: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The payloads of all cards together exceed the limit for one message.
    #[error("payloads up to byte {at} total {total} bytes, over the limit of {limit}")]
    TotalTooLarge {
        /// Offset of the card that crossed the limit.
        at: usize,
        /// The declared total so far.
        total: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The HTTP content type is not one of Fossil's sync types.
    #[error("unsupported content type {0:?}")]
    ContentType(String),
    /// A compressed body shorter than its 4-byte length prefix.
    #[error("compressed body of {len} bytes has no 4-byte length prefix")]
    ShortFrame {
        /// Length of the body.
        len: usize,
    },
    /// The length prefix of a compressed body exceeds the limit.
    #[error("compressed body declares {declared} bytes, over the limit of {limit}")]
    FrameTooLarge {
        /// The declared uncompressed size.
        declared: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The zlib stream could not be inflated.
    #[error("cannot inflate the zlib body")]
    Inflate(#[source] std::io::Error),
    /// The inflated size differs from the length prefix.
    #[error("inflated body has {actual} bytes but its prefix says {declared}")]
    FrameLength {
        /// The size in the prefix.
        declared: u64,
        /// The size inflated (at most the prefix plus one).
        actual: u64,
    },
}

/// Why a `login` card was not accepted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LoginError {
    /// The nonce is not the SHA1 of the bytes after the login card.
    #[error("login nonce for user {user:?} does not match the message")]
    Nonce {
        /// The login name on the card.
        user: String,
    },
    /// The user does not exist, may not log in, or has no password.
    #[error("no user {user:?} that may log in")]
    UnknownUser {
        /// The login name on the card.
        user: String,
    },
    /// The signature matches neither the secret nor the cleartext password.
    #[error("bad login signature for user {user:?}")]
    Signature {
        /// The login name on the card.
        user: String,
    },
}

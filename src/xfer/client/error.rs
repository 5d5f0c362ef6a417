//! Errors of the sync client; every variant names the server URL.

use thiserror::Error;

use crate::repo::RepoError;
use crate::xfer::error::CodecError;

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

/// A repository failure while beginning or committing a transaction; the
/// URL is filled in by the client method that opened the transaction.
impl From<RepoError> for ClientError {
    fn from(source: RepoError) -> Self {
        ClientError::Repo {
            url: String::new(),
            source,
        }
    }
}

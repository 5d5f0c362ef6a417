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
//!
//! Files: `error` (ClientError), `http` (the client, its agent and one
//! message exchange), `sync` (clone, pull), `push` (push), `plain` (pull and push
//! with Fossil's plain protocol only, for a stock `fossil server`),
//! `receive` (storing and crosslinking received artifacts).

mod bundle;
mod error;
mod http;
mod plain;
mod push;
mod receive;
mod sync;

pub use error::ClientError;
pub use http::Client;
pub use push::PushOutcome;
pub use sync::PullOutcome;

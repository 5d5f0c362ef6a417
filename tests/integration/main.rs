//! Integration tests: real binaries, a real nats-server, the real `fossil`.
mod helpers;
mod repo;
mod xfer;

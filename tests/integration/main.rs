//! Integration tests: real binaries, a real nats-server, the real `fossil`.
mod coord;
mod helpers;
mod hub;
mod repo;
mod xfer;

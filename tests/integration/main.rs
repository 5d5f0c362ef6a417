//! Integration tests: real binaries, a real nats-server, the real `fossil`.
mod coord;
mod helpers;
mod herd;
mod hub;
mod leaf;
mod limits;
mod otel;
mod repo;
mod sweep;
mod xfer;

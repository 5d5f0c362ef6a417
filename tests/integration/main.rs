//! Integration tests: real binaries, a real nats-server, the real `fossil`.
mod access;
mod coord;
mod faults;
mod fossil_hub;
mod helpers;
mod herd;
mod hub;
mod infra;
mod landing;
mod leaf;
mod limits;
mod otel;
mod queue;
mod repo;
mod sweep;
mod xfer;

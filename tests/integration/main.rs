//! Integration tests: real binaries, a real nats-server, the real `fossil`.
mod access;
mod coord;
mod faults;
mod fossil_hub;
mod full;
mod helpers;
mod herd;
mod hub;
mod landing;
mod leaf;
mod limits;
mod otel;
mod queue;
mod repo;
mod sweep;
mod xfer;

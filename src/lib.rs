//! herd: a thundering-herd trial harness for a hub-and-leaf version-control
//! architecture, built on a Fossil-compatible repository and NATS JetStream.
//!
//! The modules, in dependency order (see `docs/architecture.md`):
//!
//! - [`delta`]: Fossil's delta format, encode and apply. Depends on nothing.
//! - [`repo`]: Fossil-format repositories in SQLite: artifacts, manifests,
//!   crosslinking, check-out and rebase. Knows no protocol.
//! - [`xfer`]: Fossil's HTTP sync protocol: the card codec, the server
//!   function and the client. Knows no HTTP server and no NATS.
//! - [`coord`]: tasks, claims, file holds and the tip subscription on NATS
//!   JetStream. Knows no storage.
//! - [`hub`]: the hub process: HTTP server, single writer, tip broadcast.
//! - [`leaf`]: one leaf-agent slot's task loop.
//! - [`supervisor`]: the `herd` process: children, pipes, aggregation.
//! - [`wire`]: what crosses between processes as data: the JSON lines a
//!   leaf-agent prints and herd reads, the hub's `/stats` and counters, the
//!   trial clock and timelines.
//! - [`workload`]: the deterministic task generator and its flags.
//! - [`spec`]: a trial's shape, the flags herd and every leaf share.
//! - [`env`](mod@env): the environment variables herd hands its children.
//! - [`chain`]: an error chain as one sentence.
//! - [`exit`]: the exit codes of the three programs.
//! - [`flag`]: one spelling per flag value (`flag_value!`).
//! - [`compare`]: `herd compare`: two sets of runs, a verdict per figure.
//! - [`soak`]: `herd soak`: trials under seeded faults, each checked.
//! - [`telemetry`]: logs, span export over OTLP, W3C context crossings.
#![warn(missing_docs)]

pub mod chain;
pub mod compare;
pub mod coord;
pub mod delta;
pub mod env;
pub mod exit;
pub mod flag;
pub mod hub;
pub mod leaf;
pub mod plot;
pub mod repo;
pub mod soak;
pub mod spec;
pub mod stderr;
pub mod supervisor;
pub mod telemetry;
pub mod wire;
pub mod workload;
pub mod xfer;

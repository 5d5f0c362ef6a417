//! The environment contract between herd and its children: every variable
//! herd sets for a hub or a leaf-agent, named once here and read by the
//! module that uses it (which re-exports the name where it belongs).
//!
//! Secrets travel only here, never in argv: `/proc/PID/cmdline` is
//! world-readable, `/proc/PID/environ` is not.
//!
//! | variable | set for | meaning |
//! |---|---|---|
//! | [`HUB_USER`], [`HUB_SECRET`] | hub, leaves | the trial's hub login (the hub creates the user) |
//! | [`NATS_TOKEN`] | hub, leaves | the token of the nats-server(s) herd started |
//! | [`NATS_DOMAIN`], [`NATS_REPLICAS`] | hub, leaves | a NATS cluster's JetStream domain and replica count (`--hosts`) |
//! | [`TRACEPARENT`], [`TRACESTATE`] | hub, leaves | W3C trace context: the trial is one trace |
//! | [`TRIAL_START`] | hub, leaves | the trial clock's zero, µs since the Unix epoch |
//! | [`LEAF_AGENT`] | herd itself | a program to start per slot instead of `leaf-agent` |

/// The hub user every leaf logs in as.
pub const HUB_USER: &str = "HERD_HUB_USER";
/// That user's password.
pub const HUB_SECRET: &str = "HERD_HUB_SECRET";
/// The NATS auth token of a trial.
pub const NATS_TOKEN: &str = "HERD_NATS_TOKEN";
/// The NATS cluster's JetStream domain.
pub const NATS_DOMAIN: &str = "HERD_NATS_DOMAIN";
/// Replicas of every bucket and stream.
pub const NATS_REPLICAS: &str = "HERD_NATS_REPLICAS";
/// W3C `traceparent` a child starts its root span from.
pub const TRACEPARENT: &str = "TRACEPARENT";
/// W3C `tracestate`.
pub const TRACESTATE: &str = "TRACESTATE";
/// The trial's start, in microseconds since the Unix epoch.
pub const TRIAL_START: &str = "HERD_TRIAL_START_US";
/// Names the program herd starts per slot instead of `leaf-agent`.
pub const LEAF_AGENT: &str = "HERD_LEAF_AGENT";
/// The nats-server binary herd starts (read by herd and the tests, not
/// handed to children).
pub const NATS_SERVER: &str = "NATS_SERVER";

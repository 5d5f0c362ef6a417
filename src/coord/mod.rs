//! Coordination on NATS JetStream: task records, claims, file holds with a
//! TTL, fencing checks, and the subscription to the hub's tip stream.
//!
//! Everything here is scoped to one trial (see [`Scope`]) and knows no
//! storage: it moves small JSON records through JetStream key-value buckets
//! and one stream. The pieces, one file each:
//!
//! - `names`: bucket, stream, subject and header names, and hold keys.
//! - `client`: [`CoordConfig`], [`Coord::connect`] and the bounded-step helpers.
//! - `task`: [`TaskId`], [`TaskRecord`], file-path normalization, opening tasks.
//! - `hold`: one file hold: take (create-if-absent or take over an expired
//!   hold), read, release.
//! - `claim`: [`Claim`]: claim, check (the fence), renew, close, abandon.
//! - `tips`: [`TipPublisher`], [`TipSubscription`], [`latest_tip`].
//! - `error`: [`CoordError`], [`ClaimError`], [`FenceError`].

mod claim;
mod client;
mod deployment;
mod error;
mod hold;
mod names;
mod task;
mod tip;
mod tips;

pub use claim::Claim;
pub use client::{
    connect_client, Coord, CoordConfig, Secret, DEFAULT_HOLD_TTL, DEFAULT_OP_TIMEOUT,
    TIP_STREAM_MAX_AGE, TIP_STREAM_MAX_BYTES,
};
pub use deployment::{server_addrs, Deployment};
pub use error::{BoxError, ClaimError, CoordError, FenceError};
pub use hold::HoldRecord;
pub use names::{
    hold_key, is_valid_kv_key, Scope, NAME_PREFIX, TRACEPARENT_HEADER, TRACESTATE_HEADER,
};
pub use task::{normalize_files, OpenedTask, TaskId, TaskRecord, TaskStatus};
pub use tip::Tip;
pub use tips::{
    latest_tip, subscribe_tips, subscribe_tips_since, TipEvent, TipPublisher, TipSubscription,
};

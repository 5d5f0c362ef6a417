//! The repository thread: the one owner of the slot's [`Repository`] and its
//! [`Client`] to the hub. SQLite and HTTP calls block, so they live here and
//! the async side (NATS, timers, signals) talks to this thread by messages:
//! a [`Request`] in, its answer back on a oneshot channel. Requests are
//! served one at a time, in order; that is also what serializes a commit
//! with the pulls around it.
//!
//! What it does: at start, clone the hub (or open the existing repository and
//! pull), check out the trunk tip into the worktree; then commit tasks (check
//! in the files the task loop wrote into the worktree on the newest hub
//! check-in it holds, push). With hub
//! landing the hub writes a check-in whose parent went stale anew on its
//! tip and answers with it; with leaf rebasing the leaf catches up on tip
//! broadcasts first (nothing to do for a tip already held, else the
//! broadcast's bundle or one pull) and, on a refusal for a stale parent,
//! rebases onto the tip the refusal named and pushes again.
//!
//! A sparse leaf's clone holds the trunk tip's manifest (no files) and
//! its worktree only its own writes. A full leaf's (`--leaf full`) is brought to the newest trunk tip
//! before each task: the [`Request::Prepare`] that writes a task's files
//! first pulls everything the leaf missed, once, and updates the worktree
//! (`worktree.rs`). Retrying an unanswering hub is in `retry.rs`.
//!
//! Files: `messages` (what crosses between the async side and the thread),
//! `handle` (the async side's [`SyncHandle`]), `pending` (the newest
//! broadcast tip, [`PendingTip`]), `state` (the thread: start-up and its
//! request loop), `commit` (the commit and landing path), `catch_up`
//! (broadcasts and pulls), `connect` (the client, clone or open, trace
//! headers).

mod catch_up;
mod commit;
mod connect;
mod handle;
mod messages;
mod pending;
mod state;
mod stream;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::repo::ArtifactHash;
use crate::telemetry::W3c;
use crate::wire::{LandingStrategy, LeafMode};

use super::config::HubLogin;

pub(super) use super::retry::{retry_until, GaveUp};
pub(super) use connect::{open_or_clone, set_trace};
pub(super) use handle::SyncHandle;
pub(super) use messages::{CatchUp, CommitOutcome, CommitRequest, Committed, Request};
pub(super) use pending::PendingTip;
pub(super) use state::SyncState;

/// Pushes tried for one task before giving up (each refusal is a fork
/// retry). Every refusal means another check-in landed, so the trial as a
/// whole always progresses; the bound only stops a leaf that starves for
/// minutes behind a hub that keeps moving.
pub(super) const MAX_PUSH_ATTEMPTS: u32 = 10_000;

/// What the repository thread needs to start.
#[derive(Debug, Clone)]
pub(super) struct SyncConfig {
    /// The hub's URL.
    pub hub_url: String,
    /// The slot's `leaf.fossil`.
    pub repo_path: PathBuf,
    /// The slot's worktree.
    pub worktree: PathBuf,
    /// The login recorded in check-ins (the U card).
    pub user: String,
    /// The trace context start-up's clone or pull runs under.
    pub trace: W3c,
    /// Signs every sync request when set.
    pub login: Option<HubLogin>,
    /// How long a push or pull retries a hub that does not answer.
    pub hub_retry: Duration,
    /// Who lands a check-in whose parent went stale.
    pub landing: LandingStrategy,
    /// Full (every trunk artifact, a worktree kept at the tip) or sparse.
    pub leaf: LeafMode,
    /// How a full leaf catches up: the stream's bundles, or a pull.
    pub catch_up: crate::wire::CatchUp,
    /// Most bytes of stream batches buffered before they are applied.
    pub stream_buffer_bytes: usize,
    /// Whether a task holds the hot file it edits (`--hold-hot`): it then
    /// pulls before the edit, so it edits the newest text.
    pub hold_hot: bool,
    /// The leaf's counters: the thread counts its hub requests and what
    /// catching up cost there.
    pub counters: std::sync::Arc<crate::leaf::LeafCounters>,
}

/// The repository as it stands after start-up.
#[derive(Debug, Clone)]
pub(super) struct Started {
    /// The hub's project code (it names the trial's NATS scope).
    pub project_code: String,
    /// The hub's trunk tip as cloned or pulled.
    pub tip: ArtifactHash,
}

/// How long the commit took, in milliseconds.
pub(super) fn elapsed_ms(start: Instant) -> f64 {
    crate::wire::round_us(start.elapsed().as_secs_f64() * 1000.0)
}

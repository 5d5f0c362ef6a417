//! One leaf-agent slot: its own repository and worktree, and the
//! Open → Claim → Commit → Close loop against a live hub.
//!
//! The pieces, a file or a folder each:
//!
//! - `config`: [`LeafConfig`], the validated flags of one slot.
//! - `error`: [`LeafError`], every way a leaf can fail, with context.
//! - `repo_thread`: the repository thread for herd's hub: it owns the
//!   [`crate::repo::Repository`] and the [`crate::xfer::Client`] (both
//!   blocking), and does the clone, commits with push-rebase-retry, and
//!   catching up on tip broadcasts (a folder: messages, handle, state,
//!   commit, catch-up, the stream's batches, connect).
//! - `dispatch`: `RepoThread`, which picks that thread, `plain` or `git`
//!   by the trial's hub kind; the task loop talks to it alone.
//! - `worktree`: a full leaf's worktree and keeping it at the trunk tip
//!   (one pull for every check-in it missed, then an update that writes
//!   only the files that differ), and writing a task's files.
//! - `retry`: retrying a hub that does not answer.
//! - `plain`: the repository thread for a stock `fossil server` hub
//!   (pull, commit, plain push; forks land, nothing is rebased).
//! - `git`: the repository thread for a stock git server: the real `git`
//!   in the slot's clone (pull, commit, push; a rejected push is followed
//!   by `git pull --rebase` and another push).
//! - `output`: the stdout reporter (only [`crate::wire::LeafLine`]s).
//! - `counters`: [`LeafCounters`], every count behind the summary line,
//!   in one struct the task loop, the tip loop and the repository thread
//!   share; the summary line is made from it.
//! - `agent`: [`run`]: start-up, the task loop (disjoint and shared mode)
//!   and the tip loop, on one current-thread async runtime (a folder:
//!   the loops, one task's steps, which failures to retry).
//!
//! The async side holds the NATS connection and never blocks: every SQLite
//! and HTTP call goes to the repository thread as a message, and its answer
//! comes back on a oneshot channel.

mod agent;
mod config;
mod counters;
mod dispatch;
mod error;
pub(crate) mod git;
mod output;
mod plain;
mod repo_thread;
mod retry;
mod worker;
mod worktree;

pub use agent::{run, LeafRun};
pub use config::{
    ConfigError, HubLogin, LeafConfig, DEFAULT_HUB_RETRY, DEFAULT_STREAM_BUFFER_BYTES,
};
pub use counters::LeafCounters;
pub use error::LeafError;
pub use output::Reporter;
pub use worktree::WORKTREE_TIP_CONFIG;

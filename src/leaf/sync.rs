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
//! A sparse leaf's worktree holds the initial check-out plus its own
//! writes. A full leaf's (`--leaf full`) is brought to the newest trunk tip
//! before each task: the [`Request::Prepare`] that writes a task's files
//! first pulls everything the leaf missed, once, and updates the worktree
//! (`worktree.rs`). Retrying an unanswering hub is in `retry.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use crate::coord::{Tip, TraceHeaders, TRACEPARENT_HEADER, TRACESTATE_HEADER};
use crate::repo::{ArtifactHash, CheckinSpec, FileChange, RebaseError, Repository};
use crate::telemetry::W3c;
use crate::xfer::{Client, ClientError, PushOutcome, QueueAsk};

use super::config::HubLogin;
use super::error::LeafError;
use super::retry::{jitter, with_start_retries};
pub(super) use super::retry::{retry_until, GaveUp};
use super::worktree::Worktree;
use crate::report::{LandingStrategy, LeafMode, PushMark, PushResult, TrialClock};

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
}

/// The repository as it stands after start-up.
#[derive(Debug, Clone)]
pub(super) struct Started {
    /// The hub's project code (it names the trial's NATS scope).
    pub project_code: String,
    /// The hub's trunk tip as cloned or pulled.
    pub tip: ArtifactHash,
}

/// One task's commit as the async side asks for it.
#[derive(Debug, Clone)]
pub(super) struct CommitRequest {
    /// Relative paths and contents to write and check in.
    pub files: Vec<(String, Vec<u8>)>,
    /// The check-in comment.
    pub comment: String,
}

impl CommitRequest {
    /// The check-in of this request's files on `parent`, by `user`, now.
    pub fn spec(&self, parent: ArtifactHash, user: &str) -> CheckinSpec {
        CheckinSpec {
            parent,
            changes: self
                .files
                .iter()
                .map(|(path, content)| FileChange {
                    path: path.clone(),
                    content: Some(content.clone()),
                })
                .collect(),
            comment: self.comment.clone(),
            user: user.to_string(),
            time: SystemTime::now(),
        }
    }
}

/// How a commit ended.
#[derive(Debug)]
pub(super) enum CommitOutcome {
    /// The hub accepted the check-in.
    Landed {
        /// The accepted check-in.
        checkin: ArtifactHash,
        /// Refused pushes before it landed.
        fork_retries: u32,
    },
    /// A rebase found a file changed on both sides.
    Conflict {
        /// The file.
        path: String,
        /// Refused pushes before the conflict.
        fork_retries: u32,
    },
    /// The push failed for good (after retries); the error says why.
    Failed {
        /// Refused pushes before the failure.
        fork_retries: u32,
        /// Why.
        error: Box<LeafError>,
    },
}

/// A commit's outcome and the pushes it took.
#[derive(Debug)]
pub(super) struct Committed {
    /// How it ended.
    pub outcome: CommitOutcome,
    /// Each push, on the trial clock.
    pub pushes: Vec<PushMark>,
}

/// How a tip broadcast was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CatchUp {
    /// The repository already held the tip.
    AlreadyHeld,
    /// The broadcast's bundle brought it, without a hub request.
    Applied,
    /// One pull from the hub brought it.
    Pulled,
}

/// A message to the repository thread.
pub(super) enum Request {
    /// Before a task's think time: (full leaves) catch up on the newest tip
    /// heard of and bring the worktree to it, then write the task's files
    /// into the worktree. With no files, only the catching up (the end of
    /// a trial).
    Prepare {
        files: Vec<(String, Vec<u8>)>,
        reply: oneshot::Sender<Result<(), LeafError>>,
    },
    Commit {
        request: CommitRequest,
        /// The `coord.Commit` span: its context goes to the hub with every
        /// exchange, and the check-in's hashes are recorded on it.
        span: tracing::Span,
        reply: oneshot::Sender<Result<Committed, LeafError>>,
    },
}

/// The newest broadcast tip not yet acted on, shared by the tip loop (which
/// only records it) and the repository thread (which catches up on it right
/// before it commits or pushes). Lazy on purpose: catching up on every
/// broadcast as it arrives costs every leaf a store and a crosslink per
/// check-in anyone makes, N times the hub's own work, while a leaf needs
/// only the tip it builds on.
#[derive(Default)]
pub(super) struct PendingTip {
    newest: Mutex<Option<(Tip, TraceHeaders)>>,
    /// Broadcasts that brought a tip (bundle applied or pulled).
    pub(super) pulled: AtomicU64,
    /// Broadcasts that needed nothing: already held, or superseded by a
    /// newer one before they were used.
    pub(super) skipped: AtomicU64,
    /// Reply bytes of the pulls that caught up (full leaves).
    pub(super) bytes_pulled: AtomicU64,
    /// Worktree files written or removed by updates (full leaves).
    pub(super) files_updated: AtomicU64,
}

impl PendingTip {
    /// Records broadcast tips (oldest first); older pending ones count as
    /// skipped.
    pub(super) fn note(&self, tips: impl IntoIterator<Item = (Tip, TraceHeaders)>) {
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        for (tip, trace) in tips {
            let superseded = match &*newest {
                Some((held, _)) if held.seq >= tip.seq => {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Some(_) => 1,
                None => 0,
            };
            self.skipped.fetch_add(superseded, Ordering::Relaxed);
            *newest = Some((tip, trace));
        }
    }

    pub(super) fn take(&self) -> Option<(Tip, TraceHeaders)> {
        self.newest.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// (pulled, skipped) so far, counting a tip still pending as skipped.
    pub(super) fn counts(&self) -> (u64, u64) {
        let pending = u64::from(self.newest.lock().is_ok_and(|n| n.is_some()));
        (
            self.pulled.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed) + pending,
        )
    }
}

/// The async side's handle on the repository thread. Dropping it ends the
/// thread after the request in progress; [`SyncHandle::finish`] also waits.
pub(super) struct SyncHandle {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    hub_requests: Arc<AtomicU64>,
    /// Broadcast tips for the repository thread.
    pub(super) tips: Arc<PendingTip>,
}

impl SyncHandle {
    /// Starts the thread, which clones or opens the repository and checks
    /// out the trunk tip before answering.
    pub(super) async fn start(config: SyncConfig) -> Result<(SyncHandle, Started), LeafError> {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let hub_requests = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&hub_requests);
        let tips = Arc::new(PendingTip::default());
        let pending = Arc::clone(&tips);
        let thread = std::thread::Builder::new()
            .name("leaf-repo".into())
            .spawn(move || {
                let mut state = match SyncState::open(config, counter, rx, pending) {
                    Ok((state, started)) => {
                        let _ = ready_tx.send(Ok(started));
                        state
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                state.serve();
            })
            .map_err(|source| LeafError::Io {
                path: PathBuf::from("(repository thread)"),
                source,
            })?;
        let handle = SyncHandle {
            requests: Some(tx),
            thread: Some(thread),
            hub_requests,
            tips,
        };
        let started = ready_rx.await.map_err(|_| LeafError::WorkerGone)??;
        Ok((handle, started))
    }

    /// Catches up and updates the worktree (full leaves), then writes
    /// `files` into it.
    pub(super) async fn prepare(&self, files: Vec<(String, Vec<u8>)>) -> Result<(), LeafError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Prepare { files, reply })?;
        answer.await.map_err(|_| LeafError::WorkerGone)?
    }

    /// Commits and pushes one task's files.
    /// `span` is the commit's span; the hub's spans become its children.
    pub(super) async fn commit(
        &self,
        request: CommitRequest,
        span: tracing::Span,
    ) -> Result<Committed, LeafError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Commit {
            request,
            span,
            reply,
        })?;
        answer.await.map_err(|_| LeafError::WorkerGone)?
    }

    /// HTTP requests sent to the hub so far.
    pub(super) fn hub_requests(&self) -> u64 {
        self.hub_requests.load(Ordering::Relaxed)
    }

    /// Ends the thread after its current request and waits for it; returns
    /// the final count of hub requests.
    pub(super) fn finish(mut self) -> u64 {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.hub_requests()
    }

    fn send(&self, request: Request) -> Result<(), LeafError> {
        self.requests
            .as_ref()
            .ok_or(LeafError::WorkerGone)?
            .send(request)
            .map_err(|_| LeafError::WorkerGone)
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread's own state.
pub(super) struct SyncState {
    pub(super) config: SyncConfig,
    pub(super) repo: Repository,
    pub(super) client: Client,
    /// Requests from the async side.
    inbox: mpsc::Receiver<Request>,
    /// The newest broadcast tip, recorded by the tip loop.
    pub(super) tips: Arc<PendingTip>,
    /// The hub's trunk tip as last seen (clone, pull, push verdict); every
    /// commit is made on it. Not `repo.trunk_tip()`: refused check-ins stay
    /// in the local repository as extra trunk leaves.
    pub(super) hub_tip: ArtifactHash,
    /// The hub tip's trunk position (`Repository::trunk_position`); 0
    /// until the hub has said.
    pub(super) hub_seq: u64,
    /// The newest trunk position a push's answer named, held here or not
    /// (a full leaf pulls before its next task when it is past `hub_seq`).
    pub(super) heard_seq: u64,
    /// A full leaf's worktree; `None` for a sparse leaf.
    pub(super) worktree: Option<Worktree>,
    hub_requests: Arc<AtomicU64>,
    /// The current commit's pushes, on the trial clock.
    pushes: Vec<PushMark>,
}

impl SyncState {
    fn open(
        config: SyncConfig,
        hub_requests: Arc<AtomicU64>,
        inbox: mpsc::Receiver<Request>,
        tips: Arc<PendingTip>,
    ) -> Result<(SyncState, Started), LeafError> {
        // Sparse: this leaf keeps other slots' manifests (it rebases over
        // them) but never their files. Full: it receives everything.
        let full = config.leaf == LeafMode::Full;
        let mut client = Client::new(&config.hub_url);
        if !full {
            client = client.sparse();
        }
        if is_local(&config.hub_url) {
            client = client.uncompressed();
        }
        if let Some(login) = &config.login {
            client = client.with_login(&login.user, login.secret.expose());
        }
        set_trace(&client, &config.trace);
        let repo = open_or_clone(&config, &client, Client::pull)?;
        let repo_err = |step| {
            let path = config.repo_path.clone();
            move |source| LeafError::Repo {
                step,
                path: path.clone(),
                source: Box::new(source),
            }
        };
        // A leaf's check-ins skip the R card (Fossil's `repo-cksum` off): it
        // is an MD5 over every file of the tree, the largest cost of a
        // commit, and optional in the format; fossil checks it only when
        // present. The hub never computes it.
        repo.config_set("repo-cksum", "0")
            .map_err(repo_err("turn off the repository checksum"))?;
        if !full {
            // A sparse copy: no phantom rows for the files other slots wrote.
            repo.skip_file_phantoms();
        }
        // The hub holds what matters; a leaf's clone can be made again.
        repo.skip_fsync()
            .map_err(repo_err("turn off fsync per commit"))?;
        let project_code = repo
            .project_code()
            .map_err(repo_err("read the project code"))?;
        let hub_tip = match client.known_tip() {
            Some(tip) => tip,
            None => repo
                .trunk_tip()
                .map_err(repo_err("find the trunk tip"))?
                .ok_or_else(|| LeafError::Repo {
                    step: "find the trunk tip",
                    path: config.repo_path.clone(),
                    source: Box::new(crate::repo::RepoError::MissingArtifact {
                        hash: "(trunk tip)".into(),
                    }),
                })?,
        };
        std::fs::create_dir_all(&config.worktree).map_err(|source| LeafError::Io {
            path: config.worktree.clone(),
            source,
        })?;
        repo.checkout(&hub_tip, &config.worktree)
            .map_err(repo_err("check out the trunk tip"))?;
        hub_requests.store(client.requests(), Ordering::Relaxed);
        let started = Started {
            project_code,
            tip: hub_tip.clone(),
        };
        // A full clone holds the whole trunk: its length is where it stands.
        let hub_seq = if full {
            repo.trunk_position().map_err(repo_err("count the trunk"))?
        } else {
            0
        };
        let worktree = full.then(|| Worktree::new(config.worktree.clone(), hub_tip.clone()));
        let state = SyncState {
            config,
            repo,
            client,
            inbox,
            tips,
            hub_tip,
            hub_seq,
            heard_seq: hub_seq,
            worktree,
            hub_requests,
            pushes: Vec::new(),
        };
        Ok((state, started))
    }

    fn serve(&mut self) {
        while let Ok(request) = self.inbox.recv() {
            match request {
                Request::Prepare { files, reply } => {
                    let result = self.prepare(&files);
                    self.count_requests();
                    let _ = reply.send(result);
                }
                Request::Commit {
                    request,
                    span,
                    reply,
                } => {
                    set_trace(&self.client, &W3c::of(&span));
                    self.pushes.clear();
                    let result = self.commit(&request, &span);
                    self.count_requests();
                    let pushes = std::mem::take(&mut self.pushes);
                    let _ = reply.send(result.map(|outcome| Committed { outcome, pushes }));
                }
            }
        }
    }

    /// Catches up on the newest broadcast tip, if one came since the last
    /// look, so that a check-in or push goes out on the newest parent this
    /// leaf has heard of. Its span links to the push that caused it.
    fn absorb_tips(&mut self) {
        let Some((tip, trace)) = self.tips.take() else {
            return;
        };
        let span = tracing::info_span!(
            "coord.SyncOnBroadcast",
            "manifest.hash" = %tip.hash,
            "pull.success" = tracing::field::Empty,
            "pull.skipped_idempotent" = tracing::field::Empty,
        );
        self.config.trace.adopt(&span);
        W3c {
            traceparent: trace.traceparent,
            tracestate: trace.tracestate,
        }
        .link_from(&span);
        set_trace(&self.client, &W3c::of(&span));
        let result = span.in_scope(|| self.catch_up(&tip));
        span.record("pull.success", result.is_ok());
        span.record(
            "pull.skipped_idempotent",
            matches!(result, Ok(CatchUp::AlreadyHeld)),
        );
        let counter = match &result {
            Ok(CatchUp::AlreadyHeld) => &self.tips.skipped,
            Ok(CatchUp::Applied | CatchUp::Pulled) => &self.tips.pulled,
            Err(e) => {
                tracing::warn!(error = %crate::chain::chain(e), tip = %tip.hash, "cannot catch up on a broadcast tip");
                &self.tips.skipped
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn count_requests(&self) {
        self.hub_requests
            .store(self.client.requests(), Ordering::Relaxed);
    }

    pub(super) fn repo_err(
        &self,
        step: &'static str,
    ) -> impl Fn(crate::repo::RepoError) -> LeafError + '_ {
        move |source| LeafError::Repo {
            step,
            path: self.config.repo_path.clone(),
            source: Box::new(source),
        }
    }

    /// Checks in the task's files (already in the worktree) and pushes
    /// until the hub takes the check-in, a rebase conflicts, or the attempts run out; how depends on
    /// the trial's landing strategy.
    ///
    /// - Hub landing: the check-in goes on the newest trunk check-in this
    ///   leaf holds, and the push asks the hub to land it on its tip.
    ///   The leaf does not follow tip broadcasts (it does not subscribe):
    ///   the hub rebases a check-in whose files did not change on trunk, so
    ///   catching up would only cost this leaf work that grows with the
    ///   herd. A refusal means the files did change: the leaf rebases onto
    ///   the tip it was sent, which meets the conflict (or, if trunk has the
    ///   same result, pushes again).
    /// - Leaf rebasing: the leaf catches up on broadcasts first, pushes
    ///   asking to wait for a turn in the hub's push queue, and on a refusal
    ///   rebases onto the tip it was sent and pushes again (with the turn,
    ///   when one was granted).
    fn commit(
        &mut self,
        request: &CommitRequest,
        span: &tracing::Span,
    ) -> Result<CommitOutcome, LeafError> {
        let hub_landing = self.config.landing == LandingStrategy::Hub;
        // A full leaf caught up before the task (`prepare`); it commits on
        // the tip its worktree stands at and leaves newer tips to the hub
        // (landing) or to a refusal, which brings every artifact it lacks.
        let absorb = !hub_landing && self.worktree.is_none();
        if absorb {
            self.absorb_tips();
        }
        set_trace(&self.client, &W3c::of(span));
        let mut parent = self.hub_tip.clone();
        let spec = request.spec(parent.clone(), &self.config.user);
        let mut checkin = self
            .repo
            .commit(&spec)
            .map_err(self.repo_err("check in"))?
            .hash;
        let mut fork_retries = 0;
        let mut ask = QueueAsk::Wait;
        for _ in 0..MAX_PUSH_ATTEMPTS {
            if absorb {
                // Tips heard of while building or backing off: take them
                // and rebase first rather than push onto a parent gone.
                self.absorb_tips();
                set_trace(&self.client, &W3c::of(span));
            }
            if self.hub_tip != parent {
                let onto = self.hub_tip.clone();
                match self.rebase(&checkin, &onto, fork_retries)? {
                    Ok(rebased) => checkin = rebased,
                    Err(conflict) => {
                        if let Some(last) = self.pushes.last_mut() {
                            last.result = PushResult::Conflict;
                        }
                        return Ok(conflict);
                    }
                }
                parent = onto;
            }
            // A push is safe to repeat when its reply was lost (the hub
            // killed after COMMIT): the hub finds the check-in held, or
            // remembers what it landed for it, and answers without a
            // refusal, so it counts once and is never rebased into a copy.
            let push_start = TrialClock::get().now_ms();
            let pushed = retry_until(self.config.hub_retry, || {
                if hub_landing {
                    self.client.push_landing(&self.repo, &checkin)
                } else {
                    self.client
                        .push_queued(&self.repo, &[checkin.clone()], Some(ask))
                }
            });
            let result = match &pushed {
                Ok(PushOutcome::Refused { .. }) => PushResult::Refused,
                Ok(_) => PushResult::Landed,
                Err(_) => PushResult::Failed,
            };
            self.pushes.push(PushMark::ending_now(push_start, result));
            let verdict = match pushed {
                Ok(verdict) => verdict,
                Err(gave_up) => return Ok(self.push_failed(gave_up, &checkin, fork_retries)),
            };
            match verdict {
                PushOutcome::Landed {
                    checkin: landed,
                    seq,
                    stored,
                } => return Ok(self.landed(span, &parent, landed, seq, stored, fork_retries)),
                PushOutcome::Accepted { tip, seq } => {
                    span.record("commit.uuid", checkin.as_str());
                    span.record("commit.parent", parent.as_str());
                    self.saw_tip(tip.unwrap_or_else(|| checkin.clone()), seq);
                    return Ok(CommitOutcome::Landed {
                        checkin,
                        fork_retries,
                    });
                }
                PushOutcome::Refused { tip, seq, turn, .. } => {
                    fork_retries += 1;
                    tracing::debug!(%checkin, %tip, seq, fork_retries, "push refused");
                    self.saw_tip(tip.clone(), Some(seq));
                    if !self.holds(&tip)? {
                        // A server without the fast path sent nothing with
                        // its refusal: fetch the new trunk first.
                        self.pull()?;
                    }
                    // The rebase onto the tip (or a newer one heard of
                    // meanwhile) happens at the top of the loop. With a
                    // turn the trunk is reserved for this leaf: no waiting.
                    match turn {
                        Some(token) => ask = QueueAsk::Turn(token),
                        None if hub_landing => {}
                        None => {
                            ask = QueueAsk::Wait;
                            jitter(fork_retries);
                        }
                    }
                }
            }
        }
        Ok(CommitOutcome::Failed {
            fork_retries,
            error: Box::new(LeafError::TooManyRefusals {
                task: request.comment.clone(),
                attempts: MAX_PUSH_ATTEMPTS,
            }),
        })
    }

    /// A check-in the hub landed (wrote anew on its tip) as the task's
    /// outcome. The next check-in goes on the landed one when this leaf
    /// stored it (its baseline was here), else on the same parent as this
    /// one: the hub rebases either.
    fn landed(
        &mut self,
        span: &tracing::Span,
        parent: &ArtifactHash,
        landed: ArtifactHash,
        seq: u64,
        stored: bool,
        fork_retries: u32,
    ) -> CommitOutcome {
        span.record("commit.uuid", landed.as_str());
        span.record("commit.parent", parent.as_str());
        if stored {
            self.saw_tip(landed.clone(), Some(seq));
        }
        self.heard_seq = self.heard_seq.max(seq);
        CommitOutcome::Landed {
            checkin: landed,
            fork_retries,
        }
    }

    /// A push that gave up on an unanswering hub, as the task's outcome.
    fn push_failed(
        &self,
        gave_up: GaveUp,
        checkin: &ArtifactHash,
        fork_retries: u32,
    ) -> CommitOutcome {
        let url = self.config.hub_url.clone();
        let step = format!("push {checkin}");
        let error = gave_up.into_leaf_error(&url, step, |source| LeafError::Push {
            url: url.clone(),
            checkin: checkin.to_string(),
            source,
        });
        CommitOutcome::Failed {
            fork_retries,
            error: Box::new(error),
        }
    }

    /// Re-makes `checkin` on `onto`; the inner `Err` is the task's end by
    /// a conflict.
    fn rebase(
        &self,
        checkin: &ArtifactHash,
        onto: &ArtifactHash,
        fork_retries: u32,
    ) -> Result<Result<ArtifactHash, CommitOutcome>, LeafError> {
        match self.repo.rebase(checkin, onto) {
            Ok(rebased) => Ok(Ok(rebased.hash)),
            Err(RebaseError::Conflict { path }) => {
                Ok(Err(CommitOutcome::Conflict { path, fork_retries }))
            }
            Err(source) => Err(LeafError::Rebase {
                checkin: checkin.to_string(),
                onto: onto.to_string(),
                source: Box::new(source),
            }),
        }
    }

    /// Records the hub's tip and, when known, its trunk position.
    fn saw_tip(&mut self, tip: ArtifactHash, seq: Option<u64>) {
        self.hub_tip = tip;
        if let Some(seq) = seq {
            self.hub_seq = seq;
            self.heard_seq = self.heard_seq.max(seq);
        }
    }

    /// Handles one broadcast.
    fn catch_up(&mut self, tip: &Tip) -> Result<CatchUp, LeafError> {
        // A tip no newer than one already seen (the sparse fast path skips
        // the check-ins in between, so they are not held): nothing to do.
        if tip.seq <= self.hub_seq {
            return Ok(CatchUp::AlreadyHeld);
        }
        if let Ok(hash) = ArtifactHash::parse(&tip.hash) {
            if self.holds(&hash)? {
                return Ok(CatchUp::AlreadyHeld);
            }
        }
        // The bundle is the tip's manifest: enough whenever its baseline is
        // held (a sparse leaf skips the check-ins in between).
        if let (false, Ok(hash), Some(Ok(parent))) = (
            tip.bundle.is_empty(),
            ArtifactHash::parse(&tip.hash),
            tip.parent.as_deref().map(ArtifactHash::parse),
        ) {
            match self
                .client
                .apply_bundle(&self.repo, &tip.bundle, &hash, &parent)
            {
                Ok(_) => {
                    self.saw_tip(hash, Some(tip.seq));
                    return Ok(CatchUp::Applied);
                }
                Err(e) => tracing::debug!(error = %e, "tip bundle not applied; pulling"),
            }
        }
        self.pull()?;
        Ok(CatchUp::Pulled)
    }

    pub(super) fn pull(&mut self) -> Result<(), LeafError> {
        let url = &self.config.hub_url;
        let outcome = retry_until(self.config.hub_retry, || self.client.pull(&self.repo)).map_err(
            |gave_up| {
                gave_up.into_leaf_error(url, "pull".into(), |source| LeafError::Pull {
                    url: url.clone(),
                    source,
                })
            },
        )?;
        match outcome.tip {
            Some((tip, seq)) => self.saw_tip(tip, Some(seq)),
            None => {
                if let Some(tip) = self
                    .repo
                    .trunk_tip()
                    .map_err(self.repo_err("find the trunk tip"))?
                {
                    self.saw_tip(tip, None);
                }
            }
        }
        Ok(())
    }

    fn holds(&self, hash: &ArtifactHash) -> Result<bool, LeafError> {
        Ok(self
            .repo
            .rid_of(hash)
            .map_err(self.repo_err("look up an artifact"))?
            .is_some_and(|(_, phantom)| !phantom))
    }
}

/// Whether `url` names a hub on this machine or a private network (a
/// loopback address, `localhost`, a private IPv4 range such as the
/// simulated hosts' 10.213.N.0/24), where compressing sync bodies costs
/// CPU and saves next to nothing.
fn is_local(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| match ip {
            std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
            std::net::IpAddr::V6(v6) => v6.is_loopback(),
        })
}

/// The slot's repository: opened and brought up to date with `pull` when it
/// exists (a restarted leaf), else cloned afresh (a half-written clone from
/// a failed try is removed first). A hub that does not answer is retried as
/// at start-up.
pub(super) fn open_or_clone(
    config: &SyncConfig,
    client: &Client,
    pull: impl Fn(&Client, &Repository) -> Result<crate::xfer::PullOutcome, ClientError>,
) -> Result<Repository, LeafError> {
    let clone_err = |source| LeafError::Clone {
        url: config.hub_url.clone(),
        path: config.repo_path.clone(),
        source: Box::new(source),
    };
    if config.repo_path.exists() {
        let repo = Repository::open(&config.repo_path).map_err(|source| LeafError::Repo {
            step: "open the repository",
            path: config.repo_path.clone(),
            source: Box::new(source),
        })?;
        with_start_retries(|| pull(client, &repo)).map_err(clone_err)?;
        return Ok(repo);
    }
    if let Some(dir) = config.repo_path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| LeafError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    with_start_retries(|| {
        remove_repository(&config.repo_path);
        client.clone_into(&config.repo_path)
    })
    .map_err(clone_err)
}

/// Sends `trace` with the client's following requests, so the hub's span
/// of each exchange is a child of the operation it serves.
pub(super) fn set_trace(client: &Client, trace: &W3c) {
    let mut headers = Vec::new();
    if let Some(tp) = &trace.traceparent {
        headers.push((TRACEPARENT_HEADER.to_string(), tp.clone()));
        if let Some(ts) = &trace.tracestate {
            headers.push((TRACESTATE_HEADER.to_string(), ts.clone()));
        }
    }
    client.set_headers(headers);
}

/// Removes a half-made clone (and its SQLite side files) before a retry.
fn remove_repository(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// How long the commit took, in milliseconds.
pub(super) fn elapsed_ms(start: Instant) -> f64 {
    crate::report::round_us(start.elapsed().as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hubs_are_recognized() {
        for url in [
            "http://127.0.0.1:8080/",
            "http://127.3.4.5/",
            "http://localhost:9/x",
            "http://[::1]:80/",
            "http://10.213.7.2:8080/",
            "http://192.168.1.9/",
        ] {
            assert!(is_local(url), "{url}");
        }
        for url in [
            "http://192.0.2.1:8080/",
            "https://example.org/",
            "http://[::2]/",
            "",
        ] {
            assert!(!is_local(url), "{url}");
        }
    }
}

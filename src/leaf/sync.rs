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
//! The worktree holds the initial check-out plus this leaf's own writes; it
//! is not refreshed after pulls, since no task reads other slots' files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use tokio::sync::oneshot;

use crate::coord::{Tip, TraceHeaders, TRACEPARENT_HEADER, TRACESTATE_HEADER};
use crate::repo::{ArtifactHash, CheckinSpec, FileChange, RebaseError, Repository};
use crate::telemetry::W3c;
use crate::xfer::{Client, ClientError, PushOutcome, QueueAsk};

use super::config::HubLogin;
use super::error::LeafError;
use crate::report::{LandingStrategy, PushMark, PushResult, TrialClock};

/// Pushes tried for one task before giving up (each refusal is a fork
/// retry). Every refusal means another check-in landed, so the trial as a
/// whole always progresses; the bound only stops a leaf that starves for
/// minutes behind a hub that keeps moving.
pub(super) const MAX_PUSH_ATTEMPTS: u32 = 10_000;
/// Attempts at reaching the hub at start-up (clone or first pull) when it
/// does not answer, with doubling waits from [`RETRY_FIRST_WAIT`]: a hub
/// unreachable at start is a usage error, reported within seconds.
const START_ATTEMPTS: u32 = 6;
/// During the trial a push or pull retries a hub that does not answer
/// (down, restarting) for [`SyncConfig::hub_retry`], waiting
/// [`RETRY_FIRST_WAIT`] at first, doubling up to [`RETRY_MAX_WAIT`], each
/// wait drawn from its upper half so leaves do not return in step.
const RETRY_FIRST_WAIT: Duration = Duration::from_millis(100);
const RETRY_MAX_WAIT: Duration = Duration::from_secs(2);
/// After a refused push the leaf waits a random time below a bound that
/// doubles with each refusal of the same task (from [`JITTER_FIRST_US`] up to
/// [`JITTER_MAX_US`]): randomized exponential backoff, as on a shared
/// medium. Without it, every leaf that lost a race retries at once, the
/// hub sees the same herd again, and the refusals eat the CPU the winners
/// need.
const JITTER_FIRST_US: u64 = 1_000;
const JITTER_MAX_US: u64 = 64_000;

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
enum Request {
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
    pulled: AtomicU64,
    /// Broadcasts that needed nothing: already held, or superseded by a
    /// newer one before they were used.
    skipped: AtomicU64,
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

    fn take(&self) -> Option<(Tip, TraceHeaders)> {
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
struct SyncState {
    config: SyncConfig,
    repo: Repository,
    client: Client,
    /// Requests from the async side.
    inbox: mpsc::Receiver<Request>,
    /// The newest broadcast tip, recorded by the tip loop.
    tips: Arc<PendingTip>,
    /// The hub's trunk tip as last seen (clone, pull, push verdict); every
    /// commit is made on it. Not `repo.trunk_tip()`: refused check-ins stay
    /// in the local repository as extra trunk leaves.
    hub_tip: ArtifactHash,
    /// The hub tip's trunk position (the fast path's count, root
    /// included); 0 until the hub has said.
    hub_seq: u64,
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
        // them) but never their files.
        let mut client = Client::new(&config.hub_url).sparse();
        if is_loopback(&config.hub_url) {
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
        // A sparse copy: no phantom rows for the files other slots wrote.
        repo.skip_file_phantoms();
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
        let state = SyncState {
            config,
            repo,
            client,
            inbox,
            tips,
            hub_tip,
            hub_seq: 0,
            hub_requests,
            pushes: Vec::new(),
        };
        Ok((state, started))
    }

    fn serve(&mut self) {
        while let Ok(request) = self.inbox.recv() {
            match request {
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

    fn repo_err(&self, step: &'static str) -> impl Fn(crate::repo::RepoError) -> LeafError + '_ {
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
        if !hub_landing {
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
            if !hub_landing {
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
        }
    }

    /// Handles one broadcast.
    fn catch_up(&mut self, tip: &Tip) -> Result<CatchUp, LeafError> {
        // A tip no newer than one already seen (the sparse fast path skips
        // the check-ins in between, so they are not held): nothing to do.
        // Broadcast positions do not count the root; the fast path's do.
        if tip.seq < self.hub_seq {
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
                    self.saw_tip(hash, Some(tip.seq + 1));
                    return Ok(CatchUp::Applied);
                }
                Err(e) => tracing::debug!(error = %e, "tip bundle not applied; pulling"),
            }
        }
        self.pull()?;
        Ok(CatchUp::Pulled)
    }

    fn pull(&mut self) -> Result<(), LeafError> {
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

/// Whether `url` names a hub on this machine (a loopback address or
/// `localhost`), where compressing sync bodies costs CPU and saves nothing.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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

/// Whether an exchange failed because the hub did not answer (refused or
/// reset connection, a cut reply, an overloaded or failing server), so the
/// same request may succeed later. Protocol faults, `error` cards and the
/// local repository's errors would fail again.
fn is_transient(e: &ClientError) -> bool {
    match e {
        ClientError::Transport { .. } | ClientError::Body { .. } => true,
        ClientError::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
        _ => false,
    }
}

/// Runs one start-up exchange with the hub, retrying while it does not
/// answer, [`START_ATTEMPTS`] times with doubling waits.
fn with_start_retries<T>(mut f: impl FnMut() -> Result<T, ClientError>) -> Result<T, ClientError> {
    let mut wait = RETRY_FIRST_WAIT;
    let mut attempt = 1;
    loop {
        match f() {
            Err(e) if is_transient(&e) && attempt < START_ATTEMPTS => {
                tracing::info!(error = %e, attempt, "hub exchange failed; retrying");
                std::thread::sleep(wait);
                wait *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Why [`retry_until`] stopped.
#[derive(Debug)]
pub(super) enum GaveUp {
    /// An error that retrying cannot fix.
    Failed(ClientError),
    /// The hub did not answer for the whole deadline.
    Deadline {
        attempts: u32,
        waited: Duration,
        last: ClientError,
    },
}

impl GaveUp {
    /// The leaf's error: `failed` wraps an error retrying cannot fix; a
    /// deadline becomes [`LeafError::HubUnreachable`] for `step`.
    pub(super) fn into_leaf_error(
        self,
        url: &str,
        step: String,
        failed: impl FnOnce(Box<ClientError>) -> LeafError,
    ) -> LeafError {
        match self {
            GaveUp::Failed(e) => failed(Box::new(e)),
            GaveUp::Deadline {
                attempts,
                waited,
                last,
            } => LeafError::HubUnreachable {
                step,
                url: url.to_string(),
                attempts,
                waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                source: Box::new(last),
            },
        }
    }
}

/// Runs one exchange with the hub, retrying while the hub does not answer
/// (see [`is_transient`]) for up to `limit`, with randomized waits doubling
/// from [`RETRY_FIRST_WAIT`] to [`RETRY_MAX_WAIT`]; the last wait is cut to
/// the deadline.
pub(super) fn retry_until<T>(
    limit: Duration,
    mut f: impl FnMut() -> Result<T, ClientError>,
) -> Result<T, GaveUp> {
    let start = Instant::now();
    let mut wait = RETRY_FIRST_WAIT;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let e = match f() {
            Ok(v) => {
                if attempts > 1 {
                    tracing::info!(attempts, "hub answers again");
                }
                return Ok(v);
            }
            Err(e) if is_transient(&e) => e,
            Err(e) => return Err(GaveUp::Failed(e)),
        };
        let waited = start.elapsed();
        let Some(left) = limit.checked_sub(waited).filter(|d| !d.is_zero()) else {
            return Err(GaveUp::Deadline {
                attempts,
                waited,
                last: e,
            });
        };
        if attempts == 1 {
            tracing::warn!(error = %e, "hub does not answer; retrying");
        } else {
            tracing::info!(error = %e, attempts, "hub still does not answer; retrying");
        }
        let half = wait / 2;
        let pause = half + rand::thread_rng().gen_range(Duration::ZERO..=half);
        std::thread::sleep(pause.min(left));
        wait = (wait * 2).min(RETRY_MAX_WAIT);
    }
}

/// A random pause after the `n`th refusal of one task.
fn jitter(n: u32) {
    let bound = JITTER_FIRST_US
        .saturating_mul(1 << n.saturating_sub(1).min(20))
        .min(JITTER_MAX_US);
    let us = rand::thread_rng().gen_range(0..=bound);
    std::thread::sleep(Duration::from_micros(us));
}

/// Removes a half-made clone (and its SQLite side files) before a retry.
fn remove_repository(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Writes a task's files into the worktree (the agent's work, done while it
/// thinks), on a blocking thread so the async side goes on.
pub(super) async fn write_worktree(
    worktree: PathBuf,
    files: Vec<(String, Vec<u8>)>,
) -> Result<(), LeafError> {
    tokio::task::spawn_blocking(move || {
        files
            .iter()
            .try_for_each(|(path, content)| write_file(&worktree.join(path), content))
    })
    .await
    .map_err(|_| LeafError::WorkerGone)?
}

fn write_file(path: &Path, content: &[u8]) -> Result<(), LeafError> {
    let io = |source| LeafError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, content).map_err(io)
}

/// How long the commit took, in milliseconds.
pub(super) fn elapsed_ms(start: Instant) -> f64 {
    crate::report::round_us(start.elapsed().as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::super::error::chain;
    use super::*;

    fn status(status: u16) -> ClientError {
        ClientError::Status {
            url: "http://127.0.0.1:1/".into(),
            status,
        }
    }

    #[test]
    fn a_hub_that_never_answers_is_given_up_after_the_deadline() {
        let limit = Duration::from_millis(300);
        let start = Instant::now();
        let mut calls = 0;
        let result: Result<(), GaveUp> = retry_until(limit, || {
            calls += 1;
            Err(status(503))
        });
        let Err(GaveUp::Deadline {
            attempts, waited, ..
        }) = result
        else {
            panic!("expected the deadline, got {result:?}");
        };
        assert_eq!(attempts, calls);
        assert!(attempts >= 2, "retried before giving up: {attempts}");
        assert!(waited >= limit && start.elapsed() >= limit);
        let error = GaveUp::Deadline {
            attempts,
            waited,
            last: status(503),
        }
        .into_leaf_error("http://h/", "pull".into(), |_| LeafError::WorkerGone);
        let text = chain(&error);
        assert!(
            text.starts_with("pull: hub http://h/ did not answer for ")
                && text.contains("giving up: http://127.0.0.1:1/ answered HTTP 503"),
            "{text}"
        );
    }

    #[test]
    fn loopback_hubs_are_recognized() {
        for url in [
            "http://127.0.0.1:8080/",
            "http://127.3.4.5/",
            "http://localhost:9/x",
            "http://[::1]:80/",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "http://10.0.0.1:8080/",
            "https://example.org/",
            "http://[::2]/",
            "",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let mut calls = 0;
        let result: Result<(), GaveUp> = retry_until(Duration::from_secs(30), || {
            calls += 1;
            Err(status(404))
        });
        assert!(matches!(
            result,
            Err(GaveUp::Failed(ClientError::Status { status: 404, .. }))
        ));
        assert_eq!(calls, 1);

        let mut calls = 0;
        let result = retry_until(Duration::from_secs(30), || {
            calls += 1;
            if calls < 3 {
                Err(status(502))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(result.unwrap(), 3);
    }
}

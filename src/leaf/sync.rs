//! The repository thread: the one owner of the slot's [`Repository`] and its
//! [`Client`] to the hub. SQLite and HTTP calls block, so they live here and
//! the async side (NATS, timers, signals) talks to this thread by messages:
//! a [`Request`] in, its answer back on a oneshot channel. Requests are
//! served one at a time, in order; that is also what serializes a commit
//! with the pulls around it.
//!
//! What it does: at start, clone the hub (or open the existing repository and
//! pull), check out the trunk tip into the worktree; then commit tasks (write
//! the files, check in on the hub's trunk tip as last seen, push; on a
//! refusal for a stale parent rebase onto the tip the refusal named and push
//! again) and catch up on tip broadcasts (nothing to do for a tip already
//! held, else one pull).
//!
//! The worktree holds the initial check-out plus this leaf's own writes; it
//! is not refreshed after pulls, since no task reads other slots' files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use tokio::sync::oneshot;

use crate::coord::{Tip, TRACEPARENT_HEADER, TRACESTATE_HEADER};
use crate::repo::{ArtifactHash, CheckinSpec, FileChange, RebaseError, Repository};
use crate::telemetry::W3c;
use crate::xfer::{Client, ClientError, PushOutcome};

use super::config::HubLogin;
use super::error::LeafError;

/// Pushes tried for one task before giving up (each refusal is a fork
/// retry). Every refusal means another check-in landed, so the trial as a
/// whole always progresses; the bound only stops a leaf that starves for
/// minutes behind a hub that keeps moving.
pub(super) const MAX_PUSH_ATTEMPTS: u32 = 10_000;
/// Attempts at reaching the hub for one exchange (clone, pull, push) when
/// the transport fails, with doubling waits from [`RETRY_FIRST_WAIT`].
const TRANSPORT_ATTEMPTS: u32 = 6;
const RETRY_FIRST_WAIT: Duration = Duration::from_millis(100);
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
        reply: oneshot::Sender<Result<CommitOutcome, LeafError>>,
    },
    CatchUp {
        tip: Tip,
        /// The `coord.SyncOnBroadcast` span, whose context a pull carries.
        span: tracing::Span,
        reply: oneshot::Sender<Result<CatchUp, LeafError>>,
    },
}

/// The async side's handle on the repository thread. Dropping it ends the
/// thread after the request in progress; [`SyncHandle::finish`] also waits.
pub(super) struct SyncHandle {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    hub_requests: Arc<AtomicU64>,
}

impl SyncHandle {
    /// Starts the thread, which clones or opens the repository and checks
    /// out the trunk tip before answering.
    pub(super) async fn start(config: SyncConfig) -> Result<(SyncHandle, Started), LeafError> {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let hub_requests = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&hub_requests);
        let thread = std::thread::Builder::new()
            .name("leaf-repo".into())
            .spawn(move || {
                let mut state = match SyncState::open(config, counter) {
                    Ok((state, started)) => {
                        let _ = ready_tx.send(Ok(started));
                        state
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                state.serve(rx);
            })
            .map_err(|source| LeafError::Io {
                path: PathBuf::from("(repository thread)"),
                source,
            })?;
        let handle = SyncHandle {
            requests: Some(tx),
            thread: Some(thread),
            hub_requests,
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
    ) -> Result<CommitOutcome, LeafError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Commit {
            request,
            span,
            reply,
        })?;
        answer.await.map_err(|_| LeafError::WorkerGone)?
    }

    /// Brings the repository up to a broadcast tip.
    /// `span` is the catch-up's span; a pull's hub span becomes its child.
    pub(super) async fn catch_up(
        &self,
        tip: Tip,
        span: tracing::Span,
    ) -> Result<CatchUp, LeafError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::CatchUp { tip, span, reply })?;
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
    /// The hub's trunk tip as last seen (clone, pull, push verdict); every
    /// commit is made on it. Not `repo.trunk_tip()`: refused check-ins stay
    /// in the local repository as extra trunk leaves.
    hub_tip: ArtifactHash,
    hub_requests: Arc<AtomicU64>,
}

impl SyncState {
    fn open(
        config: SyncConfig,
        hub_requests: Arc<AtomicU64>,
    ) -> Result<(SyncState, Started), LeafError> {
        let mut client = Client::new(&config.hub_url);
        if let Some(login) = &config.login {
            client = client.with_login(&login.user, login.secret.expose());
        }
        set_trace(&client, &config.trace);
        let repo = if config.repo_path.exists() {
            let repo = Repository::open(&config.repo_path).map_err(|source| LeafError::Repo {
                step: "open the repository",
                path: config.repo_path.clone(),
                source: Box::new(source),
            })?;
            with_retries(|| client.pull(&repo)).map_err(|source| LeafError::Clone {
                url: config.hub_url.clone(),
                path: config.repo_path.clone(),
                source: Box::new(source),
            })?;
            repo
        } else {
            if let Some(dir) = config.repo_path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| LeafError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            with_retries(|| {
                remove_repository(&config.repo_path);
                client.clone_into(&config.repo_path)
            })
            .map_err(|source| LeafError::Clone {
                url: config.hub_url.clone(),
                path: config.repo_path.clone(),
                source: Box::new(source),
            })?
        };
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
            hub_tip,
            hub_requests,
        };
        Ok((state, started))
    }

    fn serve(&mut self, requests: mpsc::Receiver<Request>) {
        while let Ok(request) = requests.recv() {
            match request {
                Request::Commit {
                    request,
                    span,
                    reply,
                } => {
                    set_trace(&self.client, &W3c::of(&span));
                    let result = self.commit(&request, &span);
                    self.count_requests();
                    let _ = reply.send(result);
                }
                Request::CatchUp { tip, span, reply } => {
                    set_trace(&self.client, &W3c::of(&span));
                    let result = self.catch_up(&tip);
                    self.count_requests();
                    let _ = reply.send(result);
                }
            }
        }
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

    /// Writes the files, checks in on the hub tip and pushes until the hub
    /// takes it, a rebase conflicts, or the attempts run out.
    fn commit(
        &mut self,
        request: &CommitRequest,
        span: &tracing::Span,
    ) -> Result<CommitOutcome, LeafError> {
        for (path, content) in &request.files {
            write_file(&self.config.worktree.join(path), content)?;
        }
        let spec = CheckinSpec {
            parent: self.hub_tip.clone(),
            changes: request
                .files
                .iter()
                .map(|(path, content)| FileChange {
                    path: path.clone(),
                    content: Some(content.clone()),
                })
                .collect(),
            comment: request.comment.clone(),
            user: self.config.user.clone(),
            time: SystemTime::now(),
        };
        let mut checkin = self
            .repo
            .commit(&spec)
            .map_err(self.repo_err("check in"))?
            .hash;
        let mut fork_retries = 0;
        for _ in 0..MAX_PUSH_ATTEMPTS {
            let pushed = with_retries(|| self.client.push(&self.repo, &[checkin.clone()]));
            let verdict = match pushed {
                Ok(verdict) => verdict,
                Err(source) => {
                    return Ok(CommitOutcome::Failed {
                        fork_retries,
                        error: Box::new(LeafError::Push {
                            url: self.config.hub_url.clone(),
                            checkin: checkin.to_string(),
                            source: Box::new(source),
                        }),
                    })
                }
            };
            match verdict {
                PushOutcome::Accepted { tip, .. } => {
                    span.record("commit.uuid", checkin.as_str());
                    span.record("commit.parent", self.hub_tip.as_str());
                    self.hub_tip = tip.unwrap_or_else(|| checkin.clone());
                    return Ok(CommitOutcome::Landed {
                        checkin,
                        fork_retries,
                    });
                }
                PushOutcome::Refused { tip, seq, .. } => {
                    fork_retries += 1;
                    tracing::debug!(%checkin, %tip, seq, fork_retries, "push refused: trunk moved");
                    self.hub_tip = tip.clone();
                    if !self.holds(&tip)? {
                        // A server without the fast path sent nothing with
                        // its refusal: fetch the new trunk first.
                        self.pull()?;
                    }
                    match self.repo.rebase(&checkin, &tip) {
                        Ok(rebased) => checkin = rebased.hash,
                        Err(RebaseError::Conflict { path }) => {
                            return Ok(CommitOutcome::Conflict { path, fork_retries })
                        }
                        Err(source) => {
                            return Err(LeafError::Rebase {
                                checkin: checkin.to_string(),
                                onto: tip.to_string(),
                                source: Box::new(source),
                            })
                        }
                    }
                    jitter(fork_retries);
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

    /// Handles one (possibly coalesced) broadcast.
    fn catch_up(&mut self, tip: &Tip) -> Result<CatchUp, LeafError> {
        if let Ok(hash) = ArtifactHash::parse(&tip.hash) {
            if self.holds(&hash)? {
                return Ok(CatchUp::AlreadyHeld);
            }
        }
        // One step behind: the bundle holds exactly what is missing.
        if let (false, Ok(hash)) = (tip.bundle.is_empty(), ArtifactHash::parse(&tip.hash)) {
            if tip.parent.as_deref() == Some(self.hub_tip.as_str()) {
                let parent = self.hub_tip.clone();
                match self
                    .client
                    .apply_bundle(&self.repo, &tip.bundle, &hash, &parent)
                {
                    Ok(_) => {
                        self.hub_tip = hash;
                        return Ok(CatchUp::Applied);
                    }
                    Err(e) => tracing::debug!(error = %e, "tip bundle not applied; pulling"),
                }
            }
        }
        self.pull()?;
        Ok(CatchUp::Pulled)
    }

    fn pull(&mut self) -> Result<(), LeafError> {
        let outcome =
            with_retries(|| self.client.pull(&self.repo)).map_err(|source| LeafError::Pull {
                url: self.config.hub_url.clone(),
                source: Box::new(source),
            })?;
        let tip = match outcome.tip {
            Some((tip, _)) => Some(tip),
            None => self
                .repo
                .trunk_tip()
                .map_err(self.repo_err("find the trunk tip"))?,
        };
        if let Some(tip) = tip {
            self.hub_tip = tip;
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

/// Sends `trace` with the client's following requests, so the hub's span
/// of each exchange is a child of the operation it serves.
fn set_trace(client: &Client, trace: &W3c) {
    let mut headers = Vec::new();
    if let Some(tp) = &trace.traceparent {
        headers.push((TRACEPARENT_HEADER.to_string(), tp.clone()));
        if let Some(ts) = &trace.tracestate {
            headers.push((TRACESTATE_HEADER.to_string(), ts.clone()));
        }
    }
    client.set_headers(headers);
}

/// Runs one exchange with the hub, retrying transport failures (the hub
/// not answering) with doubling waits; protocol and repository errors are
/// returned at once.
fn with_retries<T>(mut f: impl FnMut() -> Result<T, ClientError>) -> Result<T, ClientError> {
    let mut wait = RETRY_FIRST_WAIT;
    let mut attempt = 1;
    loop {
        match f() {
            Err(e @ (ClientError::Transport { .. } | ClientError::Status { .. }))
                if attempt < TRANSPORT_ATTEMPTS =>
            {
                tracing::info!(error = %e, attempt, "hub exchange failed; retrying");
                std::thread::sleep(wait);
                wait *= 2;
                attempt += 1;
            }
            other => return other,
        }
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
    start.elapsed().as_secs_f64() * 1000.0
}

//! The repository thread for a stock `fossil server` hub (`--hub-kind
//! fossil`).
//!
//! A stock server publishes no tips and ignores herd's pragmas, so this
//! thread does what Fossil's autosync does around `fossil commit`: pull
//! (Fossil's generic igot/gimme rounds), check in on the local trunk tip,
//! push the new artifacts with the plain protocol. The server accepts forks:
//! a push is never refused for its parent, so there are no rebases and no
//! fork retries; a check-in made on a tip another leaf has just moved lands
//! as a second trunk leaf, which herd counts after the trial. A push whose
//! replies carry no `error` card has landed.
//!
//! Like the herd thread, it owns the [`Repository`] and the [`Client`]
//! (both blocking) and serves one request at a time from the async side.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::repo::{ArtifactHash, RepoError, Repository};
use crate::wire::{PushMark, PushResult, TrialClock};
use crate::xfer::Client;

use super::error::LeafError;
use super::repo_thread::{
    open_or_clone, retry_until, CommitOutcome, CommitRequest, Committed, PendingTip, Started,
    SyncConfig,
};
use super::worker::Worker;

/// A commit for the plain thread.
struct PlainRequest {
    request: CommitRequest,
    reply: oneshot::Sender<Result<Committed, LeafError>>,
}

/// The async side's handle on the plain repository thread.
pub(super) struct PlainHandle(Worker<PlainRequest>);

impl PlainHandle {
    pub(super) async fn start(config: SyncConfig) -> Result<(PlainHandle, Started), LeafError> {
        let (worker, started) = Worker::start(
            "leaf-repo-plain",
            Arc::clone(&config.counters),
            move || PlainState::open(config),
            |state: &mut PlainState, PlainRequest { request, reply }| {
                let _ = reply.send(state.commit(&request));
                state.client.requests()
            },
        )
        .await?;
        Ok((PlainHandle(worker), started))
    }

    pub(super) async fn commit(&self, request: CommitRequest) -> Result<Committed, LeafError> {
        let (reply, answer) = oneshot::channel();
        self.0.send(PlainRequest { request, reply })?;
        answer.await.map_err(|_| LeafError::WorkerGone)?
    }

    /// Where broadcasts would be recorded (none come from a stock server).
    pub(super) fn tips(&self) -> Arc<PendingTip> {
        Arc::clone(&self.0.tips)
    }

    pub(super) fn finish(self) {
        self.0.finish()
    }
}

/// The plain thread's own state.
struct PlainState {
    config: SyncConfig,
    repo: Repository,
    client: Client,
}

impl PlainState {
    /// Clones the server (or opens the repository and pulls), then checks
    /// out the trunk tip.
    fn open(config: SyncConfig) -> Result<(PlainState, Started), LeafError> {
        // Not sparse: autosync pulls everything the server has.
        let mut client = Client::new(&config.hub_url);
        if let Some(login) = &config.login {
            client = client.with_login(&login.user, login.secret.expose());
        }
        let repo = open_or_clone(&config, &client, Client::pull_plain)?;
        let path = config.repo_path.clone();
        // As in the herd thread: no R card, no fsync per commit.
        repo.config_set("repo-cksum", "0")
            .map_err(repo_err("turn off the repository checksum", &path))?;
        repo.skip_fsync()
            .map_err(repo_err("turn off fsync per commit", &path))?;
        let project_code = repo
            .project_code()
            .map_err(repo_err("read the project code", &path))?;
        let state = PlainState {
            config,
            repo,
            client,
        };
        let tip = state.trunk_tip()?;
        std::fs::create_dir_all(&state.config.worktree).map_err(|source| LeafError::Io {
            path: state.config.worktree.clone(),
            source,
        })?;
        state
            .repo
            .checkout(&tip, &state.config.worktree)
            .map_err(repo_err("check out the trunk tip", &path))?;
        Ok((state, Started { project_code, tip }))
    }

    /// The newest trunk leaf of the local repository.
    fn trunk_tip(&self) -> Result<ArtifactHash, LeafError> {
        let path = &self.config.repo_path;
        self.repo
            .trunk_tip()
            .map_err(repo_err("find the trunk tip", path))?
            .ok_or_else(|| LeafError::Repo {
                step: "find the trunk tip",
                path: path.clone(),
                source: Box::new(RepoError::MissingArtifact {
                    hash: "(trunk tip)".into(),
                }),
            })
    }

    /// `edit` made on its hot file as check-in `tip` has it, written into
    /// the worktree, as the change to check in.
    fn edit_on(
        &self,
        tip: &ArtifactHash,
        edit: &crate::workload::HotEdit,
    ) -> Result<crate::repo::FileChange, LeafError> {
        let path = &self.config.repo_path;
        let current = self
            .repo
            .file_at(tip, &edit.path)
            .map_err(repo_err("read a hot file", path))?;
        let text = edit.apply(&current.unwrap_or_default());
        let file = self.config.worktree.join(&edit.path);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|source| LeafError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&file, &text).map_err(|source| LeafError::Io { path: file, source })?;
        Ok(crate::repo::FileChange {
            path: edit.path.clone(),
            content: Some(text),
        })
    }

    /// Autosync's commit: pull, check in on the trunk tip, push once.
    fn commit(&self, request: &CommitRequest) -> Result<Committed, LeafError> {
        let url = &self.config.hub_url;
        let failed = |error: LeafError, pushes| {
            Ok(Committed {
                outcome: CommitOutcome::Failed {
                    fork_retries: 0,
                    error: Box::new(error),
                },
                pushes,
            })
        };
        if let Err(gave_up) =
            retry_until(self.config.hub_retry, || self.client.pull_plain(&self.repo))
        {
            return failed(
                gave_up.into_leaf_error(url, "pull".into(), |source| LeafError::Pull {
                    url: url.clone(),
                    source,
                }),
                Vec::new(),
            );
        }
        let tip = self.trunk_tip()?;
        let mut spec = request.spec(tip.clone(), &self.config.user);
        if let Some(edit) = &request.edit {
            // As `fossil update` would before the commit: the edit is made
            // on the hot file as the newest tip pulled has it.
            spec.changes.push(self.edit_on(&tip, edit)?);
        }
        let checkin = self
            .repo
            .commit(&spec)
            .map_err(repo_err("check in", &self.config.repo_path))?
            .hash;
        // Safe to repeat: a push whose reply was lost finds the artifacts
        // held and stores nothing twice.
        let push_start = TrialClock::get().now_ms();
        let pushed = retry_until(self.config.hub_retry, || {
            self.client.push_plain(&self.repo, &checkin)
        });
        let result = match pushed {
            Ok(_) => PushResult::Landed,
            Err(_) => PushResult::Failed,
        };
        let pushes = vec![PushMark::ending_now(push_start, result)];
        match pushed {
            Ok(_rounds) => Ok(Committed {
                outcome: CommitOutcome::Landed {
                    checkin,
                    fork_retries: 0,
                    resolutions: 0,
                },
                pushes,
            }),
            Err(gave_up) => failed(
                gave_up.into_leaf_error(url, format!("push {checkin}"), |source| LeafError::Push {
                    url: url.clone(),
                    checkin: checkin.to_string(),
                    source,
                }),
                pushes,
            ),
        }
    }
}

fn repo_err(step: &'static str, path: &std::path::Path) -> impl Fn(RepoError) -> LeafError {
    let path = path.to_path_buf();
    move |source| LeafError::Repo {
        step,
        path: path.clone(),
        source: Box::new(source),
    }
}

//! The repository thread for a stock git server (`--hub-kind git`): the
//! leaf drives the real `git` binary in its own clone, as an agent of a
//! git fleet would. Nothing here talks Fossil.
//!
//! - Start: `git clone` of the server's bare repository into the slot's
//!   worktree (or, for a restarted leaf, fetch and reset to the server's
//!   `main`). The trial's NATS scope is named by the repository's root
//!   commit, which every clone holds.
//! - Before a task (`--leaf full`): `git pull --ff-only`, so the worktree
//!   is the newest `main` the server has; then the task's files, and its
//!   hot-file edit made on the file as it now stands.
//! - Commit: `git add -A`, `git commit`, `git push origin HEAD:main`. The
//!   server refuses a push that is not a fast-forward: the leaf runs `git
//!   pull --rebase` (git's own three-way merge of each file) and pushes
//!   again, one fork retry each. When the rebase stops on a conflict that
//!   is only in the task's hot file, the leaf aborts it, resets to the
//!   server's `main` and makes its edit again on the new text
//!   (a resolution); any other conflict gives the task up.
//!
//! Every `git` run is a process: they are counted (`git_processes` in the
//! leaf's counters), as
//! they are part of what git costs per commit. Commands that talk to the
//! server (clone, pull, push) are the leaf's hub requests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::repo::ArtifactHash;
use crate::wire::{PushMark, PushResult, TrialClock};
use crate::workload::HotEdit;

use super::error::LeafError;
use super::repo_thread::{
    CommitOutcome, CommitRequest, Committed, PendingTip, Request, Started, SyncConfig,
};
use super::worker::Worker;
use super::worktree::write_file as write;

/// The branch every leaf pushes to.
const BRANCH: &str = "main";
/// Pushes tried for one task before giving up.
const MAX_PUSHES: u32 = 10_000;
/// The wait between tries of a server that does not answer.
const RETRY_WAIT: Duration = Duration::from_millis(200);

/// The async side's handle on the git thread.
/// It serves the herd thread's [`Request`]s (a commit's span is not used:
/// a git server takes no trace headers).
pub(super) struct GitHandle(Worker<Request>);

impl GitHandle {
    /// Starts the thread; it clones (or fetches) before answering.
    pub(super) async fn start(config: SyncConfig) -> Result<(GitHandle, Started), LeafError> {
        let (worker, started) = Worker::start(
            "leaf-repo-git",
            Arc::clone(&config.counters),
            move || GitState::open(config),
            |state: &mut GitState, request| {
                match request {
                    Request::Prepare { files, edit, reply } => {
                        let _ = reply.send(state.prepare(&files, edit.as_ref()));
                    }
                    Request::Commit { request, reply, .. } => {
                        let _ = reply.send(state.commit(&request));
                    }
                }
                state.server_requests
            },
        )
        .await?;
        Ok((GitHandle(worker), started))
    }

    /// Brings a full leaf's worktree to the server's newest `main`, then
    /// writes the task's files and makes its hot-file edit.
    pub(super) async fn prepare(
        &self,
        files: Vec<(String, Vec<u8>)>,
        edit: Option<HotEdit>,
    ) -> Result<(), LeafError> {
        let (reply, answer) = oneshot::channel();
        self.0.send(Request::Prepare { files, edit, reply })?;
        answer.await.map_err(|_| LeafError::WorkerGone)?
    }

    /// Commits the task and pushes until the server takes it.
    pub(super) async fn commit(&self, request: CommitRequest) -> Result<Committed, LeafError> {
        let (reply, answer) = oneshot::channel();
        self.0.send(Request::Commit {
            request,
            span: tracing::Span::none(),
            reply,
        })?;
        answer.await.map_err(|_| LeafError::WorkerGone)?
    }

    /// Where the tip loop records broadcasts (none ever come).
    pub(super) fn tips(&self) -> Arc<PendingTip> {
        Arc::clone(&self.0.tips)
    }

    /// Ends the thread (its counts are then final).
    pub(super) fn finish(self) {
        self.0.finish()
    }
}

/// The git thread's own state.
struct GitState {
    config: SyncConfig,
    /// The clone, which is also the worktree.
    dir: PathBuf,
    /// Commands that talked to the server.
    server_requests: u64,
}

/// How one push ended.
enum Pushed {
    /// The server took it.
    Landed,
    /// The server refused it: `main` moved (or its ref was locked).
    Rejected,
}

impl GitState {
    /// Clones the server into the worktree (a restarted leaf fetches and
    /// resets instead), and names the trial by the root commit.
    fn open(config: SyncConfig) -> Result<(GitState, Started), LeafError> {
        let dir = config.worktree.clone();
        let mut state = GitState {
            config,
            dir,
            server_requests: 0,
        };
        if state.dir.join(".git").is_dir() {
            state.talk("fetch", &["fetch", "-q", "origin"])?;
            let target = format!("origin/{BRANCH}");
            state.git_ok("reset", &["reset", "-q", "--hard", &target])?;
        } else {
            state.clone_server()?;
        }
        let user = state.config.user.clone();
        state.git_ok("configure", &["config", "user.name", &user])?;
        let email = format!("{user}@herd.invalid");
        state.git_ok("configure", &["config", "user.email", &email])?;
        let root = state.git_ok("read", &["rev-list", "--max-parents=0", "HEAD"])?;
        let project_code = root.lines().last().unwrap_or_default().to_string();
        let tip = state.head()?;
        Ok((state, Started { project_code, tip }))
    }

    /// `git clone`, retried while the server does not answer yet.
    fn clone_server(&mut self) -> Result<(), LeafError> {
        let dir = self.dir.display().to_string();
        let url = self.config.hub_url.clone();
        let deadline = Instant::now() + self.config.hub_retry;
        loop {
            let _ = std::fs::remove_dir_all(&self.dir);
            if let Some(parent) = self.dir.parent() {
                std::fs::create_dir_all(parent).map_err(|source| LeafError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            let out = self.run(None, &["clone", "-q", "--branch", BRANCH, &url, &dir])?;
            self.server_requests += 1;
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.failed("clone", &out));
            }
            std::thread::sleep(RETRY_WAIT);
        }
    }

    /// [`GitHandle::prepare`].
    fn prepare(
        &mut self,
        files: &[(String, Vec<u8>)],
        edit: Option<&HotEdit>,
    ) -> Result<(), LeafError> {
        if self.config.leaf == crate::wire::LeafMode::Full {
            self.talk("pull", &["pull", "-q", "--ff-only", "origin", BRANCH])?;
        }
        self.write_task(files, edit)
    }

    /// Writes the task's files, and its edit made on the hot file as the
    /// worktree has it.
    fn write_task(
        &self,
        files: &[(String, Vec<u8>)],
        edit: Option<&HotEdit>,
    ) -> Result<(), LeafError> {
        for (path, content) in files {
            write(&self.dir.join(path), content)?;
        }
        if let Some(edit) = edit {
            let path = self.dir.join(&edit.path);
            let current = std::fs::read(&path).unwrap_or_default();
            write(&path, &edit.apply(&current))?;
        }
        Ok(())
    }

    /// [`GitHandle::commit`]: commit, then push until the server takes it.
    fn commit(&mut self, request: &CommitRequest) -> Result<Committed, LeafError> {
        self.check_in(&request.comment)?;
        let mut pushes = Vec::new();
        let mut fork_retries = 0;
        let mut resolutions = 0;
        for _ in 0..MAX_PUSHES {
            let start = TrialClock::get().now_ms();
            let pushed = self.push();
            let result = match &pushed {
                Ok(Pushed::Landed) => PushResult::Landed,
                Ok(Pushed::Rejected) => PushResult::Refused,
                Err(_) => PushResult::Failed,
            };
            pushes.push(PushMark::ending_now(start, result));
            match pushed {
                Ok(Pushed::Landed) => {
                    let outcome = CommitOutcome::Landed {
                        checkin: self.head()?,
                        fork_retries,
                        resolutions,
                    };
                    return Ok(Committed { outcome, pushes });
                }
                Ok(Pushed::Rejected) => fork_retries += 1,
                Err(error) => {
                    let outcome = CommitOutcome::Failed {
                        fork_retries,
                        error: Box::new(error),
                    };
                    return Ok(Committed { outcome, pushes });
                }
            }
            match self.rebase(request)? {
                Rebased::Clean => {}
                Rebased::Redone => {
                    resolutions += 1;
                    if let Some(last) = pushes.last_mut() {
                        last.result = PushResult::Conflict;
                    }
                }
                Rebased::Conflict(conflicts) => {
                    if let Some(last) = pushes.last_mut() {
                        last.result = PushResult::Conflict;
                    }
                    let outcome = CommitOutcome::Conflict {
                        conflicts,
                        fork_retries,
                    };
                    return Ok(Committed { outcome, pushes });
                }
            }
        }
        let outcome = CommitOutcome::Failed {
            fork_retries,
            error: Box::new(LeafError::TooManyRefusals {
                task: request.comment.clone(),
                attempts: MAX_PUSHES,
            }),
        };
        Ok(Committed { outcome, pushes })
    }

    /// `git add -A` and `git commit` of the worktree as it stands.
    fn check_in(&mut self, comment: &str) -> Result<(), LeafError> {
        self.git_ok("add", &["add", "-A"])?;
        self.git_ok("commit", &["commit", "-q", "--no-verify", "-m", comment])?;
        Ok(())
    }

    /// One `git push origin HEAD:main`, tried again while the server does
    /// not answer (a restart), until the hub retry time has passed.
    fn push(&mut self) -> Result<Pushed, LeafError> {
        let refspec = format!("HEAD:{BRANCH}");
        let deadline = Instant::now() + self.config.hub_retry;
        loop {
            let out = self.run(
                Some(&self.dir),
                &["push", "-q", "--porcelain", "origin", &refspec],
            )?;
            self.server_requests += 1;
            if out.status.success() {
                return Ok(Pushed::Landed);
            }
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if rejected(&said) {
                return Ok(Pushed::Rejected);
            }
            if Instant::now() > deadline {
                return Err(self.failed("push", &out));
            }
            std::thread::sleep(RETRY_WAIT);
        }
    }

    /// After a rejected push: `git pull --rebase` onto the server's `main`.
    /// A conflict only in the task's hot file is resolved by making the
    /// edit again on the new text.
    fn rebase(&mut self, request: &CommitRequest) -> Result<Rebased, LeafError> {
        let out = self.talk_raw(&["pull", "-q", "--rebase", "origin", BRANCH])?;
        if out.status.success() {
            return Ok(Rebased::Clean);
        }
        let unmerged = self.git_ok("read", &["diff", "--name-only", "--diff-filter=U"])?;
        let conflicts: Vec<&str> = unmerged.lines().filter(|l| !l.is_empty()).collect();
        if conflicts.is_empty() {
            // Not a conflict: the server did not answer the fetch.
            let _ = self.run(Some(&self.dir), &["rebase", "--abort"]);
            return Err(self.failed("pull --rebase", &out));
        }
        let described = conflicts.join(", ");
        self.git_ok("rebase --abort", &["rebase", "--abort"])?;
        let target = format!("origin/{BRANCH}");
        let redoable = request
            .edit
            .as_ref()
            .filter(|e| conflicts.iter().all(|c| *c == e.path));
        // Either way the worktree goes to the server's main: the task's own
        // files are written again, and its edit on the new text.
        self.git_ok("reset", &["reset", "-q", "--hard", &target])?;
        if redoable.is_none() {
            return Ok(Rebased::Conflict(described));
        }
        self.write_task(&request.files, request.edit.as_ref())?;
        self.check_in(&request.comment)?;
        Ok(Rebased::Redone)
    }

    /// The commit `HEAD` names.
    fn head(&self) -> Result<ArtifactHash, LeafError> {
        let text = self.git_ok("read", &["rev-parse", "HEAD"])?;
        ArtifactHash::parse(text.trim()).map_err(|_| LeafError::Git {
            step: "rev-parse HEAD".into(),
            dir: self.dir.clone(),
            detail: format!("not a commit name: {text:?}"),
        })
    }

    /// A command that talks to the server, which must succeed.
    fn talk(&mut self, step: &str, args: &[&str]) -> Result<String, LeafError> {
        let out = self.talk_raw(args)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(self.failed(step, &out))
        }
    }

    /// A command that talks to the server, tried again while it does not
    /// answer; the last output, whatever its status.
    fn talk_raw(&mut self, args: &[&str]) -> Result<Output, LeafError> {
        let deadline = Instant::now() + self.config.hub_retry;
        loop {
            let out = self.run(Some(&self.dir), args)?;
            self.server_requests += 1;
            let said = String::from_utf8_lossy(&out.stderr);
            if out.status.success() || !unreachable(&said) || Instant::now() > deadline {
                return Ok(out);
            }
            std::thread::sleep(RETRY_WAIT);
        }
    }

    /// A local command, which must succeed; its stdout.
    fn git_ok(&self, step: &str, args: &[&str]) -> Result<String, LeafError> {
        let out = self.run(Some(&self.dir), args)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(self.failed(step, &out))
        }
    }

    /// Runs `git` (in `dir`, when given), counted.
    fn run(&self, dir: Option<&Path>, args: &[&str]) -> Result<Output, LeafError> {
        let mut cmd = Command::new("git");
        if let Some(dir) = dir {
            cmd.arg("-C").arg(dir);
        }
        // No pager, no prompt, no editor, no user configuration: the
        // trial's git behaves the same on every machine.
        cmd.args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_EDITOR", "true")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1");
        let processes = &self.config.counters.git_processes;
        processes.fetch_add(1, Ordering::Relaxed);
        cmd.output().map_err(|source| LeafError::Io {
            path: PathBuf::from("git"),
            source,
        })
    }

    fn failed(&self, step: &str, out: &Output) -> LeafError {
        let stderr = String::from_utf8_lossy(&out.stderr);
        LeafError::Git {
            step: step.to_string(),
            dir: self.dir.clone(),
            detail: format!(
                "{} ({})",
                stderr.trim().lines().last().unwrap_or("no message"),
                out.status
            ),
        }
    }
}

/// How a rebase after a rejected push ended.
enum Rebased {
    /// git merged everything; push again.
    Clean,
    /// The hot-file edit conflicted and was made again on the new text.
    Redone,
    /// Files that conflicted beyond the task's edit, named.
    Conflict(String),
}

/// Whether git's words say the server refused the push because `main`
/// moved (or its ref was locked by another push), rather than failing to
/// answer.
fn rejected(said: &str) -> bool {
    [
        "[rejected]",
        "non-fast-forward",
        "fetch first",
        "cannot lock ref",
        "failed to update ref",
        "[remote rejected]",
    ]
    .iter()
    .any(|m| said.contains(m))
}

/// Whether git's words say the server did not answer.
fn unreachable(said: &str) -> bool {
    [
        "Connection refused",
        "unable to connect",
        "Connection reset",
        "early EOF",
        "hung up",
    ]
    .iter()
    .any(|m| said.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_refusals_are_told_from_silence() {
        let refused =
            "To git://127.0.0.1:9/hub.git\n!\tHEAD:refs/heads/main\t[rejected] (fetch first)\nDone";
        assert!(rejected(refused));
        assert!(!unreachable(refused));
        let down = "fatal: unable to connect to 127.0.0.1:\n127.0.0.1[0: 127.0.0.1]: errno=Connection refused";
        assert!(unreachable(down));
        assert!(!rejected(down));
    }
}

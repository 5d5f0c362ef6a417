//! The repository thread's state: start-up (client, clone or open, the
//! check-out) and the loop that serves requests one at a time.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

use crate::repo::{ArtifactHash, Repository};
use crate::telemetry::W3c;
use crate::wire::{LeafMode, PushMark};
use crate::xfer::Client;

use super::super::error::LeafError;
use super::super::worktree::Worktree;
use super::connect::{hub_client, open_or_clone, set_trace};
use super::{Committed, PendingTip, Request, Started, SyncConfig};

/// The thread's own state.
pub(in crate::leaf) struct SyncState {
    pub(in crate::leaf) config: SyncConfig,
    pub(in crate::leaf) repo: Repository,
    pub(in crate::leaf) client: Client,
    /// Requests from the async side.
    pub(super) inbox: mpsc::Receiver<Request>,
    /// The newest broadcast tip, recorded by the tip loop.
    pub(in crate::leaf) tips: Arc<PendingTip>,
    /// The hub's trunk tip as last seen (clone, pull, push verdict); every
    /// commit is made on it. Not `repo.trunk_tip()`: refused check-ins stay
    /// in the local repository as extra trunk leaves.
    pub(in crate::leaf) hub_tip: ArtifactHash,
    /// The hub tip's trunk position (`Repository::trunk_position`); 0
    /// until the hub has said.
    pub(in crate::leaf) hub_seq: u64,
    /// The newest trunk position a push's answer named, held here or not
    /// (a full leaf pulls before its next task when it is past `hub_seq`).
    pub(in crate::leaf) heard_seq: u64,
    /// A full leaf's worktree; `None` for a sparse leaf.
    pub(in crate::leaf) worktree: Option<Worktree>,
    /// The current commit's pushes, on the trial clock.
    pub(super) pushes: Vec<PushMark>,
}

impl SyncState {
    /// Connects to the hub, clones or reopens the slot's repository and,
    /// for a full leaf, checks out the hub's tip: the state the thread
    /// serves requests from. A sparse leaf's worktree starts empty and
    /// holds only what its tasks write; its clone holds only the tip's
    /// manifest (see `Client::sparse`).
    pub(super) fn open(
        config: SyncConfig,
        inbox: mpsc::Receiver<Request>,
        tips: Arc<PendingTip>,
    ) -> Result<(SyncState, Started), LeafError> {
        let full = config.leaf == LeafMode::Full;
        let client = hub_client(&config);
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
        if full {
            repo.checkout(&hub_tip, &config.worktree)
                .map_err(repo_err("check out the trunk tip"))?;
        }
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
            pushes: Vec::new(),
        };
        state.count_requests();
        Ok((state, started))
    }

    /// Serves requests in order until the async side hangs up.
    pub(super) fn serve(&mut self) {
        while let Ok(request) = self.inbox.recv() {
            match request {
                Request::Prepare { files, edit, reply } => {
                    let result = self.prepare(&files, edit.as_ref());
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

    /// Records the requests sent to the hub so far in the leaf's counters.
    fn count_requests(&self) {
        let sent = self.client.requests();
        self.config
            .counters
            .hub_requests
            .store(sent, Ordering::Relaxed);
    }

    pub(in crate::leaf) fn repo_err(
        &self,
        step: &'static str,
    ) -> impl Fn(crate::repo::RepoError) -> LeafError + '_ {
        move |source| LeafError::Repo {
            step,
            path: self.config.repo_path.clone(),
            source: Box::new(source),
        }
    }
}

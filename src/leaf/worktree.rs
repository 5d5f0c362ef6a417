//! A leaf's worktree and, for a full leaf, keeping it current.
//!
//! Before each task a full leaf (`--leaf full`) does what `fossil update`
//! does for a coding agent: it fetches every trunk check-in it missed and
//! brings its worktree to the newest one, so other slots' files appear and
//! changed or deleted ones follow. What it costs is meant to follow the
//! bytes that changed, not the herd:
//!
//! - The tip loop only records broadcasts
//!   ([`PendingTip`](super::repo_thread::PendingTip)); tips that arrive
//!   while the leaf thinks or commits are coalesced there, and so are the
//!   trunk positions its own pushes were answered with.
//! - [`SyncState::prepare`] runs on the repository thread while the task
//!   thinks (outside its commit latency): when a newer tip was heard of, one
//!   fast pull after the tip the leaf holds brings every check-in since, each
//!   artifact once; then [`Worktree::update`] writes the files that differ
//!   between the two check-ins (through their file-list views: when both
//!   read through one baseline, only their delta cards are compared).
//! - The leaf's own files are already in its repository and its worktree:
//!   an update leaves them alone when trunk has the same content.
//!
//! The tip the worktree was last brought to is recorded in the repository's
//! `config` table as `herd-worktree`, so a kept work directory says which
//! check-in each worktree should equal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::repo::{ArtifactHash, Repository};
use crate::wire::CatchUp;
use crate::workload::HotEdit;

use super::error::LeafError;
use super::repo_thread::SyncState;

/// The `config` entry naming the check-in a full leaf's worktree was last
/// brought to.
pub const WORKTREE_TIP_CONFIG: &str = "herd-worktree";

/// A full leaf's worktree: the check-in it was last brought to, and what the
/// leaf wrote into it since.
pub(super) struct Worktree {
    dir: PathBuf,
    /// The check-in last checked out or updated to.
    tip: ArtifactHash,
    /// Files the leaf's tasks wrote since (path → their content's hash):
    /// its own work, committed or abandoned.
    written: HashMap<String, ArtifactHash>,
}

impl Worktree {
    /// The worktree at `dir`, a checkout of `tip`.
    pub(super) fn new(dir: PathBuf, tip: ArtifactHash) -> Worktree {
        Worktree {
            dir,
            tip,
            written: HashMap::new(),
        }
    }

    /// Brings the worktree to check-in `to` (held with its files) and
    /// records it; returns the files written or removed. The leaf's own
    /// writes end up as `to` has them: unchanged when trunk holds the same
    /// content, removed when trunk lacks them (an abandoned task's files).
    pub(super) fn update(
        &mut self,
        repo: &Repository,
        to: &ArtifactHash,
    ) -> Result<usize, crate::repo::RepoError> {
        if *to == self.tip && self.written.is_empty() {
            return Ok(0);
        }
        let touched = repo.update_checkout(&self.dir, &self.tip, to, &self.written)?;
        self.tip = to.clone();
        self.written.clear();
        repo.config_set(WORKTREE_TIP_CONFIG, to.as_str())?;
        Ok(touched)
    }

    /// Writes a task's files (the agent's work) and remembers them.
    pub(super) fn write(&mut self, files: &[(String, Vec<u8>)]) -> Result<(), LeafError> {
        write_files(&self.dir, files)?;
        for (path, content) in files {
            self.written
                .insert(path.clone(), ArtifactHash::sha3_of(content));
        }
        Ok(())
    }
}

impl SyncState {
    /// [`Request::Prepare`](super::repo_thread::Request::Prepare): a full leaf
    /// catches up (one pull, when a newer tip was heard of) and brings its
    /// worktree to the tip it holds; then the task's files are written,
    /// and its hot-file edit made on the file as that tip has it.
    pub(super) fn prepare(
        &mut self,
        files: &[(String, Vec<u8>)],
        edit: Option<&HotEdit>,
    ) -> Result<(), LeafError> {
        if self.worktree.is_none() {
            return write_files(&self.config.worktree, files);
        }
        let cpu_before = crate::telemetry::thread_cpu_us();
        let seq_before = self.hub_seq;
        // No files: the trial's end, the last catch-up.
        self.catch_up_full(files.is_empty())?;
        if edit.is_some() && self.config.hold_hot {
            // The hot file is held: whoever held it before has landed, but
            // its broadcast may not be here yet. Edit the newest text.
            self.pull_counted()?;
        }
        let tip = self.hub_tip.clone();
        let path = self.config.repo_path.clone();
        let Some(worktree) = self.worktree.as_mut() else {
            unreachable!("checked above");
        };
        let touched = worktree
            .update(&self.repo, &tip)
            .map_err(|source| LeafError::Repo {
                step: "update the worktree",
                path,
                source: Box::new(source),
            })?;
        let counters = &self.config.counters;
        counters
            .files_updated
            .fetch_add(touched as u64, Ordering::Relaxed);
        if self.hub_seq > seq_before {
            let cpu = crate::telemetry::thread_cpu_us().saturating_sub(cpu_before);
            counters.apply_us.fetch_add(cpu, Ordering::Relaxed);
            counters
                .checkins_applied
                .fetch_add(self.hub_seq - seq_before, Ordering::Relaxed);
        }
        worktree.write(files)?;
        match edit {
            Some(edit) => self.write_edit(&tip, edit).map(drop),
            None => Ok(()),
        }
    }

    /// Makes `edit` on its hot file as check-in `at` has it, writes the
    /// result into the worktree, and returns it.
    pub(super) fn write_edit(
        &mut self,
        at: &ArtifactHash,
        edit: &HotEdit,
    ) -> Result<Vec<u8>, LeafError> {
        let text = self.hot_text(at, edit)?;
        let file = [(edit.path.clone(), text)];
        if let Some(worktree) = self.worktree.as_mut() {
            worktree.write(&file)?;
        }
        let [(_, text)] = file;
        Ok(text)
    }

    /// `edit` made on its hot file as check-in `at` has it (on nothing,
    /// when `at` lacks the file).
    pub(super) fn hot_text(&self, at: &ArtifactHash, edit: &HotEdit) -> Result<Vec<u8>, LeafError> {
        let current = self
            .repo
            .file_at(at, &edit.path)
            .map_err(|source| LeafError::Repo {
                step: "read a hot file",
                path: self.config.repo_path.clone(),
                source: Box::new(source),
            })?;
        Ok(edit.apply(&current.unwrap_or_default()))
    }

    /// Catches up when a tip newer than the one held was heard of (a
    /// broadcast, or a push's answer): from the stream's buffered batches
    /// (`--catch-up stream`; a gap costs one pull) or with one pull;
    /// broadcasts superseded meanwhile were coalesced by
    /// [`PendingTip::note`](super::repo_thread::PendingTip::note). `last`
    /// at the trial's end, when the leaf also waits briefly for the stream
    /// to bring what it heard of.
    fn catch_up_full(&mut self, last: bool) -> Result<(), LeafError> {
        let broadcast = self.tips.take();
        let heard = broadcast
            .as_ref()
            .map_or(0, |(tip, _)| tip.seq)
            .max(self.heard_seq);
        let stream = self.config.catch_up == CatchUp::Stream;
        if heard <= self.hub_seq {
            if stream {
                drop(self.tips.take_bundles()); // all held already
            }
            if broadcast.is_some() {
                self.config
                    .counters
                    .broadcasts_skipped
                    .fetch_add(1, Ordering::Relaxed);
            }
            return Ok(());
        }
        let span = tracing::info_span!(
            "leaf.Update",
            "update.heard_seq" = heard,
            "update.held_seq" = self.hub_seq,
        );
        self.config.trace.adopt(&span);
        if let Some((_, trace)) = &broadcast {
            trace.link_from(&span);
        }
        super::repo_thread::set_trace(&self.client, &crate::telemetry::W3c::of(&span));
        self.config
            .counters
            .broadcasts_pulled
            .fetch_add(1, Ordering::Relaxed);
        if stream {
            span.in_scope(|| self.catch_up_stream(heard, last))
        } else {
            span.in_scope(|| self.pull_counted())
        }
    }

    /// Applies the stream's batches; pulls when they leave a gap, or, at
    /// the trial's end, when the stream has not brought the newest tip
    /// heard of within [`LAST_STREAM_WAIT`].
    fn catch_up_stream(&mut self, heard: u64, last: bool) -> Result<(), LeafError> {
        let mut gap = self.apply_stream()?.gap;
        if self.tips.take_bare() && self.hub_seq < heard {
            // The hub announces batches without their files (it was not
            // started with --broadcast-files): pull what it announced.
            gap = true;
        }
        if last {
            let deadline = std::time::Instant::now() + LAST_STREAM_WAIT;
            while !gap && self.hub_seq < heard && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
                gap = self.apply_stream()?.gap;
            }
            if !gap && self.hub_seq < heard {
                tracing::info!(
                    held = self.hub_seq,
                    heard,
                    "the stream did not bring the newest tip in time; pulling"
                );
                gap = true;
            }
        }
        if gap {
            self.config
                .counters
                .gap_pulls
                .fetch_add(1, Ordering::Relaxed);
            self.pull_counted()?;
            // The batches after the gap, if any came meanwhile.
            self.apply_stream()?;
        }
        Ok(())
    }

    /// One pull, its reply bytes counted.
    fn pull_counted(&mut self) -> Result<(), LeafError> {
        let before = self.client.bytes_received();
        self.pull()?;
        let bytes = self.client.bytes_received().saturating_sub(before);
        self.config
            .counters
            .bytes_pulled
            .fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }
}

/// How long a leaf at the trial's end waits for the stream to bring the
/// newest tip it heard of before it pulls.
const LAST_STREAM_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Writes a task's files into the worktree at `dir` (the agent's work, done
/// while it thinks), on a blocking thread so the async side goes on.
pub(super) async fn write_worktree(
    dir: PathBuf,
    files: Vec<(String, Vec<u8>)>,
) -> Result<(), LeafError> {
    tokio::task::spawn_blocking(move || write_files(&dir, &files))
        .await
        .map_err(|_| LeafError::WorkerGone)?
}

fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), LeafError> {
    files
        .iter()
        .try_for_each(|(path, content)| write_file(&dir.join(path), content))
}

/// Writes one file, making its directories.
pub(super) fn write_file(path: &Path, content: &[u8]) -> Result<(), LeafError> {
    let io = |source| LeafError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, content).map_err(io)
}

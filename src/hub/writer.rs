//! The single writer: one thread owning the repository's write connection.
//! Every request that carries a `push` card is handled here, so the
//! linear-trunk check and the store are one transaction and two pushes on
//! one parent can never both land.
//!
//! Under load the writer takes every push waiting in its queue (up to the
//! batch limit) into one SQLite transaction. Each push is still handled on
//! its own, in arrival order, in a savepoint against the tip the previous
//! one left (`xfer::handle_decoded` nests in the open transaction), so a
//! push refused or failed in the middle of a batch changes nothing for the
//! others. Replies go out only after COMMIT (synchronous, WAL): a push
//! answered as accepted survives a SIGKILL right after the answer. Then the
//! batch's newest tip is queued for broadcast, once per batch.
//!
//! Pushes that take part in the push queue (`queue.rs`) may be held instead
//! of answered; the writer hands out turns between batches and wakes up
//! when a turn's lease runs out.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use super::broadcast::{chain, Broadcast, TipQueue};
use super::config::Batching;
use super::error::HubError;
use super::queue::{PushQueue, QueueConfig, Verdict};
use super::stats::Counters;
use crate::coord::Tip;
use crate::repo::{RepoError, Repository};
use crate::telemetry::W3c;
use crate::xfer::bundle;
use crate::xfer::card::{encode, Card};
use crate::xfer::fastpath::Artifacts;
use crate::xfer::time::timestamp_comment;
use crate::xfer::{encode_body, handle_decoded, ContentType, Decoded, Response, ServerConfig};

/// How many pushes may wait in the writer's queue before senders block.
const QUEUE_DEPTH: usize = 1024;

/// One push for the writer.
pub(crate) struct Job {
    /// The decoded request (decoded on a pool thread, off the writer).
    pub(crate) decoded: Decoded,
    /// The request's content type, for an error reply.
    pub(crate) content_type: ContentType,
    /// The peer's address, recorded with pushed content.
    pub(crate) peer: Option<String>,
    /// The push's trace context, carried onto the broadcasts it causes.
    pub(crate) trace: W3c,
    /// Where the reply goes, after COMMIT; the request awaits it as a
    /// future, holding no thread.
    pub(crate) reply: tokio::sync::oneshot::Sender<Response>,
}

/// The writer thread and its queue.
pub(crate) struct Writer {
    queue: SyncSender<Job>,
    thread: JoinHandle<Result<(), HubError>>,
}

/// What the writer thread owns.
struct Writing {
    repo: Repository,
    config: ServerConfig,
    batching: Batching,
    counters: Arc<Counters>,
    tips: Option<TipQueue>,
    queue: PushQueue,
}

impl Writer {
    /// Starts the writer over `repo` (the write connection).
    pub(crate) fn start(
        repo: Repository,
        config: ServerConfig,
        batching: Batching,
        counters: Arc<Counters>,
        tips: Option<TipQueue>,
        push_queue: QueueConfig,
    ) -> Result<Writer, HubError> {
        let (queue, rx) = std::sync::mpsc::sync_channel(QUEUE_DEPTH);
        let writing = Writing {
            repo,
            config,
            batching,
            counters,
            tips,
            queue: PushQueue::new(push_queue),
        };
        let thread = std::thread::Builder::new()
            .name("hub-writer".into())
            .spawn(move || writing.run(&rx))
            .map_err(|source| HubError::Spawn {
                what: "the writer thread",
                source,
            })?;
        Ok(Writer { queue, thread })
    }

    /// A sending end of the queue, for the front end.
    pub(crate) fn queue(&self) -> SyncSender<Job> {
        self.queue.clone()
    }

    /// Waits for the writer to drain its queue (every other sender must be
    /// dropped first), checkpoint the WAL and exit.
    pub(crate) fn stop(self) -> Result<(), HubError> {
        drop(self.queue);
        self.thread.join().unwrap_or_else(|_| {
            tracing::error!("writer thread panicked");
            Ok(())
        })
    }
}

impl Writing {
    fn run(mut self, rx: &Receiver<Job>) -> Result<(), HubError> {
        let limit = self.batching.limit();
        loop {
            let mut jobs = Vec::new();
            jobs.extend(self.queue.next_turn());
            if jobs.is_empty() {
                let received = match self.queue.deadline() {
                    Some(deadline) => {
                        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    }
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match received {
                    Ok(job) => {
                        Counters::sub(&self.counters.backlog, 1);
                        jobs.push(job);
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        self.queue.expire(Instant::now());
                        self.counters.set_queue(&self.queue);
                        continue;
                    }
                    // Every sender is gone, so no push is held either.
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            let before = jobs.len();
            while jobs.len() < limit {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            Counters::sub(&self.counters.backlog, (jobs.len() - before) as u64);
            self.write_batch(jobs);
        }
        checkpoint(&self.repo)
    }

    /// Handles `jobs` in one transaction, then replies (or holds pushes
    /// that wait for their turn) and broadcasts. When a push in the batch
    /// ends the current turn (its holder landed), the next waiting push is
    /// granted the turn and handled in the same transaction: its refusal,
    /// naming the tip that push made, goes out with that push's acceptance
    /// instead of one loop and one COMMIT (an fsync) later.
    fn write_batch(&mut self, mut jobs: Vec<Job>) {
        let config = &self.config;
        let queue = &mut self.queue;
        let result = self.repo.transaction(|repo| {
            let mut responses = Vec::with_capacity(jobs.len());
            let mut i = 0;
            while i < jobs.len() {
                let job = &jobs[i];
                i += 1;
                let (ask, granted) = (job.decoded.queue_ask(), job.decoded.granted_turn());
                if queue.must_wait(ask, granted) {
                    responses.push(None);
                    continue;
                }
                let response = handle_decoded(repo, &job.decoded, job.peer.as_deref(), config);
                // SQLite may answer a full disk or an I/O error in the middle
                // of a statement by rolling back the whole transaction; the
                // pushes before this one are then gone too, and the ones
                // after must not run outside the batch's transaction.
                if !repo.in_transaction() {
                    return Err(BatchError::RolledBack {
                        failure: response.outcome.failure.unwrap_or_default(),
                    });
                }
                let refused = !response.outcome.refusals.is_empty();
                responses.push(match queue.settle(ask, granted, refused) {
                    Verdict::Reply => Some(response),
                    Verdict::Hold => None,
                });
                jobs.extend(queue.next_turn());
            }
            Ok(responses)
        });
        let responses = match result {
            Ok(responses) => responses,
            Err(e) => {
                // Nothing of the batch is durable: every push hears so, and
                // the writer carries on with the next batch.
                self.queue.cancel_pending();
                let reason = e.reason();
                tracing::error!(pushes = jobs.len(), reason, error = %chain(&e), "write transaction failed");
                for job in jobs {
                    let _ = job.reply.send(failure_reply(job.content_type, reason));
                }
                return;
            }
        };
        Counters::add(&self.counters.batches, 1);
        Counters::add(&self.counters.batched_pushes, jobs.len() as u64);
        tracing::debug!(pushes = jobs.len(), "write transaction committed");
        // Reply first: the pushers wait on these, the broadcasts do not.
        let mut advances = Vec::new();
        // Full leaves that catch up from the stream need every artifact
        // (`--broadcast-files`). Otherwise pushers that ask for hub landing
        // do not follow the tip stream: a batch of only those is broadcast
        // without its manifests (a leaf that follows tips and finds no
        // bundle pulls).
        let bundle = if self.tips.as_ref().is_some_and(TipQueue::with_files) {
            Some(Artifacts::All)
        } else {
            (!jobs.iter().all(|job| job.decoded.asks_landing())).then_some(Artifacts::Manifests)
        };
        // i64: span attributes take no u64 (it would become a string).
        let jobs_in_batch = i64::try_from(jobs.len()).unwrap_or(i64::MAX);
        for (job, response) in jobs.into_iter().zip(responses) {
            let Some(response) = response else {
                self.queue.hold(job);
                continue;
            };
            let outcome = &response.outcome;
            Counters::add(
                &self.counters.pushes_accepted,
                outcome.advances.len() as u64,
            );
            Counters::add(
                &self.counters.hub_rebases,
                outcome
                    .advances
                    .iter()
                    .filter(|a| a.landed_from.is_some())
                    .count() as u64,
            );
            Counters::add(&self.counters.pushes_refused, outcome.refusals.len() as u64);
            let merges = outcome.advances.iter().filter(|a| !a.merged.is_empty());
            Counters::add(&self.counters.hub_merges, merges.count() as u64);
            let conflicts = outcome.refusals.iter().filter(|r| !r.conflicts.is_empty());
            Counters::add(&self.counters.conflicts, conflicts.count() as u64);
            if let Some(failure) = &outcome.failure {
                tracing::warn!(peer = ?job.peer, failure = %failure, "push failed");
            }
            for advance in &outcome.advances {
                let span = tracing::info_span!(
                    "hub.trunk_advance",
                    tip = %advance.hash,
                    seq = i64::try_from(advance.seq).unwrap_or(i64::MAX),
                    parent = advance.parent.as_ref().map(|p| p.to_string()),
                    landed_from = advance.landed_from.as_ref().map(|p| p.to_string()),
                    batch = jobs_in_batch,
                );
                W3c {
                    traceparent: job.trace.traceparent.clone(),
                    tracestate: job.trace.tracestate.clone(),
                }
                .adopt(&span);
                let _entered = span.enter();
                tracing::debug!(tip = %advance.hash, seq = advance.seq, "trunk advanced");
                advances.push((advance.clone(), job.trace.clone()));
            }
            // A request that gave up (client gone) is no reason to stop.
            let _ = job.reply.send(response);
        }
        self.counters.set_queue(&self.queue);
        if let Some(tips) = &self.tips {
            if let Some(broadcast) = batch_broadcast(&self.repo, &advances, bundle, tips.max_part())
            {
                tips.send(broadcast);
            }
        }
    }
}

/// The one broadcast of a batch: its newest tip, with the previous tip as
/// parent and (when `bundle` says which) the batch's artifacts in the
/// bundle, so a leaf at the tip before the batch catches up without a
/// request; a bundle larger than one message goes as several parts, one
/// tip message each. Its trace context is the newest advance's push. A
/// bundle that cannot be built is only a lost shortcut: leaves then pull.
fn batch_broadcast(
    repo: &Repository,
    advances: &[(crate::xfer::TrunkAdvance, W3c)],
    bundle: Option<Artifacts>,
    max_part: usize,
) -> Option<Broadcast> {
    let ((first, _), (last, trace)) = (advances.first()?, advances.last()?);
    let checkins: Vec<_> = advances.iter().map(|(a, _)| a.hash.clone()).collect();
    let built = match bundle.map(|artifacts| bundle::build(repo, &checkins, artifacts, max_part)) {
        None => Vec::new(),
        Some(Ok(parts)) => parts,
        Some(Err(e)) => {
            tracing::warn!(tip = %last.hash, error = %e, "cannot build a tip bundle");
            Vec::new()
        }
    };
    let tip = Tip {
        hash: last.hash.to_string(),
        seq: last.seq,
        parent: first.parent.as_ref().map(|p| p.to_string()),
        ..Tip::default()
    };
    let parts = u32::try_from(built.len().max(1)).unwrap_or(u32::MAX);
    let tips = if built.is_empty() {
        vec![tip]
    } else {
        (0..)
            .zip(built)
            .map(|(part, bytes)| Tip {
                part,
                parts,
                bundle: bytes::Bytes::from(bytes),
                files: bundle == Some(Artifacts::All),
                ..tip.clone()
            })
            .collect()
    };
    Some(Broadcast {
        parts: tips,
        trace: trace.clone(),
    })
}

/// Why a batch's write transaction did not commit.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    /// A statement, or the COMMIT, failed.
    #[error("write transaction")]
    Repo(#[from] RepoError),
    /// SQLite rolled the transaction back itself while a push was handled.
    #[error("write transaction rolled back by sqlite: {failure}")]
    RolledBack {
        /// The failing push's error chain.
        failure: String,
    },
}

impl BatchError {
    /// What the pushers are told, in a few words: a full disk and a failing
    /// or read-only file are named, since the client can do nothing about
    /// them but wait or tell an operator.
    fn reason(&self) -> &'static str {
        let storage = match self {
            BatchError::Repo(e) => sqlite_code(e),
            // The failure is only text by now; SQLite rolls a whole
            // transaction back on its own only for storage faults.
            BatchError::RolledBack { .. } => Some(rusqlite::ErrorCode::SystemIoFailure),
        };
        match storage {
            Some(rusqlite::ErrorCode::DiskFull) => "the repository's disk is full",
            Some(rusqlite::ErrorCode::SystemIoFailure) => {
                "the repository cannot be written (i/o error: disk full or failing)"
            }
            Some(rusqlite::ErrorCode::ReadOnly) => "the repository is read-only",
            _ => "the write transaction failed",
        }
    }
}

/// The SQLite error code behind a repository error, if there is one.
fn sqlite_code(e: &RepoError) -> Option<rusqlite::ErrorCode> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(rusqlite::Error::SqliteFailure(failure, _)) =
            err.downcast_ref::<rusqlite::Error>()
        {
            return Some(failure.code);
        }
        source = err.source();
    }
    None
}

/// The reply to a push whose transaction did not commit: one `error` card
/// saying why and that nothing was stored, so the client may push again.
fn failure_reply(content_type: ContentType, reason: &str) -> Response {
    let text = format!("server error: {reason}; nothing of this push was stored");
    let cards = [
        Card::Error(text.clone()),
        Card::Comment(timestamp_comment(1)),
    ];
    Response {
        content_type,
        body: encode_body(content_type, &encode(&cards)),
        outcome: crate::xfer::Outcome {
            cards_out: cards.len(),
            errors: 1,
            failure: Some(text),
            ..Default::default()
        },
    }
}

/// Moves the WAL's content into the database file and truncates the WAL,
/// so a stopped hub leaves one self-contained file.
fn checkpoint(repo: &Repository) -> Result<(), HubError> {
    let path: PathBuf = repo.path().to_owned();
    let busy: i64 = repo
        .conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .map_err(|source| HubError::Checkpoint {
            path: path.clone(),
            source,
        })?;
    if busy != 0 {
        tracing::warn!(path = %path.display(), "wal checkpoint could not complete: readers still open");
    } else {
        tracing::info!(path = %path.display(), "wal checkpointed");
    }
    Ok(())
}

//! Claims: taking a task (a revision-gated update of its record to claimed
//! with the next epoch, then one hold per file, all in one round trip,
//! undone on conflict), the fence a leaf checks before it commits, renewing the lease,
//! and the two ways a claim ends: close (the commit landed) and abandon.
//!
//! Every write here is a compare-and-set on a revision we read or wrote, so
//! a leaf can only change a record it still owns; a claim that was taken
//! over makes the old owner's writes fail instead of clobbering the new one.

use async_nats::jetstream::kv;
use futures::future::join_all;

use super::client::{millis, nats_error, now_unix_ms, within, Coord};
use super::error::{ClaimError, CoordError, FenceError};
use super::hold::{HoldRecord, TakeOutcome};
use super::task::{OpenedTask, TaskId, TaskRecord, TaskStatus};

/// A granted claim: the task is claimed by this leaf at `epoch` and every
/// one of its files is held. Only [`Coord::claim`] makes one.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The claimed task.
    pub task: TaskId,
    /// The claim epoch written into the task record and every hold.
    pub epoch: u64,
    /// Each held file with the revision of our hold write, in sorted order.
    pub holds: Vec<(String, u64)>,
    /// The task's files (sorted).
    pub files: Vec<String>,
    /// The revision of our last write of the task record.
    pub task_revision: u64,
    /// The record as we last wrote it.
    record: TaskRecord,
}

impl Claim {
    /// The task record as this claim last wrote it.
    pub fn record(&self) -> &TaskRecord {
        &self.record
    }
}

impl Coord {
    /// Claims a task: it must be open (or claimed under a lease that ran
    /// out, whose claimant is presumed dead). Then every file is held; a
    /// live hold of another claim rolls the task back to open and releases
    /// the holds taken.
    pub async fn claim(&self, id: &TaskId) -> Result<Claim, ClaimError> {
        let op = format!("claim task {id}");
        let Some((record, revision)) = self.read_task(&op, id).await? else {
            return Err(ClaimError::NoSuchTask { task: id.clone() });
        };
        self.claim_record(&op, id, record, revision).await
    }

    /// [`Coord::claim`] of a task this leaf has just opened, at the record
    /// and revision it wrote: one round trip fewer, the read. Anyone else's
    /// write since makes the compare-and-set fail as
    /// [`ClaimError::AlreadyClaimed`]; a try after a lost answer should use
    /// [`Coord::claim`], which reads what that try left.
    pub async fn claim_opened(&self, opened: &OpenedTask) -> Result<Claim, ClaimError> {
        let op = format!("claim task {}", opened.id);
        self.claim_record(&op, &opened.id, opened.record.clone(), opened.revision)
            .await
    }

    /// The claim itself, on `record` as read (or written) at `revision`.
    async fn claim_record(
        &self,
        op: &str,
        id: &TaskId,
        record: TaskRecord,
        revision: u64,
    ) -> Result<Claim, ClaimError> {
        let now = now_unix_ms();
        let stale_claim = record.status == TaskStatus::Claimed
            && record
                .lease_expires_unix_ms
                .is_some_and(|lease| lease < now);
        if record.status != TaskStatus::Open && !stale_claim {
            return Err(ClaimError::AlreadyClaimed {
                task: id.clone(),
                status: Some(record.status),
                by: record.claimed_by,
            });
        }
        if stale_claim {
            tracing::debug!(task = %id, previous = ?record.claimed_by, "taking over a claim whose lease expired");
        }
        let expires = now.saturating_add(millis(self.config.hold_ttl));
        let epoch = record.claim_epoch + 1;
        let claimed = TaskRecord {
            status: TaskStatus::Claimed,
            claimed_by: Some(self.leaf_id.clone()),
            claim_epoch: epoch,
            lease_expires_unix_ms: Some(expires),
            ..record
        };
        let written = within(
            self.config.op_timeout,
            op,
            "cas update",
            self.tasks.update(id.as_str(), claimed.encode(), revision),
        )
        .await?;
        let task_revision = match written {
            Ok(revision) => revision,
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                return Err(ClaimError::AlreadyClaimed {
                    task: id.clone(),
                    status: None,
                    by: None,
                })
            }
            Err(err) => return Err(nats_error(op, "cas update", err).into()),
        };

        let hold = HoldRecord {
            holder: self.leaf_id.clone(),
            task: id.clone(),
            epoch,
            expires_at_unix_ms: expires,
        };
        let mut claim = Claim {
            task: id.clone(),
            epoch,
            holds: Vec::with_capacity(claimed.files.len()),
            files: claimed.files.clone(),
            task_revision,
            record: claimed,
        };
        // The holds go out together: one round trip, not one per file. Each
        // is a create-if-absent of its own key, so taking them at once
        // grants nothing that taking them in turn would not; the task
        // record's compare-and-set above already made this leaf the only
        // claimant of the task, and any hold refused undoes them all.
        let takes = join_all(
            claim
                .files
                .iter()
                .map(|file| self.take_hold(op, file, &hold)),
        )
        .await;
        let mut refusal = None;
        for (file, taken) in claim.files.iter().zip(takes) {
            match taken {
                Ok(TakeOutcome::Taken(revision)) => claim.holds.push((file.clone(), revision)),
                Ok(TakeOutcome::Held(holder)) => {
                    refusal.get_or_insert(ClaimError::HeldByAnother {
                        task: id.clone(),
                        file: file.clone(),
                        holder,
                    });
                }
                Err(err) => {
                    refusal.get_or_insert(err.into());
                }
            }
        }
        if let Some(refusal) = refusal {
            self.roll_back(op, &claim).await;
            return Err(refusal);
        }
        Ok(claim)
    }

    /// Undoes a claim that could not take all its holds. Failures are only
    /// logged: the caller reports the original refusal, and whatever is left
    /// behind expires with the lease.
    async fn roll_back(&self, op: &str, claim: &Claim) {
        if let Err(err) = self.release_all(op, claim).await {
            tracing::warn!(task = %claim.task, error = %err, "releasing holds after a refused claim failed");
        }
        if let Err(err) = self.reopen(op, claim).await {
            tracing::warn!(task = %claim.task, error = %err, "reopening a refused claim failed");
        }
    }

    /// Writes the task back to open, if the record is still ours.
    async fn reopen(&self, op: &str, claim: &Claim) -> Result<(), CoordError> {
        let open = TaskRecord {
            status: TaskStatus::Open,
            claimed_by: None,
            lease_expires_unix_ms: None,
            ..claim.record.clone()
        };
        let written = within(
            self.config.op_timeout,
            op,
            "cas reopen",
            self.tasks
                .update(claim.task.as_str(), open.encode(), claim.task_revision),
        )
        .await?;
        match written {
            Ok(_) => Ok(()),
            // Someone took the task over after our lease ran out: not ours.
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(()),
            Err(err) => Err(nats_error(op, "cas reopen", err)),
        }
    }

    /// Releases every hold of the claim (concurrently), each only if still ours.
    async fn release_all(&self, op: &str, claim: &Claim) -> Result<(), CoordError> {
        let releases = claim
            .holds
            .iter()
            .map(|(file, revision)| self.release_hold(op, file, *revision));
        join_all(releases).await.into_iter().collect()
    }

    /// The fence before a commit: the task is still claimed by this leaf at
    /// the claim's epoch under a live lease, and every hold is still ours
    /// (same holder, task and epoch) and not expired.
    pub async fn check(&self, claim: &Claim) -> Result<(), FenceError> {
        let op = format!("check task {}", claim.task);
        let task_read = self.read_task(&op, &claim.task);
        let hold_reads = join_all(claim.files.iter().map(|file| self.read_hold(&op, file)));
        let (task, holds) = futures::join!(task_read, hold_reads);
        let now = now_unix_ms();
        self.fence_task(claim, task?.map(|(record, _)| record))?;
        if claim
            .record
            .lease_expires_unix_ms
            .is_some_and(|lease| lease < now)
        {
            return Err(FenceError::LeaseExpired {
                task: claim.task.clone(),
            });
        }
        for (file, hold) in claim.files.iter().zip(holds) {
            match hold? {
                Some((hold, _))
                    if hold.holder == self.leaf_id
                        && hold.task == claim.task
                        && hold.epoch == claim.epoch =>
                {
                    if hold.is_expired(now) {
                        return Err(FenceError::HoldExpired {
                            task: claim.task.clone(),
                            file: file.clone(),
                        });
                    }
                }
                other => {
                    return Err(FenceError::HoldLost {
                        task: claim.task.clone(),
                        file: file.clone(),
                        holder: other.map(|(hold, _)| hold.holder),
                    })
                }
            }
        }
        Ok(())
    }

    /// Compares a freshly read task record with the claim.
    fn fence_task(&self, claim: &Claim, record: Option<TaskRecord>) -> Result<(), FenceError> {
        let Some(record) = record else {
            return Err(FenceError::TaskGone {
                task: claim.task.clone(),
            });
        };
        if record.claim_epoch != claim.epoch {
            return Err(FenceError::EpochMoved {
                task: claim.task.clone(),
                mine: claim.epoch,
                now: record.claim_epoch,
            });
        }
        if record.status != TaskStatus::Claimed
            || record.claimed_by.as_deref() != Some(self.leaf_id.as_str())
        {
            return Err(FenceError::NotMine {
                task: claim.task.clone(),
                status: record.status,
                by: record.claimed_by,
            });
        }
        Ok(())
    }

    /// After a failed compare-and-set on the task record: reads it to say
    /// why the claim is no longer ours.
    async fn explain_lost(&self, op: &str, claim: &Claim) -> FenceError {
        match self.read_task(op, &claim.task).await {
            Err(err) => err.into(),
            Ok(read) => match self.fence_task(claim, read.map(|(record, _)| record)) {
                Err(fence) => fence,
                // Same owner and epoch but a newer revision: another handle
                // with our leaf id wrote it; still not this claim's write.
                Ok(()) => FenceError::NotMine {
                    task: claim.task.clone(),
                    status: TaskStatus::Claimed,
                    by: Some(self.leaf_id.clone()),
                },
            },
        }
    }

    /// Extends the claim's lease and holds by the hold TTL from now. Fenced:
    /// fails if the task or any hold was taken over.
    pub async fn renew(&self, claim: &mut Claim) -> Result<(), FenceError> {
        let op = format!("renew task {}", claim.task);
        let expires = now_unix_ms().saturating_add(millis(self.config.hold_ttl));
        let renewed = TaskRecord {
            lease_expires_unix_ms: Some(expires),
            ..claim.record.clone()
        };
        let written = within(
            self.config.op_timeout,
            &op,
            "cas lease",
            self.tasks
                .update(claim.task.as_str(), renewed.encode(), claim.task_revision),
        )
        .await?;
        match written {
            Ok(revision) => {
                claim.task_revision = revision;
                claim.record = renewed;
            }
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                return Err(self.explain_lost(&op, claim).await)
            }
            Err(err) => return Err(nats_error(&op, "cas lease", err).into()),
        }
        let hold = HoldRecord {
            holder: self.leaf_id.clone(),
            task: claim.task.clone(),
            epoch: claim.epoch,
            expires_at_unix_ms: expires,
        };
        let value = hold.encode();
        for (file, revision) in claim.holds.iter_mut() {
            let written = within(
                self.config.op_timeout,
                &op,
                "cas hold",
                self.holds
                    .update(super::names::hold_key(file), value.clone(), *revision),
            )
            .await?;
            match written {
                Ok(new_revision) => *revision = new_revision,
                Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    let holder = self.read_hold(&op, file).await?.map(|(h, _)| h.holder);
                    return Err(FenceError::HoldLost {
                        task: claim.task.clone(),
                        file: file.clone(),
                        holder,
                    });
                }
                Err(err) => return Err(nats_error(&op, "cas hold", err).into()),
            }
        }
        Ok(())
    }

    /// Ends a claim whose work landed: the record becomes closed (gated on
    /// our last revision, so a taken-over claim cannot close the task), then
    /// the holds are released. A claim whose lease ran out still closes if
    /// nobody took the task over meanwhile.
    pub async fn close(&self, claim: Claim) -> Result<(), FenceError> {
        let op = format!("close task {}", claim.task);
        let closed = TaskRecord {
            status: TaskStatus::Closed,
            lease_expires_unix_ms: None,
            ..claim.record.clone()
        };
        let written = within(
            self.config.op_timeout,
            &op,
            "cas close",
            self.tasks
                .update(claim.task.as_str(), closed.encode(), claim.task_revision),
        )
        .await?;
        match written {
            Ok(_) => {}
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                return Err(self.explain_lost(&op, &claim).await)
            }
            Err(err) => return Err(nats_error(&op, "cas close", err).into()),
        }
        self.release_all(&op, &claim).await?;
        Ok(())
    }

    /// Gives a claim up: releases its holds and reopens the task, each only
    /// where still ours. Abandoning a claim that was taken over is a no-op.
    pub async fn abandon(&self, claim: Claim) -> Result<(), CoordError> {
        let op = format!("abandon task {}", claim.task);
        self.release_all(&op, &claim).await?;
        self.reopen(&op, &claim).await
    }
}

//! The task loop: every task of the slot (disjoint mode) or a walk over
//! the shared pool, and what every task step leans on: retrying a
//! coordination step NATS did not answer, thinking, giving a claim up.

use std::time::{Duration, Instant};

use crate::coord::{Claim, TaskId, TaskStatus};
use crate::wire::TaskOutcome;
use crate::workload::{pool_task, Mode, SlotWorkload};

use super::super::error::{chain, LeafError};
use super::unanswered::Unanswered;
use super::Agent;

/// Waits between tries of a coordination step NATS did not answer (a
/// server restarting), doubling from the first to the last.
const COORD_FIRST_WAIT: Duration = Duration::from_millis(100);
const COORD_MAX_WAIT: Duration = Duration::from_secs(2);
/// Passes over the shared pool: after the first, only tasks whose winner
/// gave them up (open again) are tried.
const MAX_POOL_PASSES: u32 = 100;

impl Agent<'_> {
    /// Runs every task of the slot (or walks the pool); `Ok(true)` when a
    /// stop request ended it early.
    pub(super) async fn tasks(&self) -> Result<bool, LeafError> {
        match self.config.spec.mode {
            Mode::Disjoint => self.disjoint().await,
            Mode::Shared => self.shared().await,
        }
    }

    fn stop_requested(&self) -> bool {
        *self.stop.borrow()
    }

    async fn disjoint(&self) -> Result<bool, LeafError> {
        let c = self.config;
        let mut workload = SlotWorkload::new(c.workload().clone(), c.spec.seed, c.slot);
        for _ in 0..c.spec.tasks {
            if self.stop_requested() {
                return Ok(true);
            }
            let plan = workload.next_task();
            // With --hold-hot the task holds the hot file it edits too.
            let held = plan
                .edit
                .as_ref()
                .filter(|_| c.workload().hot.hold)
                .map(|e| &e.path);
            let files = plan.files.iter().map(|(path, _)| path).chain(held);
            // A retry after a lost answer may leave an unused open record
            // behind; no other slot opens this slot's tasks.
            let opened = self
                .retrying("open", || {
                    self.coord.open_new_task(&plan.title, files.clone())
                })
                .await
                .map_err(|source| LeafError::Coord {
                    step: "open",
                    task: plan.title.clone(),
                    source,
                })?;
            self.task(&opened.id, Some(&opened), &plan).await?;
        }
        Ok(self.stop_requested())
    }

    /// Shared mode: every leaf walks the pool of N×K tasks from its own
    /// offset, opening each (create-if-absent under a fixed id, so all
    /// leaves agree) and trying to claim it. A lost task is settled when
    /// another leaf holds or closed it; one that is open again (its winner
    /// gave it up) is tried on the next pass.
    async fn shared(&self) -> Result<bool, LeafError> {
        let c = self.config;
        let pool = c.pool_size()?;
        let offset = c.slot.wrapping_mul(c.spec.tasks) % pool;
        let mut pending: Vec<u32> = (0..pool).map(|i| (offset + i) % pool).collect();
        for _ in 0..MAX_POOL_PASSES {
            let mut lost = Vec::new();
            for &k in &pending {
                if self.stop_requested() {
                    return Ok(true);
                }
                let plan = pool_task(&c.workload(), c.spec.seed, k);
                let id = pool_task_id(k)?;
                self.retrying("open", || {
                    self.coord.open_task_with_id(
                        &id,
                        &plan.title,
                        plan.files.iter().map(|(p, _)| p),
                    )
                })
                .await
                .map_err(|source| LeafError::Coord {
                    step: "open",
                    task: id.to_string(),
                    source,
                })?;
                if self.task(&id, None, &plan).await? == TaskOutcome::ClaimLost {
                    lost.push(k);
                }
            }
            pending.clear();
            for k in lost {
                let id = pool_task_id(k)?;
                let record = self
                    .coord
                    .task(&id)
                    .await
                    .map_err(|source| LeafError::Coord {
                        step: "read",
                        task: id.to_string(),
                        source,
                    })?;
                if record.is_some_and(|(r, _)| r.status == TaskStatus::Open) {
                    pending.push(k);
                }
            }
            if pending.is_empty() {
                break;
            }
        }
        Ok(self.stop_requested())
    }

    /// Runs one coordination step, trying again while NATS does not answer
    /// (see [`Unanswered`]) until [`LeafConfig::hub_retry`] has passed, with
    /// doubling waits.
    pub(super) async fn retrying<T, E, F, Fut>(
        &self,
        what: &'static str,
        mut step: F,
    ) -> Result<T, E>
    where
        E: Unanswered + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let start = Instant::now();
        let mut wait = COORD_FIRST_WAIT;
        let mut attempt = 1;
        loop {
            let e = match step().await {
                Err(e) if e.unanswered(attempt, self.coord.leaf_id()) => e,
                other => return other,
            };
            if start.elapsed() + wait > self.config.hub_retry || self.stop_requested() {
                return Err(e);
            }
            tracing::warn!(step = what, attempt, error = %e, "nats did not answer; retrying");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(COORD_MAX_WAIT);
            attempt += 1;
        }
    }

    /// Sleeps the think time; `false` when a stop request cut it short.
    pub(super) async fn think(&self, think: Duration) -> bool {
        let start = Instant::now();
        let mut stop = self.stop.clone();
        let finished = tokio::select! {
            () = tokio::time::sleep(think) => true,
            _ = stop.wait_for(|s| *s) => false,
        };
        let slept = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.reporter.thought(slept);
        finished
    }

    /// Releases a claim we will not commit; a failure is reported, not
    /// fatal (the holds expire with the lease).
    pub(super) async fn abandon(&self, claim: Claim) {
        let task = claim.task.to_string();
        if let Err(source) = self.coord.abandon(claim).await {
            let e = LeafError::Coord {
                step: "abandon",
                task,
                source,
            };
            self.reporter.error(chain(&e), false);
        }
    }
}

/// The fixed id of pool task `k`, the same in every leaf.
fn pool_task_id(k: u32) -> Result<TaskId, LeafError> {
    let id = format!("pool-{k}");
    TaskId::new(id.clone()).map_err(|source| LeafError::Coord {
        step: "name",
        task: id,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_ids_are_valid_keys_and_distinct() {
        assert_eq!(pool_task_id(0).unwrap().as_str(), "pool-0");
        assert_ne!(pool_task_id(1).unwrap(), pool_task_id(10).unwrap());
    }
}

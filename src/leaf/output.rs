//! What a leaf-agent prints: [`Reporter`] writes [`LeafLine`]s, one JSON
//! object per line, flushed at once so herd sees each as it happens, and
//! keeps the totals behind the final summary line. A write error (herd went
//! away, a closed pipe) is logged once and otherwise ignored: the leaf still
//! finishes or abandons its task properly.

use std::cell::{Cell, RefCell};
use std::io::Write;

use crate::wire::{ErrorLine, LeafLine, LeafSummary, TaskLine, TaskOutcome};

/// The stdout of one leaf and its running totals. Single-threaded (the
/// leaf's async runtime has one thread), so plain cells suffice.
pub struct Reporter {
    slot: u32,
    out: RefCell<Box<dyn Write>>,
    broken: Cell<bool>,
    totals: RefCell<LeafSummary>,
    /// Tasks that ended failed or abandoned: the run is incomplete.
    incomplete: Cell<u32>,
}

impl Reporter {
    /// A reporter for `slot` writing to `out`.
    pub fn new(slot: u32, out: Box<dyn Write>) -> Reporter {
        Reporter {
            slot,
            out: RefCell::new(out),
            broken: Cell::new(false),
            totals: RefCell::new(LeafSummary {
                slot,
                ..LeafSummary::default()
            }),
            incomplete: Cell::new(0),
        }
    }

    /// Writes one line and flushes.
    pub fn line(&self, line: &LeafLine) {
        if self.broken.get() {
            return;
        }
        let mut out = self.out.borrow_mut();
        let written = writeln!(out, "{}", line.to_json()).and_then(|()| out.flush());
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot write to stdout; further lines are dropped");
            self.broken.set(true);
        }
    }

    /// Prints a task line and counts it.
    pub fn task(&self, task: TaskLine) {
        {
            let mut t = self.totals.borrow_mut();
            t.tasks += 1;
            t.fork_retries += task.fork_retries;
            match task.outcome {
                TaskOutcome::Committed => t.committed += 1,
                TaskOutcome::ClaimLost => t.claims_lost += 1,
                TaskOutcome::Unrecoverable => t.fork_unrecoverable += 1,
                TaskOutcome::Failed | TaskOutcome::Abandoned => {
                    self.incomplete.set(self.incomplete.get() + 1)
                }
            }
            if task.claim == crate::wire::ClaimOutcome::Won {
                t.claims_won += 1;
            }
        }
        self.line(&LeafLine::Task(task));
    }

    /// Prints an error line; non-fatal ones are counted.
    pub fn error(&self, message: String, fatal: bool) {
        if !fatal {
            self.totals.borrow_mut().errors += 1;
        }
        self.line(&LeafLine::Error(ErrorLine {
            slot: self.slot,
            message,
            fatal,
        }));
    }

    /// Counts tip broadcasts that needed a pull.
    pub fn broadcasts_pulled(&self, n: u32) {
        self.totals.borrow_mut().broadcasts_pulled += n;
    }

    /// Counts tip broadcasts for a tip already held.
    pub fn broadcasts_skipped(&self, n: u32) {
        self.totals.borrow_mut().broadcasts_skipped += n;
    }

    /// Records a full leaf's pulled bytes and updated worktree files.
    pub fn pulled_and_updated(&self, bytes: u64, files: u64) {
        let mut t = self.totals.borrow_mut();
        t.bytes_pulled += bytes;
        t.files_updated += files;
    }

    /// Records what applying other slots' check-ins cost a full leaf:
    /// how many it stored and the CPU microseconds spent on them.
    pub fn applied(&self, checkins: u64, cpu_us: u64) {
        let mut t = self.totals.borrow_mut();
        t.checkins_applied += checkins;
        t.apply_us += cpu_us;
    }

    /// Records the NATS requests of the task loop.
    pub fn nats_ops(&self, n: u64) {
        self.totals.borrow_mut().nats_ops = n;
    }

    /// Records the CPU start-up took, read when the leaf is ready.
    pub fn started(&self) {
        let ms = crate::telemetry::own_cpu_ms().unwrap_or(0.0);
        self.totals.borrow_mut().start_cpu_us = (ms * 1000.0) as u64;
    }

    /// Records the leaf's own memory at the end of its work, before it
    /// closes its repository: closing runs SQLite's last checkpoint, a
    /// moment's spike the peak resident figure shows.
    pub fn measure_memory(&self) {
        self.totals.borrow_mut().private_kb = crate::telemetry::private_kb().unwrap_or(0);
    }

    /// Adds think time slept.
    pub fn thought(&self, ms: u64) {
        self.totals.borrow_mut().think_ms += ms;
    }

    /// Tasks that ended failed or abandoned so far.
    pub fn incomplete(&self) -> u32 {
        self.incomplete.get()
    }

    /// The totals so far, with `hub_requests` filled in.
    pub fn summary(&self, hub_requests: u64) -> LeafSummary {
        LeafSummary {
            hub_requests,
            peak_rss_kb: crate::telemetry::peak_rss_kb().unwrap_or(0),
            cpu_us: crate::telemetry::own_cpu_ms().map_or(0, |ms| (ms * 1000.0) as u64),
            ..self.totals.borrow().clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ClaimOutcome;
    use std::rc::Rc;

    /// A writer whose bytes the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn task(outcome: TaskOutcome, claim: ClaimOutcome, retries: u32) -> TaskLine {
        TaskLine {
            slot: 2,
            task: 0,
            task_id: "t".into(),
            claim,
            commit_ms: None,
            fork_retries: retries,
            resolutions: 0,
            checkin: None,
            outcome,
            timeline: None,
            trace: None,
        }
    }

    #[test]
    fn lines_are_json_and_totals_follow_them() {
        let buf = Shared::default();
        let r = Reporter::new(2, Box::new(buf.clone()));
        r.task(task(TaskOutcome::Committed, ClaimOutcome::Won, 2));
        r.task(task(TaskOutcome::ClaimLost, ClaimOutcome::Lost, 0));
        r.task(task(TaskOutcome::Failed, ClaimOutcome::Won, 1));
        r.error("boom".into(), false);
        r.broadcasts_pulled(3);
        r.broadcasts_skipped(4);
        r.pulled_and_updated(1000, 7);
        r.thought(15);
        let s = r.summary(9);
        assert_eq!(
            (
                s.tasks,
                s.committed,
                s.claims_won,
                s.claims_lost,
                s.fork_retries
            ),
            (3, 1, 2, 1, 3)
        );
        assert_eq!(
            (s.errors, s.broadcasts_pulled, s.broadcasts_skipped),
            (1, 3, 4)
        );
        assert_eq!((s.think_ms, s.hub_requests, s.slot), (15, 9, 2));
        assert_eq!((s.bytes_pulled, s.files_updated), (1000, 7));
        assert_eq!(r.incomplete(), 1);
        let text = String::from_utf8(buf.0.borrow().clone()).unwrap();
        let lines: Vec<LeafLine> = text.lines().map(|l| LeafLine::parse(l).unwrap()).collect();
        assert_eq!(lines.len(), 4);
        assert!(matches!(lines[3], LeafLine::Error(ref e) if e.message == "boom" && !e.fatal));
    }
}

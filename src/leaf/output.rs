//! What a leaf-agent prints: [`Reporter`] writes [`LeafLine`]s, one JSON
//! object per line, flushed at once so herd sees each as it happens, and
//! counts what its task and error lines say in the leaf's counters
//! (`counters.rs`), behind the final summary line. A write error (herd went
//! away, a closed pipe) is logged once and otherwise ignored: the leaf still
//! finishes or abandons its task properly.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::counters::LeafCounters;
use crate::wire::{ErrorLine, LeafLine, LeafSummary, TaskLine};

/// The stdout of one leaf, and the leaf's counters the lines it prints
/// feed. Single-threaded (the leaf's async runtime has one thread), so
/// plain cells suffice for the output; the counters are shared with the
/// repository thread.
pub struct Reporter {
    slot: u32,
    out: RefCell<Box<dyn Write>>,
    broken: Cell<bool>,
    counters: Arc<LeafCounters>,
}

impl Reporter {
    /// A reporter for `slot` writing to `out`.
    pub fn new(slot: u32, out: Box<dyn Write>) -> Reporter {
        Reporter {
            slot,
            out: RefCell::new(out),
            broken: Cell::new(false),
            counters: Arc::default(),
        }
    }

    /// The leaf's counters, for the parts of it that count elsewhere.
    pub fn counters(&self) -> &Arc<LeafCounters> {
        &self.counters
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
        self.counters.task(&task);
        self.line(&LeafLine::Task(task));
    }

    /// Prints an error line; non-fatal ones are counted.
    pub fn error(&self, message: String, fatal: bool) {
        if !fatal {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.line(&LeafLine::Error(ErrorLine {
            slot: self.slot,
            message,
            fatal,
        }));
    }

    /// Records the NATS requests of the task loop.
    pub fn nats_ops(&self, n: u64) {
        self.counters.nats_ops.store(n, Ordering::Relaxed);
    }

    /// Records the CPU start-up took, read when the leaf is ready.
    pub fn started(&self) {
        let ms = crate::telemetry::own_cpu_ms().unwrap_or(0.0);
        self.counters
            .start_cpu_us
            .store((ms * 1000.0) as u64, Ordering::Relaxed);
    }

    /// Records the leaf's own memory at the end of its work, before it
    /// closes its repository: closing runs SQLite's last checkpoint, a
    /// moment's spike the peak resident figure shows.
    pub fn measure_memory(&self) {
        let kb = crate::telemetry::private_kb().unwrap_or(0);
        self.counters.private_kb.store(kb, Ordering::Relaxed);
    }

    /// Adds think time slept.
    pub fn thought(&self, ms: u64) {
        self.counters.think_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Tasks that ended failed or abandoned so far.
    pub fn incomplete(&self) -> u32 {
        self.counters.incomplete.load(Ordering::Relaxed)
    }

    /// The summary line as the counts stand.
    pub fn summary(&self) -> LeafSummary {
        self.counters.summary(self.slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ClaimOutcome, TaskOutcome};
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
        let c = r.counters();
        c.broadcasts_pulled.store(3, Ordering::Relaxed);
        c.broadcasts_skipped.store(4, Ordering::Relaxed);
        c.bytes_pulled.store(1000, Ordering::Relaxed);
        c.files_updated.store(7, Ordering::Relaxed);
        c.hub_requests.store(9, Ordering::Relaxed);
        r.thought(15);
        let s = r.summary();
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

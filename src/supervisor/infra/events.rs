//! What the watcher tells the control loop, as data: a death (which
//! process, how, when), a restart, a loss and why; sentences are made only
//! where they are said.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{InfraKind, MAX_RESTARTS};

/// How a watched process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::supervisor) enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
    /// Neither code nor signal was reported.
    Unknown,
    /// It could not be waited for.
    Unwaitable(String),
}

impl Exit {
    pub(super) fn of(status: &std::io::Result<ExitStatus>) -> Exit {
        match status {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => Exit::Code(code),
                (None, Some(sig)) => Exit::Signal(sig),
                (None, None) => Exit::Unknown,
            },
            Err(e) => Exit::Unwaitable(e.to_string()),
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(sig) => match Signal::try_from(*sig) {
                Ok(s) => f.write_str(s.as_str()),
                Err(_) => write!(f, "signal {sig}"),
            },
            Exit::Unknown => f.write_str("unknown status"),
            Exit::Unwaitable(e) => write!(f, "cannot wait for it: {e}"),
        }
    }
}

/// A watched process's death: which, how and when (from the trial's
/// start). Displayed as "the hub died (SIGKILL) at 12.4 s".
#[derive(Debug, Clone, PartialEq)]
pub(in crate::supervisor) struct Death {
    /// Which process.
    pub kind: InfraKind,
    /// How it ended.
    pub exit: Exit,
    /// When, from the trial's start.
    pub at: Duration,
}

impl std::fmt::Display for Death {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} died ({}) at {:.1} s",
            self.kind.name(),
            self.exit,
            self.at.as_secs_f64()
        )
    }
}

/// Why a dead process was not started again.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::supervisor) enum NotRestarted {
    /// Every attempt failed; the last one's error.
    Failed {
        /// Attempts made.
        attempts: usize,
        /// The last attempt's error.
        last: String,
    },
    /// The trial's restarts of it were all spent.
    Spent,
}

/// What the watcher tells the control loop.
#[derive(Debug)]
pub(in crate::supervisor) enum InfraEvent {
    /// A process exited; the watcher is starting it again (or giving up:
    /// a [`InfraEvent::Lost`] follows).
    Died(Death),
    /// It runs again.
    Restarted {
        /// Which.
        kind: InfraKind,
        /// How long starting it took.
        took: Duration,
        /// Which attempt of the trial's [`MAX_RESTARTS`] it was.
        attempt: u32,
        /// Its new process id.
        pid: Option<u32>,
    },
    /// It could not be started again, or the budget is spent: the trial
    /// cannot go on.
    Lost {
        /// The death.
        death: Death,
        /// Why it was not started again.
        why: NotRestarted,
    },
}

impl InfraEvent {
    /// The event as the summary and stderr say it: "the hub died (SIGKILL)
    /// at 12.4 s", "restarted in 0.04 s (1 of 3)", or the death and why it
    /// was not restarted.
    pub(in crate::supervisor) fn sentence(&self) -> String {
        match self {
            InfraEvent::Died(death) => death.to_string(),
            InfraEvent::Restarted { took, attempt, .. } => format!(
                "restarted in {:.2} s ({attempt} of {MAX_RESTARTS})",
                took.as_secs_f64()
            ),
            InfraEvent::Lost { death, why } => match why {
                NotRestarted::Failed { attempts, last } => {
                    format!("{death}; restarting it failed {attempts} time(s), the last: {last}")
                }
                NotRestarted::Spent => {
                    format!("{death}; not restarted: all {MAX_RESTARTS} restarts spent")
                }
            },
        }
    }
}

//! `--acks FILE`: every check-in a leaf reports landed, one JSON line each,
//! as the leaf said it, for a checker outside herd (`herd soak`) to hold
//! against the hub's repository. Each line is written through at once, so
//! a herd killed mid-trial leaves every line it had read.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::supervisor::SupervisorError;
use crate::wire::TaskLine;

/// One acknowledged check-in: the slot and task that made it and the hash
/// the hub answered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The slot.
    pub slot: u32,
    /// The task's index within the slot.
    pub task: u32,
    /// The check-in on the hub's trunk, as the leaf was told.
    pub checkin: String,
}

/// The open acknowledgement log, or nothing without `--acks`.
pub(super) struct AckLog {
    file: Option<(File, PathBuf)>,
}

impl AckLog {
    /// Creates (or empties) `path`.
    pub(super) fn create(path: Option<&Path>) -> Result<AckLog, SupervisorError> {
        let file = match path {
            Some(path) => Some((
                File::create(path)
                    .map_err(|e| SupervisorError::io(format!("create {}", path.display()), e))?,
                path.to_path_buf(),
            )),
            None => None,
        };
        Ok(AckLog { file })
    }

    /// Appends the check-in of a task that landed. A log that cannot be
    /// written (its disk is full) is given up, saying so once: the trial
    /// goes on, and a checker then sees fewer acknowledgements, never
    /// false ones.
    pub(super) fn record(&mut self, task: &TaskLine) {
        let (Some((file, path)), Some(checkin)) = (&mut self.file, &task.checkin) else {
            return;
        };
        let ack = Ack {
            slot: task.slot,
            task: task.task,
            checkin: checkin.clone(),
        };
        let mut line = serde_json::to_string(&ack).unwrap_or_default();
        line.push('\n');
        if let Err(e) = file.write_all(line.as_bytes()) {
            crate::say!("herd: cannot write {}: {e}; no more acks", path.display());
            self.file = None;
        }
    }
}

/// Reads an acknowledgement log; a torn last line (herd killed while
/// writing it) is left out.
pub fn read_acks(path: &Path) -> std::io::Result<Vec<Ack>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

//! Task records in the trial's tasks bucket: the [`TaskId`] key, the JSON
//! [`TaskRecord`] value, normalization of the file paths a task touches, and
//! opening tasks (create-if-absent, so many leaves may open one shared pool
//! and exactly one write per task wins). Claiming lives in `claim`.

use std::fmt;

use async_nats::jetstream::kv;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::client::{nats_error, within, Coord};
use super::error::CoordError;
use super::names::is_valid_kv_key;

/// Longest accepted task id, well under any subject length limit.
const MAX_TASK_ID_LEN: usize = 200;

/// A task's key in the tasks bucket: a valid key-value key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaskId(String);

impl TaskId {
    /// Validates `id` as a key: 1-200 characters of `[-/_=.a-zA-Z0-9]`, not
    /// starting or ending with `.` and without `..`.
    pub fn new(id: impl Into<String>) -> Result<TaskId, CoordError> {
        let id = id.into();
        if id.len() > MAX_TASK_ID_LEN || !is_valid_kv_key(&id) {
            return Err(CoordError::InvalidTaskId { id });
        }
        Ok(TaskId(id))
    }

    /// A fresh id unique without coordination: `t-` and 128 random bits in hex.
    pub fn random() -> TaskId {
        TaskId(format!("t-{:032x}", rand::random::<u128>()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TaskId {
    type Error = CoordError;
    fn try_from(id: String) -> Result<TaskId, CoordError> {
        TaskId::new(id)
    }
}

impl From<TaskId> for String {
    fn from(id: TaskId) -> String {
        id.0
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Nobody works on it; it may be claimed.
    Open,
    /// A leaf claimed it (see `claimed_by`, `claim_epoch`).
    Claimed,
    /// Its commit landed; it is done for good.
    Closed,
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskStatus::Open => "open",
            TaskStatus::Claimed => "claimed",
            TaskStatus::Closed => "closed",
        })
    }
}

/// The JSON value stored under a task's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task's key.
    pub id: TaskId,
    /// A human-readable title.
    pub title: String,
    /// Files the task writes: sorted, deduplicated, normalized relative paths.
    pub files: Vec<String>,
    /// Open, claimed or closed.
    pub status: TaskStatus,
    /// The leaf that claimed (or closed) it.
    pub claimed_by: Option<String>,
    /// Incremented by every successful claim; fenced writes compare it.
    pub claim_epoch: u64,
    /// While claimed: when the claim's lease ends (wall-clock Unix ms). After
    /// that, another leaf may take the task over (its claimant is presumed
    /// dead). Absent while open or closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_unix_ms: Option<u64>,
}

impl TaskRecord {
    pub(super) fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a task record always serializes to json"))
    }
}

/// Normalizes the file list of a task: every path must be relative, use `/`
/// separators and contain no empty, `.` or `..` segment and no control
/// character. The result is sorted and deduplicated, the order holds are
/// taken in.
pub fn normalize_files<I, S>(files: I) -> Result<Vec<String>, CoordError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = Vec::new();
    for file in files {
        let path = file.as_ref();
        let reason = if path.is_empty() {
            Some("empty path")
        } else if path.starts_with('/') {
            Some("absolute path")
        } else if path.contains('\\') {
            Some("backslash in path; use /")
        } else if path.chars().any(char::is_control) {
            Some("control character in path")
        } else if path.split('/').any(str::is_empty) {
            Some("empty path segment")
        } else if path.split('/').any(|s| s == "..") {
            Some("parent segment ..")
        } else if path.split('/').any(|s| s == ".") {
            Some("dot segment .")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(CoordError::InvalidPath {
                path: path.to_string(),
                reason,
            });
        }
        out.push(path.to_string());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A task this leaf has just opened: its record as written and the
/// revision it got, so that claiming it needs no read first
/// ([`Coord::claim_opened`]).
#[derive(Debug, Clone)]
pub struct OpenedTask {
    /// The new task's id.
    pub id: TaskId,
    pub(super) record: TaskRecord,
    pub(super) revision: u64,
}

impl Coord {
    /// Opens a new task under a fresh random id.
    pub async fn open_task<S: AsRef<str>>(
        &self,
        title: &str,
        files: impl IntoIterator<Item = S>,
    ) -> Result<TaskId, CoordError> {
        Ok(self.open_new_task(title, files).await?.id)
    }

    /// [`Coord::open_task`], keeping what was written for the claim.
    pub async fn open_new_task<S: AsRef<str>>(
        &self,
        title: &str,
        files: impl IntoIterator<Item = S>,
    ) -> Result<OpenedTask, CoordError> {
        let id = TaskId::random();
        let record = TaskRecord {
            id: id.clone(),
            title: title.to_string(),
            files: normalize_files(files)?,
            status: TaskStatus::Open,
            claimed_by: None,
            claim_epoch: 0,
            lease_expires_unix_ms: None,
        };
        // A 128-bit random id does not collide in practice, so the
        // create-if-absent cannot meet an existing record.
        let revision = self
            .create_record(&record)
            .await?
            .ok_or_else(|| CoordError::Nats {
                op: format!("open task {id}"),
                step: "create record",
                source: "a record with this random id exists".into(),
            })?;
        Ok(OpenedTask {
            id,
            record,
            revision,
        })
    }

    /// Opens a task under a chosen id unless it exists: `Ok(true)` when this
    /// call created it, `Ok(false)` when a record (in any state) was there.
    pub async fn open_task_with_id<S: AsRef<str>>(
        &self,
        id: &TaskId,
        title: &str,
        files: impl IntoIterator<Item = S>,
    ) -> Result<bool, CoordError> {
        let files = normalize_files(files)?;
        let record = TaskRecord {
            id: id.clone(),
            title: title.to_string(),
            files,
            status: TaskStatus::Open,
            claimed_by: None,
            claim_epoch: 0,
            lease_expires_unix_ms: None,
        };
        Ok(self.create_record(&record).await?.is_some())
    }

    /// Creates `record` unless its key exists: its revision, or `None`.
    async fn create_record(&self, record: &TaskRecord) -> Result<Option<u64>, CoordError> {
        let op = format!("open task {}", record.id);
        let created = within(
            self.config.op_timeout,
            &op,
            "create record",
            self.tasks.create(record.id.as_str(), record.encode()),
        )
        .await?;
        match created {
            Ok(revision) => Ok(Some(revision)),
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(err) => Err(nats_error(&op, "create record", err)),
        }
    }

    /// Reads a task record and its revision; `None` when there is none.
    pub async fn task(&self, id: &TaskId) -> Result<Option<(TaskRecord, u64)>, CoordError> {
        self.read_task(&format!("read task {id}"), id).await
    }

    pub(super) async fn read_task(
        &self,
        op: &str,
        id: &TaskId,
    ) -> Result<Option<(TaskRecord, u64)>, CoordError> {
        let entry = within(
            self.config.op_timeout,
            op,
            "read record",
            self.tasks.entry(id.as_str()),
        )
        .await?
        .map_err(|err| nats_error(op, "read record", err))?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let record: TaskRecord =
                    serde_json::from_slice(&entry.value).map_err(|source| CoordError::Decode {
                        op: op.to_string(),
                        what: "task record",
                        source,
                    })?;
                Ok(Some((record, entry.revision)))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_sorted_and_deduplicated() {
        let files = normalize_files(["b/c.txt", "a.txt", "b/c.txt", "a/b/c"]).unwrap();
        assert_eq!(files, vec!["a.txt", "a/b/c", "b/c.txt"]);
    }

    #[test]
    fn bad_paths_are_rejected_with_a_reason() {
        for (path, reason) in [
            ("", "empty path"),
            ("/etc/passwd", "absolute path"),
            ("a\\b", "backslash in path; use /"),
            ("a//b", "empty path segment"),
            ("a/", "empty path segment"),
            ("a/../b", "parent segment .."),
            ("..", "parent segment .."),
            ("./a", "dot segment ."),
            ("a\nb", "control character in path"),
        ] {
            match normalize_files([path]) {
                Err(CoordError::InvalidPath { reason: r, .. }) => assert_eq!(r, reason, "{path:?}"),
                other => panic!("{path:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn task_ids_are_validated() {
        assert!(TaskId::new("slot-1-task-3").is_ok());
        assert!(TaskId::new("").is_err());
        assert!(TaskId::new("a b").is_err());
        assert!(TaskId::new("a..b").is_err());
        assert!(TaskId::new("x".repeat(201)).is_err());
        let a = TaskId::random();
        assert!(is_valid_kv_key(a.as_str()));
        assert_ne!(a, TaskId::random());
    }

    #[test]
    fn record_json_round_trips_and_rejects_bad_ids() {
        let record = TaskRecord {
            id: TaskId::new("t-1").unwrap(),
            title: "x".into(),
            files: vec!["a.txt".into()],
            status: TaskStatus::Claimed,
            claimed_by: Some("slot-1".into()),
            claim_epoch: 3,
            lease_expires_unix_ms: Some(5),
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains("\"status\":\"claimed\""));
        let back: TaskRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record);
        let bad = json.replace("\"t-1\"", "\"a b\"");
        assert!(serde_json::from_str::<TaskRecord>(&bad).is_err());
    }
}

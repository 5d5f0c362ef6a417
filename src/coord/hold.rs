//! One file hold in the trial's holds bucket: the JSON [`HoldRecord`], taking
//! a hold (create-if-absent, or a revision-gated takeover of an expired
//! hold), reading one, and releasing one only while it is still ours. Holds
//! expire by the wall-clock time written in them, not by bucket TTL, so a
//! dead leaf's holds stay visible (and attributable) until someone takes
//! them over.

use async_nats::jetstream::kv;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::client::{nats_error, now_unix_ms, within, Coord};
use super::error::CoordError;
use super::names::hold_key;
use super::task::TaskId;

/// How many times taking one hold re-reads after losing a compare-and-set
/// before reporting the file as held by whoever won.
const TAKE_ATTEMPTS: usize = 4;

/// The JSON value stored under a file's hold key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRecord {
    /// The leaf holding the file.
    pub holder: String,
    /// The task it holds it for.
    pub task: TaskId,
    /// The claim epoch of that task.
    pub epoch: u64,
    /// Wall-clock Unix ms after which the hold may be taken over.
    pub expires_at_unix_ms: u64,
}

impl HoldRecord {
    pub(super) fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a hold record always serializes to json"))
    }

    /// Whether the hold has run out at wall-clock time `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_unix_ms < now_ms
    }
}

/// How an attempt to take a hold ended.
#[derive(Debug)]
pub(super) enum TakeOutcome {
    /// The hold is ours at this revision.
    Taken(u64),
    /// A live hold of another claim is in the way.
    Held(String),
}

impl Coord {
    /// Reads the current hold on `file`, `None` when nobody holds it (a
    /// present record may be expired: see [`HoldRecord::is_expired`]).
    pub async fn hold(&self, file: &str) -> Result<Option<HoldRecord>, CoordError> {
        let op = format!("read hold on {file}");
        Ok(self.read_hold(&op, file).await?.map(|(record, _)| record))
    }

    /// Takes the hold on `file`, writing `record` under it. The common case
    /// (no hold) is one round trip: an update expecting revision 0, i.e.
    /// create-if-absent. Otherwise read it: a deleted or expired hold is
    /// taken with an update gated on its revision; a live one is reported.
    pub(super) async fn take_hold(
        &self,
        op: &str,
        file: &str,
        record: &HoldRecord,
    ) -> Result<TakeOutcome, CoordError> {
        let key = hold_key(file);
        let value = record.encode();
        let mut expected = 0;
        let mut last_holder = None;
        for _ in 0..TAKE_ATTEMPTS {
            let written = within(
                self.config.op_timeout,
                op,
                "cas hold",
                self.holds.update(&key, value.clone(), expected),
            )
            .await?;
            match written {
                Ok(revision) => return Ok(TakeOutcome::Taken(revision)),
                Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
                Err(err) => return Err(nats_error(op, "cas hold", err)),
            }
            match self.read_hold_entry(op, &key).await? {
                None => expected = 0,
                Some((None, revision)) => expected = revision,
                Some((Some(current), revision)) => {
                    if current.is_expired(now_unix_ms()) {
                        tracing::debug!(
                            file,
                            previous = %current.holder,
                            "taking over an expired hold"
                        );
                        expected = revision;
                    } else {
                        return Ok(TakeOutcome::Held(current.holder));
                    }
                    last_holder = Some(current.holder);
                }
            }
        }
        Ok(TakeOutcome::Held(
            last_holder.unwrap_or_else(|| "an unknown leaf".to_string()),
        ))
    }

    /// Reads the hold on `file`: `None` when there is none (never written,
    /// or released), else the record and its revision.
    pub(super) async fn read_hold(
        &self,
        op: &str,
        file: &str,
    ) -> Result<Option<(HoldRecord, u64)>, CoordError> {
        Ok(match self.read_hold_entry(op, &hold_key(file)).await? {
            Some((Some(record), revision)) => Some((record, revision)),
            _ => None,
        })
    }

    /// Reads a hold key: `None` when never written, `Some((None, rev))` when
    /// the latest entry is a delete marker at `rev`.
    async fn read_hold_entry(
        &self,
        op: &str,
        key: &str,
    ) -> Result<Option<(Option<HoldRecord>, u64)>, CoordError> {
        let entry = within(
            self.config.op_timeout,
            op,
            "read hold",
            self.holds.entry(key),
        )
        .await?
        .map_err(|err| nats_error(op, "read hold", err))?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(Some((None, entry.revision)));
        }
        let record = serde_json::from_slice(&entry.value).map_err(|source| CoordError::Decode {
            op: op.to_string(),
            what: "hold record",
            source,
        })?;
        Ok(Some((Some(record), entry.revision)))
    }

    /// Releases the hold on `file` if it is still at `revision`, i.e. still
    /// the one we wrote. A later revision means it was taken over (or
    /// already released), which is fine: releasing is idempotent.
    pub(super) async fn release_hold(
        &self,
        op: &str,
        file: &str,
        revision: u64,
    ) -> Result<(), CoordError> {
        let deleted = within(
            self.config.op_timeout,
            op,
            "release hold",
            self.holds
                .delete_expect_revision(hold_key(file), Some(revision)),
        )
        .await?;
        match deleted {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(()),
            Err(err) => Err(nats_error(op, "release hold", err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_json_has_the_documented_fields() {
        let hold = HoldRecord {
            holder: "slot-1-ab".into(),
            task: TaskId::new("t-1").unwrap(),
            epoch: 2,
            expires_at_unix_ms: 1000,
        };
        let value: serde_json::Value = serde_json::from_slice(&hold.encode()).unwrap();
        assert_eq!(value["holder"], "slot-1-ab");
        assert_eq!(value["task"], "t-1");
        assert_eq!(value["epoch"], 2);
        assert_eq!(value["expires_at_unix_ms"], 1000);
        assert!(!hold.is_expired(1000));
        assert!(hold.is_expired(1001));
    }
}

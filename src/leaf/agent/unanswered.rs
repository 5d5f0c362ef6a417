//! Which coordination failures are worth another try: NATS did not answer,
//! or a lost answer's own half-written claim is in the way.

use crate::coord::{ClaimError, CoordError, FenceError};

/// Errors of a coordination step that may succeed when tried again: NATS
/// did not answer (a timeout, a dropped connection, JetStream not yet back
/// after a restart).
pub(super) trait Unanswered {
    /// Whether trying again may help; `attempt` is the try that failed and
    /// `me` this leaf's id.
    fn unanswered(&self, attempt: u32, me: &str) -> bool;
}

impl Unanswered for CoordError {
    fn unanswered(&self, _: u32, _: &str) -> bool {
        matches!(
            self,
            CoordError::Timeout { .. } | CoordError::Nats { .. } | CoordError::Connect { .. }
        )
    }
}

impl Unanswered for ClaimError {
    /// A claim whose answer was lost may have been written, wholly or in
    /// part: on the next try the task is then claimed, or a file held, by
    /// this very leaf. That is not contention; it clears when the lease
    /// runs out, and the claim is then taken again.
    fn unanswered(&self, attempt: u32, me: &str) -> bool {
        match self {
            ClaimError::Coord(e) => e.unanswered(attempt, me),
            ClaimError::AlreadyClaimed { by: Some(by), .. } => attempt > 1 && by == me,
            ClaimError::HeldByAnother { holder, .. } => attempt > 1 && holder == me,
            _ => false,
        }
    }
}

impl Unanswered for FenceError {
    fn unanswered(&self, attempt: u32, me: &str) -> bool {
        matches!(self, FenceError::Coord(e) if e.unanswered(attempt, me))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::coord::TaskId;

    #[test]
    fn only_unanswered_steps_are_tried_again() {
        let timeout = || CoordError::Timeout {
            op: "claim task t".into(),
            step: "read record",
            after: Duration::from_secs(5),
        };
        let task = TaskId::new("t").unwrap();
        assert!(timeout().unanswered(1, "me"));
        assert!(ClaimError::Coord(timeout()).unanswered(1, "me"));
        assert!(FenceError::Coord(timeout()).unanswered(1, "me"));
        let mine = ClaimError::AlreadyClaimed {
            task: task.clone(),
            status: None,
            by: Some("me".into()),
        };
        // Claimed by this leaf: a lost answer's doing only after a first try.
        assert!(!mine.unanswered(1, "me"));
        assert!(mine.unanswered(2, "me"));
        assert!(!mine.unanswered(2, "other"));
        let held = ClaimError::HeldByAnother {
            task: task.clone(),
            file: "f".into(),
            holder: "other".into(),
        };
        assert!(!held.unanswered(2, "me"));
        assert!(!ClaimError::NoSuchTask { task: task.clone() }.unanswered(2, "me"));
        assert!(!FenceError::LeaseExpired { task }.unanswered(2, "me"));
        assert!(!CoordError::InvalidTaskId { id: "x".into() }.unanswered(1, "me"));
    }
}

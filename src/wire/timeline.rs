//! When things happened in a trial, on one clock every process shares.
//!
//! herd takes the trial's start as a wall-clock instant (microseconds since
//! the Unix epoch) and hands it to every child in [`crate::env::TRIAL_START`]; each
//! process reads it once ([`TrialClock::get`]) and reports its instants as
//! milliseconds since that start. All processes of a trial run on one
//! machine (or on hosts that share its clock), so their instants line up. A
//! process started without the variable (a leaf-agent run by hand) counts
//! from its own start.
//!
//! A task line's [`Timeline`] reads, in order: the claim (start, end), the
//! think time (ending at `think_end_ms`), the commit (from `commit_start_ms`
//! to `end_ms`) with each push inside it, and `end_ms` when the task ended
//! however it ended.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The trial's clock: milliseconds since the trial's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialClock {
    start_us: u64,
}

impl TrialClock {
    /// A clock whose zero is now.
    pub fn starting_now() -> TrialClock {
        TrialClock {
            start_us: epoch_us(),
        }
    }

    /// The clock of the trial this process belongs to: the start herd
    /// handed down, or this process's first call.
    pub fn get() -> TrialClock {
        static CLOCK: OnceLock<TrialClock> = OnceLock::new();
        *CLOCK.get_or_init(|| {
            std::env::var(crate::env::TRIAL_START)
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or_else(TrialClock::starting_now, |start_us| TrialClock { start_us })
        })
    }

    /// The start as it goes into [`crate::env::TRIAL_START`].
    pub fn env_value(&self) -> String {
        self.start_us.to_string()
    }

    /// Milliseconds since the start, to the microsecond (negative before it).
    pub fn now_ms(&self) -> f64 {
        let us = i128::from(epoch_us()) - i128::from(self.start_us);
        us as f64 / 1000.0
    }
}

fn epoch_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Rounds a figure in milliseconds to the microsecond, so JSON carries no
/// float noise (`5.489306999999999` becomes `5.489`).
pub fn round_us(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// What one push got from the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushResult {
    /// The check-in is on trunk (accepted as pushed, or landed by the hub).
    Landed,
    /// Refused: trunk moved; the leaf rebases and pushes again.
    Refused,
    /// Refused, and a file changed on both sides could not be merged by
    /// lines (by the hub, or by the leaf's rebase): the leaf redoes its
    /// edit on the new text, or gives the task up when it cannot.
    Conflict,
    /// No answer the leaf could use (the hub unreachable past the retry
    /// deadline, or an error card).
    Failed,
    /// Landed by the hub, which merged a file changed on trunk too by lines.
    Merged,
}

/// One push of a commit, on the trial clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PushMark {
    /// When the request went out.
    pub start_ms: f64,
    /// When its answer came back (or the leaf gave up).
    pub end_ms: f64,
    /// What it got.
    pub result: PushResult,
}

impl PushMark {
    /// A push that started at `start_ms` and ends now with `result`.
    pub fn ending_now(start_ms: f64, result: PushResult) -> PushMark {
        PushMark {
            start_ms: round_us(start_ms),
            end_ms: round_us(TrialClock::get().now_ms()),
            result,
        }
    }
}

/// When one task's steps happened, in milliseconds on the trial clock.
/// Steps a task never reached are `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// The claim's first request.
    pub claim_start_ms: f64,
    /// The claim's answer (won or lost).
    pub claim_end_ms: f64,
    /// The end of the think time (the agent's work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think_end_ms: Option<f64>,
    /// The commit's start: the fence check, the check-in, the pushes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_start_ms: Option<f64>,
    /// Every push of the commit, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pushes: Vec<PushMark>,
    /// When the task ended (landed, given up or failed).
    pub end_ms: f64,
}

impl Timeline {
    /// When the task's check-in landed: the end of the push that landed it.
    pub fn landed_ms(&self) -> Option<f64> {
        self.pushes
            .iter()
            .rev()
            .find(|p| p.result == PushResult::Landed)
            .map(|p| p.end_ms)
    }
}

/// Records a [`Timeline`] as a task goes; each mark reads the trial clock.
#[derive(Debug, Clone)]
pub struct TimelineRecorder {
    clock: TrialClock,
    timeline: Timeline,
}

impl TimelineRecorder {
    /// Starts a task's timeline now (the claim's start).
    pub fn start() -> TimelineRecorder {
        let clock = TrialClock::get();
        let now = round_us(clock.now_ms());
        TimelineRecorder {
            clock,
            timeline: Timeline {
                claim_start_ms: now,
                claim_end_ms: now,
                ..Timeline::default()
            },
        }
    }

    fn now(&self) -> f64 {
        round_us(self.clock.now_ms())
    }

    /// The claim was answered.
    pub fn claimed(&mut self) {
        self.timeline.claim_end_ms = self.now();
    }

    /// The think time ended.
    pub fn thought(&mut self) {
        self.timeline.think_end_ms = Some(self.now());
    }

    /// The commit starts.
    pub fn committing(&mut self) {
        self.timeline.commit_start_ms = Some(self.now());
    }

    /// The commit's pushes, as its repository thread recorded them.
    pub fn pushed(&mut self, pushes: Vec<PushMark>) {
        self.timeline.pushes = pushes;
    }

    /// The task ends now.
    pub fn finish(&self) -> Timeline {
        Timeline {
            end_ms: self.now(),
            ..self.timeline.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_round_to_the_microsecond() {
        assert_eq!(round_us(5.489306999999999), 5.489);
        assert_eq!(round_us(0.0004), 0.0);
        assert_eq!(round_us(-1.2344), -1.234);
    }

    #[test]
    fn a_recorded_timeline_is_in_order_and_round_trips() {
        let mut rec = TimelineRecorder::start();
        rec.claimed();
        rec.thought();
        rec.committing();
        let push_start = TrialClock::get().now_ms();
        rec.pushed(vec![PushMark::ending_now(push_start, PushResult::Landed)]);
        let t = rec.finish();
        let think = t.think_end_ms.unwrap();
        let commit = t.commit_start_ms.unwrap();
        assert!(t.claim_start_ms <= t.claim_end_ms && t.claim_end_ms <= think);
        assert!(think <= commit && commit <= t.pushes[0].start_ms + 0.001);
        assert!(t.pushes[0].end_ms <= t.end_ms);
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Timeline>(&text).unwrap(), t);
    }

    #[test]
    fn a_lost_claim_leaves_the_later_steps_out() {
        let mut rec = TimelineRecorder::start();
        rec.claimed();
        let text = serde_json::to_string(&rec.finish()).unwrap();
        assert!(!text.contains("think_end_ms"), "{text}");
        assert!(!text.contains("pushes"), "{text}");
    }
}

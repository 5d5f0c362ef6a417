//! The JSON lines a leaf-agent and the hub print on stdout, and herd reads.
//!
//! stdout of `leaf-agent` and `hub` carries only these lines, one JSON object
//! per line, tagged by `event`. Both sides use these types, so the format is
//! defined here once. Example lines, one per kind:
//!
//! ```text
//! {"event":"ready","slot":3,"leaf_id":"slot-3-9f2c","tip":"6b1e…"}
//! {"event":"task","slot":3,"task":0,"task_id":"slot-3-9f2c-0","claim":"won","commit_ms":2.41,"fork_retries":1,"checkin":"a91c…","outcome":"committed",
//!  "timeline":{"claim_start_ms":12.1,"claim_end_ms":13.0,"think_end_ms":61.2,"commit_start_ms":61.3,
//!              "pushes":[{"start_ms":62.9,"end_ms":63.7,"result":"landed"}],"end_ms":63.8}}
//! {"event":"error","slot":3,"message":"push to http://127.0.0.1:4100/: connection refused","fatal":false}
//! {"event":"summary","slot":3,"tasks":30,"committed":30,"claims_won":30,"claims_lost":0,"fork_retries":4,"fork_unrecoverable":0,"broadcasts_pulled":12,"broadcasts_skipped":40,"hub_requests":42,"errors":0,"think_ms":1650,"peak_rss_kb":14200,"bytes_pulled":310200,"files_updated":71}
//! ```
//!
//! The hub prints one line when it is ready to serve:
//!
//! ```text
//! {"event":"ready","http":"http://127.0.0.1:41234","project_code":"…","tip":"…"}
//! ```

use serde::{Deserialize, Serialize};

mod sample;
mod stats;
mod timeline;

pub use sample::{HubCounters, KindSample, ProcessKind, Sample};
pub use stats::HubStats;
pub use timeline::{round_us, PushMark, PushResult, Timeline, TimelineRecorder, TrialClock};

/// Which server plays the hub in a trial. herd and every leaf-agent of a
/// trial get the same kind (flag `--hub-kind`, env `HERD_HUB_KIND`), and
/// the summary names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum HubKind {
    /// herd's own `hub`: a linear trunk it enforces, tip broadcasts on
    /// NATS, the one-round fast path.
    #[default]
    Herd,
    /// A stock `fossil server`: Fossil's plain sync protocol, no
    /// broadcasts, and it accepts forks.
    Fossil,
    /// A stock git server (`git daemon`) over a bare repository that
    /// refuses non-fast-forward pushes; the leaves drive the real `git`.
    Git,
}

/// Who puts a contended check-in on the trunk tip (flag `--landing`, env
/// `HERD_LANDING`; herd hands it to every leaf-agent, and the summary names
/// it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LandingStrategy {
    /// The hub: a push on a stale parent whose files did not change on
    /// trunk is written anew on the tip by the hub's writer (a merge
    /// queue); the leaf never rebases unless its files conflict.
    #[default]
    Hub,
    /// The leaf: a push on a stale parent is refused (after waiting its
    /// turn in the hub's push queue), the leaf rebases and pushes again.
    Leaf,
}

/// What a leaf keeps of other slots' work (flag `--leaf`, env `HERD_LEAF`;
/// herd hands it to every leaf-agent, and the summary names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LeafMode {
    /// A full clone: every trunk artifact reaches the leaf (one pull for
    /// all it missed, before each task), and its worktree is brought to
    /// the newest trunk tip it knows, as a coding agent needs.
    #[default]
    Full,
    /// Only what committing needs: other slots' manifests, never their
    /// files; the worktree holds the clone's tip and the leaf's own work.
    Sparse,
}

/// How a full leaf gets the check-ins it missed (flag `--catch-up`, env
/// `HERD_CATCH_UP`; herd hands it to the hub and every leaf-agent, and the
/// summary names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// The hub publishes each landed batch once, artifacts included, on the
    /// tip stream; NATS fans it out, and a leaf applies what it buffered
    /// before each task. A gap (a batch the stream no longer holds) costs
    /// one pull.
    #[default]
    Stream,
    /// Each leaf pulls what it missed from the hub before each task.
    Pull,
}

impl CatchUp {
    /// Whether a leaf kept as `leaf` catches up from the stream: only full
    /// leaves catch up at all (sparse ones ignore the setting).
    pub fn from_stream(self, leaf: LeafMode) -> bool {
        self == CatchUp::Stream && leaf == LeafMode::Full
    }
}

crate::flag_value!(HubKind, "hub kind");
crate::flag_value!(LandingStrategy, "landing strategy");
crate::flag_value!(LeafMode, "leaf mode");
crate::flag_value!(CatchUp, "catch-up");

/// One line of a leaf-agent's stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LeafLine {
    /// The leaf has cloned the hub, checked out and subscribed to tips.
    Ready(LeafReady),
    /// One task ended.
    Task(TaskLine),
    /// Something went wrong; `fatal` means the leaf is about to exit.
    Error(ErrorLine),
    /// The leaf's totals; the last line it prints.
    Summary(LeafSummary),
}

/// The leaf-agent's readiness line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeafReady {
    /// The slot this leaf runs.
    pub slot: u32,
    /// The leaf's identity in claims and holds.
    pub leaf_id: String,
    /// The trunk tip the leaf's repository holds after cloning.
    pub tip: String,
}

/// How a claim attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimOutcome {
    /// This leaf owns the task.
    Won,
    /// Another leaf had it, or held one of its files.
    Lost,
}

/// How a task ended for this leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskOutcome {
    /// The check-in is on the hub's trunk.
    Committed,
    /// The claim was lost; another leaf owns the task.
    ClaimLost,
    /// The rebase found a conflict; the claim was released.
    Unrecoverable,
    /// The task could not finish (hub or NATS error); the claim was released.
    Failed,
    /// The leaf was asked to stop before the task finished.
    Abandoned,
}

/// For serde: a count of zero is left out of a line.
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// [`is_zero`] for a 64-bit count.
fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// One task's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskLine {
    /// The slot.
    pub slot: u32,
    /// The task's index within the slot (or the pool, in shared mode).
    pub task: u32,
    /// The task's id in the tasks bucket.
    pub task_id: String,
    /// Whether this leaf won the claim.
    pub claim: ClaimOutcome,
    /// Start of commit to the hub's acceptance, retries included.
    pub commit_ms: Option<f64>,
    /// Pushes refused because trunk moved.
    pub fork_retries: u32,
    /// Times the task's hot-file edit conflicted with trunk's lines and
    /// was made again on the newer text.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resolutions: u32,
    /// The accepted check-in's hash.
    pub checkin: Option<String>,
    /// How the task ended.
    pub outcome: TaskOutcome,
    /// When its steps happened, on the trial clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
    /// The `traceparent` of the task's span, when spans are exported: the
    /// trace and span to look up in a tracing backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// An error the leaf reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorLine {
    /// The slot.
    pub slot: u32,
    /// The error chain, as one sentence.
    pub message: String,
    /// Whether the leaf stops because of it.
    pub fatal: bool,
}

/// A leaf's totals over its run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeafSummary {
    /// The slot.
    pub slot: u32,
    /// Tasks attempted.
    pub tasks: u32,
    /// Tasks whose check-in landed on trunk.
    pub committed: u32,
    /// Claims won.
    pub claims_won: u32,
    /// Claims lost.
    pub claims_lost: u32,
    /// Pushes refused because trunk moved.
    pub fork_retries: u32,
    /// Rebases that found a conflict.
    pub fork_unrecoverable: u32,
    /// Tip broadcasts (or landings) that made the leaf fetch: with a full
    /// leaf, one pull before a task for every tip it missed.
    pub broadcasts_pulled: u32,
    /// Tip broadcasts for a tip the leaf already had.
    pub broadcasts_skipped: u32,
    /// HTTP requests this leaf sent to the hub.
    pub hub_requests: u64,
    /// NATS requests this leaf sent during its task loop (messages
    /// published: every KV read, create, compare-and-set or delete is one
    /// request answered by one reply); start-up is not counted.
    #[serde(default)]
    pub nats_ops: u64,
    /// `git` processes this leaf ran (`--hub-kind git`: every git command
    /// is a process of its own, part of git's cost); 0 otherwise.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub git_processes: u64,
    /// Non-fatal errors.
    pub errors: u32,
    /// Total think time slept, in milliseconds.
    pub think_ms: u64,
    /// The leaf process's peak resident memory, in KiB.
    #[serde(default)]
    pub peak_rss_kb: u64,
    /// Bytes of the hub's replies to this leaf's pulls (full leaves: what
    /// staying current cost on the wire).
    #[serde(default)]
    pub bytes_pulled: u64,
    /// Worktree files written or removed by updates to a newer trunk tip
    /// (full leaves; the leaf's own task files not counted).
    #[serde(default)]
    pub files_updated: u64,
    /// Other slots' trunk check-ins this leaf stored (full leaves: every
    /// check-in that reached it by a pull or the stream).
    #[serde(default)]
    pub checkins_applied: u64,
    /// CPU time, in microseconds, the leaf's repository thread spent
    /// storing, crosslinking and writing out those check-ins (its own
    /// thread's CPU clock, so waiting on the hub or NATS is not counted).
    #[serde(default)]
    pub apply_us: u64,
    /// CPU, in microseconds, the leaf process used from its start to its
    /// `ready` line: cloning, joining NATS, opening its repository.
    #[serde(default)]
    pub start_cpu_us: u64,
    /// CPU, in microseconds, the leaf process used up to its summary line
    /// (`getrusage`, exact: the kernel's per-process figures in `/proc`
    /// are whole clock ticks, 10 ms, truncated).
    #[serde(default)]
    pub cpu_us: u64,
    /// The leaf process's own memory at the end of its work, in KiB (the pages it
    /// wrote that no other process maps: what one more leaf costs; the
    /// program's text, shared by every leaf, is not in it); 0 where Linux
    /// does not tell.
    #[serde(default)]
    pub private_kb: u64,
}

/// The hub's readiness line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename = "ready")]
pub struct HubReady {
    /// Base URL of the sync endpoint.
    pub http: String,
    /// The repository's project code.
    pub project_code: String,
    /// The trunk tip: on a new repository, the initial empty check-in (the
    /// root); empty only when the repository holds no check-in at all.
    pub tip: String,
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed JSON line {line:?}")]
pub struct LineError {
    /// The line, cut to a readable length.
    pub line: String,
    /// The parser's complaint.
    #[source]
    pub source: serde_json::Error,
}

impl LeafLine {
    /// Parses one line of a leaf's stdout.
    pub fn parse(line: &str) -> Result<Self, LineError> {
        serde_json::from_str(line).map_err(|source| LineError {
            line: line.chars().take(200).collect(),
            source,
        })
    }

    /// The line as JSON text, without the newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("report types always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_lines_round_trip_with_their_tag() {
        let line = LeafLine::Task(TaskLine {
            slot: 3,
            task: 0,
            task_id: "slot-3-x-0".into(),
            claim: ClaimOutcome::Won,
            commit_ms: Some(2.5),
            fork_retries: 1,
            resolutions: 0,
            checkin: Some("ab".repeat(32)),
            outcome: TaskOutcome::Committed,
            timeline: None,
            trace: None,
        });
        let text = line.to_json();
        assert!(text.starts_with(r#"{"event":"task","slot":3"#), "{text}");
        assert_eq!(LeafLine::parse(&text).unwrap(), line);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in ["", "{", "null", r#"{"event":"nope"}"#, "\u{0}\u{1}"] {
            assert!(LeafLine::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hub_kinds_parse_and_print_as_their_flag() {
        for kind in [HubKind::Herd, HubKind::Fossil, HubKind::Git] {
            assert_eq!(kind.to_string().parse::<HubKind>(), Ok(kind));
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
        }
        let bad = "svn".parse::<HubKind>().unwrap_err();
        assert!(bad.contains("unknown hub kind \"svn\""), "{bad}");
    }

    #[test]
    fn leaf_modes_parse_and_print_as_their_flag() {
        for mode in [LeafMode::Full, LeafMode::Sparse] {
            assert_eq!(mode.to_string().parse::<LeafMode>(), Ok(mode));
            assert_eq!(serde_json::to_string(&mode).unwrap(), format!("\"{mode}\""));
        }
        assert_eq!(LeafMode::default(), LeafMode::Full);
        assert!(CatchUp::Stream.from_stream(LeafMode::Full));
        assert!(!CatchUp::Stream.from_stream(LeafMode::Sparse));
        assert!(!CatchUp::Pull.from_stream(LeafMode::Full));
        let bad = "shallow".parse::<LeafMode>().unwrap_err();
        assert!(bad.contains("unknown leaf mode \"shallow\""), "{bad}");
    }

    #[test]
    fn summaries_without_the_full_leaf_counts_still_parse() {
        let old = r#"{"event":"summary","slot":1,"tasks":2,"committed":2,"claims_won":2,"claims_lost":0,"fork_retries":0,"fork_unrecoverable":0,"broadcasts_pulled":0,"broadcasts_skipped":0,"hub_requests":3,"errors":0,"think_ms":5}"#;
        let LeafLine::Summary(s) = LeafLine::parse(old).unwrap() else {
            panic!("not a summary");
        };
        assert_eq!((s.bytes_pulled, s.files_updated), (0, 0));
    }

    #[test]
    fn hub_ready_has_the_documented_shape() {
        let ready = HubReady {
            http: "http://127.0.0.1:1".into(),
            project_code: "p".into(),
            tip: String::new(),
        };
        let v: serde_json::Value = serde_json::to_value(&ready).unwrap();
        assert_eq!(v["event"], "ready");
        assert_eq!(v["tip"], "");
    }
}

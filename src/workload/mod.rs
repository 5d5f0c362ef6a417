//! The deterministic workload: what each task writes and how long it thinks.
//!
//! Slot `i` draws from a PCG generator (`rand_pcg::Pcg64`) seeded with
//! `seed + i`, so the same flags give the same files, byte for byte, on every
//! run and machine. In shared mode every leaf must agree on the pool without
//! talking, so each pool task draws from its own generator, seeded from the
//! seed and the task's index. Edits of shared hot files (`hot`) come from a
//! second stream per slot, so turning them on leaves every task's own files
//! as they were.

mod hot;

pub use hot::{find_markers, hot_path, seed_files, HotConfig, HotEdit, Marker, Place, SEED_LINES};

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

/// How leaves find their tasks.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Each slot opens its own tasks over its own files; claims never collide.
    #[default]
    Disjoint,
    /// Every slot races for every task of one pool, to exercise claim contention.
    Shared,
}

crate::flag_value!(Mode, "mode");

/// How long a claim's lease and file holds live unless set otherwise, in
/// milliseconds: the same as `coord::DEFAULT_HOLD_TTL` (a leaf test checks
/// they agree; this module depends on nothing of ours).
pub const DEFAULT_HOLD_TTL_MS: u64 = 30_000;

/// The workload knobs; the defaults are `WorkloadArgs`'s.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadConfig {
    /// Fewest files a task writes.
    pub min_files: u32,
    /// Most files a task writes.
    pub max_files: u32,
    /// Smallest file, in bytes.
    pub min_bytes: u32,
    /// Largest file, in bytes.
    pub max_bytes: u32,
    /// Shortest think time, in milliseconds.
    pub min_think_ms: u64,
    /// Longest think time, in milliseconds.
    pub max_think_ms: u64,
    /// Lifetime of a claim's lease and file holds, in milliseconds: a
    /// killed leaf's task can be claimed again this long after its claim.
    /// Not a workload knob proper, but passed to every leaf with them.
    pub hold_ttl_ms: u64,
    /// Edits of shared hot files.
    pub hot: HotConfig,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            min_files: 1,
            max_files: 4,
            min_bytes: 50,
            max_bytes: 2000,
            min_think_ms: 10,
            max_think_ms: 100,
            hold_ttl_ms: DEFAULT_HOLD_TTL_MS,
            hot: HotConfig::default(),
        }
    }
}

/// Why a workload configuration is unusable.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WorkloadError {
    /// A range whose minimum exceeds its maximum.
    #[error("{name}: minimum {min} is larger than maximum {max}")]
    EmptyRange {
        /// Which knob.
        name: &'static str,
        /// The minimum given.
        min: u64,
        /// The maximum given.
        max: u64,
    },
    /// A task must write at least one file, and files must not be empty.
    #[error("{name} must be at least 1")]
    Zero {
        /// Which knob.
        name: &'static str,
    },
    /// Hot-file edits need what they were given to.
    #[error("--overlap needs {needs} ({why})")]
    HotNeeds {
        /// The setting it needs.
        needs: &'static str,
        /// Why.
        why: &'static str,
    },
    /// A share outside 0–1.
    #[error("{name} must be between 0 and 1 (got {value})")]
    Share {
        /// Which knob.
        name: &'static str,
        /// The value given.
        value: f64,
    },
}

impl WorkloadConfig {
    /// Checks that every range is non-empty and tasks write something.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        let ranges = [
            ("files", self.min_files.into(), self.max_files.into()),
            ("bytes", self.min_bytes.into(), self.max_bytes.into()),
            ("think-ms", self.min_think_ms, self.max_think_ms),
        ];
        for (name, min, max) in ranges {
            if min > max {
                return Err(WorkloadError::EmptyRange { name, min, max });
            }
        }
        if self.min_files == 0 {
            return Err(WorkloadError::Zero { name: "min-files" });
        }
        if self.min_bytes == 0 {
            return Err(WorkloadError::Zero { name: "min-bytes" });
        }
        if self.hold_ttl_ms == 0 {
            return Err(WorkloadError::Zero {
                name: "hold-ttl-ms",
            });
        }
        if self.hot.files == 0 {
            return Err(WorkloadError::Zero { name: "hot-files" });
        }
        for (name, value) in [
            ("overlap", self.hot.overlap),
            ("hot-append", self.hot.append),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(WorkloadError::Share { name, value });
            }
        }
        Ok(())
    }
}

/// The workload flags, spelled the same in `herd run` and `leaf-agent`
/// (herd passes them on to every leaf), with `HERD_*` environment fallbacks.
#[derive(clap::Args, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadArgs {
    /// Fewest files a task writes.
    #[arg(long, env = "HERD_MIN_FILES", default_value_t = 1)]
    pub min_files: u32,
    /// Most files a task writes.
    #[arg(long, env = "HERD_MAX_FILES", default_value_t = 4)]
    pub max_files: u32,
    /// Smallest file in bytes.
    #[arg(long, env = "HERD_MIN_BYTES", default_value_t = 50)]
    pub min_bytes: u32,
    /// Largest file in bytes.
    #[arg(long, env = "HERD_MAX_BYTES", default_value_t = 2000)]
    pub max_bytes: u32,
    /// Shortest think time per task, in ms.
    #[arg(long, env = "HERD_MIN_THINK_MS", default_value_t = 10)]
    pub min_think_ms: u64,
    /// Longest think time per task, in ms.
    #[arg(long, env = "HERD_MAX_THINK_MS", default_value_t = 100)]
    pub max_think_ms: u64,
    /// Lifetime of a claim's lease and file holds, in ms: a killed leaf's
    /// task can be claimed again this long after its claim.
    #[arg(long, env = "HERD_HOLD_TTL_MS", default_value_t = DEFAULT_HOLD_TTL_MS)]
    pub hold_ttl_ms: u64,
    /// The share of tasks (0–1) that also insert lines into a shared hot
    /// file (`hot/file-<k>.txt`), edited concurrently by other agents.
    /// Needs full leaves and disjoint mode.
    #[arg(long, env = "HERD_OVERLAP", default_value_t = 0.0)]
    pub overlap: f64,
    /// How many shared hot files there are.
    #[arg(long, env = "HERD_HOT_FILES", default_value_t = 4)]
    pub hot_files: u32,
    /// The share of hot-file edits (0–1) that append at the end, as a
    /// changelog would, rather than insert after a random line.
    #[arg(long, env = "HERD_HOT_APPEND", default_value_t = 0.2)]
    pub hot_append: f64,
    /// Hold the hot file a task edits for the whole task (the lock-based
    /// design: no concurrent edits, more waiting) instead of editing
    /// concurrently and merging.
    #[arg(long, env = "HERD_HOLD_HOT")]
    pub hold_hot: bool,
}

impl WorkloadArgs {
    /// The flags that give `config`.
    pub fn of(config: &WorkloadConfig) -> WorkloadArgs {
        WorkloadArgs {
            min_files: config.min_files,
            max_files: config.max_files,
            min_bytes: config.min_bytes,
            max_bytes: config.max_bytes,
            min_think_ms: config.min_think_ms,
            max_think_ms: config.max_think_ms,
            hold_ttl_ms: config.hold_ttl_ms,
            overlap: config.hot.overlap,
            hot_files: config.hot.files,
            hot_append: config.hot.append,
            hold_hot: config.hot.hold,
        }
    }

    /// The flags as a configuration (not yet validated).
    pub fn config(&self) -> WorkloadConfig {
        WorkloadConfig {
            min_files: self.min_files,
            max_files: self.max_files,
            min_bytes: self.min_bytes,
            max_bytes: self.max_bytes,
            min_think_ms: self.min_think_ms,
            max_think_ms: self.max_think_ms,
            hold_ttl_ms: self.hold_ttl_ms,
            hot: HotConfig {
                overlap: self.overlap,
                files: self.hot_files,
                append: self.hot_append,
                hold: self.hold_hot,
            },
        }
    }
}

impl WorkloadConfig {
    /// Checks that hot-file edits, when asked for, have what they need:
    /// a leaf edits the hot file its worktree holds at the trunk tip, so
    /// leaves must be full; markers name a slot's task, so tasks must be
    /// the slot's own (disjoint mode).
    pub fn check_hot(&self, mode: Mode, full_leaves: bool) -> Result<(), WorkloadError> {
        if !self.hot.enabled() {
            return Ok(());
        }
        if !full_leaves {
            return Err(WorkloadError::HotNeeds {
                needs: "--leaf full",
                why: "a sparse leaf holds no other slot's edits, so it cannot edit a shared file",
            });
        }
        if mode != Mode::Disjoint {
            return Err(WorkloadError::HotNeeds {
                needs: "--mode disjoint",
                why: "each edit is marked with its slot and task",
            });
        }
        Ok(())
    }
}

/// One task's plan: its files and its think time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPlan {
    /// Index within the slot (disjoint mode) or the pool (shared mode).
    pub index: u32,
    /// A human-readable title, used as the check-in comment.
    pub title: String,
    /// Relative paths and contents, sorted by path.
    pub files: Vec<(String, Vec<u8>)>,
    /// How long the agent "thinks" before committing.
    pub think: Duration,
    /// Lines this task inserts into a shared hot file, if it does.
    pub edit: Option<HotEdit>,
}

/// The tasks of one slot in disjoint mode: files under `slot-<i>/task-<k>/`.
pub struct SlotWorkload {
    config: WorkloadConfig,
    slot: u32,
    rng: Pcg64,
    /// The slot's hot-edit stream, apart from `rng`.
    hot_rng: Pcg64,
    next: u32,
}

/// Mixed into a slot's seed for its hot-edit stream.
const HOT_STREAM: u64 = 0x6a09_e667_f3bc_c908;

impl SlotWorkload {
    /// The generator for `slot` under `seed`.
    pub fn new(config: WorkloadConfig, seed: u64, slot: u32) -> Self {
        SlotWorkload {
            rng: Pcg64::seed_from_u64(seed.wrapping_add(u64::from(slot))),
            hot_rng: Pcg64::seed_from_u64(seed.wrapping_add(u64::from(slot)) ^ HOT_STREAM),
            config,
            slot,
            next: 0,
        }
    }

    /// The next task of this slot.
    pub fn next_task(&mut self) -> TaskPlan {
        let index = self.next;
        self.next += 1;
        let dir = format!("slot-{}/task-{}", self.slot, index);
        let title = format!("slot {} task {}", self.slot, index);
        let mut plan = draw_task(&self.config, &mut self.rng, index, &dir, title);
        plan.edit = hot::draw_edit(&self.config.hot, &mut self.hot_rng, self.slot, index);
        plan
    }

    /// Every hot-file edit of this slot's first `tasks` tasks, by task.
    pub fn edits(
        config: &WorkloadConfig,
        seed: u64,
        slot: u32,
        tasks: u32,
    ) -> Vec<Option<HotEdit>> {
        let mut w = SlotWorkload::new(config.clone(), seed, slot);
        (0..tasks).map(|_| w.next_task().edit).collect()
    }
}

/// Task `index` of the shared pool under `seed`: files under `pool/task-<k>/`.
/// Every leaf computes the same plan for the same index.
pub fn pool_task(config: &WorkloadConfig, seed: u64, index: u32) -> TaskPlan {
    // A distinct stream per pool task, well away from the per-slot seeds.
    let mut rng =
        Pcg64::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(u64::from(index) + 1));
    let dir = format!("pool/task-{index}");
    draw_task(config, &mut rng, index, &dir, format!("pool task {index}"))
}

fn draw_task(
    config: &WorkloadConfig,
    rng: &mut Pcg64,
    index: u32,
    dir: &str,
    title: String,
) -> TaskPlan {
    let count = rng.gen_range(config.min_files..=config.max_files);
    let files = (0..count)
        .map(|j| {
            let len = rng.gen_range(config.min_bytes..=config.max_bytes) as usize;
            let content: Vec<u8> = (0..len).map(|_| b'a' + rng.gen_range(0..26u8)).collect();
            (format!("{dir}/file-{j}.txt"), content)
        })
        .collect();
    let think = Duration::from_millis(rng.gen_range(config.min_think_ms..=config.max_think_ms));
    TaskPlan {
        index,
        title,
        files,
        think,
        edit: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha3::{Digest, Sha3_256};

    fn digest(plan: &TaskPlan) -> String {
        let mut h = Sha3_256::new();
        for (path, content) in &plan.files {
            h.update(path.as_bytes());
            h.update([0]);
            h.update(content);
        }
        h.update(plan.think.as_millis().to_be_bytes());
        hex::encode(h.finalize())
    }

    #[test]
    fn same_seed_and_slot_give_the_same_tasks() {
        let mut a = SlotWorkload::new(WorkloadConfig::default(), 1, 3);
        let mut b = SlotWorkload::new(WorkloadConfig::default(), 1, 3);
        for _ in 0..20 {
            assert_eq!(a.next_task(), b.next_task());
        }
        let mut other = SlotWorkload::new(WorkloadConfig::default(), 1, 4);
        assert_ne!(a.next_task().files, other.next_task().files);
    }

    #[test]
    fn plans_respect_the_knobs() {
        let config = WorkloadConfig::default();
        let mut w = SlotWorkload::new(config.clone(), 7, 0);
        for k in 0..200 {
            let t = w.next_task();
            assert_eq!(t.index, k);
            assert!((1..=4).contains(&t.files.len()));
            for (path, content) in &t.files {
                assert!(path.starts_with(&format!("slot-0/task-{k}/file-")));
                assert!((50..=2000).contains(&content.len()));
                assert!(content.iter().all(u8::is_ascii_lowercase));
            }
            assert!((10..=100).contains(&t.think.as_millis()));
        }
    }

    // Pinned so that a change to the generator (or to rand/rand_pcg) that
    // would make old trials incomparable fails loudly.
    #[test]
    fn pinned_digests() {
        let mut w = SlotWorkload::new(WorkloadConfig::default(), 1, 0);
        let first = digest(&w.next_task());
        let second = digest(&w.next_task());
        let pool = digest(&pool_task(&WorkloadConfig::default(), 1, 5));
        assert_eq!(
            [first.as_str(), second.as_str(), pool.as_str()],
            [
                "e17f8590e4f24a0622322d8c868690cf1f82699e696b06dbdb97689bf2cba383",
                "88811d0757523ab446606e20bffbd466cc90044a0760d3667c824b21ff499d7c",
                "cb1d684b2b5dd0f03aafac24393719aff9eb674739d925b0aa1fc0b09b2d881f",
            ]
        );
    }

    #[test]
    fn validation_names_the_knob() {
        let bad = WorkloadConfig {
            min_files: 5,
            ..WorkloadConfig::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "files: minimum 5 is larger than maximum 4"
        );
        assert!(WorkloadConfig::default().validate().is_ok());
    }
}

//! The validated configuration of one leaf-agent slot. `bin/leaf-agent.rs`
//! parses flags (and, for credentials, the environment) into it; tests build
//! it directly.

use std::path::PathBuf;
use std::time::Duration;

use crate::coord::Secret;
use crate::spec::TrialSpec;
use crate::workload::{WorkloadConfig, WorkloadError};

/// The login a leaf signs its sync requests with (a Fossil login card on
/// every request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubLogin {
    /// The hub user.
    pub user: String,
    /// Its password (`Debug` hides it).
    pub secret: Secret,
}

/// Everything one slot needs to run.
#[derive(Debug, Clone)]
pub struct LeafConfig {
    /// The hub's sync URL, e.g. `http://127.0.0.1:41234`.
    pub hub_url: String,
    /// The NATS server URL.
    pub nats_url: String,
    /// This slot's index.
    pub slot: u32,
    /// The slot's directory: `leaf.fossil` and the worktree `wt/` live here.
    pub workdir: PathBuf,
    /// The trial's shape: tasks, agents, seed, modes, workload (the flags
    /// herd gave every leaf alike).
    pub spec: TrialSpec,
    /// Log in to the hub as this user; `None` syncs anonymously.
    pub hub_login: Option<HubLogin>,
    /// The NATS auth token, when the server requires one.
    pub nats_token: Option<Secret>,
    /// How long one push or pull keeps retrying a hub that does not answer
    /// (connection refused or reset, HTTP 5xx), with growing waits, before
    /// the task fails. Start-up does not wait this long: a hub unreachable
    /// at start is a usage error.
    pub hub_retry: Duration,
    /// Most bytes of received stream batches held before they are applied.
    pub stream_buffer_bytes: usize,
}

/// [`LeafConfig::stream_buffer_bytes`] unless set.
pub const DEFAULT_STREAM_BUFFER_BYTES: u64 = 64 * 1024 * 1024;

/// [`LeafConfig::hub_retry`] unless set: long enough for a hub to be
/// restarted under a running trial.
pub const DEFAULT_HUB_RETRY: Duration = Duration::from_secs(60);

/// Why a configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A workload range is empty or zero.
    #[error("invalid workload")]
    Workload(#[from] WorkloadError),
    /// A count that must be positive is zero.
    #[error("{name} must be at least 1")]
    Zero {
        /// Which flag.
        name: &'static str,
    },
    /// The hub URL is not an http URL.
    #[error("hub url {url:?} must start with http:// or https:// (or, for a git hub, git://, file:// or a path)")]
    HubUrl {
        /// The URL as given.
        url: String,
    },
    /// The shared pool would not fit task indices.
    #[error("agents × tasks ({agents} × {tasks}) is too large a pool")]
    PoolTooLarge {
        /// Agents.
        agents: u32,
        /// Tasks per agent.
        tasks: u32,
    },
}

impl LeafConfig {
    /// Checks every knob before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let workload = self.workload();
        workload.validate()?;
        workload.check_hot(
            self.spec.mode,
            self.spec.leaf == crate::wire::LeafMode::Full,
        )?;
        if self.spec.tasks == 0 {
            return Err(ConfigError::Zero { name: "tasks" });
        }
        if self.spec.agents == 0 {
            return Err(ConfigError::Zero { name: "agents" });
        }
        if self.hub_retry.is_zero() {
            return Err(ConfigError::Zero {
                name: "hub-retry-secs",
            });
        }
        let schemes: &[&str] = match self.spec.hub_kind {
            crate::wire::HubKind::Git => &["git://", "http://", "https://", "file://", "/"],
            _ => &["http://", "https://"],
        };
        if !schemes.iter().any(|s| self.hub_url.starts_with(s)) {
            return Err(ConfigError::HubUrl {
                url: self.hub_url.clone(),
            });
        }
        self.pool_size()?;
        Ok(())
    }

    /// The workload, from the spec's flags.
    pub fn workload(&self) -> WorkloadConfig {
        self.spec.workload.config()
    }

    /// N×K, the shared pool's size.
    pub fn pool_size(&self) -> Result<u32, ConfigError> {
        let spec = &self.spec;
        spec.agents
            .checked_mul(spec.tasks)
            .ok_or(ConfigError::PoolTooLarge {
                agents: spec.agents,
                tasks: spec.tasks,
            })
    }

    /// The lease and hold lifetime of this slot's claims.
    pub fn hold_ttl(&self) -> Duration {
        Duration::from_millis(self.spec.workload.hold_ttl_ms)
    }

    /// The slot's repository file.
    pub fn repo_path(&self) -> PathBuf {
        self.workdir.join("leaf.fossil")
    }

    /// The slot's worktree.
    pub fn worktree(&self) -> PathBuf {
        self.workdir.join("wt")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{CatchUp, HubKind, LandingStrategy, LeafMode};
    use crate::workload::{Mode, WorkloadArgs};

    fn config() -> LeafConfig {
        LeafConfig {
            hub_url: "http://127.0.0.1:1".into(),
            nats_url: "nats://127.0.0.1:2".into(),
            slot: 0,
            workdir: PathBuf::from("/tmp/x"),
            spec: TrialSpec {
                tasks: 3,
                agents: 2,
                seed: 1,
                workload: WorkloadArgs::of(&WorkloadConfig::default()),
                mode: Mode::Disjoint,
                hub_kind: HubKind::Herd,
                landing: LandingStrategy::Hub,
                leaf: LeafMode::Full,
                catch_up: CatchUp::Stream,
            },
            hub_login: None,
            nats_token: None,
            hub_retry: DEFAULT_HUB_RETRY,
            stream_buffer_bytes: DEFAULT_STREAM_BUFFER_BYTES as usize,
        }
    }

    #[test]
    fn the_default_hold_ttl_is_coords() {
        assert_eq!(
            Duration::from_millis(crate::workload::DEFAULT_HOLD_TTL_MS),
            crate::coord::DEFAULT_HOLD_TTL
        );
        assert_eq!(
            config().hold_ttl(),
            crate::coord::DEFAULT_HOLD_TTL,
            "the default workload carries the default ttl"
        );
    }

    #[test]
    fn a_sane_config_validates_and_names_its_paths() {
        let c = config();
        c.validate().unwrap();
        assert_eq!(c.pool_size().unwrap(), 6);
        assert_eq!(c.repo_path(), PathBuf::from("/tmp/x/leaf.fossil"));
        assert_eq!(c.worktree(), PathBuf::from("/tmp/x/wt"));
    }

    #[test]
    fn bad_configs_are_refused_with_the_knob_named() {
        let mut zero = config();
        zero.spec.tasks = 0;
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "tasks must be at least 1"
        );
        let url = LeafConfig {
            hub_url: "127.0.0.1:1".into(),
            ..config()
        };
        assert!(url.validate().unwrap_err().to_string().contains("http://"));
        let mut pool = config();
        (pool.spec.agents, pool.spec.tasks) = (u32::MAX, 2);
        assert!(matches!(
            pool.validate(),
            Err(ConfigError::PoolTooLarge { .. })
        ));
        let mut workload = config();
        workload.spec.workload.min_bytes = 0;
        assert!(matches!(workload.validate(), Err(ConfigError::Workload(_))));
        let retry = LeafConfig {
            hub_retry: Duration::ZERO,
            ..config()
        };
        assert_eq!(
            retry.validate().unwrap_err().to_string(),
            "hub-retry-secs must be at least 1"
        );
    }
}

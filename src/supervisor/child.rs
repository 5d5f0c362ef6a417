//! How a trial's children start: where (the words before the program,
//! `ip netns exec NS` on a simulated host), with what environment, and
//! where their stderr goes. [`ChildEnv::apply`] is the one place a child's
//! environment is set: the trial's credentials, its trace context, the
//! trial clock's start and the NATS deployment.
//!
//! Secrets go in the environment, never in argv (`/proc/PID/cmdline` is
//! world-readable; `/proc/PID/environ` is not).

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use super::SupervisorError;
use crate::coord::Secret;
use crate::env;
use crate::telemetry::W3c;

/// The hub user every leaf of a trial logs in as.
pub const TRIAL_USER: &str = "herd";

/// One trial's credentials.
#[derive(Clone)]
pub(super) struct TrialSecrets {
    /// The password of [`TRIAL_USER`] on the hub.
    pub hub_secret: Secret,
    /// The token of the nats-server herd started; `None` with `--nats-url`
    /// (children then inherit whatever `HERD_NATS_TOKEN` herd has).
    pub nats_token: Option<Secret>,
}

/// Everything a trial's child gets in its environment.
#[derive(Clone)]
pub(super) struct ChildEnv {
    /// The credentials.
    pub secrets: TrialSecrets,
    /// The trace context children start their root spans from.
    pub trace: W3c,
    /// The trial clock's start and the NATS deployment.
    pub vars: Vec<(&'static str, String)>,
}

impl ChildEnv {
    /// Sets it in `cmd`.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env(env::HUB_USER, TRIAL_USER)
            .env(env::HUB_SECRET, self.secrets.hub_secret.expose());
        if let Some(token) = &self.secrets.nats_token {
            cmd.env(env::NATS_TOKEN, token.expose());
        }
        if let Some(tp) = &self.trace.traceparent {
            cmd.env(env::TRACEPARENT, tp);
        }
        if let Some(ts) = &self.trace.tracestate {
            cmd.env(env::TRACESTATE, ts);
        }
        for (name, value) in &self.vars {
            cmd.env(name, value);
        }
    }
}

/// Where and with what a child starts: the words before its program and
/// its environment.
#[derive(Clone)]
pub(super) struct Place {
    /// `ip netns exec NS` on a simulated host; nothing on loopback.
    pub prefix: Vec<String>,
    /// Its environment.
    pub env: ChildEnv,
}

impl Place {
    /// A command running `program` there, its environment set.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        self.env.apply(&mut cmd);
        cmd
    }
}

/// A child's stderr: appended to, so a restarted hub's log follows the
/// first one's (a trial's work directory starts empty).
pub(super) fn log_file(path: &Path) -> Result<Stdio, SupervisorError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(Stdio::from)
        .map_err(|e| SupervisorError::io(format!("create {}", path.display()), e))
}

//! Where a trial's processes run: all on this machine's loopback (the
//! default), or on simulated hosts (`--hosts H`, [`super::hosts`]) with a
//! NATS cluster across them ([`super::cluster`]); and how a leaf-agent is
//! launched (directly, inside its host's namespace, or through the user's
//! `--leaf-launcher` template).
//!
//! Slots go round-robin over the hosts; the hub runs on host 0. Each
//! process is given the NATS URLs it can reach: on a cluster host its own
//! server first, then the other members; on a leaf host its leaf node.
//!
//! A launcher template is a shell command line (run with `sh -c`) in which
//! herd replaces `{cmd}` with the leaf-agent's command line (each word
//! single-quoted), `{slot}` with the slot, `{host}` with the slot's host
//! address and `{netns}` with its namespace (empty without `--hosts`). The
//! launcher inherits herd's environment for the leaf, secrets included;
//! a launcher that crosses machines must carry them (for ssh: `SendEnv`
//! on the client and `AcceptEnv` on the server for `HERD_*`).

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use super::cluster::{Cluster, DOMAIN};
use super::hosts::Hosts;
use super::{SupervisorError, TrialConfig};
use crate::coord::{Coord, CoordConfig, Deployment, Scope, Secret};
use crate::env;

/// How long each step of making the trial's buckets and tip stream on a
/// cluster may take (a leaf's steps get 5 s).
const PREPARE_OP_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a trial's processes run, and how leaf-agents are launched.
pub struct Topology {
    network: Network,
    launcher: Option<String>,
}

/// The network a trial runs on.
enum Network {
    /// Everything on this machine's loopback, one nats-server.
    Loopback,
    /// Simulated hosts, and the NATS cluster across them once started.
    Hosts {
        hosts: Hosts,
        cluster: Option<Cluster>,
    },
}

impl Topology {
    /// Makes the trial's hosts (none for one host). Nothing is started yet.
    pub fn new(config: &TrialConfig) -> Result<Topology, SupervisorError> {
        let network = if config.hosts > 1 {
            Network::Hosts {
                hosts: Hosts::create(config.hosts, config.shaping())
                    .map_err(SupervisorError::Hosts)?,
                cluster: None,
            }
        } else {
            Network::Loopback
        };
        Ok(Topology {
            network,
            launcher: config.leaf_launcher.clone(),
        })
    }

    /// Whether the trial runs on simulated hosts.
    pub fn has_hosts(&self) -> bool {
        self.hosts().is_some()
    }

    /// The simulated hosts, if any.
    fn hosts(&self) -> Option<&Hosts> {
        match &self.network {
            Network::Hosts { hosts, .. } => Some(hosts),
            Network::Loopback => None,
        }
    }

    /// The hosts, for a step that needs them (`what` names it in the error).
    fn hosts_for(&self, what: &str) -> Result<&Hosts, SupervisorError> {
        self.hosts().ok_or_else(|| SupervisorError::ChildFailed {
            what: what.into(),
            detail: "the trial runs on loopback, without hosts".into(),
        })
    }

    /// Hosts of the trial (1 without `--hosts`).
    pub fn host_count(&self) -> usize {
        self.hosts().map_or(1, |h| h.hosts().len())
    }

    /// The host slot `slot` runs on.
    pub fn host_of(&self, slot: u32) -> usize {
        slot as usize % self.host_count()
    }

    /// Starts the NATS cluster across the hosts, `size` members; returns
    /// the URLs the hub (host 0) is given.
    pub async fn start_nats(
        &mut self,
        binary: &Path,
        size: usize,
        workdir: &Path,
        logs: &Path,
        token: &Secret,
    ) -> Result<String, SupervisorError> {
        let Network::Hosts { hosts, cluster } = &mut self.network else {
            return Err(SupervisorError::ChildFailed {
                what: "the NATS cluster".into(),
                detail: "a cluster needs hosts (--hosts 2 or more)".into(),
            });
        };
        let started = Cluster::start(binary, hosts, size, workdir, logs, token).await?;
        let urls = started.urls_for(0);
        *cluster = Some(started);
        Ok(urls)
    }

    /// Makes the trial's buckets and tip stream on the cluster (scope from
    /// the hub's `project_code`) and waits until each has elected a leader,
    /// so that the leaves' first writes are answered. Nothing to do on one
    /// server.
    pub async fn prepare(
        &self,
        project_code: &str,
        token: Option<&Secret>,
    ) -> Result<(), SupervisorError> {
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        let fail = |e: crate::coord::CoordError| SupervisorError::ChildFailed {
            what: "the NATS cluster".into(),
            detail: crate::chain::chain(&e),
        };
        let scope = Scope::for_project(project_code).map_err(fail)?;
        let mut config = CoordConfig::new(cluster.urls_for(0), scope.as_str());
        config.token = token.cloned();
        // Making a replicated bucket on a fresh cluster forms its Raft
        // group first; on a loaded machine that outlasts a leaf's 5 s.
        config.op_timeout = PREPARE_OP_TIMEOUT;
        config.deployment = Deployment {
            domain: Some(DOMAIN.into()),
            replicas: cluster.size(),
        };
        let coord = Coord::connect(config, "herd").await.map_err(fail)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        coord.await_leaders(deadline).await.map_err(fail)
    }

    /// The NATS servers, when herd started a cluster.
    pub fn cluster(&self) -> Option<&Cluster> {
        match &self.network {
            Network::Hosts { cluster, .. } => cluster.as_ref(),
            Network::Loopback => None,
        }
    }

    /// The URLs a process on `host` is given, or `single` without hosts.
    pub fn nats_urls(&self, host: usize, single: &str) -> String {
        self.cluster()
            .map_or_else(|| single.to_string(), |c| c.urls_for(host))
    }

    /// Where the hub listens: host 0's address, or loopback.
    pub fn hub_listen(&self) -> String {
        format!("{}:0", self.addr(0))
    }

    /// Host `host`'s address (loopback without hosts).
    pub fn addr(&self, host: usize) -> Ipv4Addr {
        self.hosts()
            .map_or(Ipv4Addr::LOCALHOST, |h| h.hosts()[host].addr)
    }

    /// A command running `program args` on `host`: inside its namespace,
    /// or through the launcher template (slot `slot`) when one is given.
    pub fn command(
        &self,
        host: usize,
        slot: Option<u32>,
        program: &Path,
        args: &[OsString],
    ) -> Command {
        if let (Some(template), Some(slot)) = (&self.launcher, slot) {
            let netns = self
                .hosts()
                .map_or(String::new(), |h| h.hosts()[host].netns.clone());
            let line = expand(
                template,
                slot,
                &self.addr(host).to_string(),
                &netns,
                program,
                args,
            );
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(line);
            return cmd;
        }
        match self.hosts() {
            Some(hosts) => {
                let [ip, netns, exec, ns] = hosts.exec_prefix(host);
                let mut cmd = Command::new(ip);
                cmd.args([netns, exec, ns]).arg(program).args(args);
                cmd
            }
            None => {
                let mut cmd = Command::new(program);
                cmd.args(args);
                cmd
            }
        }
    }

    /// The NATS shape every child is told (domain and replicas), as
    /// environment variables; none on one server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match self.cluster() {
            Some(cluster) => vec![
                (env::NATS_DOMAIN, DOMAIN.to_string()),
                (env::NATS_REPLICAS, cluster.size().to_string()),
            ],
            None => Vec::new(),
        }
    }

    /// The words that start a program on `host` (`ip netns exec NS`); none
    /// without hosts.
    pub fn prefix(&self, host: usize) -> Vec<String> {
        self.hosts()
            .map_or_else(Vec::new, |h| h.exec_prefix(host).to_vec())
    }

    /// Takes host `host`'s link down.
    pub fn cut(&self, host: usize) -> Result<(), SupervisorError> {
        let hosts = self.hosts_for("cutting a host's link")?;
        hosts.cut(host).map_err(SupervisorError::Hosts)
    }

    /// Brings host `host`'s link back.
    pub fn restore(&self, host: usize) -> Result<(), SupervisorError> {
        let hosts = self.hosts_for("restoring a host's link")?;
        hosts.restore(host).map_err(SupervisorError::Hosts)
    }

    /// Adds `extra` to host `host`'s delay.
    pub fn slow(&self, host: usize, extra: Duration) -> Result<(), SupervisorError> {
        let hosts = self.hosts_for("slowing a host's link")?;
        hosts.slow(host, extra).map_err(SupervisorError::Hosts)
    }

    /// Gives host `host` its own delay back.
    pub fn unslow(&self, host: usize) -> Result<(), SupervisorError> {
        let hosts = self.hosts_for("speeding a host's link up")?;
        hosts.unslow(host).map_err(SupervisorError::Hosts)
    }

    /// Stops the NATS servers and removes the hosts.
    pub async fn stop(&mut self, grace: Duration) {
        if let Network::Hosts { hosts, cluster } = &mut self.network {
            if let Some(cluster) = cluster {
                cluster.stop(grace).await;
            }
            hosts.remove();
        }
    }
}

/// A word quoted for `sh`: in single quotes, each `'` as `'\''`.
fn shell_quote(word: &[u8]) -> String {
    let text = String::from_utf8_lossy(word);
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The launcher template with its placeholders filled in.
fn expand(
    template: &str,
    slot: u32,
    host: &str,
    netns: &str,
    program: &Path,
    args: &[OsString],
) -> String {
    let cmd: Vec<String> = std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|w| shell_quote(w.as_bytes()))
        .collect();
    template
        .replace("{slot}", &slot.to_string())
        .replace("{host}", host)
        .replace("{netns}", netns)
        .replace("{cmd}", &cmd.join(" "))
}

/// Whether a launcher template names the command it must run.
pub fn launcher_ok(template: &str) -> Result<(), String> {
    if template.contains("{cmd}") {
        Ok(())
    } else {
        Err(format!(
            "--leaf-launcher {template:?} has no {{cmd}}: herd puts the leaf-agent's command line there"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_gets_the_quoted_command_and_the_slot_s_place() {
        let line = expand(
            "ssh {host} -- {cmd} # slot {slot} in {netns}",
            7,
            "10.213.7.3",
            "herd1h1",
            Path::new("/opt/leaf-agent"),
            &["--comment".into(), "it's".into()],
        );
        assert_eq!(
            line,
            r"ssh 10.213.7.3 -- '/opt/leaf-agent' '--comment' 'it'\''s' # slot 7 in herd1h1"
        );
        assert!(launcher_ok("ip netns exec {netns} {cmd}").is_ok());
        assert!(launcher_ok("ssh box").unwrap_err().contains("{cmd}"));
    }
}

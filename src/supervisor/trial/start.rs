//! Starting a trial's NATS and its hub. Each process is handed to the
//! trial's [`TrialInfra`] the moment it runs, so the one `stop()` after
//! the trial stops it whatever fails next; nothing here stops anything.

use std::path::{Path, PathBuf};

use tokio::process::Child;

use super::hub::Hub;
use super::{Setting, TRIAL_USER};
use crate::coord::Secret;
use crate::supervisor::infra::{HubLaunch, HubWatch, InfraChildren, NatsWatch, TrialInfra};
use crate::supervisor::sampler::Sampler;
use crate::supervisor::{fossil_hub, git_hub, nats, SupervisorError, TrialConfig};
use crate::wire::{HubKind, HubReady, ProcessKind};

/// Starts the trial's NATS (unless `--nats-url` names one): a cluster
/// across the hosts, or one nats-server on loopback. Returns the URLs the
/// hub is given and the token the servers require.
pub(super) async fn start_nats(
    config: &TrialConfig,
    workdir: &Path,
    logs: &Path,
    sampler: &Sampler,
    infra: &mut TrialInfra,
) -> Result<(String, Option<Secret>), SupervisorError> {
    if let Some(url) = &config.nats_url {
        return Ok((url.clone(), None));
    }
    let binary = nats::find(config.nats_server.as_deref())?;
    let token = Secret::random();
    // On several hosts NATS is a cluster of its own (not restarted by the
    // watcher: losing a member is what a cluster is for).
    if infra.topology.has_hosts() {
        let size = config.cluster_size() as usize;
        let urls = infra
            .topology
            .start_nats(&binary, size, workdir, logs, &token)
            .await?;
        for node in infra.topology.cluster().map_or(&[][..], |c| c.nodes()) {
            if let Some(pid) = node.pid() {
                sampler.watch(ProcessKind::Nats, pid);
            }
        }
        return Ok((urls, Some(token)));
    }
    let (store, log) = (workdir.join("nats"), logs.join("nats.log"));
    let started = nats::start(&binary, &store, &log, &token).await?;
    if let Some(pid) = started.child.id() {
        sampler.watch(ProcessKind::Nats, pid);
    }
    let url = started.url.clone();
    infra.children.adopt_nats(NatsWatch {
        child: started.child,
        binary,
        store,
        log,
        token: token.clone(),
        port: started.port,
    });
    Ok((url, Some(token)))
}

/// Starts the trial's hub of its kind, handing the process to `infra`,
/// and waits until it is ready (on a cluster, until the trial's buckets
/// and tip stream have leaders).
pub(super) async fn start_hub(
    t: &Setting<'_>,
    infra: &mut InfraChildren,
) -> Result<Hub, SupervisorError> {
    let (config, workdir, logs) = (t.config, t.workdir, t.logs);
    match config.spec.hub_kind {
        HubKind::Herd => {
            let launch = HubLaunch::new(config, workdir, logs, t.nats_url, t.hub_place());
            let (child, ready) = launch.start(&t.topology.hub_listen()).await?;
            let pid = child.id();
            // A hub started again listens where the leaves already point.
            let listen = ready.http.trim_start_matches("http://").to_string();
            infra.adopt_hub(HubWatch {
                child,
                listen,
                launch,
            });
            t.topology
                .prepare(&ready.project_code, t.secrets.nats_token.as_ref())
                .await?;
            watch_hub(t, pid);
            t.sampler.hub(&ready.http);
            Ok(Hub::Herd(ready))
        }
        HubKind::Fossil => {
            let (child, hub) =
                fossil_hub::start(workdir, logs, TRIAL_USER, &t.secrets.hub_secret).await?;
            watch_hub(t, child.id());
            infra.adopt_unwatched_hub(child);
            Ok(Hub::Fossil(hub))
        }
        HubKind::Git => {
            let (child, ready, bare, listen) = start_git(t).await?;
            watch_hub(t, child.id());
            let launch = HubLaunch::Git {
                bare: bare.clone(),
                logs: logs.to_path_buf(),
            };
            infra.adopt_hub(HubWatch {
                child,
                listen,
                launch,
            });
            Ok(Hub::Git(ready, bare))
        }
    }
}

/// Counts the hub's CPU and memory with the trial's.
fn watch_hub(t: &Setting<'_>, pid: Option<u32>) {
    if let Some(pid) = pid {
        t.sampler.watch(ProcessKind::Hub, pid);
    }
}

/// Makes the trial's bare repository (with the hot files, when tasks edit
/// them) and serves it with `git daemon` on a free loopback port.
async fn start_git(t: &Setting<'_>) -> Result<(Child, HubReady, PathBuf, String), SupervisorError> {
    let workload = t.config.workload();
    let hot = &workload.hot;
    let seed = if hot.enabled() {
        crate::workload::seed_files(hot.files)
    } else {
        Vec::new()
    };
    let bare = git_hub::create(t.workdir, &seed).await?;
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| SupervisorError::io("find a free loopback port", e))?;
    let (child, ready) = git_hub::serve(&bare, t.logs, port).await?;
    Ok((child, ready, bare, format!("127.0.0.1:{port}")))
}

//! herd's hub as a child: starting it on its place (the hub creates the
//! trial's user from the credentials in its environment) and reading its
//! readiness line.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use super::STOP_GRACE;
use crate::supervisor::child::{log_file, Place};
use crate::supervisor::{process, SupervisorError, TrialConfig};
use crate::wire::HubReady;

/// How long the hub gets to print its readiness line.
const HUB_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts herd's hub listening on `listen` and waits for its readiness line.
pub(in crate::supervisor) async fn start_hub(
    config: &TrialConfig,
    workdir: &Path,
    logs: &Path,
    nats_url: &str,
    listen: &str,
    place: &Place,
) -> Result<(Child, HubReady), SupervisorError> {
    let binary = config.bin_dir.join("hub");
    let mut cmd = place.command(&binary);
    cmd.arg("--repo")
        .arg(workdir.join("hub.fossil"))
        .args(["--listen", listen, "--nats-url", nats_url])
        .arg("--require-login")
        .args(config.broadcast_files().then_some("--broadcast-files"))
        .stdout(Stdio::piped())
        .stderr(log_file(&logs.join("hub.log"))?);
    process::supervise(&mut cmd);
    // Entered only around the spawn: a guard held across an await would
    // tie this future to its thread.
    let span = tracing::info_span!("herd.start_process", process = "hub");
    let mut child = span
        .in_scope(|| cmd.spawn())
        .map_err(|e| SupervisorError::Spawn {
            what: format!("hub ({})", binary.display()),
            source: e,
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(HUB_READY_TIMEOUT, lines.next_line()).await;
    let log = logs.join("hub.log");
    let fail = |detail: String| SupervisorError::ChildFailed {
        what: "hub".into(),
        detail: match super::last_line(&log) {
            Some(last) => format!("{detail} ({last}); see {}", log.display()),
            None => format!("{detail}; see {}", log.display()),
        },
    };
    let ready = match first {
        Ok(Ok(Some(line))) => serde_json::from_str::<HubReady>(&line)
            .map_err(|e| fail(format!("readiness line {line:?} is not valid: {e}")))?,
        Ok(Ok(None)) => {
            let status = child.wait().await.ok();
            return Err(fail(format!(
                "exited ({}) before it was ready",
                super::how(&status.ok_or_else(|| std::io::Error::other("unknown status")))
            )));
        }
        Ok(Err(e)) => return Err(fail(format!("reading its stdout: {e}"))),
        Err(_) => {
            let _ = process::stop(&mut child, STOP_GRACE).await;
            return Err(fail(format!(
                "not ready after {} s",
                HUB_READY_TIMEOUT.as_secs()
            )));
        }
    };
    // Drain the rest of the hub's stdout so it can never block on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, ready))
}

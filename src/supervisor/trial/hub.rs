//! herd's hub as a child: starting it (and reading its readiness line),
//! and asking it for its own count at the end.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use super::{log_file, pass_trace, Place, TrialSecrets, STOP_GRACE};
use crate::supervisor::summary::HubCount;
use crate::supervisor::{process, SupervisorError, TrialConfig};
use crate::wire::HubReady;

/// How long the hub gets to print its readiness line.
const HUB_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long herd waits for the hub's count to catch up with the leaves'.
const HUB_COUNT_TIMEOUT: Duration = Duration::from_secs(10);
/// The same after a trial stopped on a full disk: it must end within
/// seconds, and a hub that cannot answer then is reported as such.
const HURRIED_COUNT: Duration = Duration::from_secs(2);

pub(in crate::supervisor) async fn start_hub(
    config: &TrialConfig,
    workdir: &Path,
    logs: &Path,
    nats_url: &str,
    secrets: &TrialSecrets,
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
    // The hub creates TRIAL_USER from these.
    secrets.pass(&mut cmd);
    pass_trace(&mut cmd, &config.trace);
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
        detail: match crate::supervisor::infra::last_line(&log) {
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
                crate::supervisor::infra::how(
                    &status.ok_or_else(|| std::io::Error::other("unknown status"))
                )
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

/// Asks the hub for its counts until its trunk holds `committed` check-ins,
/// or more and the count stays put for [`STEADY`] (a stopped trial: landings
/// whose answers the stop cut off), or the bound runs out (then the last
/// answer stands).
pub(super) async fn hub_count_settled(
    http: &str,
    committed: u64,
    hurry: bool,
) -> Result<HubCount, String> {
    let bound = if hurry {
        HURRIED_COUNT
    } else {
        HUB_COUNT_TIMEOUT
    };
    let deadline = Instant::now() + bound;
    let mut steady: Option<(u64, Instant)> = None;
    loop {
        let url = format!("{http}/stats");
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(200), Duration::from_secs(5));
        let count = tokio::task::spawn_blocking(move || fetch_stats(&url, wait))
            .await
            .map_err(|e| e.to_string())?;
        let now = Instant::now();
        match count {
            Ok(c) if c.trunk_commits == committed || now > deadline => return Ok(c),
            Ok(c) if c.trunk_commits > committed => match steady {
                Some((n, since)) if n == c.trunk_commits && now >= since + STEADY => return Ok(c),
                Some((n, _)) if n == c.trunk_commits => {}
                _ => steady = Some((c.trunk_commits, now)),
            },
            Err(e) if now > deadline => return Err(e),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long a count above the acknowledged one must stay put to be final.
const STEADY: Duration = Duration::from_millis(500);

fn fetch_stats(url: &str, wait: Duration) -> Result<HubCount, String> {
    let response = ureq::get(url)
        .timeout(wait)
        .call()
        .map_err(|e| e.to_string())?;
    let body = response.into_string().map_err(|e| e.to_string())?;
    let stats: crate::wire::HubStats = serde_json::from_str(&body)
        .map_err(|e| format!("/stats is not the hub's document: {e}"))?;
    Ok(HubCount {
        trunk_commits: stats.trunk_commits,
        trunk_leaves: stats.trunk_leaves,
        requests: Some(stats.requests),
        peak_rss_kb: Some(stats.peak_rss_kb),
        hub_rebases: Some(stats.hub_rebases),
        hub_merges: Some(stats.hub_merges),
        conflicts: Some(stats.conflicts),
        bytes_out: Some(stats.bytes_out),
    })
}

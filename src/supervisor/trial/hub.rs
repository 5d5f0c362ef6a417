//! The trial's hub as the slots and the final count see it, and asking
//! herd's hub for its own count at the end of a trial (starting it is
//! the infrastructure's: `infra/hub.rs`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::supervisor::fossil_hub::FossilHub;
use crate::supervisor::summary::HubCount;
use crate::wire::HubReady;

/// The trial's hub: where the leaves find it, and how it is counted.
pub(super) enum Hub {
    /// herd's hub, counted through `/stats`.
    Herd(HubReady),
    /// A stock `fossil server`, counted with `fossil sql`.
    Fossil(FossilHub),
    /// `git daemon` over the bare repository (its path), counted with
    /// `git rev-list`.
    Git(HubReady, PathBuf),
}

impl Hub {
    pub(super) fn ready(&self) -> &HubReady {
        match self {
            Hub::Herd(ready) | Hub::Git(ready, _) => ready,
            Hub::Fossil(hub) => &hub.ready,
        }
    }

    /// The hub's own count once the leaves have `committed` check-ins.
    /// `hurry`: the trial stopped on a full disk; herd's hub gets a short
    /// bound to answer.
    pub(super) async fn count(&self, committed: u64, hurry: bool) -> Result<HubCount, String> {
        match self {
            Hub::Herd(ready) => hub_count_settled(&ready.http, committed, hurry)
                .await
                .map_err(|e| format!("hub /stats: {e}")),
            // Every push was answered after fossil committed it, and every
            // leaf has exited: the repository is final.
            Hub::Fossil(hub) => hub
                .count()
                .await
                .map_err(|e| format!("fossil hub count: {e}")),
            // Likewise: every push was answered after git updated `main`.
            Hub::Git(_, bare) => {
                crate::supervisor::git_hub::count(bare, &bare.with_file_name("logs"))
                    .await
                    .map_err(|e| format!("git hub count: {e}"))
            }
        }
    }
}

/// How long herd waits for the hub's count to catch up with the leaves'.
const HUB_COUNT_TIMEOUT: Duration = Duration::from_secs(10);
/// The same after a trial stopped on a full disk: it must end within
/// seconds, and a hub that cannot answer then is reported as such.
const HURRIED_COUNT: Duration = Duration::from_secs(2);

/// Asks the hub for its counts until its trunk holds `committed` check-ins,
/// or more and the count stays put for [`STEADY`] (a stopped trial: landings
/// whose answers the stop cut off), or the bound runs out (then the last
/// answer stands).
async fn hub_count_settled(http: &str, committed: u64, hurry: bool) -> Result<HubCount, String> {
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

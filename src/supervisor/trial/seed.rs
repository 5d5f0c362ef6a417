//! The hot files, put on the hub's trunk before any leaf starts: herd
//! clones the hub like any client, checks in `hot/file-<k>.txt` on the tip
//! and pushes it. Done over the sync protocol, so a hub of either kind is
//! seeded the same way, and the leaves clone a trunk that holds them.

use std::path::PathBuf;

use super::{Setting, TRIAL_USER};
use crate::repo::{CheckinSpec, FileChange};
use crate::supervisor::SupervisorError;
use crate::wire::HubReady;
use crate::workload::seed_files;
use crate::xfer::{Client, PushOutcome};

/// Seeds the hot files on the hub `hub`; the clone used to do it is
/// removed afterwards.
pub(super) async fn seed_hot_files(t: &Setting<'_>, hub: &HubReady) -> Result<(), SupervisorError> {
    let client = Client::new(&hub.http).with_login(TRIAL_USER, t.secrets.hub_secret.expose());
    let files = seed_files(t.config.workload().hot.files);
    let path = t.workdir.join("seed.fossil");
    let fail = |reason: String| SupervisorError::ChildFailed {
        what: "seeding the hot files".into(),
        detail: format!("{reason} (hub {})", hub.http),
    };
    let pushed = tokio::task::spawn_blocking(move || push_seed(&client, path, files))
        .await
        .map_err(|e| fail(e.to_string()))?;
    pushed.map_err(fail)
}

/// Clones the hub into `path`, checks `files` in on the tip and pushes;
/// `Err` says what went wrong.
fn push_seed(client: &Client, path: PathBuf, files: Vec<(String, Vec<u8>)>) -> Result<(), String> {
    let chain = |e: &dyn std::error::Error| crate::chain::chain(e);
    let repo = client.clone_into(&path).map_err(|e| chain(&e))?;
    let tip = repo
        .trunk_tip()
        .map_err(|e| chain(&e))?
        .ok_or("the hub's trunk is empty")?;
    let spec = CheckinSpec {
        parent: tip,
        changes: files
            .into_iter()
            .map(|(path, content)| FileChange {
                path,
                content: Some(content),
            })
            .collect(),
        comment: "herd: the hot files".into(),
        user: TRIAL_USER.into(),
        time: std::time::SystemTime::now(),
    };
    let checkin = repo.commit(&spec).map_err(|e| chain(&e))?.hash;
    let outcome = client.push(&repo, &[checkin]).map_err(|e| chain(&e))?;
    drop(repo);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    match outcome {
        PushOutcome::Accepted { .. } => Ok(()),
        other => Err(format!("the hub did not take the seed check-in: {other:?}")),
    }
}

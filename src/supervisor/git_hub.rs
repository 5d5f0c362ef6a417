//! A stock git server as a trial's hub (`--hub-kind git`): a bare
//! repository in the work directory (`hub.git`, branch `main`, one initial
//! commit, `receive.denyNonFastForwards` on), served by `git daemon` on a
//! loopback port with pushes enabled, and counted after the trial with `git
//! rev-list`.
//!
//! Why `git daemon` rather than smart HTTP (`git http-backend`): it is
//! git's own server for its native protocol, one process that forks
//! `upload-pack` or `receive-pack` per connection, with nothing of ours in
//! the path; smart HTTP would put herd's HTTP front end (or a CGI host) in
//! the measurement. Both run the same pack negotiation and ref update.
//!
//! With `--overlap` the initial history also holds the hot files, in a
//! second commit of their own (herd's seed check-in for the other kinds).
//!
//! Every `git` here runs without the user's configuration, so a trial is
//! the same on every machine.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::summary::HubCount;
use super::{process, SupervisorError};
use crate::wire::HubReady;

/// The branch the leaves push to.
pub(super) const BRANCH: &str = "main";
/// How long `git daemon` gets to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Makes `workdir/hub.git` (unless it exists): a bare repository whose
/// `main` holds an initial empty commit, then `seed` (path, content) in a
/// commit of its own when there is any. Returns its path.
pub(super) async fn create(
    workdir: &Path,
    seed: &[(String, Vec<u8>)],
) -> Result<PathBuf, SupervisorError> {
    let bare = workdir.join("hub.git");
    if bare.exists() {
        return Ok(bare);
    }
    let staging = workdir.join("hub-staging");
    let _ = std::fs::remove_dir_all(&staging);
    let dir = staging.display().to_string();
    run(None, &["init", "-q", "-b", BRANCH, &dir]).await?;
    let commit = |message: &'static str| {
        let dir = dir.clone();
        async move {
            run(
                Some(&dir),
                &[
                    "-c",
                    "user.name=herd",
                    "-c",
                    "user.email=herd@herd.invalid",
                    "commit",
                    "-q",
                    "--allow-empty",
                    "-m",
                    message,
                ],
            )
            .await
        }
    };
    commit("initial").await?;
    if !seed.is_empty() {
        for (path, content) in seed {
            let file = staging.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| SupervisorError::io(format!("create {}", parent.display()), e))?;
            }
            std::fs::write(&file, content)
                .map_err(|e| SupervisorError::io(format!("write {}", file.display()), e))?;
        }
        run(Some(&dir), &["add", "-A"]).await?;
        commit("herd: the hot files").await?;
    }
    let target = bare.display().to_string();
    run(None, &["clone", "-q", "--bare", &dir, &target]).await?;
    run(
        Some(&target),
        &["config", "receive.denyNonFastForwards", "true"],
    )
    .await?;
    let _ = std::fs::remove_dir_all(&staging);
    Ok(bare)
}

/// Serves `bare` with `git daemon` on loopback `port`; answers once the
/// server lists the repository's refs. The URL the leaves clone is in the
/// readiness (`http` names it, whatever its scheme); the project code is
/// the root commit, which every clone holds.
pub(super) async fn serve(
    bare: &Path,
    logs: &Path,
    port: u16,
) -> Result<(Child, HubReady), SupervisorError> {
    let base = bare.parent().unwrap_or(Path::new("/"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join("hub.log"))
        .map_err(|e| SupervisorError::io("create hub.log", e))?;
    // `git daemon` runs the server as a child of its own; started
    // directly, the server is herd's child, so its CPU (with every
    // `upload-pack` and `receive-pack` it reaped) is read as the hub's.
    let exec_path = run(None, &["--exec-path"]).await?;
    let mut cmd = Command::new(Path::new(exec_path.trim()).join("git-daemon"));
    cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .kill_on_drop(true)
        .args([
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            "--informative-errors",
        ])
        // One "Connection from" line per request: the requests per commit.
        .args(["--verbose", "--log-destination=stderr"])
        .arg(format!("--base-path={}", base.display()))
        .args(["--listen=127.0.0.1", &format!("--port={port}")])
        .arg(base)
        .stdout(Stdio::null())
        .stderr(log);
    process::supervise(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| SupervisorError::Spawn {
        what: "git daemon (is git on PATH?)".into(),
        source: e,
    })?;
    let name = bare
        .file_name()
        .map_or("hub.git".into(), |n| n.to_string_lossy().into_owned());
    let url = format!("git://127.0.0.1:{port}/{name}");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let listed = git(None).args(["ls-remote", &url, BRANCH]).output().await;
        if listed
            .as_ref()
            .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
        {
            break;
        }
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = process::stop(&mut child, Duration::from_secs(1)).await;
            return Err(failed(format!(
                "git daemon on port {port} does not list {url}; see {}",
                logs.join("hub.log").display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let root = run(
        Some(&bare.display().to_string()),
        &["rev-list", "--max-parents=0", BRANCH],
    )
    .await?;
    let ready = HubReady {
        http: url,
        project_code: root.lines().last().unwrap_or_default().trim().to_string(),
        tip: String::new(),
    };
    Ok((child, ready))
}

/// The server's own count: commits on `main` after the initial one, its
/// leaves (1 plus the merge commits: 1 while history is linear), and the
/// connections its log (`logs`/hub.log) records.
pub(super) async fn count(bare: &Path, logs: &Path) -> Result<HubCount, String> {
    let dir = bare.display().to_string();
    let number = |args: &'static [&'static str]| {
        let dir = dir.clone();
        async move {
            let text = run(Some(&dir), args)
                .await
                .map_err(|e| crate::chain::chain(&e))?;
            text.trim()
                .parse::<u64>()
                .map_err(|_| format!("git rev-list answered {text:?}, not a count"))
        }
    };
    let commits = number(&["rev-list", "--count", BRANCH]).await?;
    let merges = number(&["rev-list", "--count", "--merges", BRANCH]).await?;
    let requests = std::fs::read_to_string(logs.join("hub.log"))
        .ok()
        .map(|log| log.matches("Connection from").count() as u64);
    Ok(HubCount {
        trunk_commits: commits.saturating_sub(1),
        trunk_leaves: 1 + merges,
        requests,
        ..HubCount::default()
    })
}

/// The content of `path` at `main` in `bare`; `None` when it has none.
pub fn file_at_main(bare: &Path, path: &str) -> Result<Option<Vec<u8>>, String> {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(["show", &format!("{BRANCH}:{path}")])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    Ok(out.status.success().then_some(out.stdout))
}

/// A `git` command without the user's configuration, in `dir` if given.
fn git(dir: Option<&str>) -> Command {
    let mut cmd = Command::new("git");
    if let Some(dir) = dir {
        cmd.args(["-C", dir]);
    }
    cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs a short `git` command to its end; its stdout, or an error with
/// its stderr.
async fn run(dir: Option<&str>, args: &[&str]) -> Result<String, SupervisorError> {
    let out = tokio::time::timeout(READY_TIMEOUT, git(dir).args(args).output())
        .await
        .map_err(|_| failed(format!("git {} did not finish", args.join(" "))))?
        .map_err(|e| SupervisorError::Spawn {
            what: "git (is git on PATH?)".into(),
            source: e,
        })?;
    if !out.status.success() {
        return Err(failed(format!(
            "git {} exited with {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn failed(detail: String) -> SupervisorError {
    SupervisorError::ChildFailed {
        what: "git hub".into(),
        detail,
    }
}

//! A stock `fossil server` as a trial's hub (`--hub-kind fossil`): make the
//! repository with `fossil new`, add the trial's leaf login, serve it on a
//! free loopback port, and after the trial count its check-ins and trunk
//! leaves with `fossil sql`.
//!
//! The leaf login is written as Fossil stores a password, the 40-hex shared
//! secret SHA1(project-code/login/password), through `fossil sql` on stdin:
//! the password never appears in any argv (`/proc/PID/cmdline` is readable
//! by every local user). Its capabilities are `g` (clone), `o` (read: pull)
//! and `i` (check in: push). Every `fossil` command runs with
//! `FOSSIL_HOME` inside the trial directory, so a trial never touches the
//! user's own `~/.fossil`.
//!
//! `fossil server` forks a process per connection; it runs in its own
//! process group (see `process.rs`), so stopping it stops them all.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::summary::HubCount;
use super::{process, SupervisorError};
use crate::coord::Secret;
use crate::wire::HubReady;
use crate::xfer::login::shared_secret;

/// The admin login `fossil new` creates (its password is never used).
const ADMIN_USER: &str = "admin";
/// What the leaf login may do: clone, read (pull), check in (push).
const LEAF_CAPS: &str = "gio";
/// How long `fossil server` gets to listen and answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Ports tried when another process takes the free one first.
const PORT_ATTEMPTS: u32 = 3;

/// A served repository (its `fossil server` is the trial
/// infrastructure's to stop).
pub(super) struct FossilHub {
    /// The served repository.
    repo: PathBuf,
    /// `FOSSIL_HOME` for every fossil command of the trial.
    home: PathBuf,
    /// What the leaves are told: URL and project code (no tip: nobody asks
    /// a stock server for one).
    pub(super) ready: HubReady,
}

/// Makes `workdir/hub.fossil` (unless it exists), gives `user` the
/// password `secret`, and serves it; answers once the server answers HTTP,
/// with the server and what counting its check-ins takes.
pub(super) async fn start(
    workdir: &Path,
    logs: &Path,
    user: &str,
    secret: &Secret,
) -> Result<(Child, FossilHub), SupervisorError> {
    let repo = workdir.join("hub.fossil");
    let home = workdir.join("fossil-home");
    std::fs::create_dir_all(&home)
        .map_err(|e| SupervisorError::io(format!("create {}", home.display()), e))?;
    if !repo.exists() {
        let mut new = fossil(&home);
        new.arg("new").args(["--admin-user", ADMIN_USER]).arg(&repo);
        run(new, None, "fossil new").await?;
    }
    let project_code = sql(
        &home,
        &repo,
        "SELECT value FROM config WHERE name='project-code';",
    )
    .await?
    .trim()
    .trim_matches('\'')
    .to_string();
    if project_code.len() != 40 || !project_code.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(failed(format!(
            "{} has no valid project code ({project_code:?})",
            repo.display()
        )));
    }
    let pw = shared_secret(&project_code, user, secret.expose());
    // Login and secret are ours: a login name herd chose, 40 hex digits.
    sql(
        &home,
        &repo,
        &format!(
            "INSERT OR REPLACE INTO user(login, pw, cap, info, mtime) \
             VALUES('{user}', '{pw}', '{LEAF_CAPS}', 'herd trial leaves', strftime('%s','now'));"
        ),
    )
    .await?;

    let mut last = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let port = free_port()?;
        match serve(&home, &repo, logs, port).await {
            Ok(child) => {
                let hub = FossilHub {
                    repo,
                    home,
                    ready: HubReady {
                        http: format!("http://127.0.0.1:{port}/"),
                        project_code,
                        tip: String::new(),
                    },
                };
                return Ok((child, hub));
            }
            Err(why) => last = why,
        }
    }
    Err(failed(format!(
        "{last}; see {}",
        logs.join("hub.log").display()
    )))
}

impl FossilHub {
    /// The server's own count: check-ins with a parent (the initial empty
    /// check-in excluded) and leaves of trunk.
    pub(super) async fn count(&self) -> Result<HubCount, String> {
        let text = sql(
            &self.home,
            &self.repo,
            "SELECT count(*) FROM event WHERE type='ci' AND objid IN (SELECT cid FROM plink);\n\
             SELECT count(*) FROM leaf JOIN tagxref ON tagxref.rid=leaf.rid \
             JOIN tag ON tag.tagid=tagxref.tagid AND tag.tagname='branch' \
             WHERE tagxref.value='trunk';\n",
        )
        .await
        .map_err(|e| crate::chain::chain(&e))?;
        let numbers: Vec<u64> = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| format!("fossil sql answered {text:?}, not two counts"))?;
        match numbers[..] {
            [commits, leaves] => Ok(HubCount {
                trunk_commits: commits,
                trunk_leaves: leaves,
                requests: None,
                peak_rss_kb: None,
                ..HubCount::default()
            }),
            _ => Err(format!("fossil sql answered {text:?}, not two counts")),
        }
    }
}

/// Starts `fossil server` on `port`; `Err` says why it did not answer.
async fn serve(home: &Path, repo: &Path, logs: &Path, port: u16) -> Result<Child, String> {
    let log = std::fs::File::create(logs.join("hub.log"))
        .map_err(|e| format!("cannot create hub.log: {e}"))?;
    let mut cmd = fossil(home);
    cmd.arg("server")
        .args(["--port", &port.to_string(), "--localhost"])
        .arg(repo)
        .stdout(Stdio::piped())
        .stderr(log);
    process::supervise(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start fossil server: {e} (is fossil on PATH?)"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + READY_TIMEOUT;
    // "Listening for HTTP requests on TCP port P" once it has bound.
    let listening = tokio::time::timeout(READY_TIMEOUT, lines.next_line()).await;
    let why = match listening {
        Ok(Ok(Some(line))) if line.contains(&format!("port {port}")) => None,
        Ok(Ok(Some(line))) => Some(format!("fossil server said {line:?}")),
        Ok(Ok(None)) => Some(format!(
            "fossil server exited ({}) before it listened on port {port}",
            child
                .wait()
                .await
                .map_or("unknown status".into(), |s| s.to_string())
        )),
        Ok(Err(e)) => Some(format!("cannot read fossil server's stdout: {e}")),
        Err(_) => Some(format!(
            "fossil server did not listen within {} s",
            READY_TIMEOUT.as_secs()
        )),
    };
    if let Some(why) = why {
        let _ = process::stop(&mut child, Duration::from_secs(1)).await;
        return Err(why);
    }
    // Keep draining its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let url = format!("http://127.0.0.1:{port}/");
    loop {
        let probe = url.clone();
        let answered = tokio::task::spawn_blocking(move || answers_http(&probe))
            .await
            .unwrap_or(false);
        if answered {
            return Ok(child);
        }
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = process::stop(&mut child, Duration::from_secs(1)).await;
            return Err(format!("fossil server on port {port} does not answer HTTP"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether an HTTP GET of `url` gets any HTTP answer (a redirect counts).
fn answers_http(url: &str) -> bool {
    let agent = ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(2))
        .build();
    match agent.get(url).call() {
        Ok(_) | Err(ureq::Error::Status(..)) => true,
        Err(ureq::Error::Transport(_)) => false,
    }
}

/// A loopback port free right now.
fn free_port() -> Result<u16, SupervisorError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| SupervisorError::io("find a free loopback port", e))
}

/// A `fossil` command with the trial's `FOSSIL_HOME` and no terminal.
fn fossil(home: &Path) -> Command {
    let mut cmd = Command::new("fossil");
    cmd.env("FOSSIL_HOME", home)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `sql` through `fossil sql -R repo` (on stdin); its stdout.
async fn sql(home: &Path, repo: &Path, sql: &str) -> Result<String, SupervisorError> {
    let mut cmd = fossil(home);
    cmd.arg("sql").arg("-R").arg(repo);
    run(cmd, Some(sql), "fossil sql").await
}

/// Runs a short `fossil` command to its end; its stdout, or an error with
/// its stderr.
async fn run(mut cmd: Command, stdin: Option<&str>, what: &str) -> Result<String, SupervisorError> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|e| SupervisorError::Spawn {
        what: format!("{what} (is fossil on PATH?)"),
        source: e,
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .await
            .map_err(|e| SupervisorError::io(format!("write to {what}"), e))?;
        // Closing stdin ends fossil's SQL shell.
        drop(pipe);
    }
    let out = tokio::time::timeout(READY_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            failed(format!(
                "{what} did not finish in {} s",
                READY_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| SupervisorError::io(format!("wait for {what}"), e))?;
    if !out.status.success() {
        return Err(failed(format!(
            "{what} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn failed(detail: String) -> SupervisorError {
    SupervisorError::ChildFailed {
        what: "fossil hub".into(),
        detail,
    }
}

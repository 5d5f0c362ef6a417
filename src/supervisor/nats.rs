//! Finding and starting the nats-server a trial uses: loopback only, on a
//! free port, and requiring the trial's token. The token goes in a config
//! file only herd's user can read (mode 0600), not in argv, where every
//! local user could read it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::process;
use super::SupervisorError;
use crate::coord::Secret;

/// Finds nats-server: the explicit path, then `$NATS_SERVER`, then `PATH`,
/// then the project's `.tools/bin` (where scripts/install-deps puts it).
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, SupervisorError> {
    if let Some(p) = explicit {
        return if is_executable(p) {
            Ok(p.to_path_buf())
        } else {
            Err(SupervisorError::NatsNotFound {
                looked: p.display().to_string(),
            })
        };
    }
    let mut looked = Vec::new();
    if let Some(p) = std::env::var_os(crate::env::NATS_SERVER).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if is_executable(&p) {
            return Ok(p);
        }
        looked.push(format!("${}={}", crate::env::NATS_SERVER, p.display()));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("nats-server");
            if is_executable(&p) {
                return Ok(p);
            }
        }
        looked.push("PATH".into());
    }
    for base in tools_dirs() {
        let p = base.join(".tools/bin/nats-server");
        if is_executable(&p) {
            return Ok(p);
        }
        looked.push(p.display().to_string());
    }
    Err(SupervisorError::NatsNotFound {
        looked: looked.join(", "),
    })
}

/// Directories that may hold the project's `.tools/`: the current directory
/// and the ancestors of the running executable (target/release/herd sits
/// two levels under the project).
fn tools_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        dirs.extend(exe.ancestors().skip(1).take(4).map(Path::to_path_buf));
    }
    dirs
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A nats-server child of herd.
pub struct NatsChild {
    /// The running server.
    pub child: Child,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    /// Its port.
    pub port: u16,
}

/// Starts nats-server with JetStream on a free loopback port, its store
/// under `store`, its log in `log`, clients required to present `token`
/// (written to `store`'s sibling `nats.conf`), and waits until it accepts
/// connections.
pub async fn start(
    binary: &Path,
    store: &Path,
    log: &Path,
    token: &Secret,
) -> Result<NatsChild, SupervisorError> {
    let port = free_port().map_err(|e| SupervisorError::io("pick a port for nats-server", e))?;
    start_on(binary, store, log, token, port).await
}

/// [`start`] on a given port: how herd starts a nats-server that died
/// again, on the port its clients know, over the same store. The log is
/// appended to.
pub async fn start_on(
    binary: &Path,
    store: &Path,
    log: &Path,
    token: &Secret,
    port: u16,
) -> Result<NatsChild, SupervisorError> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| SupervisorError::io("create nats-server log", e))?;
    let conf = store.with_extension("conf");
    write_private(&conf, &auth_config(token))
        .map_err(|e| SupervisorError::io(format!("write {}", conf.display()), e))?;
    let mut cmd = Command::new(binary);
    cmd.arg("-c")
        .arg(&conf)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file));
    process::supervise(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| SupervisorError::Spawn {
        what: format!("nats-server ({})", binary.display()),
        source: e,
    })?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // Exited first: on a port another process holds, a connect would
        // reach that process, not this server.
        if let Ok(Some(status)) = child.try_wait() {
            return Err(SupervisorError::ChildFailed {
                what: "nats-server".into(),
                detail: format!(
                    "exited with {status} before accepting connections; see {}",
                    log.display()
                ),
            });
        }
        if greets_as_nats(&addr) {
            break;
        }
        if Instant::now() > deadline {
            let _ = process::stop(&mut child, Duration::from_secs(1)).await;
            return Err(SupervisorError::ChildFailed {
                what: "nats-server".into(),
                detail: format!("not accepting connections on {addr} after 15 s"),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(NatsChild {
        child,
        url: format!("nats://{addr}"),
        port,
    })
}

/// Whether a NATS server answers on `addr`: it greets every connection
/// with an `INFO` line at once, which a process squatting on the port does
/// not.
fn greets_as_nats(addr: &SocketAddr) -> bool {
    use std::io::Read as _;
    let Ok(mut stream) = TcpStream::connect_timeout(addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut greeting = [0u8; 5];
    stream.read_exact(&mut greeting).is_ok() && &greeting == b"INFO "
}

/// The config file's text: only the token (address, port and store are
/// flags, which override the file anyway).
fn auth_config(token: &Secret) -> String {
    // Secret::random is hex, so the quoted string needs no escaping.
    format!("authorization {{\n  token: \"{}\"\n}}\n", token.expose())
}

/// Writes `text` to a new file readable by its owner only.
pub(super) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

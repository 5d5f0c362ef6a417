//! Guards for external processes and shared test utilities.
//!
//! [`NatsServer`] runs a real `nats-server -js` on a free loopback port with
//! its store in a temporary directory, waits until JetStream answers, and
//! kills and reaps the process on `Drop`. Tests never skip when the binary
//! is missing: they fail with a message saying where it was looked for.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a nats-server may take to come up with JetStream.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a nats-server may take to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How many recent log lines to keep for failure messages.
const LOG_TAIL: usize = 40;

/// Think times and file sizes of a small, quick trial: 0–5 ms, ≤ 300 bytes.
pub const QUICK_TASKS: [&str; 6] = [
    "--min-think-ms",
    "0",
    "--max-think-ms",
    "5",
    "--max-bytes",
    "300",
];

/// The `herd` binary of this build as a test runs it: our nats-server, no
/// stdin, and none of the `HERD_*` variables of the shell that started the
/// tests (each flag reads one, and the environment contract uses the same
/// prefix), so only the test's own flags and variables count.
pub fn herd_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herd"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HERD_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("NATS_SERVER", nats_server_binary())
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` (a herd run, say) to its end and asserts it succeeded, the
/// failure message carrying its status, stdout and stderr; `what` names the
/// run in that message.
pub fn run_ok(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Finds the nats-server binary: `$NATS_SERVER`, else `nats-server` on
/// `PATH`, else the project's `.tools/bin/nats-server`. Panics, listing the
/// places tried, when none exists.
pub fn nats_server_binary() -> PathBuf {
    let mut tried = Vec::new();
    if let Some(path) = std::env::var_os("NATS_SERVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return path;
        }
        tried.push(format!("$NATS_SERVER={}", path.display()));
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("nats-server");
            if candidate.is_file() {
                return candidate;
            }
        }
        tried.push("nats-server on PATH".to_string());
    }
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/nats-server");
    if tools.is_file() {
        return tools;
    }
    tried.push(tools.display().to_string());
    panic!(
        "nats-server binary not found (tried {}); run scripts/install-deps or set NATS_SERVER",
        tried.join(", ")
    );
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// A running `nats-server -js` owned by a test.
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
}

impl NatsServer {
    /// Starts a server on a free port with a fresh store directory and waits
    /// until JetStream answers.
    pub fn start() -> NatsServer {
        let mut server = NatsServer {
            binary: nats_server_binary(),
            port: free_port(),
            store: tempfile::tempdir().expect("create a nats store directory"),
            child: None,
            log: Arc::new(Mutex::new(Vec::new())),
        };
        server.spawn();
        server
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("server is running")
    }

    /// Stops the server (SIGTERM, then SIGKILL after a grace period) and
    /// starts it again on the same port with the same store directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Stops the server and waits for it to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }

    fn spawn(&mut self) {
        let mut child = Command::new(&self.binary)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.store.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.binary.display()));
        // Drain the server's log for its whole life, keeping a tail for
        // failure messages; an undrained pipe would stall the server.
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::clone(&self.log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = log.lock().expect("log lock");
                if log.len() == LOG_TAIL {
                    log.remove(0);
                }
                log.push(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "nats-server exited early with {status}; log:\n{}",
                    self.log_tail()
                );
            }
            if jetstream_answers(self.port) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "nats-server on port {} not ready with jetstream within {READY_TIMEOUT:?}; log:\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The last lines the server logged.
    pub fn log_tail(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether a server on `port` accepts a client and answers a JetStream
/// account-info request, spoken in the raw NATS text protocol so the check
/// needs no async runtime.
fn jetstream_answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    if stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .is_err()
    {
        return false;
    }
    let request = "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":false}\r\n\
                   SUB _INBOX.ready 1\r\n\
                   PUB $JS.API.INFO _INBOX.ready 0\r\n\r\n\
                   PING\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&seen);
        if text.contains("account_info_response") {
            return !text.contains("\"error\"");
        }
        if text.contains("-ERR") || seen.len() > 64 * 1024 {
            return false;
        }
    }
}

/// How long a hub may take to print its readiness line.
const HUB_READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `hub` binary owned by a test: started with `--listen
/// 127.0.0.1:0`, its readiness line read under a timeout, its stderr kept
/// as a log tail; `Drop` kills and reaps it.
pub struct HubProcess {
    child: Option<Child>,
    /// The readiness line.
    pub ready: herd::wire::HubReady,
    log: Arc<Mutex<Vec<String>>>,
}

/// How a hub process ended when it was not ready.
#[derive(Debug)]
pub struct HubExit {
    /// Its exit status.
    pub status: std::process::ExitStatus,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl HubProcess {
    /// Starts `hub --repo REPO --listen 127.0.0.1:0 [--nats-url URL] EXTRA…`
    /// and waits for its readiness line; panics with its log if it exits or
    /// stays silent.
    pub fn start(repo: &Path, nats_url: Option<&str>, extra: &[&str]) -> HubProcess {
        HubProcess::start_with_env(repo, nats_url, extra, &[])
    }

    /// [`HubProcess::start`] with `env` set in the hub's environment (and
    /// the hub's own credential variables not inherited from the test).
    pub fn start_with_env(
        repo: &Path,
        nats_url: Option<&str>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> HubProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hub"));
        cmd.env_remove(herd::env::HUB_USER)
            .env_remove(herd::env::HUB_SECRET)
            .envs(env.iter().copied());
        cmd.arg("--repo")
            .arg(repo)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(url) = nats_url {
            cmd.args(["--nats-url", url]);
        }
        let mut child = cmd.spawn().expect("spawn the hub binary");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let tail = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut tail = tail.lock().expect("log lock");
                if tail.len() == LOG_TAIL {
                    tail.remove(0);
                }
                tail.push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // The first line is the readiness line; the rest is drained.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut hub = HubProcess {
            child: Some(child),
            ready: herd::wire::HubReady {
                http: String::new(),
                project_code: String::new(),
                tip: String::new(),
            },
            log,
        };
        match rx.recv_timeout(HUB_READY_TIMEOUT) {
            Ok(line) => {
                hub.ready = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("bad readiness line {line:?}: {e}"));
            }
            Err(_) => panic!(
                "hub not ready within {HUB_READY_TIMEOUT:?}; log:\n{}",
                hub.log_tail()
            ),
        }
        hub
    }

    /// Runs the hub with `args` expecting it to exit before it is ready
    /// (bounded by the readiness timeout), and returns how it ended.
    pub fn run_to_exit(args: &[&std::ffi::OsStr]) -> HubExit {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the hub binary");
        let deadline = Instant::now() + HUB_READY_TIMEOUT;
        loop {
            if child.try_wait().expect("wait for the hub").is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("hub did not exit within {HUB_READY_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("collect the hub's output");
        HubExit {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The sync URL (with a trailing slash, as Fossil clients use it).
    pub fn url(&self) -> String {
        format!("{}/", self.ready.http)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("hub is running")
    }

    /// `GET /stats` as JSON.
    pub fn stats(&self) -> serde_json::Value {
        let body = ureq::get(&format!("{}/stats", self.ready.http))
            .timeout(Duration::from_secs(10))
            .call()
            .expect("GET /stats")
            .into_string()
            .expect("read /stats");
        serde_json::from_str(&body).expect("/stats is JSON")
    }

    /// One numeric field of `/stats`.
    pub fn stat(&self, name: &str) -> u64 {
        self.stats()[name]
            .as_u64()
            .unwrap_or_else(|| panic!("/stats has no numeric {name}"))
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("hub is running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + HUB_READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for the hub") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "hub did not stop within {HUB_READY_TIMEOUT:?} of SIGTERM; log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines the hub logged.
    pub fn log_tail(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the real `fossil` with HOME (it writes ~/.fossil there) and USER
/// set, in `dir`; panics when the binary cannot start.
pub fn fossil(home: &Path, dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("fossil")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("USER", "tester")
        .stdin(Stdio::null())
        .output()
        .expect("the fossil binary (2.21) must be on PATH")
}

/// [`fossil`] that must succeed; returns stdout and stderr together.
pub fn fossil_ok(home: &Path, dir: &Path, args: &[&str]) -> String {
    let out = fossil(home, dir, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "fossil {args:?} failed: {text}");
    text
}

/// A repository made by `fossil new` in `home` (real.fossil; anonymous
/// clients may clone, pull and push) and a check-out of it (work/, autosync
/// off). Returns both paths.
pub fn fossil_checkout(home: &Path) -> (PathBuf, PathBuf) {
    let repo = home.join("real.fossil");
    let repo_s = repo.to_str().expect("a UTF-8 temp path");
    fossil_ok(home, home, &["new", repo_s]);
    fossil_ok(
        home,
        home,
        &["user", "capabilities", "nobody", "gio", "-R", repo_s],
    );
    let work = home.join("work");
    std::fs::create_dir(&work).expect("create the check-out directory");
    fossil_ok(home, &work, &["open", repo_s]);
    fossil_ok(home, &work, &["settings", "autosync", "off"]);
    (repo, work)
}

/// One value from `fossil sql -R repo`, without its quotes.
pub fn fossil_sql(home: &Path, repo: &Path, sql: &str) -> String {
    fossil_ok(home, home, &["sql", "-R", repo.to_str().unwrap(), sql])
        .trim()
        .trim_matches('\'')
        .to_string()
}

/// The pids of `parent`'s children whose command name is `name`.
pub fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split at ')'.
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|(_, c)| c).unwrap_or("");
        let ppid = tail
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && comm == name {
            pids.push(pid);
        }
    }
    pids
}

/// A real `fossil server` on a free loopback port; Drop kills and waits.
pub struct FossilServer {
    child: Child,
    /// Its URL, `http://127.0.0.1:PORT/`.
    pub url: String,
}

impl FossilServer {
    /// Serves `repo` with HOME in `home`, once it accepts connections.
    pub fn start(home: &Path, repo: &Path) -> FossilServer {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("fossil")
            .args(["server", "--port", &port.to_string(), "--localhost"])
            .arg(repo)
            .env("HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the fossil binary (2.21) must be on PATH");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < deadline, "fossil server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        FossilServer {
            child,
            url: format!("http://127.0.0.1:{port}/"),
        }
    }
}

impl Drop for FossilServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sets the soft file-size limit (RLIMIT_FSIZE) of a process this test
/// started.
pub fn set_file_size_limit(pid: u32, soft: u64) {
    use nix::libc;
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: both pointers are to live, initialized rlimit structs.
    let read = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, std::ptr::null(), &mut old) };
    assert_eq!(read, 0, "read the hub's file-size limit");
    let new = libc::rlimit {
        rlim_cur: soft.min(old.rlim_max),
        rlim_max: old.rlim_max,
    };
    // SAFETY: as above; the old value is not wanted.
    let set = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &new, std::ptr::null_mut()) };
    assert_eq!(set, 0, "set the hub's file-size limit");
}

/// A file's length, 0 when it is missing.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A clone of the hub at `url` named `name` in `dir` that, like a leaf,
/// skips the R card (a checksum over every file of the tree) when it
/// commits.
pub fn leaf_clone(
    url: &str,
    dir: &Path,
    name: &str,
) -> (herd::xfer::Client, herd::repo::Repository) {
    let client = herd::xfer::Client::new(url);
    let repo = client
        .clone_into(&dir.join(format!("{name}.fossil")))
        .unwrap();
    repo.config_set("repo-cksum", "0").unwrap();
    (client, repo)
}

//! `hub`: the Fossil-compatible sync server with a linear trunk.
//!
//! Flags are validated into a [`HubConfig`], then [`hub::run`] serves until
//! SIGTERM or Ctrl-C. Exit codes: 0 after a clean stop, 2 when the hub could
//! not start (bad repository path, port in use, NATS unreachable, an
//! anonymous non-loopback listener), 1 when it failed while stopping.
//!
//! Secrets come only from the environment (`HERD_HUB_SECRET`,
//! `HERD_NATS_TOKEN`), never from flags: argv is readable by every local
//! user.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use herd::coord::Secret;
use herd::exit::Failure;
use herd::hub::{self, Batching, HttpLimits, HubConfig, HubError, HubUser};
use herd::supervisor::process::raise_nofile;
use herd::telemetry::{self, W3c};

/// Fossil-compatible sync hub with a linear trunk.
///
/// Serves the repository over Fossil's HTTP sync protocol (any POST with a
/// Fossil content type), GET /healthz and GET /stats, and announces every
/// trunk advance on NATS JetStream when --nats-url is given. Prints one JSON
/// readiness line on stdout; logs go to stderr (RUST_LOG).
///
/// Access: loopback by default, where clients without a login get the
/// `nobody` user's capabilities. --user LOGIN creates (or updates) that user
/// with the password in $HERD_HUB_SECRET; --require-login then refuses
/// everything to clients that do not log in. A non-loopback --listen needs
/// --user (login is then required) or --allow-anonymous. The NATS token, if
/// the server wants one, is read from $HERD_NATS_TOKEN.
///
/// Limits: a request whose declared Content-Length is over
/// --max-request-bytes gets 413 before its body is read; a request must
/// arrive whole (head and body) within --read-timeout-ms of its first byte,
/// else 408 and the connection is closed (no thread waits on a client;
/// at most 4 × --max-request-bytes of bodies are held at once); a
/// connection with no request for --idle-timeout-ms is closed; at
/// --max-connections open, a new connection replaces the longest-idle one,
/// or gets 503 when none is idle. Malformed requests get 400 (431 for a head
/// over 64 KiB or 64 headers, 411 for a Transfer-Encoding body); a malformed
/// sync body gets an `error` card.
///
/// Exit codes: 0 clean stop, 1 failure while stopping, 2 could not start.
///
/// A flag given twice takes its last value.
#[derive(Parser)]
#[command(version, args_override_self = true)]
struct Cli {
    /// Repository file; created when it does not exist.
    #[arg(long, env = "HERD_HUB_REPO")]
    repo: PathBuf,
    /// HTTP listen address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0", env = "HERD_HUB_LISTEN")]
    listen: SocketAddr,
    /// NATS server URL for tip broadcasts, or several, comma separated.
    #[arg(long, env = "HERD_NATS_URL")]
    nats_url: Option<String>,
    /// Publish each landed batch with its files, not only its manifests,
    /// on the tip stream, so full leaves (`leaf-agent --catch-up stream`)
    /// catch up from NATS instead of pulling from the hub. Needs --nats-url.
    #[arg(long, env = "HERD_BROADCAST_FILES", requires = "nats_url")]
    broadcast_files: bool,
    /// Project name of a newly created repository.
    #[arg(long)]
    project_name: Option<String>,
    /// Blocking threads serving reads (pull, clone, /stats) and decoding
    /// pushes, each with a read connection. Waiting pushes hold none.
    #[arg(long, default_value_t = hub::DEFAULT_THREADS)]
    threads: usize,
    /// Most pushes per write transaction; 1 turns batching off.
    #[arg(long, default_value_t = hub::DEFAULT_MAX_BATCH)]
    max_batch: usize,
    /// Most pushes the push queue holds while they wait for their turn
    /// (pushers that send `pragma herd-queue`); 0 turns the queue off and
    /// every stale push is refused at once.
    #[arg(long, default_value_t = hub::DEFAULT_PUSH_QUEUE)]
    push_queue: usize,
    /// How long a push-queue turn reserves the trunk for its holder, in ms.
    #[arg(long, default_value_t = hub::DEFAULT_LEASE.as_millis() as u64)]
    turn_lease_ms: u64,
    /// Create or update this user at start; its password is read from
    /// $HERD_HUB_SECRET.
    #[arg(long, env = herd::env::HUB_USER)]
    user: Option<String>,
    /// Fossil capabilities of --user (g clone, o pull, i push).
    #[arg(long, default_value = hub::DEFAULT_USER_CAPS, requires = "user")]
    user_caps: String,
    /// Clients that do not log in get nothing (nobody's capabilities are
    /// withheld).
    #[arg(long)]
    require_login: bool,
    /// Serve anonymous clients on a non-loopback --listen address.
    #[arg(long)]
    allow_anonymous: bool,
    /// Largest request body in bytes; a larger declared Content-Length gets 413.
    #[arg(long, default_value_t = hub::DEFAULT_MAX_REQUEST_BYTES, value_parser = clap::value_parser!(u64).range(1..))]
    max_request_bytes: u64,
    /// Milliseconds a request (head and body) may take to arrive from its first byte; also bounds writing a reply.
    #[arg(long, default_value_t = millis(hub::DEFAULT_READ_TIMEOUT), value_parser = clap::value_parser!(u64).range(1..))]
    read_timeout_ms: u64,
    /// Milliseconds an open connection may wait for its next request.
    #[arg(long, default_value_t = millis(hub::DEFAULT_IDLE_TIMEOUT), value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout_ms: u64,
    /// Most connections open at once (the open-file limit is raised to fit).
    #[arg(long, default_value_t = hub::DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(usize))]
    max_connections: usize,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Cli {
    fn config(self) -> anyhow::Result<HubConfig> {
        let mut config = HubConfig::new(self.repo);
        if let Some(login) = self.user {
            let Some(password) = Secret::from_env(herd::env::HUB_SECRET) else {
                anyhow::bail!(
                    "--user {login} needs its password in ${}",
                    herd::env::HUB_SECRET
                );
            };
            config.users.push(HubUser {
                login,
                password,
                caps: self.user_caps,
            });
        }
        config.require_login = self.require_login;
        config.allow_anonymous = self.allow_anonymous;
        config.nats_token = Secret::from_env(herd::env::NATS_TOKEN);
        config.listen = self.listen;
        config.nats_url = self.nats_url;
        config.broadcast_files = self.broadcast_files;
        config.project_name = self.project_name;
        config.threads = self.threads.max(1);
        config.push_queue = hub::QueueConfig {
            capacity: self.push_queue,
            lease: Duration::from_millis(self.turn_lease_ms.max(1)),
        };
        let max_connections = self.max_connections.max(1);
        config.http = HttpLimits {
            max_request_bytes: self.max_request_bytes,
            read_timeout: Duration::from_millis(self.read_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            max_connections,
        };
        config.batching = if self.max_batch <= 1 {
            Batching::Off
        } else {
            Batching::Queue {
                max: self.max_batch,
            }
        };
        config.validate()?;
        Ok(config)
    }
}

fn main() -> ExitCode {
    herd::exit::finish("hub", run(Cli::parse()))
}

/// Starts telemetry and serves until a stop signal; flushes the spans
/// (bounded) before the process ends.
fn run(cli: Cli) -> Result<u8, Failure> {
    ignore_file_size_signal();
    limit_malloc_arenas();
    let telemetry = telemetry::init("hub", None)
        .map_err(|e| Failure::usage(format!("{:#}", anyhow::Error::new(e))))?;
    let result = serve(cli);
    drop(telemetry);
    result
}

/// Runs the hub under its process span, a child of herd's when started by
/// herd.
fn serve(cli: Cli) -> Result<u8, Failure> {
    let root = tracing::info_span!("hub.run");
    W3c::from_env().adopt(&root);
    let _entered = root.enter();
    let config = cli.config().map_err(|e| Failure::usage(format!("{e:#}")))?;
    // Each connection holds a descriptor; the repository, the read
    // connections and NATS hold a few more.
    let needed = config.http.max_connections as u64 + config.threads as u64 * 4 + 64;
    match raise_nofile(needed) {
        Ok(limit) if limit < needed => tracing::warn!(
            limit,
            needed,
            "open-file limit below what --max-connections needs; accepts may fail when it runs out"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    match hub::run(&config, &mut std::io::stdout(), shutdown_signal()) {
        Ok(()) => Ok(herd::exit::EXIT_OK),
        Err(e) => {
            let checkpoint = matches!(e, HubError::Checkpoint { .. });
            let why = format!("{:#}", anyhow::Error::new(e));
            Err(if checkpoint {
                Failure::failed(why)
            } else {
                Failure::usage(why)
            })
        }
    }
}

/// A write past the file-size limit (RLIMIT_FSIZE) would kill the process
/// with SIGXFSZ; ignored, the write fails with EFBIG instead, SQLite
/// reports an I/O error, and the push is refused while the hub stays up.
fn ignore_file_size_signal() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_IGN installs no handler code, and no other thread exists
    // yet to race with the change of disposition.
    if let Err(e) = unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) } {
        herd::say!("hub: cannot ignore SIGXFSZ: {e}");
    }
}

/// glibc gives every thread that allocates its own arena (up to eight per
/// core) and keeps what is freed in it. The hub's threads build replies of
/// megabytes (a baseline manifest is the whole tree's file list), so after
/// 10,000 commits with 160 worker threads its resident memory had grown past
/// 160 MB of mostly idle arenas. Two arenas are enough: the writer is one
/// thread and the HTTP side a few.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before
    // any other thread exists.
    if unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) } != 1 {
        herd::say!("hub: cannot limit malloc arenas");
    }
}

/// Completes on the first SIGTERM or Ctrl-C. If the handlers cannot be
/// installed the hub still serves, until killed.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle SIGTERM; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

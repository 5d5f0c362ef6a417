//! The hub process: a Fossil-compatible HTTP sync server over one
//! repository, with a single writer that keeps trunk linear and a tip
//! broadcast on NATS JetStream.
//!
//! [`Hub::start`] opens (or creates) the repository, binds the listener,
//! connects to NATS when asked, and starts the writer and the HTTP thread;
//! [`Hub::stop`] stops accepting, finishes in-flight requests, lets the
//! writer drain and checkpoint, and flushes the broadcasts. [`run`] is the whole process
//! between flags and exit code: start, print the readiness line, wait for
//! the shutdown future, stop.
//!
//! Files: `config` ([`HubConfig`], [`HttpLimits`]), `http` (hyper's
//! server, the limits hyper has no knob for, routing, the blocking pool for
//! SQLite reads, the one place results become HTTP statuses), `writer`
//! (the single writer and batching), `queue` (the push queue),
//! `broadcast` (the tip publisher thread), `stats` (counters and `/stats`),
//! `lock` (one hub per repository: [`RepoLock`]), `error` ([`HubError`]).
//!
//! On a new repository the trunk already holds the initial empty check-in
//! (the root every check-in descends from), so the readiness line's `tip`
//! names it; `tip` is empty only for a repository with no check-in at all.
//! `/stats` `trunk_commits` and broadcast `seq` are trunk positions
//! ([`crate::repo::Repository::trunk_position`]): that root is 0.

mod broadcast;
mod config;
mod error;
mod http;
mod lock;
mod queue;
mod stats;
mod writer;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

pub use broadcast::Broadcast;
pub use config::{
    Batching, ConfigError, HttpLimits, HubConfig, HubUser, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_BATCH,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_PUBLISH_TIMEOUT,
    DEFAULT_PUSH_QUEUE, DEFAULT_READ_TIMEOUT, DEFAULT_THREADS, DEFAULT_USER_CAPS,
};
pub use error::HubError;
pub use lock::{LockError, RepoLock};
pub use queue::{QueueConfig, DEFAULT_LEASE};
pub use stats::{Counters, RepoFigures};

use crate::repo::{CreateOptions, RepoError, Repository};
use crate::wire::HubReady;
use crate::xfer::login::shared_secret;
use crate::xfer::server::Access;
use crate::xfer::ServerConfig;

/// Page cache of each read connection, in KiB.
const READER_CACHE_KIB: u32 = 128;
use broadcast::Broadcaster;
use writer::Writer;

/// Capabilities of `nobody` in a repository the hub creates: clone (`g`),
/// check out / read (`o`), check in / push (`i`). A hub run by hand on
/// loopback serves anonymous leaves; with login required (herd's trials)
/// the sync server withholds these and only logged-in users get any.
pub const NOBODY_CAPS: &str = "goi";
/// Pending connections the kernel queues before the listener accepts them
/// (capped by `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 1024;
/// The setup user of a repository the hub creates.
pub const ADMIN_USER: &str = "admin";

/// A running hub.
pub struct Hub {
    ready: HubReady,
    addr: SocketAddr,
    listener: http::Listener,
    writer: Writer,
    broadcaster: Option<Broadcaster>,
    counters: Arc<Counters>,
    /// Held for the hub's life; declared last so it is dropped after every
    /// SQLite connection (see `lock`).
    lock: RepoLock,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("addr", &self.addr)
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Opens or creates the repository, connects to NATS (when configured),
    /// binds the listener and starts the writer and the HTTP thread.
    pub fn start(config: &HubConfig) -> Result<Hub, HubError> {
        config.validate()?;
        // Bind first: a taken port should not leave a new repository behind.
        // Connections made before the listener starts wait in the backlog.
        let tcp = std::net::TcpListener::bind(config.listen).map_err(|source| HubError::Bind {
            addr: config.listen,
            source: Box::new(source),
        })?;
        let addr = tcp.local_addr().map_err(|_| HubError::NoIpAddress {
            addr: config.listen,
        })?;
        // std listens with a backlog of 128; a herd of connections arriving
        // at once (or a burst while the listener makes room) would see
        // dropped SYNs and one-second retries. Listening again resizes it.
        if let Err(e) = nix::sys::socket::Backlog::new(LISTEN_BACKLOG)
            .and_then(|backlog| nix::sys::socket::listen(&tcp, backlog))
        {
            tracing::warn!(error = %e, "cannot raise the listen backlog");
        }
        let (repo, lock) = open_or_create(config)?;
        repo.cache_for_many_leaves();
        let open_err = |source| HubError::OpenRepo {
            path: config.repo.clone(),
            source,
        };
        let figures = RepoFigures::read(&repo).map_err(open_err)?;
        let server = ServerConfig {
            access: Some(grant_access(&repo, config).map_err(open_err)?.leak()),
            ..config.server
        };
        let counters = Arc::new(Counters::default());
        let broadcaster = match &config.nats_url {
            Some(url) => Some(Broadcaster::start(
                url,
                config.nats_token.as_ref(),
                &figures.project_code,
                config.publish_timeout,
                config.broadcast_files,
                Arc::clone(&counters),
            )?),
            None => None,
        };
        // A read connection per blocking thread; a small page cache each
        // keeps their sum bounded (hot pages stay in the OS cache).
        let readers = (0..config.threads.max(1))
            .map(|_| {
                let reader = Repository::open(&config.repo).map_err(open_err)?;
                reader.limit_cache(READER_CACHE_KIB).map_err(open_err)?;
                Ok(reader)
            })
            .collect::<Result<Vec<_>, HubError>>()?;
        let writer = Writer::start(
            repo,
            server,
            config.batching,
            Arc::clone(&counters),
            broadcaster.as_ref().map(Broadcaster::queue),
            config.push_queue,
        )?;
        let shared = http::Shared::new(
            server,
            Arc::clone(&counters),
            broadcaster.as_ref().map(Broadcaster::health),
            writer.queue(),
            readers,
        );
        // Connections made before this wait in the backlog.
        let listener = http::Listener::start(
            tcp,
            config.http,
            config.server.limits.max_total,
            Arc::new(shared),
        )
        .map_err(|source| HubError::Spawn {
            what: "the http listener",
            source,
        })?;
        let ready = HubReady {
            http: format!("http://{addr}"),
            project_code: figures.project_code,
            tip: figures.tip,
        };
        tracing::info!(
            http = %ready.http,
            repo = %config.repo.display(),
            tip = %ready.tip,
            trunk_commits = figures.trunk_commits,
            nats = config.nats_url.as_deref().unwrap_or("none"),
            login_required = server.access.is_some_and(Access::requires_login),
            "hub ready"
        );
        Ok(Hub {
            ready,
            addr,
            listener,
            writer,
            broadcaster,
            counters,
            lock,
        })
    }

    /// The readiness line's content.
    pub fn ready(&self) -> &HubReady {
        &self.ready
    }

    /// The bound HTTP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The hub's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Stops accepting, finishes the requests already received (idle and
    /// half-read connections are closed), lets the writer drain its queue
    /// and checkpoint the WAL, then publishes the tips still queued (each
    /// bounded by the publish timeout).
    pub fn stop(self) -> Result<(), HubError> {
        // The listener returns once every received request is answered,
        // and has dropped its read connections and its side of the
        // writer's queue by then.
        self.listener.stop();
        let result = self.writer.stop();
        if let Some(broadcaster) = self.broadcaster {
            broadcaster.stop();
        }
        tracing::info!("hub stopped");
        // Every connection is closed by now.
        drop(self.lock);
        result
    }
}

/// Locks and opens the repository, creating it first when the file does
/// not exist (then locked once created: two hubs racing to create it meet
/// at the lock or at the create).
fn open_or_create(config: &HubConfig) -> Result<(Repository, RepoLock), HubError> {
    if config.repo.exists() {
        let lock = RepoLock::acquire(&config.repo)?;
        let open_err = |source| HubError::OpenRepo {
            path: config.repo.clone(),
            source,
        };
        let repo = Repository::open(&config.repo).map_err(open_err)?;
        let leaves = repo.trunk_leaf_list().map_err(open_err)?;
        if leaves.len() > 1 {
            return Err(HubError::ForkedTrunk {
                path: config.repo.clone(),
                leaves: leaves
                    .iter()
                    .map(|l| l.as_str()[..12].to_string())
                    .collect(),
            });
        }
        repo.drop_planner_stats();
        return Ok((repo, lock));
    }
    let options = CreateOptions {
        project_name: config.project_name.clone(),
        admin_user: ADMIN_USER.into(),
        // With login required the new file says so too, so a `fossil
        // server` on it later does not open the door the hub kept shut.
        nobody_caps: if config.login_required() {
            String::new()
        } else {
            NOBODY_CAPS.into()
        },
    };
    let repo =
        Repository::create(&config.repo, &options).map_err(|source| HubError::CreateRepo {
            path: config.repo.clone(),
            source,
        })?;
    let lock = RepoLock::acquire(&config.repo)?;
    tracing::info!(repo = %config.repo.display(), "repository created");
    Ok((repo, lock))
}

/// Writes the configured users into the repository's `user` table (the
/// password as Fossil's shared secret), then reads the table once for the
/// sync server.
fn grant_access(repo: &Repository, config: &HubConfig) -> Result<Access, RepoError> {
    if !config.users.is_empty() {
        let project_code = repo.project_code()?;
        for user in &config.users {
            let secret = shared_secret(&project_code, &user.login, user.password.expose());
            repo.set_user(&user.login, &secret, &user.caps)?;
            tracing::info!(login = %user.login, caps = %user.caps, "user granted");
        }
    }
    Access::load(repo, config.login_required())
}

/// Has the allocator map each block of 1 MiB or more by itself and
/// unmap it when freed. On a long trunk the writer builds a new baseline
/// every few hundred landings (the whole tree's text and list, megabytes);
/// glibc by default raises its mapping threshold to the largest block
/// freed, after which such blocks come from the heap and their memory
/// stays with the process: measured on 100,000 landings
/// (`cargo bench --bench trunk`), 137 MiB peak against 121 with the
/// threshold fixed. Fixing it also stops glibc adjusting its trim
/// threshold, left at 128 KiB, so the heap would be trimmed and grown
/// again on every large list: that one is set to 16 MiB. Called when the
/// hub starts; elsewhere than glibc it does nothing.
pub fn map_large_blocks_alone() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters, and glibc's takes
    // the allocator's own lock to do so (safe beside threads that allocate).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
}

/// The hub process: starts, prints the readiness line (one JSON line,
/// [`HubReady`]) on `out`, serves until `shutdown` completes, then stops.
pub fn run(
    config: &HubConfig,
    out: &mut dyn Write,
    shutdown: impl Future<Output = ()>,
) -> Result<(), HubError> {
    map_large_blocks_alone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| HubError::Spawn {
            what: "the signal runtime",
            source,
        })?;
    let hub = Hub::start(config)?;
    let line = serde_json::to_string(hub.ready()).expect("the ready line always serializes");
    // A closed stdout is no reason to stop serving.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    runtime.block_on(shutdown);
    tracing::info!("stopping");
    hub.stop()
}

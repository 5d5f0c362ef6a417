//! The connection side of coordination: [`CoordConfig`], [`Coord::connect`]
//! (connect, then get-or-create the trial's buckets and tip stream), and the
//! helpers that bound every NATS round trip by the operation timeout and turn
//! client errors into [`CoordError`]s naming the operation and step.
//!
//! A trial's nats-server requires a token; it travels in the environment
//! ([`crate::env::NATS_TOKEN`]), never in argv, and as a [`Secret`] that `Debug`
//! does not print.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, kv, stream};
use async_nats::Client;

use super::deployment::{server_addrs, Deployment};
use super::error::{BoxError, CoordError};
use super::names::Scope;

/// A credential (a token, a password): `Debug` prints `<hidden>`, so configs
/// holding one can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// A fresh random secret: 32 lowercase hex digits (128 bits).
    pub fn random() -> Secret {
        Secret(hex::encode(rand::random::<[u8; 16]>()))
    }

    /// Reads `var` from the environment; unset or empty is `None`.
    pub fn from_env(var: &str) -> Option<Secret> {
        std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret)
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

/// How long one NATS round trip may take unless configured otherwise.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a claim's lease and file holds live unless renewed.
pub const DEFAULT_HOLD_TTL: Duration = Duration::from_secs(30);

/// What a process needs to take part in one trial's coordination.
#[derive(Debug, Clone)]
pub struct CoordConfig {
    /// NATS server URL, e.g. `nats://127.0.0.1:4222`, or several, comma
    /// separated (see [`super::Deployment`]).
    pub nats_url: String,
    /// The trial prefix; sanitized to `[A-Za-z0-9_-]` (see [`Scope`]).
    pub scope: String,
    /// Upper bound of every single NATS round trip.
    pub op_timeout: Duration,
    /// Lifetime of a claim's lease and holds; a dead leaf's claim becomes
    /// reclaimable this long after it was taken (or last renewed).
    pub hold_ttl: Duration,
    /// NATS auth token, when the server requires one.
    pub token: Option<Secret>,
    /// The NATS deployment (domain, replicas); this process's by default.
    pub deployment: Deployment,
}

impl CoordConfig {
    /// A config with the default timeout and TTL and no token.
    pub fn new(nats_url: impl Into<String>, scope: impl Into<String>) -> CoordConfig {
        CoordConfig {
            nats_url: nats_url.into(),
            scope: scope.into(),
            op_timeout: DEFAULT_OP_TIMEOUT,
            hold_ttl: DEFAULT_HOLD_TTL,
            token: None,
            deployment: Deployment::current().clone(),
        }
    }
}

/// Connects a NATS client with the options of `config` (timeout, token),
/// naming the connection `name`. The hub uses this directly; leaves get it
/// through [`Coord::connect`].
pub async fn connect_client(config: &CoordConfig, name: &str) -> Result<Client, CoordError> {
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(config.op_timeout);
    if let Some(token) = &config.token {
        options = options.token(token.expose().to_string());
    }
    let servers = server_addrs(&config.nats_url).map_err(|why| CoordError::BadUrl {
        urls: config.nats_url.clone(),
        why,
    })?;
    let op = format!("connect to nats at {}", config.nats_url);
    within(config.op_timeout, &op, "connect", options.connect(servers))
        .await?
        .map_err(|source| CoordError::Connect {
            url: config.nats_url.clone(),
            source,
        })
}

/// One leaf's (or the hub's) handle on a trial's coordination state.
#[derive(Debug, Clone)]
pub struct Coord {
    pub(super) client: Client,
    pub(super) js: jetstream::Context,
    pub(super) tasks: kv::Store,
    pub(super) holds: kv::Store,
    pub(super) tips: stream::Stream,
    pub(super) scope: Scope,
    pub(super) leaf_id: String,
    pub(super) config: CoordConfig,
}

impl Coord {
    /// Connects to NATS and gets or creates the trial's tasks bucket, holds
    /// bucket and tip stream. Safe when many processes do it at once.
    /// `leaf_id` (e.g. `slot-3-9f2c`) names this process as a holder.
    pub async fn connect(
        config: CoordConfig,
        leaf_id: impl Into<String>,
    ) -> Result<Coord, CoordError> {
        let leaf_id = leaf_id.into();
        let scope = Scope::new(&config.scope)?;
        let client = connect_client(&config, &leaf_id).await?;
        let deployment = &config.deployment;
        let js = deployed_context(&client, config.op_timeout, deployment);
        let replicas = deployment.replicas;
        let tasks = ensure_bucket(&js, &scope.tasks_bucket(), config.op_timeout, replicas).await?;
        let holds = ensure_bucket(&js, &scope.holds_bucket(), config.op_timeout, replicas).await?;
        let tips = ensure_tip_stream(&js, &scope, config.op_timeout, replicas).await?;
        Ok(Coord {
            client,
            js,
            tasks,
            holds,
            tips,
            scope,
            leaf_id,
            config,
        })
    }

    /// Waits until the trial's buckets and tip stream each have a leader
    /// (a replicated stream elects one after it is made; until then writes
    /// go unanswered), or `deadline` passes.
    pub async fn await_leaders(&self, deadline: std::time::Instant) -> Result<(), CoordError> {
        let names = [
            format!("KV_{}", self.scope.tasks_bucket()),
            format!("KV_{}", self.scope.holds_bucket()),
            self.scope.tips_stream(),
        ];
        for name in names {
            let op = format!("await a leader for {name}");
            loop {
                let info = within(self.config.op_timeout, &op, "stream info", async {
                    let mut stream = self.js.get_stream(&name).await?;
                    Ok::<_, BoxError>(stream.info().await?.cluster.clone())
                })
                .await?;
                let led =
                    matches!(&info, Ok(Some(c)) if c.leader.is_some()) || matches!(info, Ok(None));
                if led {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    return Err(CoordError::Nats {
                        op,
                        step: "stream info",
                        source: format!("no leader elected: {info:?}").into(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// The underlying NATS client, for modules that reuse the connection.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The JetStream context over [`Coord::client`].
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The sanitized trial scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// This process's holder name.
    pub fn leaf_id(&self) -> &str {
        &self.leaf_id
    }

    /// The configuration this handle was connected with.
    pub fn config(&self) -> &CoordConfig {
        &self.config
    }
}

/// A JetStream context whose own request timeout matches ours, in this
/// process's deployment.
pub(super) fn jetstream_context(client: &Client, op_timeout: Duration) -> jetstream::Context {
    deployed_context(client, op_timeout, Deployment::current())
}

/// A JetStream context for `deployment` (its domain, when it has one).
fn deployed_context(
    client: &Client,
    op_timeout: Duration,
    deployment: &Deployment,
) -> jetstream::Context {
    let mut js = match &deployment.domain {
        Some(domain) => jetstream::with_domain(client.clone(), domain),
        None => jetstream::new(client.clone()),
    };
    js.set_timeout(op_timeout);
    js
}

/// How long a replicated stream's creation is retried while the cluster
/// cannot place it yet ("no suitable peers for placement": a member just
/// started or restarted, not yet known to the meta leader as online) or
/// answers past the operation's timeout (its groups still forming on a
/// loaded machine).
const PLACEMENT_WAIT: Duration = Duration::from_secs(20);
/// The pause between two such attempts.
const PLACEMENT_PAUSE: Duration = Duration::from_millis(250);

/// Whether JetStream refused to create a stream only because too few
/// cluster members are online yet (error 10005), which passes.
fn placement_pending(e: &impl std::fmt::Display) -> bool {
    let text = e.to_string();
    text.contains("no suitable peers") || text.contains("10005")
}

/// Gets or creates a key-value bucket. Creating a stream with an identical
/// config is idempotent on the server, so two processes racing here both
/// succeed; if the create is refused anyway (say a differing config), an
/// existing bucket is used.
///
/// A replicated bucket (a NATS cluster) is made without direct gets: a
/// direct get may be answered by any replica, a lagging one included, and
/// a fence check must not read a hold as missing that this leaf has just
/// taken. Reads then go to the stream's leader, as compare-and-set does.
pub(super) async fn ensure_bucket(
    js: &jetstream::Context,
    bucket: &str,
    op_timeout: Duration,
    replicas: usize,
) -> Result<kv::Store, CoordError> {
    let op = format!("open bucket {bucket}");
    let created = if replicas > 1 {
        let started = std::time::Instant::now();
        let made = loop {
            let made = match within(
                op_timeout,
                &op,
                "create bucket",
                js.get_or_create_stream(leader_read_bucket(bucket, replicas)),
            )
            .await
            {
                Err(CoordError::Timeout { .. }) if started.elapsed() < PLACEMENT_WAIT => continue,
                made => made?,
            };
            match made {
                Err(e) if placement_pending(&e) && started.elapsed() < PLACEMENT_WAIT => {
                    tokio::time::sleep(PLACEMENT_PAUSE).await;
                }
                made => break made,
            }
        };
        match made {
            Ok(_) => within(op_timeout, &op, "get bucket", js.get_key_value(bucket))
                .await?
                .map_err(|e| nats_error(&op, "get bucket", e)),
            Err(e) => Err(nats_error(&op, "create bucket", e)),
        }
    } else {
        within(
            op_timeout,
            &op,
            "create bucket",
            js.create_key_value(kv::Config {
                bucket: bucket.to_string(),
                history: 1,
                storage: stream::StorageType::File,
                ..Default::default()
            }),
        )
        .await?
        .map_err(|e| nats_error(&op, "create bucket", e))
    };
    match created {
        Ok(store) => Ok(store),
        Err(create_err) => {
            match within(op_timeout, &op, "get bucket", js.get_key_value(bucket)).await? {
                Ok(store) => Ok(store),
                Err(_) => Err(create_err),
            }
        }
    }
}

/// The stream behind a key-value bucket as the client library makes one
/// (one value per key, rollups allowed, deletes as markers), replicated
/// `replicas` ways and without direct gets.
fn leader_read_bucket(bucket: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: false,
        discard: stream::DiscardPolicy::New,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// How much of the tip stream's history JetStream keeps: every batch
/// broadcast (with its artifacts, under `hub --broadcast-files`) for this
/// long and up to this many bytes, the oldest dropped first. A full leaf
/// that falls further behind than the stream holds pulls from the hub.
pub const TIP_STREAM_MAX_BYTES: i64 = 256 * 1024 * 1024;
/// See [`TIP_STREAM_MAX_BYTES`].
pub const TIP_STREAM_MAX_AGE: Duration = Duration::from_secs(600);

/// The smallest history the tip stream is given when the server's store
/// cannot hold [`TIP_STREAM_MAX_BYTES`].
const TIP_STREAM_MIN_BYTES: i64 = 1024 * 1024;

/// Gets or creates the trial's tip stream: one subject, a bounded history
/// (bytes and age, oldest dropped first), file storage so tips survive a
/// server restart, direct get enabled for [`super::latest_tip`]. A server
/// whose store cannot reserve [`TIP_STREAM_MAX_BYTES`] (a small disk: it
/// answers "insufficient storage") gets a quarter as much, down to
/// [`TIP_STREAM_MIN_BYTES`]: a shorter history costs late leaves a pull,
/// not the trial.
pub(super) async fn ensure_tip_stream(
    js: &jetstream::Context,
    scope: &Scope,
    op_timeout: Duration,
    replicas: usize,
) -> Result<stream::Stream, CoordError> {
    let name = scope.tips_stream();
    let op = format!("open tip stream {name}");
    let mut max_bytes = TIP_STREAM_MAX_BYTES;
    let started = std::time::Instant::now();
    loop {
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![scope.tip_subject()],
            max_bytes,
            max_age: TIP_STREAM_MAX_AGE,
            discard: stream::DiscardPolicy::Old,
            allow_direct: true,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        let created = match within(
            op_timeout,
            &op,
            "create stream",
            js.get_or_create_stream(config),
        )
        .await
        {
            // A cluster still forming its groups may answer late; a
            // single server answers at once, so this waits only there.
            Err(CoordError::Timeout { .. })
                if replicas > 1 && started.elapsed() < PLACEMENT_WAIT =>
            {
                continue
            }
            created => created?,
        };
        let create_err = match created {
            Ok(stream) => return Ok(stream),
            Err(e) => e,
        };
        if placement_pending(&create_err) && started.elapsed() < PLACEMENT_WAIT {
            tokio::time::sleep(PLACEMENT_PAUSE).await;
            continue;
        }
        let no_room = create_err.to_string().contains("insufficient storage");
        if no_room && max_bytes > TIP_STREAM_MIN_BYTES {
            max_bytes = (max_bytes / 4).max(TIP_STREAM_MIN_BYTES);
            tracing::warn!(
                max_bytes,
                "the nats store cannot hold the tip stream's history; asking for less"
            );
            continue;
        }
        return match within(op_timeout, &op, "get stream", js.get_stream(&name)).await? {
            Ok(stream) => Ok(stream),
            Err(_) => Err(nats_error(&op, "create stream", create_err)),
        };
    }
}

/// Runs one step under the operation timeout.
pub(super) async fn within<F: Future>(
    after: Duration,
    op: &str,
    step: &'static str,
    fut: F,
) -> Result<F::Output, CoordError> {
    tokio::time::timeout(after, fut)
        .await
        .map_err(|_| CoordError::Timeout {
            op: op.to_string(),
            step,
            after,
        })
}

/// Wraps a client error with the operation and step that produced it.
pub(super) fn nats_error(op: &str, step: &'static str, err: impl Into<BoxError>) -> CoordError {
    CoordError::Nats {
        op: op.to_string(),
        step,
        source: err.into(),
    }
}

/// Wall-clock milliseconds since the Unix epoch; hold expiry is compared
/// across processes, so it must be wall-clock, not monotonic.
pub(super) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A duration in whole milliseconds, saturating.
pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_placement_refusal_is_waited_out() {
        let refused = "create stream: jetstream error: 400 (code no suitable peers for \
                       placement, peer offline, error code 10005)";
        assert!(placement_pending(&refused));
        assert!(!placement_pending(
            &"insufficient storage resources available"
        ));
        assert!(!placement_pending(&"stream name already in use"));
    }

    #[test]
    fn secrets_are_random_and_never_debug_printed() {
        let (a, b) = (Secret::random(), Secret::random());
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 32);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        let mut c = CoordConfig::new("nats://127.0.0.1:1", "t");
        c.token = Some(a.clone());
        assert!(!format!("{c:?}").contains(a.expose()));
    }
}

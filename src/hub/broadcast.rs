//! Tip broadcasts: after every write transaction that advanced trunk, the
//! writer hands each new tip (with the trace context of the push that caused
//! it) to this module's thread, which publishes them in order on the trial's
//! tip stream through [`TipPublisher`]. The writer never waits on NATS: it
//! only sends on an unbounded channel.
//!
//! With `--broadcast-files` each batch's broadcast carries the batch's
//! artifacts (files and manifests, in stored form), split into parts when
//! it exceeds the server's largest message: NATS then fans every landed
//! commit out to the full leaves, and the hub serves them no pulls.
//!
//! When NATS is away the hub keeps serving sync. A leaf that finds a gap in
//! the stream pulls what it missed from the hub, so nothing older than the
//! newest tip must reach the stream: while publishing fails, queued tips
//! are coalesced to the newest one (the rest are counted as dropped), which
//! is retried until the client has reconnected and the stream acknowledges
//! it. After a reconnect the last
//! acknowledged tip is published again, in case the server came back
//! without its store (the tip's hash is the message id, so a server that
//! kept it stores it once).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_nats::connection::State;
use tokio::sync::mpsc;

use super::error::HubError;
use super::stats::Counters;
use crate::coord::{connect_client, CoordConfig, Scope, Secret, Tip, TipPublisher};
use crate::telemetry::W3c;

/// Wait between attempts to republish the latest tip while NATS is away.
const RETRY_EVERY: Duration = Duration::from_millis(200);

/// Room left in a message for the tip's JSON line and the headers, besides
/// a bundle part.
const MESSAGE_HEADROOM: usize = 16 * 1024;

/// One tip to announce, with the trace context of the push behind it.
#[derive(Debug, Clone)]
pub struct Broadcast {
    /// The new tip, one message per part of its bundle (one when whole),
    /// published in order.
    pub parts: Vec<Tip>,
    /// `traceparent`/`tracestate` of the HTTP request that pushed it.
    pub trace: W3c,
}

impl Broadcast {
    /// The tip announced (every part names the same one).
    fn tip(&self) -> Option<&Tip> {
        self.parts.first()
    }
}

/// The publisher thread and the sending end of its queue.
pub(crate) struct Broadcaster {
    queue: TipQueue,
    client: async_nats::Client,
    thread: JoinHandle<()>,
}

/// Where the writer sends tips, and what they should carry; cheap to
/// clone.
#[derive(Debug, Clone)]
pub(crate) struct TipQueue {
    sender: mpsc::UnboundedSender<Broadcast>,
    with_files: bool,
    max_part: usize,
}

impl TipQueue {
    /// Queues `broadcast`; never blocks. A closed queue (the publisher has
    /// stopped) drops it: broadcasts are best effort, the repository is not.
    pub(crate) fn send(&self, broadcast: Broadcast) {
        let _ = self.sender.send(broadcast);
    }

    /// Whether each batch's broadcast carries its files (`--broadcast-files`).
    pub(crate) fn with_files(&self) -> bool {
        self.with_files
    }

    /// The largest bundle part one message may carry: the server's largest
    /// payload, less room for the tip and headers.
    pub(crate) fn max_part(&self) -> usize {
        self.max_part
    }
}

impl Broadcaster {
    /// Connects to NATS, gets or creates the tip stream of the trial whose
    /// hub has `project_code`, and starts the publisher thread. Fails when
    /// NATS is unreachable now: a hub told to broadcast must start with a
    /// working broadcast.
    pub(crate) fn start(
        url: &str,
        token: Option<&Secret>,
        project_code: &str,
        timeout: Duration,
        with_files: bool,
        counters: Arc<Counters>,
    ) -> Result<Broadcaster, HubError> {
        let nats = |source| HubError::Nats {
            url: url.to_string(),
            source,
        };
        let scope = Scope::for_project(project_code).map_err(nats)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| HubError::Spawn {
                what: "the tip publisher's runtime",
                source,
            })?;
        let mut config = CoordConfig::new(url, scope.as_str());
        config.op_timeout = timeout;
        config.token = token.cloned();
        let (client, publisher) = runtime
            .block_on(async {
                let client = connect_client(&config, "hub").await?;
                let publisher =
                    TipPublisher::with_op_timeout(client.clone(), scope.as_str(), timeout).await?;
                Ok((client, publisher))
            })
            .map_err(nats)?;
        let (sender, rx) = mpsc::unbounded_channel();
        let max_payload = client.server_info().max_payload;
        let queue = TipQueue {
            sender,
            with_files,
            max_part: max_payload.saturating_sub(MESSAGE_HEADROOM).max(1),
        };
        let publishing = Publishing {
            client: client.clone(),
            scope,
            timeout,
            publisher: Some(publisher),
            counters,
        };
        let thread = std::thread::Builder::new()
            .name("hub-broadcast".into())
            .spawn(move || runtime.block_on(publishing.run(rx)))
            .map_err(|source| HubError::Spawn {
                what: "the tip publisher thread",
                source,
            })?;
        Ok(Broadcaster {
            queue,
            client,
            thread,
        })
    }

    /// The queue the writer sends tips on.
    pub(crate) fn queue(&self) -> TipQueue {
        self.queue.clone()
    }

    /// A handle for `/healthz` that outlives borrowing the broadcaster.
    pub(crate) fn health(&self) -> NatsHealth {
        NatsHealth(self.client.clone())
    }

    /// Closes the queue and waits until the thread has published what was
    /// queued (each attempt bounded by the publish timeout).
    pub(crate) fn stop(self) {
        drop(self.queue);
        if self.thread.join().is_err() {
            tracing::error!("tip publisher thread panicked");
        }
    }
}

/// The NATS connection's state, for health checks.
#[derive(Debug, Clone)]
pub(crate) struct NatsHealth(async_nats::Client);

impl NatsHealth {
    /// Whether the NATS connection is up.
    pub(crate) fn connected(&self) -> bool {
        self.0.connection_state() == State::Connected
    }
}

/// The publisher thread's state.
struct Publishing {
    client: async_nats::Client,
    scope: Scope,
    timeout: Duration,
    /// `None` after a failure: rebuilt (which re-creates the stream if a
    /// restarted server lost it) before the next attempt.
    publisher: Option<TipPublisher>,
    counters: Arc<Counters>,
}

impl Publishing {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Broadcast>) {
        // The newest tip not yet acknowledged by the stream.
        let mut pending: Option<Broadcast> = None;
        // The last tip the stream acknowledged, republished after a
        // reconnect in case the server came back without it.
        let mut last_published: Option<Broadcast> = None;
        let mut was_connected = true;
        loop {
            // Wake now and then even when idle, to notice reconnects.
            let received = tokio::time::timeout(RETRY_EVERY, rx.recv()).await.ok();
            let connected = self.client.connection_state() == State::Connected;
            let reconnected = connected && !was_connected;
            was_connected = connected;
            match received {
                Some(None) => {
                    // Closed: one last attempt for an unpublished tip.
                    if let Some(last) = pending.take() {
                        if !self.publish(&last).await {
                            Counters::add(&self.counters.broadcasts_dropped, 1);
                        }
                    }
                    return;
                }
                Some(Some(mut next)) => {
                    if pending.is_some() {
                        // Degraded: only the newest tip matters.
                        let mut superseded = 1;
                        while let Ok(newer) = rx.try_recv() {
                            superseded += 1;
                            next = newer;
                        }
                        Counters::add(&self.counters.broadcasts_dropped, superseded);
                    }
                    pending = Some(next);
                }
                None => {
                    if !connected {
                        continue; // retry once the client has reconnected
                    }
                    if reconnected && pending.is_none() {
                        pending = last_published.take();
                    }
                }
            }
            if let Some(tip) = pending.take() {
                if self.publish(&tip).await {
                    last_published = Some(tip);
                } else {
                    pending = Some(tip);
                }
            }
        }
    }

    /// Publishes one tip, every part in order; false (logged) when a part
    /// was not acknowledged (all are sent again: the stream keeps each
    /// message id once).
    async fn publish(&mut self, broadcast: &Broadcast) -> bool {
        if self.publisher.is_none() {
            match TipPublisher::with_op_timeout(
                self.client.clone(),
                self.scope.as_str(),
                self.timeout,
            )
            .await
            {
                Ok(p) => self.publisher = Some(p),
                Err(e) => {
                    tracing::warn!(error = %chain(&e), "tip stream unavailable");
                    return false;
                }
            }
        }
        let Some(publisher) = &self.publisher else {
            return false;
        };
        for part in &broadcast.parts {
            if let Err(e) = publisher.publish(part, &broadcast.trace).await {
                tracing::warn!(tip = %part.hash, part = part.part, error = %chain(&e), "tip not published");
                self.publisher = None;
                return false;
            }
        }
        Counters::add(&self.counters.broadcasts_published, 1);
        if let Some(tip) = broadcast.tip() {
            tracing::debug!(tip = %tip.hash, seq = tip.seq, parts = broadcast.parts.len(), "tip published");
        }
        true
    }
}

pub(crate) use crate::chain::chain;

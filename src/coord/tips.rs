//! Tip broadcasts: the hub publishes each new trunk tip on the trial's tip
//! stream ([`TipPublisher`]), with W3C trace context in NATS headers; leaves
//! follow it through an ordered, ephemeral consumer ([`TipSubscription`])
//! that needs no acks, so a slow leaf never holds the hub back, and read the
//! latest tip directly when they join late ([`latest_tip`]). The stream
//! keeps a bounded history (bytes and age): a late subscriber starts at the
//! latest tip, a following one gets every tip in order; tips already pushed
//! to the client are buffered there, and [`TipSubscription::next_latest`]
//! coalesces those. The message itself is defined in `tip.rs`.

use std::future::IntoFuture;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, context::Publish, stream};
use async_nats::Client;
use futures::{FutureExt, StreamExt};

use super::client::{
    ensure_tip_stream, jetstream_context, nats_error, within, Coord, DEFAULT_OP_TIMEOUT,
};
use super::deployment::Deployment;
use super::error::CoordError;
use super::names::Scope;
use super::tip::{trace_headers, trace_of_headers, Tip};
use crate::telemetry::W3c;

/// First and longest wait between failed consumer recreations.
const RETRY_DELAY_MIN: Duration = Duration::from_millis(50);
const RETRY_DELAY_MAX: Duration = Duration::from_secs(2);

/// One received broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TipEvent {
    /// The announced tip.
    pub tip: Tip,
    /// The trace context it was published under.
    pub trace: W3c,
    /// The message's sequence in the tip stream (strictly increasing).
    pub stream_seq: u64,
    /// How many older, already received tips [`TipSubscription::next_latest`]
    /// dropped in favour of this one (always 0 from `next`).
    pub superseded: u64,
}

/// Publishes tips on one trial's tip stream.
#[derive(Debug, Clone)]
pub struct TipPublisher {
    js: jetstream::Context,
    subject: String,
    op_timeout: Duration,
}

impl TipPublisher {
    /// Gets or creates the trial's tip stream and returns a publisher on it,
    /// with the default operation timeout.
    pub async fn new(client: Client, scope: &str) -> Result<TipPublisher, CoordError> {
        TipPublisher::with_op_timeout(client, scope, DEFAULT_OP_TIMEOUT).await
    }

    /// As [`TipPublisher::new`] with a chosen operation timeout.
    pub async fn with_op_timeout(
        client: Client,
        scope: &str,
        op_timeout: Duration,
    ) -> Result<TipPublisher, CoordError> {
        let scope = Scope::new(scope)?;
        let js = jetstream_context(&client, op_timeout);
        ensure_tip_stream(&js, &scope, op_timeout, Deployment::current().replicas).await?;
        Ok(TipPublisher {
            js,
            subject: scope.tip_subject(),
            op_timeout,
        })
    }

    /// Publishes `tip` and waits for the stream's acknowledgement. The tip
    /// hash (and part, for a split bundle) is the message id, so retrying a
    /// publish whose ack was lost (e.g. across a server restart) stores it
    /// once.
    pub async fn publish(&self, tip: &Tip, trace: &W3c) -> Result<(), CoordError> {
        let op = format!("publish tip {} seq {}", tip.hash, tip.seq);
        let payload = tip.to_payload();
        let id = match tip.parts {
            0 | 1 => tip.hash.clone(),
            _ => format!("{}.{}", tip.hash, tip.part),
        };
        let message = Publish::build()
            .payload(payload.into())
            .headers(trace_headers(trace, &op)?)
            .message_id(id);
        let ack = within(
            self.op_timeout,
            &op,
            "publish",
            self.js.send_publish(self.subject.clone(), message),
        )
        .await?
        .map_err(|err| nats_error(&op, "publish", err))?;
        within(self.op_timeout, &op, "await ack", ack.into_future())
            .await?
            .map_err(|err| nats_error(&op, "await ack", err))?;
        Ok(())
    }
}

/// A leaf's view of the tip stream: every tip still in the stream when it is
/// delivered, in stream order, never going back. Recreates its consumer
/// after a server restart (the client library does so on reconnect; this
/// type does so again if the library gives up).
pub struct TipSubscription {
    source: TipSource,
    messages: Option<consumer::push::Ordered>,
    /// An error met while coalescing, reported by the next call.
    pending_error: Option<CoordError>,
    /// Wait before the next consumer recreation, after a failed one; zero
    /// after a success. Keeps a caller looping over errors from spinning
    /// while the server is away.
    retry_delay: Duration,
    /// Stream sequence of the last delivered message; 0 before the first.
    last_stream_seq: u64,
}

/// Where a [`TipSubscription`] (re)creates its consumer. Kept apart from
/// the consumer itself (which is not `Sync`) so that borrowing it across an
/// await keeps the subscription's futures `Send`.
struct TipSource {
    client: Client,
    js: jetstream::Context,
    stream_name: String,
    subject: String,
    op_timeout: Duration,
    /// Where the first consumer starts: the latest tip, or every tip
    /// published since this instant.
    since: Option<time::OffsetDateTime>,
}

impl std::fmt::Debug for TipSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TipSubscription")
            .field("stream", &self.source.stream_name)
            .field("last_stream_seq", &self.last_stream_seq)
            .finish_non_exhaustive()
    }
}

/// Subscribes to one trial's tips, starting with the latest tip (if any).
pub async fn subscribe_tips(
    client: Client,
    scope: &str,
    op_timeout: Duration,
) -> Result<TipSubscription, CoordError> {
    subscribe(client, scope, op_timeout, None).await
}

/// Subscribes to one trial's tips, starting with every tip the stream
/// still holds that was published at `since` or later: a full leaf that
/// catches up from the stream passes the moment it began to clone (less
/// a margin for clocks), so the batches that landed while it cloned reach
/// it too and cost no pull.
pub async fn subscribe_tips_since(
    client: Client,
    scope: &str,
    op_timeout: Duration,
    since: std::time::SystemTime,
) -> Result<TipSubscription, CoordError> {
    subscribe(
        client,
        scope,
        op_timeout,
        Some(time::OffsetDateTime::from(since)),
    )
    .await
}

async fn subscribe(
    client: Client,
    scope: &str,
    op_timeout: Duration,
    since: Option<time::OffsetDateTime>,
) -> Result<TipSubscription, CoordError> {
    let scope = Scope::new(scope)?;
    let js = jetstream_context(&client, op_timeout);
    ensure_tip_stream(&js, &scope, op_timeout, Deployment::current().replicas).await?;
    let source = TipSource {
        client,
        js,
        stream_name: scope.tips_stream(),
        subject: scope.tip_subject(),
        op_timeout,
        since,
    };
    let messages = source.start_consumer(0).await?;
    Ok(TipSubscription {
        source,
        messages: Some(messages),
        pending_error: None,
        retry_delay: Duration::ZERO,
        last_stream_seq: 0,
    })
}

impl TipSource {
    /// Creates an ordered consumer starting after stream sequence
    /// `last_stream_seq`, or, when it is 0, at the latest tip (or at the
    /// first published since [`TipSource::since`]).
    async fn start_consumer(
        &self,
        last_stream_seq: u64,
    ) -> Result<consumer::push::Ordered, CoordError> {
        let op = format!("subscribe to tips on {}", self.stream_name);
        let deliver_policy = match (last_stream_seq, self.since) {
            (0, None) => consumer::DeliverPolicy::LastPerSubject,
            (0, Some(start_time)) => consumer::DeliverPolicy::ByStartTime { start_time },
            (last, _) => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: last + 1,
            },
        };
        let stream: stream::Stream = within(
            self.op_timeout,
            &op,
            "get stream",
            self.js.get_stream(&self.stream_name),
        )
        .await?
        .map_err(|err| nats_error(&op, "get stream", err))?;
        let consumer = within(
            self.op_timeout,
            &op,
            "create consumer",
            stream.create_consumer(consumer::push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                filter_subject: self.subject.clone(),
                deliver_policy,
                ..Default::default()
            }),
        )
        .await?
        .map_err(|err| nats_error(&op, "create consumer", err))?;
        within(self.op_timeout, &op, "start messages", consumer.messages())
            .await?
            .map_err(|err| nats_error(&op, "start messages", err))
    }
}

impl TipSubscription {
    /// The next tip. `Some(Err(_))` reports a transient problem (a missed
    /// heartbeat while the server is away, a failed consumer recreation, an
    /// undecodable message); the subscription stays usable and the next call
    /// carries on. `None` when the client connection was closed for good.
    pub async fn next(&mut self) -> Option<Result<TipEvent, CoordError>> {
        if let Some(err) = self.pending_error.take() {
            return Some(Err(err));
        }
        let stream_name = &self.source.stream_name;
        let op = || format!("receive tip on {stream_name}");
        loop {
            let messages = match self.messages.as_mut() {
                Some(messages) => messages,
                None => {
                    tokio::time::sleep(self.retry_delay).await;
                    match self.source.start_consumer(self.last_stream_seq).await {
                        Ok(messages) => {
                            self.retry_delay = Duration::ZERO;
                            self.messages.insert(messages)
                        }
                        Err(err) => {
                            self.retry_delay =
                                (self.retry_delay * 2).clamp(RETRY_DELAY_MIN, RETRY_DELAY_MAX);
                            return Some(Err(err));
                        }
                    }
                }
            };
            let message = match messages.next().await? {
                Ok(message) => message,
                Err(err) => {
                    if err.kind() != consumer::push::OrderedErrorKind::MissingHeartbeat {
                        // The library gave up on this consumer; start over
                        // after the last delivered message on the next call.
                        self.messages = None;
                    }
                    return Some(Err(nats_error(&op(), "consume", err)));
                }
            };
            let stream_seq = match message.info() {
                Ok(info) => info.stream_sequence,
                Err(err) => return Some(Err(nats_error(&op(), "read message info", err))),
            };
            if stream_seq <= self.last_stream_seq {
                // A recreated consumer may repeat what we already delivered.
                continue;
            }
            self.last_stream_seq = stream_seq;
            let tip = match Tip::from_payload(&message.payload) {
                Ok(tip) => tip,
                Err(source) => {
                    return Some(Err(CoordError::Decode {
                        op: op(),
                        what: "tip",
                        source,
                    }))
                }
            };
            let trace = trace_of_headers(message.headers.as_ref());
            return Some(Ok(TipEvent {
                tip,
                trace,
                stream_seq,
                superseded: 0,
            }));
        }
    }

    /// The subscription as a `Stream` of [`TipSubscription::next`] items.
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<TipEvent, CoordError>> + Send {
        futures::stream::unfold(self, |mut subscription| async move {
            subscription.next().await.map(|item| (item, subscription))
        })
    }

    /// Every tip available: waits for one, then takes every tip already
    /// received without waiting, oldest first. A leaf applies them in one
    /// transaction instead of one each.
    pub async fn next_batch(&mut self) -> Option<Result<Vec<TipEvent>, CoordError>> {
        let first = match self.next().await? {
            Ok(event) => event,
            Err(err) => return Some(Err(err)),
        };
        let mut batch = vec![first];
        // Only ready messages: a consumer being recreated is not waited for.
        while self.messages.is_some() {
            match self.next().now_or_never() {
                Some(Some(Ok(newer))) => batch.push(newer),
                Some(Some(Err(err))) => {
                    self.pending_error = Some(err);
                    break;
                }
                Some(None) | None => break,
            }
        }
        Some(Ok(batch))
    }

    /// The newest tip available ([`TipSubscription::next_batch`]'s last),
    /// counting the dropped ones in [`TipEvent::superseded`]. A leaf that
    /// pulls per broadcast uses this to skip tips a newer one made moot.
    pub async fn next_latest(&mut self) -> Option<Result<TipEvent, CoordError>> {
        let batch = match self.next_batch().await? {
            Ok(batch) => batch,
            Err(err) => return Some(Err(err)),
        };
        let superseded = batch.len() as u64 - 1;
        batch.into_iter().last().map(|latest| {
            Ok(TipEvent {
                superseded,
                ..latest
            })
        })
    }
}

/// The latest tip of a trial, for a late joiner; `None` before the first
/// broadcast.
pub async fn latest_tip(
    client: Client,
    scope: &str,
    op_timeout: Duration,
) -> Result<Option<Tip>, CoordError> {
    let scope = Scope::new(scope)?;
    let js = jetstream_context(&client, op_timeout);
    let stream = ensure_tip_stream(&js, &scope, op_timeout, Deployment::current().replicas).await?;
    read_latest(&stream, &scope, op_timeout).await
}

async fn read_latest(
    stream: &stream::Stream,
    scope: &Scope,
    op_timeout: Duration,
) -> Result<Option<Tip>, CoordError> {
    let op = format!("read latest tip on {}", scope.tips_stream());
    let got = within(
        op_timeout,
        &op,
        "direct get",
        stream.direct_get_last_for_subject(scope.tip_subject()),
    )
    .await?;
    match got {
        Ok(message) => Tip::from_payload(&message.payload)
            .map(Some)
            .map_err(|source| CoordError::Decode {
                op,
                what: "tip",
                source,
            }),
        Err(err) if err.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
        Err(err) => Err(nats_error(&op, "direct get", err)),
    }
}

impl Coord {
    /// Subscribes to this trial's tips over this handle's connection.
    pub async fn subscribe_tips(&self) -> Result<TipSubscription, CoordError> {
        subscribe_tips(
            self.client.clone(),
            self.scope.as_str(),
            self.config.op_timeout,
        )
        .await
    }

    /// The latest tip of this trial, `None` before the first broadcast.
    pub async fn latest_tip(&self) -> Result<Option<Tip>, CoordError> {
        read_latest(&self.tips, &self.scope, self.config.op_timeout).await
    }

    /// A publisher on this trial's tip stream over this handle's connection.
    pub async fn tip_publisher(&self) -> Result<TipPublisher, CoordError> {
        TipPublisher::with_op_timeout(
            self.client.clone(),
            self.scope.as_str(),
            self.config.op_timeout,
        )
        .await
    }
}

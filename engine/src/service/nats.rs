//! NATS JetStream: the names the engine uses, its streams, and the tick
//! consumer.
//!
//! Ticks arrive on `PROVENANT_TICKS` (subjects `provenant.ticks.<world_id>`)
//! through the durable pull consumer `provenant-engine`; the relay publishes
//! the log to `PROVENANT_EVENTS` (subjects
//! `provenant.events.<world_id or _>.<plugin_id or engine>.<kind>`). A prefix
//! other than `provenant` renames all of them (tests use one each).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures_util::StreamExt;
use provenant_events::{Event, EventKind, PluginId, WorldId};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Engine;
use super::health::Health;
use crate::intake::{self, Rejection};

/// The subjects, streams and consumer of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsNames {
    prefix: String,
}

impl NatsNames {
    /// `prefix` is 1 to 32 characters of `[a-z0-9_-]`.
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        let ok = !prefix.is_empty()
            && prefix.len() <= 32
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        anyhow::ensure!(
            ok,
            "invalid NATS prefix {prefix:?}: expected 1 to 32 characters of [a-z0-9_-]"
        );
        Ok(NatsNames {
            prefix: prefix.to_owned(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn upper(&self) -> String {
        self.prefix.to_ascii_uppercase().replace('-', "_")
    }

    /// `PROVENANT_TICKS` for the default prefix.
    pub fn ticks_stream(&self) -> String {
        format!("{}_TICKS", self.upper())
    }

    /// `PROVENANT_EVENTS` for the default prefix.
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.upper())
    }

    /// The subject a game publishes a world's ticks on.
    /// `<PREFIX>_ANCHORS`: the log's head, published periodically.
    pub fn anchors_stream(&self) -> String {
        format!("{}_ANCHORS", self.upper())
    }

    /// `<prefix>.anchors`
    pub fn anchors_subject(&self) -> String {
        format!("{}.anchors", self.prefix)
    }

    pub fn ticks_subject(&self, world: &str) -> String {
        format!("{}.ticks.{world}", self.prefix)
    }

    pub fn ticks_wildcard(&self) -> String {
        format!("{}.ticks.>", self.prefix)
    }

    pub fn events_wildcard(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    /// `<prefix>.events.<world_id or _>.<plugin_id or engine>.<kind>`.
    pub fn event_subject(&self, event: &Event) -> String {
        self.subject_of(
            event.world_id.as_ref(),
            event.plugin_id.as_ref(),
            &event.kind,
        )
    }

    /// [`event_subject`](Self::event_subject) from the routing fields.
    pub fn subject_of(
        &self,
        world: Option<&WorldId>,
        plugin: Option<&PluginId>,
        kind: &EventKind,
    ) -> String {
        format!(
            "{}.events.{}.{}.{}",
            self.prefix,
            world.map_or("_", |w| w.as_str()),
            plugin.map_or("engine", |p| p.as_str()),
            kind.as_str()
        )
    }

    /// The engine's durable consumer of ticks.
    pub fn consumer(&self) -> String {
        format!("{}-engine", self.prefix)
    }

    /// Where the engine announces each tick it acknowledged (core NATS, not
    /// stored): `<prefix>.acked.<world_id>`, body the tick's outcome.
    pub fn acked_subject(&self, world: &str) -> String {
        format!("{}.acked.{world}", self.prefix)
    }

    pub fn acked_wildcard(&self) -> String {
        format!("{}.acked.>", self.prefix)
    }

    /// The name of the relay's checkpoint in the log: the position of the
    /// last event acknowledged by the events stream.
    pub fn relay_checkpoint(&self) -> String {
        format!("relay:{}", self.events_stream())
    }

    /// The world a ticks subject names.
    fn subject_world<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject.strip_prefix(&self.prefix)?.strip_prefix(".ticks.")
    }
}

/// Connects, retrying in the background when the server is not there yet;
/// `health` follows the connection.
pub async fn connect(url: &str, health: Arc<Health>) -> anyhow::Result<async_nats::Client> {
    let events_health = health.clone();
    let client = async_nats::ConnectOptions::new()
        .name("provenant")
        .retry_on_initial_connect()
        .event_callback(move |event| {
            let health = events_health.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!("NATS connected");
                        health.nats(None);
                    }
                    async_nats::Event::Disconnected => {
                        tracing::warn!("NATS disconnected; reconnecting");
                        health.nats(Some("NATS disconnected; reconnecting".into()));
                    }
                    other => tracing::info!("NATS: {other}"),
                }
            }
        })
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to NATS at {url}"))?;
    Ok(client)
}

/// Creates the ticks and events streams when they are missing.
pub async fn ensure_streams(js: &jetstream::Context, names: &NatsNames) -> anyhow::Result<()> {
    js.get_or_create_stream(stream::Config {
        name: names.ticks_stream(),
        description: Some("provenant: ticks from the game, consumed by the engine".into()),
        subjects: vec![names.ticks_wildcard()],
        retention: stream::RetentionPolicy::WorkQueue,
        max_message_size: (intake::MAX_TICK_BYTES * 2) as i32,
        ..Default::default()
    })
    .await
    .with_context(|| format!("cannot create the stream {}", names.ticks_stream()))?;
    js.get_or_create_stream(stream::Config {
        name: names.events_stream(),
        description: Some("provenant: every event of the log, in position order".into()),
        subjects: vec![names.events_wildcard()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .with_context(|| format!("cannot create the stream {}", names.events_stream()))?;
    js.get_or_create_stream(stream::Config {
        name: names.anchors_stream(),
        description: Some(
            "provenant: the log's head (position and hash), published periodically: anchors to pin `audit verify --expect-head` against".into(),
        ),
        subjects: vec![names.anchors_subject()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .with_context(|| format!("cannot create the stream {}", names.anchors_stream()))?;
    Ok(())
}

/// How long NATS waits for a delivered tick's acknowledgment before it
/// delivers the tick again: after an engine dies, its ticks go to the next
/// one after this long. Ticks still being worked on are kept from it by
/// progress acknowledgments every [`PROGRESS_EVERY`].
const ACK_WAIT: Duration = Duration::from_secs(10);
const PROGRESS_EVERY: Duration = Duration::from_secs(3);
/// How long one pull request lasts. The server goes on delivering to the
/// request of an engine that died until it expires (and those ticks then
/// wait [`ACK_WAIT`]), so it is short.
const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// Consumes ticks until `shutdown`; each is acknowledged once its events are
/// durable, a bad one is recorded and terminated. Returns when it has
/// stopped taking ticks and every tick taken is answered.
pub async fn consume_ticks(
    engine: Arc<Engine>,
    js: jetstream::Context,
    names: NatsNames,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut in_flight = JoinSet::new();
    let mut wait = Duration::from_millis(100);
    'connect: while !*shutdown.borrow() {
        let mut messages = match open_consumer(&js, &names).await {
            Ok(m) => {
                engine.health.consumer(None);
                wait = Duration::from_millis(100);
                m
            }
            Err(e) => {
                let reason = format!("tick consumer not running: {}", crate::cli::error_text(&e));
                tracing::warn!("{reason}; retrying in {wait:?}");
                engine.health.consumer(Some(reason));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = super::stopped(&mut shutdown) => break 'connect,
                }
                wait = (wait * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                _ = super::stopped(&mut shutdown) => break 'connect,
            };
            while in_flight.try_join_next().is_some() {}
            match next {
                Some(Ok(message)) => take(&engine, &js, &names, message, &mut in_flight).await,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "tick consumer: {e}");
                    // Heartbeat and connection problems end this pull; a new
                    // one starts after the client has reconnected.
                    use async_nats::jetstream::consumer::pull::MessagesErrorKind as K;
                    if !matches!(
                        e.kind(),
                        K::MissingHeartbeat | K::ConsumerDeleted | K::NoResponders
                    ) {
                        continue;
                    }
                    engine
                        .health
                        .consumer(Some(format!("tick consumer interrupted: {e}")));
                    continue 'connect;
                }
                None => continue 'connect,
            }
        }
    }
    // Stopped taking ticks: answer the ones taken.
    while in_flight.join_next().await.is_some() {}
}

async fn open_consumer(
    js: &jetstream::Context,
    names: &NatsNames,
) -> anyhow::Result<consumer::pull::Stream> {
    let stream = js
        .get_stream(names.ticks_stream())
        .await
        .with_context(|| format!("no stream {}", names.ticks_stream()))?;
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            &names.consumer(),
            consumer::pull::Config {
                durable_name: Some(names.consumer()),
                description: Some("provenant engine: evaluates ticks".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: 4096,
                filter_subject: names.ticks_wildcard(),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("cannot create the consumer {}", names.consumer()))?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(1000)
        .expires(PULL_EXPIRES)
        .heartbeat(PULL_EXPIRES / 2)
        .messages()
        .await
        .context("cannot pull ticks")?;
    Ok(messages)
}

/// Takes one message: queues its tick behind its world's (so order holds)
/// and leaves the waiting for durability to a task.
async fn take(
    engine: &Arc<Engine>,
    js: &jetstream::Context,
    names: &NatsNames,
    message: jetstream::Message,
    in_flight: &mut JoinSet<()>,
) {
    let subject = message.subject.to_string();
    let source: Arc<str> = format!("nats:{subject}").into();
    let parsed =
        intake::parse_tick(&message.payload).and_then(|tick| match names.subject_world(&subject) {
            Some(w) if w == tick.world_id.as_str() => Ok(tick),
            other => Err(Rejection {
                reason: format!(
                    "the tick is for world {} but was published on {subject} ({})",
                    tick.world_id,
                    other.map_or("not a ticks subject".to_owned(), |w| format!("world {w}"))
                ),
                excerpt: intake::excerpt(&message.payload),
                bytes: message.payload.len(),
            }),
        });
    match parsed {
        Ok(tick) => {
            let tick_id = tick.tick_id;
            match engine.worlds.enqueue_tick(tick, source).await {
                Ok(answer) => {
                    let client = js.client();
                    let acked = names.acked_subject(&subject_world_or_tick(names, &subject));
                    in_flight.spawn(async move {
                        // While the tick waits for its world and the log,
                        // NATS is told it is still being worked on, so a
                        // short ack wait redelivers only ticks of an engine
                        // that is gone.
                        let mut answer = answer;
                        let mut progress = tokio::time::interval_at(
                            tokio::time::Instant::now() + PROGRESS_EVERY,
                            PROGRESS_EVERY,
                        );
                        let result = loop {
                            tokio::select! {
                                result = &mut answer => break result,
                                _ = progress.tick() => {
                                    if let Err(e) = message.ack_with(AckKind::Progress).await {
                                        tracing::debug!(%tick_id, error = %e, "cannot extend a tick's ack wait");
                                    }
                                }
                            }
                        };
                        match result {
                            Ok(Ok(outcome)) => {
                                if let Err(e) = message.ack().await {
                                    tracing::warn!(%tick_id, error = %e, "cannot acknowledge a tick; it will be redelivered and recognised");
                                    return;
                                }
                                if let Ok(body) = serde_json::to_vec(&outcome) {
                                    let _ = client.publish(acked, body.into()).await;
                                }
                            }
                            // Not durable: left unacknowledged, NATS redelivers it.
                            Ok(Err(e)) => tracing::warn!(%tick_id, "tick not processed: {e}"),
                            Err(_) => tracing::warn!(%tick_id, "tick not processed: the engine stopped"),
                        }
                    });
                }
                Err(e) => tracing::warn!(%tick_id, "tick not taken: {e}"),
            }
        }
        Err(rejection) => {
            let engine = engine.clone();
            in_flight.spawn(async move {
                match engine.record_rejection(&rejection, &source).await {
                    Ok(_) => {
                        if let Err(e) = message.ack_with(AckKind::Term).await {
                            tracing::warn!(error = %e, "cannot terminate a rejected tick");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(
                            "cannot record a rejected tick ({e}); it stays unacknowledged"
                        )
                    }
                }
            });
        }
    }
}

/// The world a ticks subject names (the subject was checked against the
/// tick's world before this is called).
fn subject_world_or_tick(names: &NatsNames, subject: &str) -> String {
    names.subject_world(subject).unwrap_or("_").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        let n = NatsNames::new("provenant").unwrap();
        assert_eq!(n.ticks_stream(), "PROVENANT_TICKS");
        assert_eq!(n.events_stream(), "PROVENANT_EVENTS");
        assert_eq!(n.ticks_subject("w1"), "provenant.ticks.w1");
        assert_eq!(n.subject_world("provenant.ticks.w1"), Some("w1"));
        assert_eq!(n.subject_world("other.ticks.w1"), None);
        let t = NatsNames::new("t-1a").unwrap();
        assert_eq!(t.events_stream(), "T_1A_EVENTS");
        assert_eq!(t.consumer(), "t-1a-engine");
        for bad in ["", "A", "a.b", "a*", &"x".repeat(33)] {
            assert!(NatsNames::new(bad).is_err(), "{bad:?}");
        }
    }
}

//! NATS JetStream: the connection, the engine's streams, and the tick
//! consumer (names in [`crate::nats_names`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::engine::Engine;
use super::health::Health;
use super::nats_applied;
use crate::nats_names::NatsNames;
use provenant_host::intake::{self, Rejection};

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

/// The engine's streams: ticks (a work queue), events, anchors.
fn stream_configs(names: &NatsNames) -> [stream::Config; 3] {
    [
        stream::Config {
            name: names.ticks_stream(),
            description: Some("provenant: ticks from the game, consumed by the engine".into()),
            subjects: vec![names.ticks_wildcard()],
            retention: stream::RetentionPolicy::WorkQueue,
            max_message_size: (intake::MAX_TICK_BYTES * 2) as i32,
            ..Default::default()
        },
        stream::Config {
            name: names.events_stream(),
            description: Some("provenant: every event of the log, in position order".into()),
            subjects: vec![names.events_wildcard()],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        },
        stream::Config {
            name: names.anchors_stream(),
            description: Some(
                "provenant: the log's head (position and hash), published periodically: anchors to pin `audit verify --expect-head` against".into(),
            ),
            subjects: vec![names.anchors_subject()],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        },
    ]
}

/// Creates the ticks and events streams when they are missing, and checks
/// that the server holds each as asked ([`nats_applied`]).
pub async fn ensure_streams(js: &jetstream::Context, names: &NatsNames) -> anyhow::Result<()> {
    for wanted in stream_configs(names) {
        let name = wanted.name.clone();
        let mut stream = js
            .get_or_create_stream(wanted.clone())
            .await
            .with_context(|| format!("cannot create the stream {name}"))?;
        let applied = &stream
            .info()
            .await
            .with_context(|| format!("cannot read the stream {name}"))?
            .config;
        let found = nats_applied::stream_mismatches(&wanted, applied);
        anyhow::ensure!(
            found.is_empty(),
            "{}",
            nats_applied::refusal(&format!("the stream {name}"), &server_version(js), &found)
        );
    }
    Ok(())
}

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
                let reason = format!(
                    "tick consumer not running: {}",
                    crate::error_text::error_text(&e)
                );
                tracing::warn!("{reason}; retrying in {wait:?}");
                engine.health.consumer(Some(reason));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = super::signals::stopped(&mut shutdown) => break 'connect,
                }
                wait = (wait * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                _ = super::signals::stopped(&mut shutdown) => break 'connect,
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

/// Creates the tick consumer when it is missing, and checks that the server
/// holds it as asked ([`nats_applied`]); called at start-up (a mismatch
/// refuses to start) and at each (re)connection.
pub async fn ensure_consumer(
    js: &jetstream::Context,
    names: &NatsNames,
) -> anyhow::Result<consumer::PullConsumer> {
    let stream = js
        .get_stream(names.ticks_stream())
        .await
        .with_context(|| format!("no stream {}", names.ticks_stream()))?;
    let wanted = consumer::pull::Config {
        durable_name: Some(names.consumer()),
        description: Some("provenant engine: evaluates ticks".into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_ack_pending: 4096,
        filter_subject: names.ticks_wildcard(),
        ..Default::default()
    };
    let mut consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(&names.consumer(), wanted.clone())
        .await
        .with_context(|| format!("cannot create the consumer {}", names.consumer()))?;
    let applied = &consumer
        .info()
        .await
        .with_context(|| format!("cannot read the consumer {}", names.consumer()))?
        .config;
    let found = nats_applied::consumer_mismatches(&wanted, applied);
    anyhow::ensure!(
        found.is_empty(),
        "{}",
        nats_applied::refusal(
            &format!(
                "the consumer {} of {}",
                names.consumer(),
                names.ticks_stream()
            ),
            &server_version(js),
            &found
        )
    );
    Ok(consumer)
}

/// The version the connected server announced (known once connected).
fn server_version(js: &jetstream::Context) -> String {
    js.client().server_info().version
}

async fn open_consumer(
    js: &jetstream::Context,
    names: &NatsNames,
) -> anyhow::Result<consumer::pull::Stream> {
    let consumer = ensure_consumer(js, names).await?;
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

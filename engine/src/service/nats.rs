//! NATS JetStream: the connection and the engine's streams (names in
//! [`crate::nats_names`]; the tick consumers are [`super::ticks`]').

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use provenant_events::Partitions;

use super::health::Health;
use super::nats_applied;
use crate::nats_connect::{NatsAuth, shown_url};
use crate::nats_names::NatsNames;
use provenant_host::intake;

/// Connects, retrying in the background when the server is not there yet;
/// `health` follows the connection.
pub async fn connect(
    url: &str,
    auth: &NatsAuth,
    health: Arc<Health>,
) -> anyhow::Result<async_nats::Client> {
    let events_health = health.clone();
    let client = auth
        .options()
        .await?
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
        .with_context(|| format!("cannot connect to NATS at {}", shown_url(url)))?;
    Ok(client)
}

/// How the engine's streams are laid out.
#[derive(Debug, Clone, Copy)]
pub struct StreamsConfig {
    /// The cluster's partitions: with more than one, ticks are filed by
    /// partition (nats-server 2.10+).
    pub partitions: Partitions,
    /// Copies of each stream on a cluster of nats-servers (1 to 5).
    pub replicas: usize,
}

/// The engine's streams: ticks (a work queue; with several partitions,
/// filed under each world's partition), events, anchors.
fn stream_configs(names: &NatsNames, config: StreamsConfig) -> [stream::Config; 3] {
    let n = config.partitions.count();
    let num_replicas = config.replicas;
    [
        stream::Config {
            name: names.ticks_stream(),
            description: Some("provenant: ticks from the game, consumed by the engine".into()),
            subjects: vec![names.ticks_subjects(n)],
            subject_transform: names.ticks_transform(n).map(|(source, destination)| {
                stream::SubjectTransform {
                    source,
                    destination,
                }
            }),
            retention: stream::RetentionPolicy::WorkQueue,
            max_message_size: (intake::MAX_TICK_BYTES * 2) as i32,
            num_replicas,
            ..Default::default()
        },
        stream::Config {
            name: names.events_stream(),
            description: Some("provenant: every event of the log, in position order".into()),
            subjects: vec![names.events_wildcard()],
            duplicate_window: Duration::from_secs(120),
            num_replicas,
            ..Default::default()
        },
        stream::Config {
            name: names.anchors_stream(),
            description: Some(
                "provenant: the log's head (position and hash), published periodically: anchors to pin `audit verify --expect-head` against".into(),
            ),
            subjects: vec![names.anchors_subject()],
            duplicate_window: Duration::from_secs(120),
            num_replicas,
            ..Default::default()
        },
    ]
}

/// Creates the ticks and events streams when they are missing, and checks
/// that the server holds each as asked ([`nats_applied`]).
pub async fn ensure_streams(
    js: &jetstream::Context,
    names: &NatsNames,
    config: StreamsConfig,
) -> anyhow::Result<()> {
    for wanted in stream_configs(names, config) {
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

/// The version the connected server announced (known once connected).
pub fn server_version(js: &jetstream::Context) -> String {
    js.client().server_info().version
}

//! The engine's NATS side, from the outside, as a game uses it: ticks
//! published with JetStream to `<prefix>.ticks.<world_id>` (header
//! `Nats-Msg-Id: <tick_id>`, so that JetStream drops a second publish within
//! its window), and the engine's acknowledgment notices followed on
//! `<prefix>.acked.<world_id>` (core NATS, each a [`TickAck`]).

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, context::PublishAckFuture, context::PublishError};
use bytes::Bytes;
use provenant_events::TickAck;
use uuid::Uuid;

use crate::nats_names::NatsNames;

/// How a [`TickClient`] connects.
#[derive(Debug, Clone)]
pub struct TickClientConfig {
    /// The connection's name on the server (`provenant-demo`, …).
    pub name: &'static str,
    /// How long a JetStream request (a publish's acknowledgment, a stream's
    /// info) may take.
    pub request_timeout: Duration,
    /// Publishes awaiting their stream acknowledgment at once; publishing
    /// waits beyond it.
    pub acks_in_flight: usize,
    /// Credentials and TLS.
    pub auth: crate::nats_connect::NatsAuth,
}

/// A connection to the NATS server the engine uses, with JetStream.
pub struct TickClient {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub names: NatsNames,
    /// The server's URL without its password, for messages.
    pub url: String,
}

impl TickClient {
    /// Connects once: an unreachable server is an error at once.
    pub async fn connect(
        url: &str,
        names: NatsNames,
        config: &TickClientConfig,
    ) -> anyhow::Result<Self> {
        let shown = crate::nats_connect::shown_url(url);
        let client = config
            .auth
            .options()
            .await?
            .name(config.name)
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .with_context(|| format!("cannot connect to NATS at {shown}"))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(config.request_timeout)
            .max_ack_inflight(config.acks_in_flight)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Ok(TickClient {
            client,
            js,
            names,
            url: shown,
        })
    }

    /// Follows the engine's acknowledgment notices of every world; the
    /// subscription is in place on the server once this returns, so that no
    /// notice of a tick published afterwards is missed.
    pub async fn acknowledgments(&self) -> anyhow::Result<async_nats::Subscriber> {
        let subject = self.names.acked_wildcard();
        let notices = self
            .client
            .subscribe(subject.clone())
            .await
            .with_context(|| format!("cannot subscribe to {subject} at {}", self.url))?;
        self.client
            .flush()
            .await
            .with_context(|| format!("cannot reach NATS at {}", self.url))?;
        Ok(notices)
    }

    /// Publishes a tick's JSON to `subject` (its world's ticks subject) with
    /// `Nats-Msg-Id: <tick_id>`; the future of JetStream's acknowledgment
    /// that the stream stored it.
    pub async fn publish_tick(
        &self,
        subject: String,
        tick_id: Uuid,
        body: Bytes,
    ) -> Result<PublishAckFuture, PublishError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            tick_id.to_string().as_str(),
        );
        self.js.publish_with_headers(subject, headers, body).await
    }

    /// Sends what is buffered and closes the connection.
    pub async fn close(self) -> Result<(), async_nats::client::DrainError> {
        self.client.drain().await
    }
}

/// An acknowledgment notice's tick acknowledgment.
pub fn read_ack(message: &async_nats::Message) -> Result<TickAck, serde_json::Error> {
    serde_json::from_slice(&message.payload)
}

//! Anchors: the log's head (position and hash), published every interval to
//! `<prefix>.anchors` (stream `<PREFIX>_ANCHORS`) when it has moved, and once
//! more at a graceful stop. A hash chain cannot show that its tail was cut
//! off unless an earlier head is kept elsewhere: these messages are that
//! elsewhere, for `provenant audit verify --expect-head` and `provenant
//! audit anchors`. With a key (`--anchor-key-file`) every anchor is signed
//! (`crate::anchor`), so that one who may publish on the subject cannot
//! publish the anchor that makes a truncated log pass.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use provenant_events::Head;
use provenant_log::EventLog;
use tokio::sync::watch;

use crate::anchor::Anchor;
use crate::nats_names::NatsNames;

/// Where and how anchors are published.
#[derive(Clone)]
pub struct Anchors {
    pub log: EventLog,
    pub js: jetstream::Context,
    pub names: NatsNames,
    /// This engine's name, in every anchor.
    pub instance: String,
    /// The key anchors are signed with; None: unsigned.
    pub key: Option<std::sync::Arc<ed25519_dalek::SigningKey>>,
}

impl Anchors {
    /// Publishes the head every `every` while it moves, until `shutdown`.
    /// Errors are logged and retried at the next interval.
    pub async fn run(self, every: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut published: Option<Head> = None;
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = super::signals::stopped(&mut shutdown) => return,
            }
            match self.publish_if_moved(published).await {
                Ok(head) => published = head.or(published),
                Err(e) => tracing::warn!(
                    "cannot publish an anchor: {}; trying again in {every:?}",
                    crate::error_text::error_text(&e)
                ),
            }
        }
    }

    /// Publishes the current head unless it is `last` (or the log is
    /// empty); the head published, if any.
    pub async fn publish_if_moved(&self, last: Option<Head>) -> anyhow::Result<Option<Head>> {
        let head = self.log.head().await.context("cannot read the head")?;
        if head.position == 0 || Some(head) == last {
            return Ok(None);
        }
        let body = Anchor {
            head,
            at: provenant_events::event::format_timestamp(&chrono::Utc::now()),
            engine_instance: self.instance.clone(),
        }
        .to_json(self.key.as_deref());
        let mut headers = async_nats::HeaderMap::new();
        // The same head published twice (a restart, a retry) is stored once.
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("anchor:{head}").as_str(),
        );
        self.js
            .publish_with_headers(
                self.names.anchors_subject(),
                headers,
                body.to_string().into(),
            )
            .await
            .context("cannot publish the anchor")?
            .await
            .context("JetStream did not store the anchor")?;
        tracing::debug!(%head, "anchor published");
        Ok(Some(head))
    }
}

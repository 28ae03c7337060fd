//! The demo as a game on NATS: ticks published with JetStream, the engine's
//! acknowledgment notices followed, the events stream checked.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::{self, ErrorCode, context::GetStreamErrorKind};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use indicatif::ProgressBar;
use provenant_events::{Position, TickAck};
use provenant_host::tick::Tick;
use provenant_log::EventLog;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::limits::{ACK_IDLE, IN_FLIGHT, WAIT};
use super::ticks::{Tally, TickRef};
use crate::client::nats::{TickClient, TickClientConfig, read_ack};
use crate::nats_names::NatsNames;
use crate::service::events_stream::{LastMessage, last_message};

/// The demo as a game on NATS: publishes ticks with JetStream and follows
/// the engine's acknowledgment notices.
pub struct NatsSide {
    tick_client: TickClient,
    /// Ticks published and not yet acknowledged.
    pending: Arc<Mutex<HashSet<Uuid>>>,
    /// The answers to the pending ticks, as the notices come.
    answers: mpsc::UnboundedReceiver<TickAck>,
    notices: tokio::task::JoinHandle<()>,
}

impl NatsSide {
    /// Connects (an unreachable server is an error at once), checks that the
    /// events stream, if there is one, relays this log, and follows the
    /// acknowledgment notices before anything is sent.
    pub async fn connect(
        url: &str,
        names: NatsNames,
        log: &EventLog,
        bar: ProgressBar,
    ) -> anyhow::Result<Self> {
        let tick_client = TickClient::connect(
            url,
            names,
            &TickClientConfig {
                name: "provenant-demo",
                request_timeout: WAIT,
                acks_in_flight: IN_FLIGHT * 2,
                auth: Default::default(),
            },
        )
        .await?;
        check_events_stream(&tick_client.js, &tick_client.names, log, &tick_client.url).await?;
        let notices = tick_client.acknowledgments().await?;
        let pending = Arc::new(Mutex::new(HashSet::new()));
        let (tx, answers) = mpsc::unbounded_channel();
        let notices = tokio::spawn(follow_notices(notices, pending.clone(), tx, bar));
        Ok(NatsSide {
            tick_client,
            pending,
            answers,
            notices,
        })
    }

    /// The NATS server's URL, without its password.
    pub fn url(&self) -> &str {
        &self.tick_client.url
    }

    /// The engine's NATS names.
    pub fn names(&self) -> &NatsNames {
        &self.tick_client.names
    }

    /// The JetStream context ticks are published with.
    pub fn js(&self) -> &jetstream::Context {
        &self.tick_client.js
    }

    fn expect(&self, tick_id: Uuid) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tick_id);
    }

    /// Publishes every tick to `<prefix>.ticks.<world_id>` (header
    /// `Nats-Msg-Id: <tick_id>`), in order, then waits until each is
    /// acknowledged.
    pub async fn send(&mut self, ticks: impl Iterator<Item = Tick>) -> anyhow::Result<Tally> {
        let mut tally = Tally::default();
        let mut stored = FuturesUnordered::new();
        let started = Instant::now();
        for tick in ticks {
            while stored.len() >= IN_FLIGHT {
                if let Some((which, result)) = stored.next().await {
                    check_stored(which, result)?;
                }
            }
            let which = TickRef::from(&tick);
            let body = serde_json::to_vec(&tick).context("cannot encode a tick")?;
            let subject = self.names().ticks_subject(tick.world_id.as_str());
            self.expect(tick.tick_id);
            let ack = self
                .tick_client
                .publish_tick(subject, tick.tick_id, body.into())
                .await
                .with_context(|| format!("cannot publish {which}"))?;
            tally.sent += 1;
            stored.push(async move { (which, ack.await) });
        }
        while let Some((which, result)) = stored.next().await {
            check_stored(which, result)?;
        }
        while tally.acknowledged < tally.sent {
            match tokio::time::timeout(ACK_IDLE, self.answers.recv()).await {
                Ok(Some(answer)) => tally.answered(&answer),
                Ok(None) => anyhow::bail!(
                    "stopped following {} with {} of {} ticks not acknowledged",
                    self.names().acked_wildcard(),
                    tally.sent - tally.acknowledged,
                    tally.sent
                ),
                Err(_) => anyhow::bail!(
                    "{} of {} ticks not acknowledged: nothing came on {} for {}s (is another engine consuming {}?)",
                    tally.sent - tally.acknowledged,
                    tally.sent,
                    self.names().acked_wildcard(),
                    ACK_IDLE.as_secs(),
                    self.names().ticks_wildcard()
                ),
            }
        }
        tally.seconds = started.elapsed().as_secs_f64();
        Ok(tally)
    }

    /// Publishes a tick again, as a game retrying after JetStream's
    /// two-minute de-duplication window would (without `Nats-Msg-Id`, so
    /// that the engine, not the stream, recognises it); the engine's answer.
    pub async fn resend(&mut self, tick: &Tick) -> anyhow::Result<TickAck> {
        let which = TickRef::from(tick);
        let body = serde_json::to_vec(tick).context("cannot encode a tick")?;
        self.expect(tick.tick_id);
        let ack = self
            .js()
            .publish(
                self.names().ticks_subject(tick.world_id.as_str()),
                body.into(),
            )
            .await
            .with_context(|| format!("cannot publish {which} again"))?;
        check_stored(which.clone(), ack.await)?;
        let answer = async {
            while let Some(a) = self.answers.recv().await {
                if a.tick_id == tick.tick_id {
                    return Some(a);
                }
            }
            None
        };
        match tokio::time::timeout(WAIT, answer).await {
            Ok(Some(a)) => Ok(a),
            Ok(None) => anyhow::bail!(
                "stopped following {} before {which}, sent again, was acknowledged",
                self.names().acked_wildcard()
            ),
            Err(_) => anyhow::bail!(
                "{which}, sent again, was not acknowledged within {}s",
                WAIT.as_secs()
            ),
        }
    }

    /// Waits until the events stream's last message is the event at `head`;
    /// the messages the stream holds.
    pub async fn wait_for_relay(&self, head: Position) -> anyhow::Result<u64> {
        let deadline = Instant::now() + WAIT;
        loop {
            let last = last_message_of(self.js(), self.names()).await?;
            let reached = last.as_ref().map_or(0, |l| l.position);
            if let Some(last) = last
                && last.position >= head
            {
                anyhow::ensure!(
                    last.position == head,
                    "the stream {} is ahead of the log: its last event is at position {}, the log's head at {head}",
                    self.names().events_stream(),
                    last.position
                );
                return Ok(last.messages);
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "the relay did not catch up within {}s: the stream {} reaches position {reached}, the log's head is at {head}",
                    WAIT.as_secs(),
                    self.names().events_stream()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn close(self) {
        self.notices.abort();
        let _ = self.notices.await;
        if let Err(e) = self.tick_client.close().await {
            tracing::warn!(error = %e, "cannot close the demo's NATS connection cleanly");
        }
    }
}

fn check_stored(
    which: TickRef,
    result: Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
) -> anyhow::Result<()> {
    result
        .map(|_| ())
        .with_context(|| format!("JetStream did not store {which}"))
}

/// Forwards the answers to pending ticks, and counts them on the bar.
async fn follow_notices(
    mut notices: async_nats::Subscriber,
    pending: Arc<Mutex<HashSet<Uuid>>>,
    answers: mpsc::UnboundedSender<TickAck>,
    bar: ProgressBar,
) {
    while let Some(message) = notices.next().await {
        let answer: TickAck = match read_ack(&message) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(subject = %message.subject, "not an acknowledgment: {e}");
                continue;
            }
        };
        let ours = pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&answer.tick_id);
        if ours {
            bar.inc(1);
            if answers.send(answer).is_err() {
                return;
            }
        }
    }
}

/// None when the stream is missing or empty.
async fn last_message_of(
    js: &jetstream::Context,
    names: &NatsNames,
) -> anyhow::Result<Option<LastMessage>> {
    let name = names.events_stream();
    let mut stream = match js.get_stream(&name).await {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read the stream {name}")),
    };
    last_message(&mut stream, &name).await
}

/// Refuses a stream that holds another log's events: the relay would add
/// this log's after them.
async fn check_events_stream(
    js: &jetstream::Context,
    names: &NatsNames,
    log: &EventLog,
    url: &str,
) -> anyhow::Result<()> {
    let Some(last) = last_message_of(js, names).await? else {
        return Ok(());
    };
    let head = log.head().await.context("cannot read the log's head")?;
    let ours = log
        .read_forward(last.position - 1, 1)
        .await
        .context("cannot read the log")?
        .into_iter()
        .next()
        .filter(|e| e.position == last.position);
    let same = ours
        .as_ref()
        .is_some_and(|e| last.id.as_deref() == Some(e.event_id.to_string().as_str()));
    anyhow::ensure!(
        same,
        "the stream {} at {url} relays another log: its last message is event {} at position {}, {}; give this log a NATS prefix of its own (--nats-prefix or PROVENANT_NATS_PREFIX) or delete that stream",
        names.events_stream(),
        last.id.as_deref().unwrap_or("(no Nats-Msg-Id)"),
        last.position,
        match ours {
            Some(e) => format!("where this log holds event {}", e.event_id),
            None => format!(
                "beyond this log's head ({})",
                last.position.min(head.position)
            ),
        }
    );
    Ok(())
}

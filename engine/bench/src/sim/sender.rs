//! Sends ticks, over NATS (published with JetStream, acknowledged by the
//! engine's notices) or HTTP (`POST /v1/ticks`, acknowledged by the answer),
//! and has what comes back counted by the [`Tracker`].

use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::context::PublishAckFuture;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use provenant_engine::client::http::EngineApi;
use provenant_engine::client::nats::{TickClient, read_ack};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::tracker::Tracker;

/// Requests in flight at once over HTTP.
pub const HTTP_IN_FLIGHT: usize = 256;
/// JetStream publishes awaiting their stream acknowledgment at once; the
/// sender waits beyond that.
pub const NATS_ACKS_IN_FLIGHT: usize = 5_000;

/// Sends ticks, over NATS or HTTP, and has what comes back counted.
pub enum Sender {
    Nats {
        nats: Box<TickClient>,
        /// Each world's ticks subject.
        subjects: Vec<String>,
        /// Publishes awaiting their stream acknowledgment.
        stored: mpsc::Sender<(Uuid, PublishAckFuture)>,
        /// The tasks following acknowledgment notices and stream acks.
        tasks: JoinSet<()>,
        tracker: Tracker,
    },
    Http {
        api: EngineApi,
        in_flight: Arc<Semaphore>,
        requests: JoinSet<()>,
        tracker: Tracker,
    },
}

impl Sender {
    /// Subscribes to the acknowledgment notices before anything is sent.
    pub async fn nats(
        nats: TickClient,
        worlds: &[String],
        tracker: &Tracker,
    ) -> anyhow::Result<Self> {
        let notices = nats.acknowledgments().await?;
        let mut tasks = JoinSet::new();
        tasks.spawn(follow_notices(notices, tracker.clone()));
        let (stored, pending_acks) = mpsc::channel(NATS_ACKS_IN_FLIGHT);
        tasks.spawn(await_stored(pending_acks, tracker.clone()));
        let subjects = worlds.iter().map(|w| nats.names.ticks_subject(w)).collect();
        Ok(Sender::Nats {
            nats: Box::new(nats),
            subjects,
            stored,
            tasks,
            tracker: tracker.clone(),
        })
    }

    pub fn http(api: EngineApi, tracker: &Tracker) -> Self {
        Sender::Http {
            api,
            in_flight: Arc::new(Semaphore::new(HTTP_IN_FLIGHT)),
            requests: JoinSet::new(),
            tracker: tracker.clone(),
        }
    }

    pub fn transport(&self) -> &'static str {
        match self {
            Sender::Nats { .. } => "nats",
            Sender::Http { .. } => "http",
        }
    }

    /// Sends one tick (its latency starts once it can go: over HTTP when a
    /// request slot is free); waits only when too many are outstanding.
    pub async fn send(&mut self, world: usize, tick_id: Uuid, body: Bytes) {
        match self {
            Sender::Nats {
                nats,
                subjects,
                stored,
                tracker,
                ..
            } => {
                let subject = subjects[world].clone();
                tracker.sending(tick_id);
                match nats.publish_tick(subject, tick_id, body).await {
                    Ok(ack) => {
                        if stored.send((tick_id, ack)).await.is_err() {
                            tracker.failed(tick_id, "the stream acknowledgment was lost".into());
                        }
                    }
                    Err(e) => tracker.failed(tick_id, format!("not published: {e}")),
                }
            }
            Sender::Http {
                api,
                in_flight,
                requests,
                tracker,
            } => {
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    tracker.failed(tick_id, "not sent: the sender stopped".into());
                    return;
                };
                tracker.sending(tick_id);
                let (api, tracker) = (api.clone(), tracker.clone());
                requests.spawn(async move {
                    let result = api.post_tick(body).await;
                    let now = Instant::now();
                    drop(permit);
                    match result {
                        Ok(ack) => tracker.acked(&ack, now),
                        Err(message) => tracker.failed(tick_id, message),
                    }
                });
            }
        }
    }

    /// Forgets finished requests.
    pub fn reap(&mut self) {
        if let Sender::Http { requests, .. } = self {
            while requests.try_join_next().is_some() {}
        }
    }

    /// Stops everything still waiting (what has not come back by now is
    /// missing).
    pub async fn stop(self) {
        match self {
            Sender::Nats {
                mut tasks,
                nats,
                stored,
                ..
            } => {
                drop(stored);
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                // What was sent is counted already; a connection that does
                // not close cleanly changes nothing.
                let _ = nats.close().await;
            }
            Sender::Http { mut requests, .. } => {
                requests.abort_all();
                while requests.join_next().await.is_some() {}
            }
        }
    }
}

/// Counts the engine's acknowledgment notices.
async fn follow_notices(mut notices: async_nats::Subscriber, tracker: Tracker) {
    while let Some(message) = notices.next().await {
        let now = Instant::now();
        match read_ack(&message) {
            Ok(ack) => tracker.acked(&ack, now),
            Err(e) => tracing::warn!(subject = %message.subject, "not an acknowledgment: {e}"),
        }
    }
}

/// Awaits each publish's stream acknowledgment; a tick not stored is failed.
async fn await_stored(mut pending: mpsc::Receiver<(Uuid, PublishAckFuture)>, tracker: Tracker) {
    let mut waiting = FuturesUnordered::new();
    loop {
        tokio::select! {
            next = pending.recv() => match next {
                Some((tick_id, ack)) => waiting.push(async move { (tick_id, ack.await) }),
                None => break,
            },
            Some((tick_id, result)) = waiting.next(), if !waiting.is_empty() => {
                if let Err(e) = result {
                    tracker.failed(tick_id, format!("not stored by JetStream: {e}"));
                }
            }
        }
    }
    while let Some((tick_id, result)) = waiting.next().await {
        if let Err(e) = result {
            tracker.failed(tick_id, format!("not stored by JetStream: {e}"));
        }
    }
}

//! The tick consumers: one per partition this instance holds, each on a
//! durable pull consumer of its own epoch (`<prefix>-engine-p<k>-e<epoch>`).
//!
//! Taking a partition over deletes its earlier consumers (of the previous
//! holder, who may be paused and wake up later: its pulls then go to a
//! consumer that no longer exists) and creates this epoch's, which delivers
//! from the partition's durable position: the first tick not acknowledged,
//! in publish order. A tick is acknowledged only once its events are
//! durable, and when an append of the partition fails its gate closes
//! ([`super::ownership`]): the consumer stops, lets every tick it took be
//! answered, and takes the partition over again, so a tick is never done
//! behind a later tick of its world.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, AckKind, consumer};
use futures_util::StreamExt;
use provenant_events::Partitions;
use provenant_host::intake::{self, Rejection};
use provenant_log::{EventLog, Lease};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::engine::Engine;
use super::nats::server_version;
use super::nats_applied;
use super::ownership::Ticket;
use crate::nats_names::NatsNames;

const ACK_WAIT: Duration = Duration::from_secs(10);
const PROGRESS_EVERY: Duration = Duration::from_secs(3);
/// How long one pull request lasts. The server goes on delivering to the
/// request of an engine that died until it expires (and those ticks then
/// wait [`ACK_WAIT`]), so it is short.
const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// What a partition's consumer works with.
pub struct PartitionWork {
    pub engine: Arc<Engine>,
    pub js: jetstream::Context,
    pub names: NatsNames,
    pub partitions: Partitions,
    pub log: EventLog,
    /// The partition's lease, as taken.
    pub lease: Lease,
    pub partition: u32,
    /// How long a renewal lasts.
    pub ttl: Duration,
}

/// Consumes partition `work.partition`'s ticks until its gate is removed
/// (the lease lost or handed over) or `stop`; returns when every tick taken
/// is answered.
pub async fn consume_partition(work: PartitionWork, mut stop: watch::Receiver<bool>) {
    let ownership = work.engine.worlds.ownership().clone();
    let k = work.partition;
    let epoch = work.lease.epoch;
    let mut changes = ownership.subscribe();
    let mut generation = ownership.open(k, epoch);
    let mut wait = Duration::from_millis(100);
    // Restarts after failed appends back off while they come quickly (a
    // refusal that repeats must not spin).
    let mut restart_wait = Duration::from_millis(50);
    loop {
        let generation_started = tokio::time::Instant::now();
        let ticket = Ticket {
            partition: k,
            epoch,
            generation,
        };
        let mut messages = match take_over(&work).await {
            Ok(Some(m)) => {
                work.engine.health.consumer(None);
                wait = Duration::from_millis(100);
                m
            }
            Ok(None) => {
                tracing::warn!(
                    partition = k,
                    epoch,
                    "the partition's lease was taken over; this instance stops working it"
                );
                ownership.remove(k);
                return;
            }
            Err(e) => {
                let reason = format!(
                    "tick consumer of partition {k} not running: {}",
                    crate::error_text::error_text(&e)
                );
                tracing::warn!("{reason}; retrying in {wait:?}");
                work.engine.health.consumer(Some(reason));
                if !pause(wait, &mut stop).await {
                    return;
                }
                wait = (wait * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let mut in_flight = JoinSet::new();
        let ended = loop {
            let next = tokio::select! {
                next = messages.next() => next,
                _ = changes.changed() => {
                    if ownership.is_open(k, epoch, generation) {
                        continue;
                    }
                    break Ended::Gate;
                }
                _ = super::signals::stopped(&mut stop) => break Ended::Stop,
            };
            while in_flight.try_join_next().is_some() {}
            match next {
                Some(Ok(message)) => take(&work, ticket, message, &mut in_flight).await,
                Some(Err(e)) => {
                    tracing::warn!(partition = k, error = %e, "tick consumer: {e}");
                    // Heartbeat and connection problems end this pull; the
                    // partition is taken over again once the client has
                    // reconnected.
                    use async_nats::jetstream::consumer::pull::MessagesErrorKind as K;
                    if matches!(
                        e.kind(),
                        K::MissingHeartbeat | K::ConsumerDeleted | K::NoResponders
                    ) {
                        work.engine
                            .health
                            .consumer(Some(format!("tick consumer interrupted: {e}")));
                        break Ended::Interrupted;
                    }
                }
                None => break Ended::Interrupted,
            }
        };
        // Stop pulling, then answer every tick taken: what follows starts
        // from the first tick not acknowledged.
        drop(messages);
        while in_flight.join_next().await.is_some() {}
        match ended {
            Ended::Stop => return,
            Ended::Gate if !ownership.holds(k, epoch) => return,
            Ended::Gate => {
                tracing::info!(
                    partition = k,
                    "an append of the partition failed; taking its ticks again from the first not acknowledged"
                );
                if generation_started.elapsed() > Duration::from_secs(10) {
                    restart_wait = Duration::from_millis(50);
                }
                if !pause(restart_wait, &mut stop).await {
                    return;
                }
                restart_wait = (restart_wait * 2).min(Duration::from_secs(2));
                if !ownership.holds(k, epoch) {
                    return;
                }
                generation = ownership.open(k, epoch);
            }
            Ended::Interrupted => {
                if !pause(wait, &mut stop).await {
                    return;
                }
                wait = (wait * 2).min(Duration::from_secs(5));
                if !ownership.holds(k, epoch) {
                    return;
                }
                generation = ownership.open(k, epoch);
            }
        }
    }
}

/// Waits `wait`, unless told to stop first; false when stopped.
async fn pause(wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = super::signals::stopped(stop) => false,
    }
}

/// Why a consumer's pulling ended.
enum Ended {
    Stop,
    /// The partition's gate closed or was removed.
    Gate,
    /// The pull ended (connection, heartbeat, consumer deleted).
    Interrupted,
}

/// Takes the partition's consumer over, once the lease is proven still
/// held (renewed): deletes the partition's other consumers, creates this
/// epoch's anew (so it delivers from the first tick not acknowledged),
/// checks the server holds it as asked ([`nats_applied`]) and starts
/// pulling. None when the lease was taken over.
async fn take_over(work: &PartitionWork) -> anyhow::Result<Option<consumer::pull::Stream>> {
    work.engine
        .lease_operations
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if work
        .log
        .renew_lease(&work.lease, work.ttl)
        .await
        .context("cannot renew the partition's lease")?
        .is_none()
    {
        return Ok(None);
    }
    let consumer = create_consumer(work).await?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(1000)
        .expires(PULL_EXPIRES)
        .heartbeat(PULL_EXPIRES / 2)
        .messages()
        .await
        .context("cannot pull ticks")?;
    Ok(Some(messages))
}

/// Deletes partition `k`'s consumers and creates this epoch's, as asked.
pub async fn create_consumer(work: &PartitionWork) -> anyhow::Result<consumer::PullConsumer> {
    let names = &work.names;
    let js = &work.js;
    let k = work.partition;
    let stream = js
        .get_stream(names.ticks_stream())
        .await
        .with_context(|| format!("no stream {}", names.ticks_stream()))?;
    let mine = names.partition_consumer(k, work.lease.epoch);
    let mut existing = stream.consumer_names();
    let mut old = Vec::new();
    while let Some(name) = existing.next().await {
        let name = name.context("cannot list the consumers of the ticks stream")?;
        if names.is_partition_consumer(&name, k) {
            old.push(name);
        }
    }
    for name in old {
        stream
            .delete_consumer(&name)
            .await
            .with_context(|| format!("cannot delete the consumer {name}"))?;
    }
    let wanted = consumer::pull::Config {
        durable_name: Some(mine.clone()),
        description: Some(format!(
            "provenant engine: evaluates the ticks of partition {k} (lease epoch {})",
            work.lease.epoch
        )),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_ack_pending: 4096,
        filter_subject: names.partition_filter(k, work.partitions.count()),
        ..Default::default()
    };
    let mut consumer: consumer::PullConsumer = stream
        .create_consumer(wanted.clone())
        .await
        .with_context(|| format!("cannot create the consumer {mine}"))?;
    let applied = &consumer
        .info()
        .await
        .with_context(|| format!("cannot read the consumer {mine}"))?
        .config;
    let found = nats_applied::consumer_mismatches(&wanted, applied);
    anyhow::ensure!(
        found.is_empty(),
        "{}",
        nats_applied::refusal(
            &format!("the consumer {mine} of {}", names.ticks_stream()),
            &server_version(js),
            &found
        )
    );
    Ok(consumer)
}

/// Takes one message: queues its tick behind its world's (so order holds)
/// and leaves the waiting for durability to a task.
async fn take(
    work: &PartitionWork,
    ticket: Ticket,
    message: jetstream::Message,
    in_flight: &mut JoinSet<()>,
) {
    let (engine, js, names) = (&work.engine, &work.js, &work.names);
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
            match engine.worlds.enqueue_tick(tick, source, Some(ticket)).await {
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

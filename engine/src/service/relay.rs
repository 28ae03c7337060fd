//! The relay: every event of the log, in position order, to JetStream (or,
//! on the embedded default, to the in-process bus).
//!
//! Exactly once and in order into `PROVENANT_EVENTS`: every message names
//! the message before it (`Nats-Expected-Last-Msg-Id`), so JetStream stores
//! a message only right after its predecessor. A message lost with a broken
//! connection makes every later one fail instead of leaving a gap, so the
//! stream always holds a gap-free prefix of the log. The relay resumes
//! (after an error, a NATS outage, a crash or a restart) after the stream's
//! last message (header `Provenant-Position`): nothing is published twice
//! and nothing is skipped. Messages also carry `Nats-Msg-Id: <event_id>`.
//! The checkpoint in the log (`relay:<stream>`) is kept for lag and for an
//! empty stream (new or purged: the relay starts after the checkpoint).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use provenant_events::{Event, Position};
use provenant_log::{EventJson, EventLog, Fence, TailCounters};
use tokio::sync::{broadcast, mpsc, watch};

use tokio_util::task::AbortOnDropHandle;

use super::events_stream::{LastMessage, last_message};
use crate::nats_names::{NatsNames, POSITION_HEADER};

/// Where the relay publishes.
pub enum RelaySink {
    Nats {
        js: Box<jetstream::Context>,
        names: NatsNames,
    },
    /// In-process subscribers (embedded default): live events only.
    Bus(broadcast::Sender<Arc<Event>>),
}

/// Events published before their acknowledgments are awaited.
const BATCH: usize = 512;
/// Pages of the log read ahead of the messages being built.
const READ_AHEAD: usize = 4;
/// How often the relay's checkpoint is saved while it publishes.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// Publishes awaiting their acknowledgment, at most.
pub const WINDOW: usize = 4096;
/// After shutdown, how long the relay goes on catching up with the head.
const DRAIN: Duration = Duration::from_secs(10);

/// What the relay tells the engine as it goes.
#[derive(Clone, Default)]
pub struct Progress {
    /// The position of the last event published (and acknowledged).
    pub relayed: Arc<std::sync::atomic::AtomicU64>,
    /// Where the events it published came from: the feed or the log.
    pub reads: Arc<TailCounters>,
}

/// Relays until `shutdown`, then catches up with the head (for at most
/// [`DRAIN`]) and returns. Errors are retried; they never end it.
pub async fn run(
    log: EventLog,
    sink: RelaySink,
    progress: Progress,
    health: Arc<super::health::Health>,
    fence: Option<Fence>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Progress { relayed, reads } = progress;
    let mut wait = Duration::from_millis(100);
    let mut drain_until: Option<(tokio::time::Instant, Position)> = None;
    loop {
        let before = relayed.load(std::sync::atomic::Ordering::Relaxed);
        let result = match &sink {
            RelaySink::Nats { js, names } => {
                let pass = Pass {
                    log: &log,
                    js,
                    names,
                    fence: &fence,
                    relayed: &relayed,
                    reads: &reads,
                    health: &health,
                };
                pass.run(&mut shutdown, &mut drain_until).await
            }
            RelaySink::Bus(bus) => relay_bus(&log, bus, &relayed, &reads, &mut shutdown).await,
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                if relayed.load(std::sync::atomic::Ordering::Relaxed) > before {
                    // The pass got somewhere: this is a new interruption.
                    wait = Duration::from_millis(100);
                }
                let text = crate::error_text::error_text(&e);
                health.relay(Some(format!("relay interrupted: {text}")));
                tracing::warn!(
                    "relay interrupted: {text}; resuming after the last acknowledged event in {wait:?}"
                );
                let stopping = *shutdown.borrow();
                if stopping
                    && drain_until
                        .is_none_or(|(deadline, _)| tokio::time::Instant::now() >= deadline)
                {
                    tracing::warn!(
                        "relay stopped before reaching the head; it resumes at the next start"
                    );
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = super::signals::stopped(&mut shutdown), if !stopping => {}
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The header that makes JetStream refuse a message unless the stream's
/// last message is the one named: the relay's messages form a chain, so a
/// message lost with a broken connection stops every later one.
const EXPECTED_LAST: &str = "Nats-Expected-Last-Msg-Id";

/// One event as a JetStream message, built ahead of its publish.
struct Outgoing {
    position: Position,
    /// The event id: this message's `Nats-Msg-Id`, and the next one's
    /// `Nats-Expected-Last-Msg-Id`.
    id: String,
    subject: String,
    headers: async_nats::HeaderMap,
    body: bytes::Bytes,
}

impl Outgoing {
    fn of(event: EventJson, names: &NatsNames, expected_last: Option<&str>) -> Self {
        let id = event.event_id.to_string();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        headers.insert(POSITION_HEADER, event.position.to_string().as_str());
        if let Some(previous) = expected_last {
            headers.insert(EXPECTED_LAST, previous);
        }
        Outgoing {
            position: event.position,
            subject: names.subject_of(
                event.world_id.as_ref(),
                event.plugin_id.as_ref(),
                &event.kind,
            ),
            headers,
            body: event.json.into(),
            id,
        }
    }
}

/// One pass of the NATS relay, from where the stream ends to an error or
/// the stop.
struct Pass<'a> {
    log: &'a EventLog,
    js: &'a jetstream::Context,
    names: &'a NatsNames,
    /// The relay's lease: its checkpoint saves are refused once it moved.
    fence: &'a Option<Fence>,
    relayed: &'a Arc<std::sync::atomic::AtomicU64>,
    reads: &'a Arc<TailCounters>,
    health: &'a Arc<super::health::Health>,
}

impl Pass<'_> {
    async fn run(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        drain_until: &mut Option<(tokio::time::Instant, Position)>,
    ) -> anyhow::Result<()> {
        let (start, expected_last) = self.resume_point().await?;
        self.health.relay(None);
        self.relayed
            .store(start, std::sync::atomic::Ordering::Relaxed);
        let mut tail = self
            .log
            .tail(start)
            .await
            .context("cannot follow the log")?
            .counting_into(self.reads.clone());
        // The log is read by one task and each message built by another:
        // on two cores reading, building and publishing overlap, and this
        // loop does no more per event than a bare publish loop.
        let (pages, mut to_build) = mpsc::channel::<anyhow::Result<Vec<EventJson>>>(READ_AHEAD);
        let reader = AbortOnDropHandle::new(tokio::spawn(async move {
            loop {
                let next = tail
                    .next_json_batch()
                    .await
                    .map_err(|e| anyhow::Error::new(e).context("cannot read the log"));
                let stop = next.is_err();
                if pages.send(next).await.is_err() || stop {
                    return;
                }
            }
        }));
        let (built, mut events) = mpsc::channel::<anyhow::Result<Outgoing>>(WINDOW);
        let names = self.names.clone();
        let builder = AbortOnDropHandle::new(tokio::spawn(async move {
            let mut previous = expected_last;
            while let Some(page) = to_build.recv().await {
                let page = match page {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = built.send(Err(e)).await;
                        return;
                    }
                };
                for event in page {
                    let message = Outgoing::of(event, &names, previous.as_deref());
                    previous = Some(message.id.clone());
                    if built.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
            }
        }));
        let mut published = start;
        let (acks, pending) = mpsc::channel(WINDOW);
        let failed = Arc::new(tokio::sync::Notify::new());
        let acker = {
            let acknowledger = Acknowledger {
                log: self.log.clone(),
                checkpoint: self.names.relay_checkpoint(),
                relayed: self.relayed.clone(),
                fence: self.fence.clone(),
            };
            let failed = failed.clone();
            tokio::spawn(async move {
                let result = acknowledger.run(start, pending).await;
                if result.is_err() {
                    failed.notify_one();
                }
                result
            })
        };
        loop {
            if let Some((deadline, head)) = *drain_until {
                if published >= head {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!(
                        "relay stopped before reaching the head; it resumes at the next start"
                    );
                    break;
                }
            }
            let first = tokio::select! {
                e = events.recv() => e.context("the log reader stopped")??,
                _ = failed.notified() => break,
                _ = super::signals::stopped(shutdown), if drain_until.is_none() => {
                    let head = self.log.head().await.context("cannot read the head")?.position;
                    *drain_until = Some((tokio::time::Instant::now() + DRAIN, head));
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match events.try_recv() {
                    Ok(e) => batch.push(e?),
                    Err(_) => break,
                }
            }
            for message in batch {
                published = message.position;
                let ack = self
                    .js
                    .publish_with_headers(message.subject, message.headers, message.body)
                    .await
                    .with_context(|| {
                        format!("cannot publish the event at position {}", message.position)
                    })?;
                if acks.send((message.position, ack)).await.is_err() {
                    // The acknowledger stopped: its error says why.
                    break;
                }
            }
            if acker.is_finished() {
                break;
            }
        }
        drop(acks);
        drop(builder);
        drop(reader);
        acker.await.context("the relay's acknowledger failed")?
    }

    /// Where to resume: after the stream's last message (the stream holds a
    /// gap-free prefix of the log), expecting that message's id next; with
    /// an empty stream (new, or purged), after the checkpoint.
    async fn resume_point(&self) -> anyhow::Result<(Position, Option<String>)> {
        let checkpoint = self
            .log
            .checkpoint(&self.names.relay_checkpoint())
            .await
            .context("cannot read the relay checkpoint")?
            .unwrap_or(0);
        let name = self.names.events_stream();
        let mut stream = self
            .js
            .get_stream(&name)
            .await
            .with_context(|| format!("no stream {name}"))?;
        let Some(LastMessage { position, id, .. }) = last_message(&mut stream, &name).await? else {
            return Ok((checkpoint, None));
        };
        // The stream must be this log's: its last message is this log's
        // event at that position (else resuming there would skip events).
        let ours = match id.as_deref().map(uuid::Uuid::parse_str) {
            Some(Ok(event_id)) => self
                .log
                .positions_of(&[event_id])
                .await
                .context("cannot look up the stream's last event in the log")?
                .get(&event_id)
                .is_some_and(|&p| p == position),
            _ => false,
        };
        anyhow::ensure!(
            ours,
            "the stream {} holds events of another log: its last message (position {position}, id {}) is not this log's event; use another --nats-prefix, or delete the stream to relay this log from the start",
            self.names.events_stream(),
            id.as_deref().unwrap_or("none")
        );
        Ok((position, id))
    }
}

/// Awaits the publishes' acknowledgments in order (they overlap with the
/// next reads and publishes) and saves the checkpoint at most every
/// [`CHECKPOINT_EVERY`] (and when the pass ends); an error ends the pass.
struct Acknowledger {
    log: EventLog,
    checkpoint: String,
    relayed: Arc<std::sync::atomic::AtomicU64>,
    fence: Option<Fence>,
}

impl Acknowledger {
    async fn run(
        self,
        start: Position,
        mut acks: mpsc::Receiver<(Position, jetstream::context::PublishAckFuture)>,
    ) -> anyhow::Result<()> {
        let mut saved = start;
        let mut last = start;
        let mut saved_at = tokio::time::Instant::now();
        let result = async {
            loop {
                let next = if last != saved {
                    // Something to checkpoint: wait at most until it is due.
                    let due = saved_at + CHECKPOINT_EVERY;
                    match tokio::time::timeout_at(due, acks.recv()).await {
                        Ok(next) => next,
                        Err(_) => {
                            self.save(last).await;
                            (saved, saved_at) = (last, tokio::time::Instant::now());
                            continue;
                        }
                    }
                } else {
                    acks.recv().await
                };
                let Some((position, ack)) = next else {
                    return Ok(());
                };
                ack.await.with_context(|| {
                    format!("JetStream did not store the event at position {position}")
                })?;
                last = position;
                self.relayed
                    .store(position, std::sync::atomic::Ordering::Relaxed);
                if saved_at.elapsed() >= CHECKPOINT_EVERY {
                    self.save(last).await;
                    (saved, saved_at) = (last, tokio::time::Instant::now());
                }
            }
        }
        .await;
        if last != saved {
            self.save(last).await;
        }
        result
    }

    async fn save(&self, position: Position) {
        match self
            .log
            .save_checkpoint_fenced(&self.checkpoint, position, self.fence.as_ref())
            .await
        {
            Ok(()) => {}
            Err(e @ provenant_log::LogError::Fenced { .. }) => {
                tracing::warn!(error = %e, "the relay's lease was taken over: its checkpoint is not saved, and it stops at the next round")
            }
            Err(e) => tracing::warn!(error = %e, "cannot save the relay checkpoint"),
        }
    }
}

async fn relay_bus(
    log: &EventLog,
    bus: &broadcast::Sender<Arc<Event>>,
    relayed: &std::sync::atomic::AtomicU64,
    reads: &Arc<TailCounters>,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // Live events only: from the head at start, or where it was after an
    // interruption.
    let start = match relayed.load(std::sync::atomic::Ordering::Relaxed) {
        0 => log.head().await.context("cannot read the head")?.position,
        p => p,
    };
    let mut tail = log
        .tail(start)
        .await
        .context("cannot follow the log")?
        .counting_into(reads.clone());
    loop {
        let event = tokio::select! {
            e = tail.next() => e.context("cannot read the log")?,
            _ = super::signals::stopped(shutdown) => return Ok(()),
        };
        relayed.store(event.position, std::sync::atomic::Ordering::Relaxed);
        // No subscriber is not an error.
        let _ = bus.send(event);
    }
}

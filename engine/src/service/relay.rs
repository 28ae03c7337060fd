//! The relay: every event of the log, in position order, to JetStream (or,
//! on the embedded default, to the in-process bus).
//!
//! Exactly once into `PROVENANT_EVENTS`: the relay resumes after the later
//! of its checkpoint in the log and the position of the last message in the
//! stream (header `Provenant-Position`), so nothing is published twice after
//! a crash between a publish and its checkpoint; and every message carries
//! `Nats-Msg-Id: <event_id>`, so a publish retried after a lost
//! acknowledgment is dropped by the stream's duplicate window.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use futures_util::FutureExt as _;
use provenant_events::{Event, EventLog, Position};
use tokio::sync::{broadcast, mpsc, watch};

use super::nats::NatsNames;

/// Where the relay publishes.
pub enum RelaySink {
    Nats {
        js: Box<jetstream::Context>,
        names: NatsNames,
    },
    /// In-process subscribers (embedded default): live events only.
    Bus(broadcast::Sender<Arc<Event>>),
}

/// The header that carries an event's log position.
pub const POSITION_HEADER: &str = "Provenant-Position";

/// Events published before their acknowledgments are awaited.
const BATCH: usize = 512;
/// Publishes awaiting their acknowledgment, at most.
pub const WINDOW: usize = 4096;
/// After shutdown, how long the relay goes on catching up with the head.
const DRAIN: Duration = Duration::from_secs(10);

/// Relays until `shutdown`, then catches up with the head (for at most
/// [`DRAIN`]) and returns. Errors are retried; they never end it.
pub async fn run(
    log: EventLog,
    sink: RelaySink,
    relayed: Arc<std::sync::atomic::AtomicU64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut wait = Duration::from_millis(100);
    let mut drain_until: Option<(tokio::time::Instant, Position)> = None;
    loop {
        let result = match &sink {
            RelaySink::Nats { js, names } => {
                relay_nats(&log, js, names, &relayed, &mut shutdown, &mut drain_until).await
            }
            RelaySink::Bus(bus) => relay_bus(&log, bus, &relayed, &mut shutdown).await,
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                let text = crate::cli::error_text(&e);
                tracing::warn!(
                    "relay interrupted: {text}; resuming from its checkpoint in {wait:?}"
                );
                if let Some((deadline, _)) = drain_until
                    && tokio::time::Instant::now() >= deadline
                {
                    tracing::warn!(
                        "relay stopped before reaching the head; it resumes at the next start"
                    );
                    return;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Where the relay starts: after the later of its checkpoint and the last
/// message in the stream.
pub async fn resume_position(
    log: &EventLog,
    js: &jetstream::Context,
    names: &NatsNames,
) -> anyhow::Result<Position> {
    let checkpoint = log
        .checkpoint(&names.relay_checkpoint())
        .await
        .context("cannot read the relay checkpoint")?
        .unwrap_or(0);
    let mut stream = js
        .get_stream(names.events_stream())
        .await
        .with_context(|| format!("no stream {}", names.events_stream()))?;
    let last = stream
        .info()
        .await
        .context("cannot read the events stream")?
        .state
        .last_sequence;
    let published = if last == 0 {
        0
    } else {
        match stream.get_raw_message(last).await {
            Ok(m) => m
                .headers
                .get(POSITION_HEADER)
                .and_then(|v| v.as_str().parse::<Position>().ok())
                .unwrap_or(0),
            // Deleted by a limit: the checkpoint decides.
            Err(_) => 0,
        }
    };
    Ok(checkpoint.max(published))
}

async fn relay_nats(
    log: &EventLog,
    js: &jetstream::Context,
    names: &NatsNames,
    relayed: &Arc<std::sync::atomic::AtomicU64>,
    shutdown: &mut watch::Receiver<bool>,
    drain_until: &mut Option<(tokio::time::Instant, Position)>,
) -> anyhow::Result<()> {
    let start = resume_position(log, js, names).await?;
    relayed.store(start, std::sync::atomic::Ordering::Relaxed);
    let mut tail = log.tail(start).await.context("cannot follow the log")?;
    let (acks, pending) = mpsc::channel(WINDOW);
    let failed = Arc::new(tokio::sync::Notify::new());
    let acker = {
        let (log, name, relayed, failed) = (
            log.clone(),
            names.relay_checkpoint(),
            relayed.clone(),
            failed.clone(),
        );
        tokio::spawn(async move {
            let result = acknowledge(log, name, relayed, pending).await;
            if result.is_err() {
                failed.notify_one();
            }
            result
        })
    };
    loop {
        if let Some((deadline, head)) = *drain_until {
            if tail.position() >= head {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    "relay stopped before reaching the head; it resumes at the next start"
                );
                return Ok(());
            }
        }
        let first = tokio::select! {
            e = tail.next() => e.context("cannot read the log")?,
            _ = failed.notified() => break,
            _ = super::stopped(shutdown), if drain_until.is_none() => {
                let head = log.head().await.context("cannot read the head")?.position;
                *drain_until = Some((tokio::time::Instant::now() + DRAIN, head));
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match tail.next().now_or_never() {
                Some(Ok(e)) => batch.push(e),
                _ => break,
            }
        }
        for event in &batch {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", event.event_id.to_string().as_str());
            headers.insert(POSITION_HEADER, event.position.to_string().as_str());
            let body = event.to_json();
            let ack = js
                .publish_with_headers(names.event_subject(event), headers, body.into())
                .await
                .with_context(|| {
                    format!("cannot publish the event at position {}", event.position)
                })?;
            if acks.send((event.position, ack)).await.is_err() {
                // The acknowledger stopped: its error says why.
                break;
            }
        }
        if acker.is_finished() {
            break;
        }
    }
    drop(acks);
    acker.await.context("the relay's acknowledger failed")?
}

/// Awaits the publishes' acknowledgments in order (they overlap with the
/// next reads and publishes) and saves the checkpoint after each run of
/// them; an error ends the relay's pass.
async fn acknowledge(
    log: EventLog,
    checkpoint_name: String,
    relayed: Arc<std::sync::atomic::AtomicU64>,
    mut acks: mpsc::Receiver<(Position, jetstream::context::PublishAckFuture)>,
) -> anyhow::Result<()> {
    while let Some((position, ack)) = acks.recv().await {
        let mut last = position;
        ack.await
            .with_context(|| format!("JetStream did not store the event at position {position}"))?;
        // Everything already queued, then one checkpoint.
        while let Ok((position, ack)) = acks.try_recv() {
            ack.await.with_context(|| {
                format!("JetStream did not store the event at position {position}")
            })?;
            last = position;
        }
        relayed.store(last, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = log.save_checkpoint(&checkpoint_name, last).await {
            // The stream's last message also tells where to resume.
            tracing::warn!(error = %e, "cannot save the relay checkpoint");
        }
    }
    Ok(())
}

async fn relay_bus(
    log: &EventLog,
    bus: &broadcast::Sender<Arc<Event>>,
    relayed: &std::sync::atomic::AtomicU64,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // Live events only: from the head at start, or where it was after an
    // interruption.
    let start = match relayed.load(std::sync::atomic::Ordering::Relaxed) {
        0 => log.head().await.context("cannot read the head")?.position,
        p => p,
    };
    let mut tail = log.tail(start).await.context("cannot follow the log")?;
    loop {
        let event = tokio::select! {
            e = tail.next() => e.context("cannot read the log")?,
            _ = super::stopped(shutdown) => return Ok(()),
        };
        relayed.store(event.position, std::sync::atomic::Ordering::Relaxed);
        // No subscriber is not an error.
        let _ = bus.send(Arc::new(event));
    }
}

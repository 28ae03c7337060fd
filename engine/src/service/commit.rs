//! Group commit: one task appends for every world. Requests that queue while
//! an append is in flight go into the next append together, so throughput
//! does not stop at one commit per tick.

use std::sync::Arc;

use provenant_events::{NewEvent, Position};

use provenant_log::{AppendBatch, EventLog, LogError};
use tokio::sync::{mpsc, oneshot};

use super::health::Health;

/// What one caller wants appended, atomically with the rest of its group.
pub struct CommitRequest {
    pub events: Vec<NewEvent>,
    pub done: oneshot::Sender<Result<Vec<Position>, Arc<LogError>>>,
}

/// Limits of one group.
#[derive(Debug, Clone, Copy)]
pub struct CommitConfig {
    /// Events per append, at most (a single larger request goes alone).
    pub max_events: usize,
}

impl Default for CommitConfig {
    fn default() -> Self {
        CommitConfig { max_events: 8192 }
    }
}

/// A handle to the committer.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<CommitRequest>,
}

impl Committer {
    /// Starts the committer task; it ends when every handle is dropped and
    /// the queue is drained.
    pub fn start(
        log: EventLog,
        health: Arc<Health>,
        config: CommitConfig,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4096);
        let task = tokio::spawn(run(log, health, config, rx));
        (Committer { tx }, task)
    }

    /// Appends `events` as part of the next group; the positions of the
    /// events, in order.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Position>, Arc<LogError>> {
        let (done, answer) = oneshot::channel();
        let gone = || Arc::new(LogError::Invalid("the engine is shutting down".into()));
        self.tx
            .send(CommitRequest { events, done })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn run(
    log: EventLog,
    health: Arc<Health>,
    config: CommitConfig,
    mut rx: mpsc::Receiver<CommitRequest>,
) {
    let mut next: Option<CommitRequest> = None;
    loop {
        let first = match next.take() {
            Some(r) => r,
            None => match rx.recv().await {
                Some(r) => r,
                None => return,
            },
        };
        let mut total = first.events.len();
        let mut group = vec![first];
        while total < config.max_events {
            match rx.try_recv() {
                Ok(r) if total + r.events.len() > config.max_events => {
                    next = Some(r);
                    break;
                }
                Ok(r) => {
                    total += r.events.len();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        let mut events = Vec::with_capacity(total);
        let mut sizes = Vec::with_capacity(group.len());
        let mut replies = Vec::with_capacity(group.len());
        for r in group {
            sizes.push(r.events.len());
            events.extend(r.events);
            replies.push(r.done);
        }
        let started = std::time::Instant::now();
        let result = log.append(AppendBatch::new(events)).await;
        match result {
            Ok(outcome) => {
                health.log_ok();
                tracing::debug!(
                    requests = sizes.len(),
                    events = total,
                    append_ms = started.elapsed().as_secs_f64() * 1e3,
                    "group committed"
                );
                let mut positions = outcome.positions.into_iter();
                for (size, reply) in sizes.into_iter().zip(replies) {
                    let _ = reply.send(Ok(positions.by_ref().take(size).collect()));
                }
            }
            Err(e) => {
                health.log_failed(&e);
                tracing::warn!(error = %e, ticks = sizes.len(), "append failed");
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

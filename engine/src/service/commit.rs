//! Group commit: one task appends for every world. Requests that queue while
//! an append is in flight go into the next append together, so throughput
//! does not stop at one commit per tick.
//!
//! Appends run one at a time, so the committer's busy time is the engine's
//! first limit under load ([`CommitStats`]; docs/performance.md): when it
//! approaches the whole time, ticks queue behind it and latency climbs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use provenant_events::{NewEvent, Position, StreamName};

use provenant_log::{AppendBatch, EventLog, ExpectedVersion, Fence, LogError};
use tokio::sync::{mpsc, oneshot};

use super::health::Health;

/// What one caller wants appended, atomically with the rest of its group,
/// and under which conditions: the lease epoch it is made under, and the
/// version one stream must be at. A request whose condition fails is
/// refused alone; the rest of its group is appended without it.
pub struct CommitRequest {
    pub events: Vec<NewEvent>,
    pub fence: Option<Fence>,
    pub expect: Option<(StreamName, ExpectedVersion)>,
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

/// Upper bounds, in seconds, of the append duration histogram's buckets.
pub const APPEND_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// What the committer has done since it started (`/metrics`).
#[derive(Debug, Default)]
pub struct CommitStats {
    appends: AtomicU64,
    events: AtomicU64,
    failures: AtomicU64,
    fenced: AtomicU64,
    /// Per bucket of [`APPEND_BUCKETS`] and one above: appends and their
    /// nanoseconds.
    buckets: [(AtomicU64, AtomicU64); APPEND_BUCKETS.len() + 1],
}

/// A reading of [`CommitStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommitCounts {
    /// Appends that committed (each a group of requests).
    pub appends: u64,
    /// Events those appends wrote or found already written.
    pub events: u64,
    /// Appends that failed (every request of the group got the error, or
    /// the requests whose condition failed did).
    pub failures: u64,
    /// Appends refused because a request's lease epoch had been taken over
    /// (those requests got the error).
    pub fenced: u64,
    /// Appends (failures included) by bucket of [`APPEND_BUCKETS`] and one
    /// above them: how many, and their seconds.
    pub durations: [(u64, f64); APPEND_BUCKETS.len() + 1],
}

impl CommitStats {
    pub fn counts(&self) -> CommitCounts {
        CommitCounts {
            appends: self.appends.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            fenced: self.fenced.load(Ordering::Relaxed),
            durations: std::array::from_fn(|i| {
                let (count, nanos) = &self.buckets[i];
                (
                    count.load(Ordering::Relaxed),
                    nanos.load(Ordering::Relaxed) as f64 / 1e9,
                )
            }),
        }
    }

    fn record(&self, took: std::time::Duration, committed: Option<usize>) {
        let seconds = took.as_secs_f64();
        let bucket = APPEND_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(APPEND_BUCKETS.len());
        let (count, nanos) = &self.buckets[bucket];
        count.fetch_add(1, Ordering::Relaxed);
        nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        match committed {
            Some(events) => {
                self.appends.fetch_add(1, Ordering::Relaxed);
                self.events.fetch_add(events as u64, Ordering::Relaxed);
            }
            None => {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A handle to the committer.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<CommitRequest>,
    stats: Arc<CommitStats>,
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
        let stats = Arc::new(CommitStats::default());
        let task = tokio::spawn(run(log, health, config, rx, stats.clone()));
        (Committer { tx, stats }, task)
    }

    /// What the committer has done since it started.
    pub fn counts(&self) -> CommitCounts {
        self.stats.counts()
    }

    /// Appends `events` as part of the next group, under `fence` and with
    /// `expect`'s stream at its version; the positions of the events, in
    /// order.
    pub async fn append(
        &self,
        events: Vec<NewEvent>,
        fence: Option<Fence>,
        expect: Option<(StreamName, ExpectedVersion)>,
    ) -> Result<Vec<Position>, Arc<LogError>> {
        let (done, answer) = oneshot::channel();
        let gone = || Arc::new(LogError::Invalid("the engine is shutting down".into()));
        self.tx
            .send(CommitRequest {
                events,
                fence,
                expect,
                done,
            })
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
    stats: Arc<CommitStats>,
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
                // Two conditions on one stream cannot share an append: the
                // second waits for the next group.
                Ok(r) if total + r.events.len() > config.max_events || expects_same(&group, &r) => {
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
        // A request whose condition fails is answered alone and the rest
        // are appended again without it.
        while !group.is_empty() {
            group = append_group(&log, &health, &stats, group).await;
        }
    }
}

/// Whether `r` cannot share an append with `group`: it names a stream
/// version a request of the group names too, or a lease at another epoch.
fn expects_same(group: &[CommitRequest], r: &CommitRequest) -> bool {
    group.iter().any(|g| {
        let same_stream = matches!((&g.expect, &r.expect), (Some((a, _)), Some((b, _))) if a == b);
        let other_epoch = matches!((&g.fence, &r.fence), (Some(a), Some(b)) if a.lease == b.lease && a.epoch != b.epoch);
        same_stream || other_epoch
    })
}

/// Appends `group` in one batch and answers its requests; what is left to
/// append again when the requests of a failed condition were refused.
async fn append_group(
    log: &EventLog,
    health: &Health,
    stats: &CommitStats,
    mut group: Vec<CommitRequest>,
) -> Vec<CommitRequest> {
    let total: usize = group.iter().map(|r| r.events.len()).sum();
    let mut batch = AppendBatch::new(Vec::with_capacity(total));
    let mut sizes = Vec::with_capacity(group.len());
    for r in &mut group {
        sizes.push(r.events.len());
        batch.events.append(&mut r.events);
        if let Some(f) = &r.fence
            && !batch.fences.contains(f)
        {
            batch.fences.push(f.clone());
        }
        if let Some(e) = &r.expect {
            batch.expected.push(e.clone());
        }
    }
    let started = std::time::Instant::now();
    let result = log.append_returning(batch).await;
    stats.record(started.elapsed(), result.as_ref().ok().map(|_| total));
    let (e, events) = match result {
        Ok(outcome) => {
            health.log_ok();
            tracing::debug!(
                requests = group.len(),
                events = total,
                append_ms = started.elapsed().as_secs_f64() * 1e3,
                "group committed"
            );
            let mut positions = outcome.positions.into_iter();
            for (r, size) in group.into_iter().zip(sizes) {
                let _ = r.done.send(Ok(positions.by_ref().take(size).collect()));
            }
            return Vec::new();
        }
        Err(failed) => failed,
    };
    // The events back with their requests, for those appended again.
    let restored = events.len() == total;
    if restored {
        let mut events = events.into_iter();
        for (r, size) in group.iter_mut().zip(sizes) {
            r.events = events.by_ref().take(size).collect();
        }
    }
    let condition = |r: &CommitRequest| match &e {
        LogError::Fenced { lease, epoch, .. } => r
            .fence
            .as_ref()
            .is_some_and(|f| f.lease == *lease && f.epoch == *epoch),
        LogError::Conflict { stream, .. } => r.expect.as_ref().is_some_and(|(s, _)| s == stream),
        _ => false,
    };
    let (mut failed, mut rest): (Vec<_>, Vec<_>) = group.into_iter().partition(condition);
    if failed.is_empty() || !restored {
        failed.append(&mut rest);
    }
    match &e {
        LogError::Fenced { .. } => {
            stats.fenced.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, requests = failed.len(), "append refused: this instance lost the lease");
        }
        LogError::Conflict { .. } => {
            tracing::info!(error = %e, "append refused: a world changed behind this instance's back; it is read again");
        }
        _ => {
            health.log_failed(&e);
            tracing::warn!(error = %e, requests = failed.len(), "append failed");
        }
    }
    let e = Arc::new(e);
    for r in failed {
        let _ = r.done.send(Err(e.clone()));
    }
    rest
}

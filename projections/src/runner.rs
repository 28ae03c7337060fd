//! Running a projection against the log: the I/O edge of this crate.
//!
//! A [`Runner`] loads a projection's rows and checkpoint, applies the events
//! after the checkpoint in position order, and commits the changed rows with
//! the new checkpoint in one transaction ([`EventLog::commit_projection`]).
//! Positions are dense and commit in order (one append lock per log), so
//! following the log by position never skips an event. A commit is fenced
//! on the checkpoint it started from: when another runner or a rebuild moved
//! it, this runner reloads from the store instead of applying twice.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use provenant_events::Position;
use provenant_log::{EventLog, Fence, LogError, ProjectionCommit, TailCounters};
use tokio::sync::{mpsc, watch};
use tokio_util::task::AbortOnDropHandle;

use crate::config::ProjectionsConfig;
use crate::projection::{Factory, Projection};
use crate::standard::standard;

/// Pages read ahead of the one being applied while catching up.
const READ_AHEAD: usize = 2;

/// How a runner reads and commits.
#[derive(Debug, Clone, Copy)]
pub struct RunnerConfig {
    /// Events read per page, and applied between commits at most.
    pub page: usize,
    /// While following the log, changes are committed at least this often.
    pub commit_every: Duration,
    /// While catching up (a start behind the head, a rebuild), changes are
    /// committed every this many events: fewer, larger transactions.
    pub catch_up_commit: usize,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            page: 2000,
            commit_every: Duration::from_millis(200),
            catch_up_commit: 50_000,
        }
    }
}

/// Errors at the runner's boundary.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("projection {name}: {source}")]
    Log {
        name: &'static str,
        #[source]
        source: LogError,
    },
}

/// One projection, loaded, following the log.
pub struct Runner {
    log: EventLog,
    factory: Factory,
    config: RunnerConfig,
    projection: Box<dyn Projection>,
    /// The last event applied.
    applied: Position,
    /// The checkpoint stored (the last event the stored rows include).
    committed: Position,
    /// Where `applied` is published for observers (lag, tests).
    progress: watch::Sender<Position>,
    /// Where the events it follows come from (the feed, or reads of the
    /// log).
    reads: Arc<TailCounters>,
    /// The lease it runs under: its commits are refused once another
    /// holder took it over, and it stops.
    fence: Option<Fence>,
}

impl Runner {
    /// Loads the projection from the store: its rows and checkpoint, or an
    /// empty projection at position 0 when none is stored, when the stored
    /// rows are of another version, or when they do not restore (then it is
    /// rebuilt, and the rows are replaced as it goes).
    pub async fn load(
        log: EventLog,
        factory: Factory,
        config: RunnerConfig,
    ) -> Result<Self, RunnerError> {
        let projection = factory();
        let name = projection.name();
        let (progress, _) = watch::channel(0);
        let mut runner = Runner {
            log,
            factory,
            config,
            projection,
            applied: 0,
            committed: 0,
            progress,
            reads: Arc::default(),
            fence: None,
        };
        runner
            .reload()
            .await
            .map_err(|source| RunnerError::Log { name, source })?;
        Ok(runner)
    }

    pub fn name(&self) -> &'static str {
        self.projection.name()
    }

    /// The last event applied.
    pub fn position(&self) -> Position {
        self.applied
    }

    /// Counts where the events it follows come from into `reads` (shared
    /// with other runners, for `/metrics`).
    pub fn counting_reads_into(mut self, reads: Arc<TailCounters>) -> Self {
        self.reads = reads;
        self
    }

    /// Commits under `fence`'s lease (the cluster's `projections`).
    pub fn fenced_by(mut self, fence: Option<Fence>) -> Self {
        self.fence = fence;
        self
    }

    /// Follows the last event applied.
    pub fn progress(&self) -> watch::Receiver<Position> {
        self.progress.subscribe()
    }

    /// Applies every event up to `until` (or the head, if lower), committing
    /// every [`RunnerConfig::catch_up_commit`] events and at the end;
    /// `on_progress` is told the position reached after each page. The next
    /// pages are read while one is applied.
    pub async fn catch_up(
        &mut self,
        until: Position,
        mut on_progress: impl FnMut(Position),
    ) -> Result<(), RunnerError> {
        let name = self.name();
        self.catch_up_to(until, &mut on_progress)
            .await
            .map_err(|source| RunnerError::Log { name, source })
    }

    async fn catch_up_to(
        &mut self,
        until: Position,
        on_progress: &mut impl FnMut(Position),
    ) -> Result<(), LogError> {
        fold_together(std::slice::from_mut(self), until, on_progress)
            .await
            .map_err(|(_, e)| e)
    }

    /// Follows the log until `shutdown` turns true, then commits what it
    /// applied and returns. Errors (the database gone, a moved checkpoint)
    /// are logged and retried from the stored state; they never end it.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let name = self.name();
        let mut wait = Duration::from_millis(100);
        loop {
            match self.follow(&mut shutdown).await {
                Ok(()) => return,
                Err(e @ LogError::Fenced { .. }) => {
                    tracing::warn!(projection = name, error = %e, "the projections' lease was taken over; this runner stops");
                    return;
                }
                Err(LogError::ProjectionMoved { .. }) => {
                    tracing::info!(
                        projection = name,
                        "checkpoint moved by another runner or a rebuild; reloading"
                    );
                }
                Err(e) => {
                    tracing::warn!(projection = name, error = %e, "projection interrupted; resuming from its checkpoint in {wait:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
            // Whatever was applied but not committed is dropped: the stored
            // state is the truth.
            while let Err(e) = self.reload().await {
                tracing::warn!(projection = name, error = %e, "cannot reload the projection; retrying in {wait:?}");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }

    async fn follow(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), LogError> {
        // Far behind (a first start, a long stop): catch up in large pages.
        let head = self.log.head().await?.position;
        if head > self.applied + self.config.page as Position {
            let mut ignore = |_| {};
            tokio::select! {
                caught = self.catch_up_to(head, &mut ignore) => caught?,
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
            }
        }
        let mut tail = self
            .log
            .tail(self.applied)
            .await?
            .counting_into(self.reads.clone());
        let mut since_commit = 0usize;
        let mut last_commit = tokio::time::Instant::now();
        loop {
            if *shutdown.borrow() {
                return self.commit().await;
            }
            let due = last_commit + self.config.commit_every;
            let next = tokio::select! {
                events = tail.next_batch() => Some(events?),
                _ = tokio::time::sleep_until(due), if since_commit > 0 => None,
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        // The engine that could stop this runner is gone.
                        return self.commit().await;
                    }
                    continue;
                }
            };
            for event in next.iter().flatten() {
                self.projection.apply(event);
                self.applied = event.position;
                since_commit += 1;
            }
            if since_commit >= self.config.page
                || (since_commit > 0 && tokio::time::Instant::now() >= due)
            {
                self.commit().await?;
                since_commit = 0;
                last_commit = tokio::time::Instant::now();
            }
        }
    }

    /// Commits the changed rows with the checkpoint at the last event
    /// applied.
    async fn commit(&mut self) -> Result<(), LogError> {
        if self.applied == self.committed {
            return Ok(());
        }
        let changes = self.projection.take_changes();
        self.log
            .commit_projection(&ProjectionCommit {
                name: self.projection.name(),
                version: self.projection.version(),
                from: self.committed,
                to: self.applied,
                changes: &changes,
                fence: self.fence.as_ref(),
            })
            .await?;
        self.committed = self.applied;
        self.progress.send_replace(self.applied);
        Ok(())
    }

    /// Replaces the state with the stored one (or an empty projection).
    async fn reload(&mut self) -> Result<(), LogError> {
        let mut projection = (self.factory)();
        let name = projection.name();
        let start = match self.log.load_projection(name).await? {
            Some(stored) if stored.version != projection.version() => {
                tracing::info!(
                    projection = name,
                    stored = stored.version,
                    current = projection.version(),
                    "stored rows are of another version; rebuilding from position 0"
                );
                self.log.reset_projection(name).await?;
                0
            }
            Some(stored) => {
                let position = stored.position;
                match projection.restore(stored.rows) {
                    Ok(()) => position,
                    Err(reason) => {
                        tracing::warn!(
                            projection = name,
                            %reason,
                            "stored rows do not restore; rebuilding from position 0"
                        );
                        projection = (self.factory)();
                        self.log.reset_projection(name).await?;
                        0
                    }
                }
            }
            None => 0,
        };
        // Nothing restored is pending.
        let _ = projection.take_changes();
        self.projection = projection;
        self.applied = start;
        self.committed = start;
        self.progress.send_replace(start);
        Ok(())
    }
}

/// Catches several runners up to `until` reading the log once: each page
/// is applied to every runner's projection, and each commits its own rows
/// and checkpoint as [`Runner::catch_up`] does. Runners that are not at the
/// same position catch up one after the other instead.
pub async fn catch_up_together(
    runners: &mut [Runner],
    until: Position,
    mut on_progress: impl FnMut(Position),
) -> Result<(), RunnerError> {
    let Some(start) = runners.first().map(|r| r.applied) else {
        return Ok(());
    };
    if runners.iter().any(|r| r.applied != start) {
        for runner in runners.iter_mut() {
            runner.catch_up(until, &mut on_progress).await?;
        }
        return Ok(());
    }
    fold_together(runners, until, &mut on_progress)
        .await
        .map_err(|(name, source)| RunnerError::Log { name, source })
}

/// Folds the pages up to `until` into every runner (all at the same
/// position), committing each every [`RunnerConfig::catch_up_commit`]
/// events (the first runner's settings) and at the end; an error names the
/// projection it belongs to.
async fn fold_together(
    runners: &mut [Runner],
    until: Position,
    on_progress: &mut impl FnMut(Position),
) -> Result<(), (&'static str, LogError)> {
    let Some(first) = runners.first() else {
        return Ok(());
    };
    let (name, every) = (first.name(), first.config.catch_up_commit);
    let (pages, mut incoming) = mpsc::channel(READ_AHEAD);
    let reader = AbortOnDropHandle::new(tokio::spawn(read_pages(
        first.log.clone(),
        first.applied,
        until,
        first.config.page,
        pages,
    )));
    let mut since_commit = 0usize;
    while let Some(page) = incoming.recv().await {
        let page = page.map_err(|e| (name, e))?;
        let Some(last) = page.last().map(|e| e.position) else {
            continue;
        };
        for runner in runners.iter_mut() {
            for event in &page {
                runner.projection.apply(event);
            }
            runner.applied = last;
        }
        since_commit += page.len();
        if since_commit >= every {
            commit_all(runners).await?;
            since_commit = 0;
        }
        on_progress(last);
    }
    drop(reader);
    commit_all(runners).await
}

async fn commit_all(runners: &mut [Runner]) -> Result<(), (&'static str, LogError)> {
    for runner in runners.iter_mut() {
        runner.commit().await.map_err(|e| (runner.name(), e))?;
    }
    Ok(())
}

/// Reads the events after `after` up to `until` into `pages`, in order; an
/// error is the last item. Positions are dense, so the pages' starts are
/// known ahead: [`PARALLEL_READS`] pages are read (and decoded) at once, on
/// their own tasks. Events a page repeats from the page before (after a gap,
/// which only tampering makes) are dropped, so none is sent twice.
async fn read_pages(
    log: EventLog,
    after: Position,
    until: Position,
    page: usize,
    pages: mpsc::Sender<Result<Vec<provenant_events::Event>, LogError>>,
) {
    let step = page.max(1) as Position;
    let starts = (0..)
        .map(move |k: Position| after.saturating_add(k.saturating_mul(step)))
        .take_while(move |start| *start < until);
    let mut reads = futures_util::stream::iter(starts)
        .map(|start| {
            let log = log.clone();
            let limit = page.min(usize::try_from(until - start).unwrap_or(usize::MAX));
            AbortOnDropHandle::new(tokio::spawn(async move {
                (limit, log.read_forward(start, limit).await)
            }))
        })
        .buffered(PARALLEL_READS);
    let mut last = after;
    while let Some(read) = reads.next().await {
        let (limit, events) = match read {
            Ok((limit, Ok(events))) => (limit, events),
            Ok((_, Err(e))) => {
                let _ = pages.send(Err(e)).await;
                return;
            }
            Err(e) => {
                let _ = pages
                    .send(Err(LogError::Invalid(format!("a log reader failed: {e}"))))
                    .await;
                return;
            }
        };
        // A short page is the end of the log (`until` may lie beyond it).
        let end_of_log = events.len() < limit;
        let fresh: Vec<_> = events
            .into_iter()
            .filter(|e| e.position > last && e.position <= until)
            .collect();
        if let Some(end) = fresh.last().map(|e| e.position) {
            last = end;
            if pages.send(Ok(fresh)).await.is_err() {
                return;
            }
        }
        if end_of_log || last >= until {
            return;
        }
    }
}

/// Pages read at once while catching up.
const PARALLEL_READS: usize = 4;

/// Loads every standard projection and starts following the log with each,
/// on a task of its own, until `stop` turns true (`serve` and `provenant
/// projections run`); `reads` counts where their events come from.
pub async fn spawn_all(
    log: &EventLog,
    config: &ProjectionsConfig,
    reads: Arc<TailCounters>,
    fence: Option<Fence>,
    stop: watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, RunnerError> {
    let mut tasks = Vec::new();
    for (_, factory) in standard(config) {
        let runner = Runner::load(log.clone(), factory, RunnerConfig::default())
            .await?
            .counting_reads_into(reads.clone())
            .fenced_by(fence.clone());
        tasks.push(tokio::spawn(runner.run(stop.clone())));
    }
    Ok(tasks)
}

//! Following the log: each later event once, in position order, waiting
//! for new ones without a busy loop, and reading the database only to catch
//! up.
//!
//! A tail takes events from two sources: the feed (the batches this
//! process's appends committed, in memory) and the log itself. It keeps
//! `after`, the position of the last event it has queued, and accepts an
//! event only at `after + 1`:
//!
//! - a feed batch that ends at or before `after` is dropped (the log already
//!   gave those events), and the part of one that overlaps is cut;
//! - a feed batch that starts beyond `after + 1` (a gap: the tail started
//!   behind, fell further behind than the feed holds, or another process
//!   appended) is dropped, and the tail reads the log from `after` instead.
//!
//! Positions are dense and commit in position order (one append lock per
//! log), so a read of the log from `after` returns exactly the events that
//! follow, and the events a feed batch holds are the log's at those
//! positions. The tail therefore returns each position once, in order,
//! whichever source brought it. It reads the log when it starts, after a
//! gap, after the feed said it lagged, when another process appended (a
//! PostgreSQL notification that does not name this log's feed), and every
//! [`WAKE_FALLBACK`] without news (a safety net for a lost notification or
//! another writer on the same SQLite file).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use provenant_events::event::{Event, Position};
use tokio::sync::broadcast::{self, error::TryRecvError};
use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

use crate::config::WAKE_FALLBACK;
use crate::error::LogError;
use crate::feed::Batch;
use crate::log::{Backend, EventLog};
use crate::postgres;
use crate::rows::EventJson;

impl EventLog {
    /// Follows the log from `after`: [`Tail::next`] returns each later event
    /// once, in position order, waiting (without a busy loop) for new ones.
    pub async fn tail(&self, after: Position) -> Result<Tail, LogError> {
        // Subscribed before anything is read: every append that commits
        // after this is either in the feed or found by a read of the log.
        let feed = self.feed.subscribe();
        let (wake, listener) = match &self.backend {
            Backend::Postgres(b) => {
                let (rx, task) = b
                    .notifications(postgres::NOTIFY_CHANNEL, Some(self.feed.origin()))
                    .await?;
                (Some(rx), Some(AbortOnDropHandle::new(task)))
            }
            // Another writer on the same SQLite file is noticed by the
            // fallback read.
            Backend::Sqlite(_) => (None, None),
        };
        Ok(Tail {
            log: self.clone(),
            after,
            buffer: VecDeque::new(),
            feed,
            behind: true,
            wake,
            _listener: listener,
            counters: Arc::default(),
        })
    }
}

/// Where a tail's events came from, counted as it goes; one set of counters
/// may be shared by several tails (see [`Tail::counting_into`]).
#[derive(Debug, Default)]
pub struct TailCounters {
    from_feed: AtomicU64,
    from_log: AtomicU64,
    log_reads: AtomicU64,
}

impl TailCounters {
    /// The counts now.
    pub fn stats(&self) -> TailStats {
        TailStats {
            from_feed: self.from_feed.load(Ordering::Relaxed),
            from_log: self.from_log.load(Ordering::Relaxed),
            log_reads: self.log_reads.load(Ordering::Relaxed),
        }
    }
}

/// Where a tail's events came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailStats {
    /// Events taken from the feed, in memory.
    pub from_feed: u64,
    /// Events read from the database.
    pub from_log: u64,
    /// Reads of the database (those that found nothing included).
    pub log_reads: u64,
}

/// Follows the log; see [`EventLog::tail`] and the module's documentation.
pub struct Tail {
    log: EventLog,
    /// The position of the last event queued in `buffer` (or returned).
    after: Position,
    /// Events queued, at consecutive positions up to `after`.
    buffer: VecDeque<Arc<Event>>,
    feed: broadcast::Receiver<Batch>,
    /// Whether the log may hold events after `after` that the feed will not
    /// bring: the next events come from a read of the log.
    behind: bool,
    /// Changes at each append by another process (PostgreSQL `LISTEN`).
    wake: Option<watch::Receiver<Position>>,
    /// The task that forwards PostgreSQL notifications to `wake`.
    _listener: Option<AbortOnDropHandle<()>>,
    counters: Arc<TailCounters>,
}

/// Events read from the log at once.
const TAIL_BATCH: usize = 512;

impl Tail {
    /// The next event after the last one returned.
    pub async fn next(&mut self) -> Result<Arc<Event>, LogError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Ok(event);
            }
            self.fill().await?;
        }
    }

    /// The next events after the last one returned: at least one, in order.
    /// Waits like [`next`](Self::next).
    pub async fn next_batch(&mut self) -> Result<Vec<Arc<Event>>, LogError> {
        while self.buffer.is_empty() {
            self.fill().await?;
        }
        Ok(self.buffer.drain(..).collect())
    }

    /// The next events after the last one returned, in their JSON form
    /// ([`EventJson`]): at least one, at most a page, in order. Waits like
    /// [`next`](Self::next). While catching up, rows are read straight into
    /// their JSON form, without building the events.
    pub async fn next_json_batch(&mut self) -> Result<Vec<EventJson>, LogError> {
        loop {
            if !self.buffer.is_empty() {
                return Ok(self.buffer.drain(..).map(|e| EventJson::of(&e)).collect());
            }
            self.take_feed();
            if !self.buffer.is_empty() {
                continue;
            }
            if self.behind {
                self.mark_woken();
                let page = self.log.read_forward_json(self.after, TAIL_BATCH).await?;
                self.read_done(page.len());
                if let Some(last) = page.last() {
                    self.after = last.position;
                    return Ok(page);
                }
                continue;
            }
            self.wait().await;
        }
    }

    /// The position of the last event returned (or the starting point).
    pub fn position(&self) -> Position {
        self.after - self.buffer.len() as Position
    }

    /// Where the events returned so far came from (with the counts of the
    /// other tails that share its counters).
    pub fn stats(&self) -> TailStats {
        self.counters.stats()
    }

    /// Counts into `counters` (shared with other tails, or kept by the
    /// caller across tails) from now on.
    pub fn counting_into(mut self, counters: Arc<TailCounters>) -> Self {
        self.counters = counters;
        self
    }

    /// Queues at least one event, or waits for news and returns.
    async fn fill(&mut self) -> Result<(), LogError> {
        self.take_feed();
        if !self.buffer.is_empty() {
            return Ok(());
        }
        if self.behind {
            self.mark_woken();
            let page = self.log.read_forward(self.after, TAIL_BATCH).await?;
            self.read_done(page.len());
            for event in page {
                self.after = event.position;
                self.buffer.push_back(Arc::new(event));
            }
            return Ok(());
        }
        self.wait().await;
        Ok(())
    }

    /// Takes what the feed holds, without waiting.
    fn take_feed(&mut self) {
        loop {
            match self.feed.try_recv() {
                Ok(batch) => self.offer(&batch),
                Err(TryRecvError::Lagged(_)) => self.behind = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }

    /// Queues the events of a feed batch that follow `after`; a batch that
    /// leaves a gap sends the tail to the log.
    fn offer(&mut self, batch: &Batch) {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return;
        };
        if self.behind || last.position <= self.after {
            // Behind, the read of the log brings these; or they are queued
            // or returned already.
            return;
        }
        if first.position > self.after + 1 {
            self.behind = true;
            return;
        }
        let before = self.buffer.len();
        let after = self.after;
        for event in batch.iter().filter(|e| e.position > after) {
            self.after = event.position;
            self.buffer.push_back(event.clone());
        }
        self.counters
            .from_feed
            .fetch_add((self.buffer.len() - before) as u64, Ordering::Relaxed);
    }

    /// A read of the log returned `n` events: a short page reached the end
    /// (what commits later is in the feed, or announced).
    fn read_done(&mut self, n: usize) {
        self.counters.log_reads.fetch_add(1, Ordering::Relaxed);
        self.counters
            .from_log
            .fetch_add(n as u64, Ordering::Relaxed);
        self.behind = n == TAIL_BATCH;
    }

    /// Marks the notifications seen before a read of the log, so that an
    /// append that commits after the read wakes the next wait.
    fn mark_woken(&mut self) {
        if let Some(wake) = &mut self.wake {
            wake.borrow_and_update();
        }
    }

    /// Waits for a feed batch, another process's append, or the fallback.
    async fn wait(&mut self) {
        let (feed, wake) = (&mut self.feed, &mut self.wake);
        let woken = async {
            if let Some(w) = wake
                && w.changed().await.is_ok()
            {
                return;
            }
            // No notifications (SQLite, or the listener gone): the
            // fallback reads.
            std::future::pending::<()>().await
        };
        let batch = tokio::select! {
            // Lagged; or closed, which cannot be: the log, which holds the
            // sender, outlives its tails. Either way, read the log.
            batch = feed.recv() => batch.ok(),
            _ = woken => None,
            _ = tokio::time::sleep(WAKE_FALLBACK) => None,
        };
        match batch {
            Some(batch) => self.offer(&batch),
            None => self.behind = true,
        }
    }
}

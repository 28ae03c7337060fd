//! Following the log: each later event once, in position order, waiting
//! for new ones without a busy loop.

use std::collections::VecDeque;

use provenant_events::event::{Event, Position};
use tokio_util::task::AbortOnDropHandle;

use crate::config::WAKE_FALLBACK;
use crate::error::LogError;
use crate::log::{Backend, EventLog};
use crate::postgres;
use crate::rows::EventJson;

impl EventLog {
    /// Follows the log from `after`: [`Tail::next`] returns each later event
    /// once, in position order, waiting (without a busy loop) for new ones.
    pub async fn tail(&self, after: Position) -> Result<Tail, LogError> {
        let (wake, listener) = match &self.backend {
            Backend::Postgres(b) => {
                let (rx, task) = b.notifications(postgres::NOTIFY_CHANNEL).await?;
                (rx, Some(AbortOnDropHandle::new(task)))
            }
            Backend::Sqlite(b) => (b.subscribe(), None),
        };
        Ok(Tail {
            log: self.clone(),
            after,
            buffer: VecDeque::new(),
            wake,
            _listener: listener,
        })
    }
}

/// Follows the log; see [`EventLog::tail`].
pub struct Tail {
    log: EventLog,
    after: Position,
    buffer: VecDeque<Event>,
    /// Changes after each append (in this process, or any process on
    /// PostgreSQL, through `LISTEN`).
    wake: tokio::sync::watch::Receiver<Position>,
    /// The task that forwards PostgreSQL notifications to `wake`.
    _listener: Option<AbortOnDropHandle<()>>,
}

const TAIL_BATCH: usize = 512;

impl Tail {
    /// The next event after the last one returned.
    pub async fn next(&mut self) -> Result<Event, LogError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.after = event.position;
                return Ok(event);
            }
            // Marked seen before the read, so an append that commits after
            // the read wakes the wait below.
            self.wake.borrow_and_update();
            let batch = self.log.read_forward(self.after, TAIL_BATCH).await?;
            if !batch.is_empty() {
                self.buffer.extend(batch);
                continue;
            }
            let _ = tokio::time::timeout(WAKE_FALLBACK, self.wake.changed()).await;
        }
    }

    /// The next events after the last one returned, in their JSON form
    /// ([`EventJson`]): at least one, at most a page, in order. Waits like
    /// [`next`](Self::next).
    pub async fn next_json_batch(&mut self) -> Result<Vec<EventJson>, LogError> {
        if !self.buffer.is_empty() {
            let batch: Vec<EventJson> = self.buffer.drain(..).map(EventJson::of).collect();
            if let Some(last) = batch.last() {
                self.after = last.position;
            }
            return Ok(batch);
        }
        loop {
            self.wake.borrow_and_update();
            let batch = self.log.read_forward_json(self.after, TAIL_BATCH).await?;
            if let Some(last) = batch.last() {
                self.after = last.position;
                return Ok(batch);
            }
            let _ = tokio::time::timeout(WAKE_FALLBACK, self.wake.changed()).await;
        }
    }

    /// The position of the last event returned (or the starting point).
    pub fn position(&self) -> Position {
        self.after
    }
}

//! The feed: events this process appended, handed in memory from the append
//! that committed them to the log's followers in this process (the relay,
//! the projections), so that following the log reads nothing back from the
//! database while a follower keeps up.
//!
//! The feed is a bounded broadcast channel of committed batches. It carries
//! each batch once its transaction has committed, as the `Event`s the
//! database now holds (positions, stream versions, hashes and the recorded
//! time assigned under the append lock). A follower that falls further
//! behind than the channel holds is told it lagged and reads the log
//! instead; [`Tail`](crate::Tail) decides, position by position, which it
//! takes (see there for why that skips nothing and repeats nothing).
//!
//! An append builds the batch's events only when something follows the
//! feed, so a writer that nobody follows (the auditors, `bench append`) pays
//! nothing for it.

use std::sync::Arc;

use provenant_events::event::Event;
use tokio::sync::broadcast;

/// Batches the feed holds for a follower that has not taken them yet.
pub const DEFAULT_FEED_CAPACITY: usize = 1024;

/// A committed batch: events at consecutive positions, in order.
pub(crate) type Batch = Arc<[Arc<Event>]>;

/// The sending side, shared by every clone of one [`EventLog`](crate::EventLog).
#[derive(Clone)]
pub(crate) struct Feed {
    tx: broadcast::Sender<Batch>,
    /// This log's name in the PostgreSQL append notification: a follower
    /// ignores the notifications of appends the feed brings it.
    origin: Arc<str>,
}

impl Feed {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Feed {
            tx,
            origin: uuid::Uuid::now_v7().simple().to_string().into(),
        }
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether anything follows the feed (else an append need not build
    /// its events).
    pub fn followed(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub fn publish(&self, batch: Vec<Arc<Event>>) {
        if !batch.is_empty() {
            // No follower left is not an error.
            let _ = self.tx.send(batch.into());
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Batch> {
        self.tx.subscribe()
    }
}

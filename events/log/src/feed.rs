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
//!
//! Memory: a batch is sent in chunks of at most [`CHUNK`] events, and the
//! channel holds at most `capacity` chunks that some follower has not taken
//! (a chunk every follower has taken is freed). So the feed holds at most
//! `capacity × CHUNK` events, and only while a follower is stuck (the relay
//! waiting for NATS, say): it then reads the log when it goes on.

use std::sync::Arc;

use provenant_events::event::Event;
use tokio::sync::broadcast;

/// Events per chunk the feed sends.
pub const CHUNK: usize = 512;

/// Chunks the feed holds for a follower that has not taken them yet: at
/// most 65,536 events.
pub const DEFAULT_FEED_CAPACITY: usize = 128;

/// A chunk of a committed batch: events at consecutive positions, in order.
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
        for chunk in batch.chunks(CHUNK) {
            // No follower left is not an error.
            let _ = self.tx.send(chunk.into());
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Batch> {
        self.tx.subscribe()
    }
}

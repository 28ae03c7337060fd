//! provenant's event model: the pure core every other crate builds on.
//!
//! - [`ids`], [`canonical`], [`payload`], [`text`] and [`event`]: validated
//!   ids, the canonical JSON encoding, an event's payload held as its
//!   canonical text, the cheap shared [`Text`] provenance uses, and the
//!   event with its hash. [`head`]: a log's `POSITION:HASH`.
//! - The vocabulary, declared once: [`kinds`] (the event kinds provenant
//!   writes), [`keys`] (the payload keys more than one crate reads),
//!   [`CallKind`] (what a plugin call was) and [`TickAck`] (what became of a
//!   tick, as the engine answers it).
//! - [`partition`]: which partition of a cluster a world belongs to.
//!
//! Nothing here does I/O: the log that stores events is `provenant-log`.

pub mod call;
pub mod canonical;
pub mod event;
pub mod head;
pub mod ids;
pub mod keys;
pub mod kinds;
pub mod partition;
pub mod payload;
pub mod text;
pub mod tick;

pub use call::CallKind;
pub use event::{Event, EventHash, NewEvent, Position, Provenance};
pub use head::{Head, HeadParseError};
pub use ids::{EventKind, IdError, PluginId, SessionId, StreamName, WorldId};
pub use partition::Partitions;
pub use payload::Payload;
pub use text::Text;
pub use tick::TickAck;

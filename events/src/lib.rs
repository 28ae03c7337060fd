//! provenant's event model and its log.
//!
//! - [`ids`], [`canonical`] and [`event`] are the pure core: validated ids,
//!   the canonical JSON encoding and the event with its hash. They do no I/O.
//! - [`log`] is the only module that talks to a database: the append-only,
//!   hash-chained log on PostgreSQL or embedded SQLite, and its verifier.

pub mod canonical;
pub mod event;
pub mod ids;
pub mod log;

pub use event::{Event, EventHash, NewEvent, Position, Provenance};
pub use ids::{EventKind, IdError, PluginId, SessionId, StreamName, WorldId};
pub use log::{
    AppendBatch, AppendOutcome, EventLog, ExpectedVersion, Head, LogConfig, LogError, Tail,
    VerifyConfig, VerifyReport,
};

//! provenant's event model and its log.
//!
//! - [`ids`], [`canonical`] and [`event`] are the pure core: validated ids,
//!   the canonical JSON encoding, the event with its hash and the cheap
//!   shared [`text::Text`] its provenance uses. They do no I/O.
//! - [`log`] is the only module that talks to a database: the append-only,
//!   hash-chained log on PostgreSQL or embedded SQLite, and its verifier.

pub mod canonical;
pub mod event;
pub mod ids;
pub mod log;
pub mod payload;
pub mod text;

pub use event::{Event, EventHash, NewEvent, Position, Provenance};
pub use ids::{EventKind, IdError, PluginId, SessionId, StreamName, WorldId};
pub use log::{
    AppendBatch, AppendOutcome, EventFilter, EventJson, EventLog, ExpectedVersion, Head, LogConfig,
    LogError, ProjectionCommit, ProjectionStatus, StoredProjection, Tail, VerifyConfig,
    VerifyReport,
};
pub use payload::Payload;
pub use text::Text;

//! The log: append-only, hash-chained, on PostgreSQL or embedded SQLite.
//!
//! [`EventLog`] is the one type the rest of provenant uses; the URL picks the
//! backend (`postgres://…` or `sqlite://…`). Both backends keep the same
//! invariants:
//!
//! - appends are serialised (PostgreSQL: one transaction-scoped advisory lock;
//!   SQLite: `BEGIN IMMEDIATE`), positions are assigned under that lock, dense
//!   from 1, so they commit in position order and a reader moving forward by
//!   position never skips an event that commits late;
//! - a batch is appended atomically, with optional expected stream versions;
//! - appends are idempotent by `event_id`;
//! - the database refuses UPDATE, DELETE and TRUNCATE of events (triggers).
//!
//! - an append may name lease epochs ([`Fence`]): it is refused, inside its
//!   transaction, when another holder has taken a lease over since.
//!
//! Beside the events, a log keeps named checkpoints ([`EventLog::checkpoint`]):
//! positions that readers such as the relay save as they go. They are not
//! events, are not hash-chained and never move backwards.

mod append;
mod cluster;
mod config;
mod decode;
mod error;
mod feed;
mod fence_check;
mod filter;
#[doc(hidden)]
pub mod fuzzing;
mod lease;
mod lease_sql;
mod log;
mod plan;
pub mod postgres;
mod projection;
mod rows;
mod snapshot;
mod sqlite;
mod tail;
mod verify;

pub use append::{AppendBatch, AppendOutcome, ExpectedVersion, Fence};
pub use config::{BackendKind, DEFAULT_DATABASE_URL, LogConfig, redact_url};
pub use error::LogError;
pub use feed::{CHUNK as FEED_CHUNK, DEFAULT_FEED_CAPACITY};
pub use filter::EventFilter;
pub use lease::{Lease, LeaseStatus};
pub use log::EventLog;
pub use plan::EventRow;
pub use projection::{ProjectionCommit, ProjectionStatus, StoredProjection};
pub use provenant_events::head::{Head, HeadParseError};
pub use rows::EventJson;
pub use snapshot::Snapshot;
pub use tail::{Tail, TailCounters, TailStats};
pub use verify::{Fault, VerifyConfig, VerifyReport, Violation};

//! Errors at the log boundary.

use provenant_events::event::Position;
use provenant_events::ids::StreamName;
use uuid::Uuid;

use crate::append::ExpectedVersion;

/// Errors at the log boundary.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Optimistic concurrency: the stream is not at the expected version.
    #[error(
        "concurrency conflict on stream {stream}: expected {expected}, actual version {actual}"
    )]
    Conflict {
        stream: StreamName,
        expected: ExpectedVersion,
        actual: u64,
    },
    /// The same `event_id` is already in the log with different content.
    #[error(
        "event id {event_id} is already in the log at position {position} with different content"
    )]
    IdReused { event_id: Uuid, position: Position },
    /// The batch was refused before touching the log.
    #[error("invalid append: {0}")]
    Invalid(String),
    /// The URL names no backend this build has, or is malformed.
    #[error("invalid database URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// Migrations are pending and this role may not run them.
    #[error(
        "the log at {url} needs migrations this role may not run: run `provenant migrate` as the log's owner ({source})"
    )]
    MigrationPrivileges {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// The database has no provenant log (migrations have not run).
    #[error("no provenant log at {url}: run `provenant migrate` first ({source})")]
    NotMigrated {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// A stored row cannot be read as an event.
    #[error("event at position {position} is unreadable: {reason}")]
    Corrupt { position: Position, reason: String },
    /// A projection's stored checkpoint is not where its commit started:
    /// another runner or a rebuild moved it.
    #[error(
        "projection {name:?} moved: the commit started at position {expected} (version {version}) but the stored checkpoint is {actual}"
    )]
    ProjectionMoved {
        name: String,
        expected: Position,
        version: u32,
        actual: String,
    },
    /// The append named a lease epoch that is no longer current: another
    /// holder took the lease over (or it was never taken). Nothing was
    /// written; the writer must stop the work the lease covered.
    #[error(
        "fenced out: the append was made under lease {lease:?} at epoch {epoch}, but {}; nothing was written",
        match (current, owner) {
            (Some(c), Some(o)) => format!("{o} holds it at epoch {c}"),
            _ => "no one holds it".to_owned(),
        }
    )]
    Fenced {
        lease: String,
        epoch: u64,
        current: Option<u64>,
        owner: Option<String>,
    },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

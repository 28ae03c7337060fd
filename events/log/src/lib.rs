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
//! Beside the events, a log keeps named checkpoints ([`EventLog::checkpoint`]):
//! positions that readers such as the relay save as they go. They are not
//! events, are not hash-chained and never move backwards.

mod decode;
mod plan;
pub mod postgres;
mod sqlite;
mod verify;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio_util::task::AbortOnDropHandle;
use uuid::Uuid;

use provenant_events::event::{Event, EventHash, NewEvent, Position};
use provenant_events::ids::{EventKind, PluginId, SessionId, StreamName, WorldId};

pub use plan::EventRow;
pub(crate) use plan::{PreparedBatch, Texts};

pub use provenant_events::head::{Head, HeadParseError};
pub use verify::{Fault, VerifyConfig, VerifyReport, Violation};

/// The default log: an embedded SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://provenant.db";

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
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// What a writer expects of a stream's version before its batch is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream has no events yet.
    NoStream,
    /// The stream's last event has this version.
    Exact(u64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::NoStream => f.write_str("no stream (version 0)"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

impl ExpectedVersion {
    fn matches(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }
}

/// A batch to append: events in order, and the stream versions expected
/// before it (streams not named are not checked).
#[derive(Debug, Clone, Default)]
pub struct AppendBatch {
    pub events: Vec<NewEvent>,
    pub expected: Vec<(StreamName, ExpectedVersion)>,
}

impl AppendBatch {
    pub fn new(events: Vec<NewEvent>) -> Self {
        AppendBatch {
            events,
            expected: Vec::new(),
        }
    }

    pub fn expect(mut self, stream: StreamName, version: ExpectedVersion) -> Self {
        self.expected.push((stream, version));
        self
    }
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The position of each event of the batch, in batch order; for an event
    /// already in the log, its original position.
    pub positions: Vec<Position>,
    /// How many events were written (0 when the whole batch was a retry).
    pub written: usize,
    /// The head after the append.
    pub head: Head,
}

/// Which events [`EventLog::read_filtered`] returns: those that match every
/// field given (`None` matches anything, including an event without that
/// field). The default filter matches every event.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events of this world.
    pub world: Option<WorldId>,
    /// Only events of this session (session ids are unique within a world:
    /// give `world` too to name one session).
    pub session: Option<SessionId>,
    /// Only events of this plugin.
    pub plugin: Option<PluginId>,
    /// Only events of this kind.
    pub kind: Option<EventKind>,
}

/// How to open a log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `postgres://…` or `sqlite://…`.
    pub url: String,
    /// Run pending migrations when opening, creating an SQLite file that is
    /// missing (the engine does; the auditor, which only reads, does not).
    pub migrate: bool,
    /// Connections in the pool.
    pub max_connections: u32,
}

impl LogConfig {
    pub fn new(url: impl Into<String>) -> Self {
        LogConfig {
            url: url.into(),
            migrate: true,
            max_connections: 8,
        }
    }
}

/// The event log. Cheap to clone; clones share one connection pool.
#[derive(Clone)]
pub struct EventLog {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Postgres(postgres::PgLog),
    Sqlite(sqlite::SqliteLog),
}

/// Which database a log lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Postgres,
    Sqlite,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Postgres => "PostgreSQL",
            BackendKind::Sqlite => "embedded SQLite",
        })
    }
}

impl EventLog {
    /// Opens the log the URL names, running migrations if `config.migrate`.
    pub async fn open(config: &LogConfig) -> Result<Self, LogError> {
        let url = config.url.as_str();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(postgres::PgLog::open(config).await?)
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::SqliteLog::open(config).await?)
        } else {
            return Err(LogError::BadUrl {
                url: url.to_owned(),
                reason: "expected postgres://… or sqlite://…".into(),
            });
        };
        let log = EventLog { backend };
        if config.migrate {
            log.migrate().await?;
        }
        Ok(log)
    }

    pub fn backend_kind(&self) -> BackendKind {
        match &self.backend {
            Backend::Postgres(_) => BackendKind::Postgres,
            Backend::Sqlite(_) => BackendKind::Sqlite,
        }
    }

    /// Runs pending migrations. Migrations never rewrite old events.
    pub async fn migrate(&self) -> Result<(), LogError> {
        match &self.backend {
            Backend::Postgres(b) => b.migrate().await,
            Backend::Sqlite(b) => b.migrate().await,
        }
    }

    /// Appends a batch atomically: all of it or nothing.
    ///
    /// Events already in the log (same `event_id`, same content) are not
    /// written again and report their original position; when every event of
    /// the batch is already there, nothing is written and the expectations
    /// are not checked (the batch is a retry). The same `event_id` with
    /// different content is [`LogError::IdReused`].
    #[tracing::instrument(level = "debug", skip_all, fields(events = batch.events.len()))]
    pub async fn append(&self, batch: AppendBatch) -> Result<AppendOutcome, LogError> {
        let prepared = PreparedBatch::new(batch)?;
        match &self.backend {
            Backend::Postgres(b) => b.append(prepared).await,
            Backend::Sqlite(b) => b.append(prepared).await,
        }
    }

    /// Up to `limit` events after `after`, in position order.
    pub async fn read_forward(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<Event>, LogError> {
        self.read_rows(after, limit)
            .await?
            .into_iter()
            .map(|(position, row)| row.map_err(|reason| LogError::Corrupt { position, reason }))
            .collect()
    }

    /// Up to `limit` events after `after` that match every field of `filter`,
    /// in position order.
    ///
    /// The filter is applied by the database, which walks the events in
    /// position order from `after` (there is no index on the filtered
    /// columns): a selective filter over a long log reads many rows to
    /// return a few.
    pub async fn read_filtered(
        &self,
        after: Position,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Event>, LogError> {
        let rows = match &self.backend {
            Backend::Postgres(b) => b.read_filtered(after, limit, filter).await?,
            Backend::Sqlite(b) => b.read_filtered(after, limit, filter).await?,
        };
        rows.into_iter()
            .map(|(position, row)| row.map_err(|reason| LogError::Corrupt { position, reason }))
            .collect()
    }

    /// The positions of those of `ids` that are in the log, in one query;
    /// ids that are not in the log are left out.
    pub async fn positions_of(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Position>, LogError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        match &self.backend {
            Backend::Postgres(b) => b.positions_of(ids).await,
            Backend::Sqlite(b) => b.positions_of(ids).await,
        }
    }

    /// The position saved under the checkpoint `name`, or `None` when
    /// nothing has been saved under it.
    pub async fn checkpoint(&self, name: &str) -> Result<Option<Position>, LogError> {
        match &self.backend {
            Backend::Postgres(b) => b.checkpoint(name).await,
            Backend::Sqlite(b) => b.checkpoint(name).await,
        }
    }

    /// Saves `position` under the checkpoint `name`, durably. A checkpoint
    /// never moves backwards: saving a position below the stored one changes
    /// nothing. Checkpoints are not events and are not hash-chained.
    pub async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), LogError> {
        let stored = i64::try_from(position).map_err(|_| {
            LogError::Invalid(format!(
                "checkpoint {name:?}: position {position} is above the largest a log has ({})",
                i64::MAX
            ))
        })?;
        match &self.backend {
            Backend::Postgres(b) => b.save_checkpoint(name, stored).await,
            Backend::Sqlite(b) => b.save_checkpoint(name, stored).await,
        }
    }

    /// A projection's checkpoint, version and rows, read in one snapshot;
    /// `None` when it has never committed (or was reset).
    pub async fn load_projection(&self, name: &str) -> Result<Option<StoredProjection>, LogError> {
        match &self.backend {
            Backend::Postgres(b) => b.load_projection(name).await,
            Backend::Sqlite(b) => b.load_projection(name).await,
        }
    }

    /// Some rows of a projection (by key), with its checkpoint; for readers
    /// such as the admin API. Keys without a row are left out.
    pub async fn projection_rows(
        &self,
        name: &str,
        keys: &[String],
    ) -> Result<Option<StoredProjection>, LogError> {
        match &self.backend {
            Backend::Postgres(b) => b.projection_rows(name, keys).await,
            Backend::Sqlite(b) => b.projection_rows(name, keys).await,
        }
    }

    /// Writes a projection's changed rows and moves its checkpoint from
    /// `commit.from` to `commit.to`, in one transaction. Refused with
    /// [`LogError::ProjectionMoved`] (and nothing written) when the stored
    /// checkpoint is not at `from` with the same version (none stored counts
    /// as position 0): two runners never both apply an event.
    pub async fn commit_projection(&self, commit: &ProjectionCommit<'_>) -> Result<(), LogError> {
        if commit.to < commit.from {
            return Err(LogError::Invalid(format!(
                "projection {:?}: a commit cannot move the checkpoint back from {} to {}",
                commit.name, commit.from, commit.to
            )));
        }
        let to = i64::try_from(commit.to).map_err(|_| {
            LogError::Invalid(format!(
                "projection {:?}: position {} is above the largest a log has",
                commit.name, commit.to
            ))
        })?;
        for (_, value) in commit.changes {
            if let Some(value) = value {
                serde_json::from_str::<serde::de::IgnoredAny>(value).map_err(|e| {
                    LogError::Invalid(format!(
                        "projection {:?}: a row is not JSON: {e}",
                        commit.name
                    ))
                })?;
            }
        }
        match &self.backend {
            Backend::Postgres(b) => b.commit_projection(commit, to).await,
            Backend::Sqlite(b) => b.commit_projection(commit, to).await,
        }
    }

    /// Forgets a projection: its rows and checkpoint. It starts again from
    /// position 0 (a runner that had it loaded finds it moved and reloads).
    pub async fn reset_projection(&self, name: &str) -> Result<(), LogError> {
        match &self.backend {
            Backend::Postgres(b) => b.reset_projection(name).await,
            Backend::Sqlite(b) => b.reset_projection(name).await,
        }
    }

    /// Waits until every projection of `names` has committed `position`
    /// (or beyond), for at most `timeout`; whether they did. Woken by each
    /// projection commit (PostgreSQL: from any process, through `LISTEN`;
    /// SQLite: through this `EventLog`), and looks again every
    /// [`TAIL_FALLBACK`] for commits it cannot hear of (another process on
    /// the same SQLite file).
    pub async fn wait_for_projections(
        &self,
        names: &[&str],
        position: Position,
        timeout: Duration,
    ) -> Result<bool, LogError> {
        let (mut wake, _listener) = match &self.backend {
            Backend::Postgres(b) => {
                let (rx, task) = b.notifications(postgres::PROJECTIONS_CHANNEL).await?;
                (rx, Some(AbortOnDropHandle::new(task)))
            }
            Backend::Sqlite(b) => (b.subscribe_projections(), None),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            wake.borrow_and_update();
            let statuses = self.projection_statuses().await?;
            let done = names.iter().all(|name| {
                statuses
                    .iter()
                    .any(|s| s.name == *name && s.position >= position)
            });
            if done {
                return Ok(true);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let _ = tokio::time::timeout(TAIL_FALLBACK.min(deadline - now), wake.changed()).await;
        }
    }

    /// Every projection stored, by name.
    pub async fn projection_statuses(&self) -> Result<Vec<ProjectionStatus>, LogError> {
        match &self.backend {
            Backend::Postgres(b) => b.projection_statuses().await,
            Backend::Sqlite(b) => b.projection_statuses().await,
        }
    }

    /// Up to `limit` events of one stream with version above `after_version`.
    pub async fn read_stream(
        &self,
        stream: &StreamName,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<Event>, LogError> {
        let rows = match &self.backend {
            Backend::Postgres(b) => b.read_stream(stream, after_version, limit).await?,
            Backend::Sqlite(b) => b.read_stream(stream, after_version, limit).await?,
        };
        rows.into_iter()
            .map(|(position, row)| row.map_err(|reason| LogError::Corrupt { position, reason }))
            .collect()
    }

    /// The current version of a stream (0 when it has no events).
    pub async fn stream_version(&self, stream: &StreamName) -> Result<u64, LogError> {
        let versions = match &self.backend {
            Backend::Postgres(b) => b.stream_versions(std::slice::from_ref(stream)).await?,
            Backend::Sqlite(b) => b.stream_versions(std::slice::from_ref(stream)).await?,
        };
        Ok(versions.get(stream).copied().unwrap_or(0))
    }

    /// The last position and hash.
    pub async fn head(&self) -> Result<Head, LogError> {
        match &self.backend {
            Backend::Postgres(b) => b.head().await,
            Backend::Sqlite(b) => b.head().await,
        }
    }

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

    /// Walks the whole chain; see [`verify`](VerifyReport).
    pub async fn verify(
        &self,
        config: &VerifyConfig,
        progress: &mut (dyn FnMut(Position) + Send),
    ) -> Result<VerifyReport, LogError> {
        verify::run(self, config, progress).await
    }

    /// Rows after `after`, each decoded or with why it could not be.
    pub(crate) async fn read_rows(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RawRow>, LogError> {
        match &self.backend {
            Backend::Postgres(b) => b.read_rows(after, limit).await,
            Backend::Sqlite(b) => b.read_rows(after, limit).await,
        }
    }

    /// Rows after `after` as the verifier walks them.
    pub(crate) async fn read_links(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RawLink>, LogError> {
        match &self.backend {
            Backend::Postgres(b) => b.read_links(after, limit).await,
            Backend::Sqlite(b) => b.read_links(after, limit).await,
        }
    }

    /// Up to `limit` events after `after`, in position order, in their
    /// JSON form ([`EventJson`]): what the relay publishes, read without
    /// building the events.
    pub async fn read_forward_json(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<EventJson>, LogError> {
        let rows = match &self.backend {
            Backend::Postgres(b) => b.read_rows_json(after, limit).await?,
            Backend::Sqlite(b) => b.read_rows_json(after, limit).await?,
        };
        rows.into_iter()
            .map(|(position, row)| row.map_err(|reason| LogError::Corrupt { position, reason }))
            .collect()
    }

    /// The position of the event whose stored hash is `hash`, if any.
    pub(crate) async fn position_of_hash(
        &self,
        hash: &EventHash,
    ) -> Result<Option<Position>, LogError> {
        match &self.backend {
            Backend::Postgres(b) => b.position_of_hash(hash).await,
            Backend::Sqlite(b) => b.position_of_hash(hash).await,
        }
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Postgres(b) => b.close().await,
            Backend::Sqlite(b) => b.close().await,
        }
    }
}

/// The URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// A stored row: its position, and the event or why it could not be read.
pub(crate) type RawRow = (Position, Result<Event, String>);
/// A stored row in its JSON form, or why it could not be read.
pub(crate) type RawJson = (Position, Result<EventJson, String>);
/// A row as the verifier walks it, or why it could not be read.
pub(crate) type RawLink = (Position, Result<decode::Link, String>);

/// An event in its JSON form, read straight from its row, with the fields a
/// publisher routes by. `json` is the bytes [`Event::to_json`] gives for the
/// event, except that the payload and provenance are written as stored
/// (the log stores their canonical text, so this differs only for a row
/// changed by hand, which `audit verify` reports). They are checked for
/// being JSON, not parsed: this is the relay's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventJson {
    pub position: Position,
    pub event_id: Uuid,
    pub kind: EventKind,
    pub plugin_id: Option<PluginId>,
    pub world_id: Option<WorldId>,
    pub json: Vec<u8>,
}

/// A position as the databases store it (`bigint`, `INTEGER`).
fn stored_position(p: Position) -> i64 {
    i64::try_from(p).unwrap_or(i64::MAX)
}

impl EventJson {
    /// The JSON form of an event already read.
    pub fn of(event: Event) -> Self {
        EventJson {
            position: event.position,
            event_id: event.event_id,
            json: event.to_json(),
            kind: event.kind,
            plugin_id: event.plugin_id,
            world_id: event.world_id,
        }
    }
}

/// A projection as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProjection {
    /// The position of the last event its rows include.
    pub position: Position,
    /// The version of the projection's row format.
    pub version: u32,
    /// Its rows, `(key, JSON text)`, ordered by key.
    pub rows: Vec<(String, String)>,
}

/// One projection's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionStatus {
    pub name: String,
    pub position: Position,
    pub version: u32,
    /// When it last committed (RFC 3339, UTC).
    pub updated_at: String,
}

/// What [`EventLog::commit_projection`] writes.
#[derive(Debug, Clone)]
pub struct ProjectionCommit<'a> {
    pub name: &'a str,
    pub version: u32,
    /// The checkpoint this commit continues from (0 for a fresh start).
    pub from: Position,
    /// The new checkpoint: the last event the rows include.
    pub to: Position,
    /// Rows to write (`Some(json)`) or delete (`None`).
    pub changes: &'a [(String, Option<String>)],
}

/// Refuses a commit whose start is not the stored checkpoint (`None`: no
/// checkpoint stored, which is position 0 of any version).
fn check_projection_start(
    commit: &ProjectionCommit<'_>,
    stored: Option<(i64, i32)>,
) -> Result<(), LogError> {
    let matches = match stored {
        None => commit.from == 0,
        Some((position, version)) => {
            i64::try_from(commit.from).is_ok_and(|from| from == position)
                && i64::from(version) == i64::from(commit.version)
        }
    };
    if matches {
        return Ok(());
    }
    Err(LogError::ProjectionMoved {
        name: commit.name.to_owned(),
        expected: commit.from,
        version: commit.version,
        actual: match stored {
            None => "none (reset)".to_owned(),
            Some((position, version)) => format!("{position} (version {version})"),
        },
    })
}

/// A stored projection version; the tables refuse negative ones.
fn projection_version(name: &str, stored: i32) -> Result<u32, LogError> {
    u32::try_from(stored).map_err(|_| LogError::Corrupt {
        position: 0,
        reason: format!("projection {name:?} has the negative version {stored}"),
    })
}

/// A stored checkpoint position; the tables refuse negative ones.
fn checkpoint_position(name: &str, stored: i64) -> Result<Position, LogError> {
    Position::try_from(stored).map_err(|_| {
        LogError::Database(sqlx::Error::Decode(
            format!("checkpoint {name:?} holds the negative position {stored}").into(),
        ))
    })
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

/// How long a tail waits for a wake-up before it reads anyway: a safety net
/// for a notification lost with a connection, or a writer in another process
/// (or another `EventLog`) on the same SQLite file. It is not the way new
/// events are normally noticed.
const TAIL_FALLBACK: Duration = Duration::from_millis(500);
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
            let _ = tokio::time::timeout(TAIL_FALLBACK, self.wake.changed()).await;
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
            let _ = tokio::time::timeout(TAIL_FALLBACK, self.wake.changed()).await;
        }
    }

    /// The position of the last event returned (or the starting point).
    pub fn position(&self) -> Position {
        self.after
    }
}

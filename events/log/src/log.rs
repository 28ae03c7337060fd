//! [`EventLog`]: the log behind one URL, each operation handed to its
//! backend (PostgreSQL or SQLite).

use std::collections::HashMap;
use std::time::Duration;

use provenant_events::event::{Event, EventHash, NewEvent, Position};
use provenant_events::head::Head;
use provenant_events::ids::StreamName;
use tokio_util::task::AbortOnDropHandle;
use uuid::Uuid;

use crate::append::{AppendBatch, AppendOutcome, Fence};
use crate::config::{BackendKind, LogConfig, WAKE_FALLBACK};
use crate::decode::{RawLink, RawRow};
use crate::error::LogError;
use crate::feed::Feed;
use crate::filter::EventFilter;
use crate::plan::PreparedBatch;
use crate::postgres;
use crate::projection::{ProjectionCommit, ProjectionStatus, StoredProjection};
use crate::rows::EventJson;
use crate::sqlite;

/// The event log. Cheap to clone; clones share one connection pool and one
/// feed (the events appended through them, handed to their tails in memory).
#[derive(Clone)]
pub struct EventLog {
    pub(crate) backend: Backend,
    pub(crate) feed: Feed,
}

#[derive(Clone)]
pub(crate) enum Backend {
    Postgres(postgres::PgLog),
    Sqlite(sqlite::SqliteLog),
}

impl EventLog {
    /// Opens the log the URL names, running migrations if `config.migrate`.
    pub async fn open(config: &LogConfig) -> Result<Self, LogError> {
        let url = config.url.as_str();
        let feed = Feed::new(config.feed_capacity);
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(postgres::PgLog::open(config, feed.origin()).await?)
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::SqliteLog::open(config).await?)
        } else {
            return Err(LogError::BadUrl {
                url: url.to_owned(),
                reason: "expected postgres://… or sqlite://…".into(),
            });
        };
        let log = EventLog { backend, feed };
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
    ///
    /// The events written are handed to this log's tails in memory once
    /// committed (see [`Tail`](crate::Tail)).
    #[tracing::instrument(level = "debug", skip_all, fields(events = batch.events.len()))]
    pub async fn append(&self, batch: AppendBatch) -> Result<AppendOutcome, LogError> {
        self.append_returning(batch).await.map_err(|(e, _)| e)
    }

    /// As [`append`](Self::append), but an append the database refused
    /// (a stream not at its expected version, a lease taken over) hands its
    /// events back, so a writer that grouped several callers' events can
    /// append the others again. (A batch refused before reaching the
    /// database, as invalid, hands nothing back.)
    pub async fn append_returning(
        &self,
        batch: AppendBatch,
    ) -> Result<AppendOutcome, (LogError, Vec<NewEvent>)> {
        let prepared = PreparedBatch::new(batch).map_err(|e| (e, Vec::new()))?;
        let result = match &self.backend {
            Backend::Postgres(b) => b.append(&prepared).await,
            Backend::Sqlite(b) => b.append(&prepared).await,
        };
        let (outcome, placement) = match result {
            Ok(done) => done,
            Err(e) => return Err((e, prepared.into_events())),
        };
        if self.feed.followed() {
            self.feed.publish(prepared.into_committed(placement));
        }
        Ok(outcome)
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
        self.save_checkpoint_fenced(name, position, None).await
    }

    /// As [`save_checkpoint`](Self::save_checkpoint), made under a lease:
    /// refused ([`LogError::Fenced`], nothing saved) once another holder
    /// took `fence`'s lease over, checked in the same transaction.
    pub async fn save_checkpoint_fenced(
        &self,
        name: &str,
        position: Position,
        fence: Option<&Fence>,
    ) -> Result<(), LogError> {
        let stored = i64::try_from(position).map_err(|_| {
            LogError::Invalid(format!(
                "checkpoint {name:?}: position {position} is above the largest a log has ({})",
                i64::MAX
            ))
        })?;
        match &self.backend {
            Backend::Postgres(b) => b.save_checkpoint(name, stored, fence).await,
            Backend::Sqlite(b) => b.save_checkpoint(name, stored, fence).await,
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
    /// [`WAKE_FALLBACK`] for commits it cannot hear of (another process on
    /// the same SQLite file).
    pub async fn wait_for_projections(
        &self,
        names: &[&str],
        position: Position,
        timeout: Duration,
    ) -> Result<bool, LogError> {
        let (mut wake, _listener) = match &self.backend {
            Backend::Postgres(b) => {
                let (rx, task) = b.notifications(postgres::PROJECTIONS_CHANNEL, None).await?;
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
            let _ = tokio::time::timeout(WAKE_FALLBACK.min(deadline - now), wake.changed()).await;
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

//! The PostgreSQL log: `provenant.events`.
//!
//! Gap safety by serialised writers: every append takes one
//! transaction-scoped advisory lock first, then reads the head, assigns the
//! next dense positions and commits. PostgreSQL makes a commit visible before
//! it releases the transaction's locks, so the next writer's statements (each
//! with a fresh READ COMMITTED snapshot taken after it got the lock) see it,
//! and positions become visible in position order: a reader that reads
//! `position > last` can never skip an event that commits late.
//!
//! Rows are written with `COPY … FROM STDIN` inside the append transaction.

mod migrate;

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::Utc;
use sqlx::postgres::{PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Row};
use tokio::sync::watch;

use crate::append::AppendOutcome;
use crate::config::{LogConfig, redact_url};
use crate::decode::{RawJson, RawLink, RawRow};
use crate::error::LogError;
use crate::filter::EventFilter;
use crate::plan::{EventRow, PreparedBatch, Texts};
use crate::plan::{Placement, Placer};
use crate::projection::{
    ProjectionCommit, ProjectionStatus, StoredProjection, check_projection_start,
    checkpoint_position, projection_version,
};
use provenant_events::event::{EventHash, NewEvent, Position, write_timestamp};
use provenant_events::head::Head;
use provenant_events::ids::StreamName;

/// The key of the advisory lock that serialises appends. Advisory locks are
/// per database, so logs in different databases do not contend.
const APPEND_LOCK_KEY: i64 = 0x7072_6f76_656e_616e; // "provenan"

/// Rows per COPY message.
const COPY_CHUNK: usize = 128;

/// Batches up to this size are written with one multi-row INSERT, larger ones
/// with COPY. sqlx sends COPY's last data and its end as two small writes;
/// with Nagle's algorithm on (sqlx does not set TCP_NODELAY) the second waits
/// for the server's delayed ACK, about 40 ms, which dominates small batches.
/// An INSERT goes out in one write.
const INSERT_MAX: usize = 256;

/// The channel `NOTIFY`'d with the new head position after each append.
pub const NOTIFY_CHANNEL: &str = "provenant_events";

/// The channel `NOTIFY`'d after each projection commit.
pub const PROJECTIONS_CHANNEL: &str = "provenant_projections";

/// The columns of `provenant.events`, in the order COPY rows are written.
pub const COPY_COLUMNS: &str = "position, event_id, stream, stream_version, kind, plugin_id, \
    world_id, session_id, occurred_at, recorded_at, provenance, payload, schema_version, \
    prev_hash, hash";

const SELECT_COLUMNS: &str = "position, event_id, stream, stream_version, kind, plugin_id, \
    world_id, session_id, occurred_at, recorded_at, provenance::text AS provenance, \
    payload::text AS payload, schema_version, prev_hash, hash";

#[derive(Clone)]
pub(crate) struct PgLog {
    pub(crate) pool: PgPool,
    url: String,
    /// The payload of this log's append notifications (its feed's origin,
    /// hex digits only).
    origin: std::sync::Arc<str>,
    /// The session's statement timeout, in milliseconds (None: none). The
    /// append's wait for the append lock is exempt from it: a cancelled
    /// lock statement would leave its connection inside an aborted
    /// transaction no `Transaction` owns.
    statement_timeout_ms: Option<u128>,
}

impl PgLog {
    pub async fn open(config: &LogConfig, origin: &str) -> Result<Self, LogError> {
        // One connection first: a pool that cannot connect only says it
        // timed out, this says why (refused, unknown database, auth…).
        let options: sqlx::postgres::PgConnectOptions =
            config
                .url
                .parse()
                .map_err(|e: sqlx::Error| LogError::BadUrl {
                    url: redact_url(&config.url),
                    reason: e.to_string(),
                })?;
        // A connection keeps its plan of a prepared statement; after five
        // executions PostgreSQL may settle on a generic plan, and keeps it
        // until the table is analyzed again. Planned while the log was
        // nearly empty, that plan is a sequential scan, and where autovacuum
        // is off or behind, every lookup by id would then read the whole,
        // growing table. Planning each execution costs microseconds.
        let idle_ms = config
            .idle_in_transaction_timeout
            .as_millis()
            .clamp(1, i32::MAX as u128)
            .to_string();
        let options = options.options([
            ("plan_cache_mode", "force_custom_plan"),
            ("idle_in_transaction_session_timeout", idle_ms.as_str()),
        ]);
        let options = match config.statement_timeout {
            Some(t) => {
                let ms = t.as_millis().clamp(1, i32::MAX as u128).to_string();
                options.options([("statement_timeout", ms.as_str())])
            }
            None => options,
        };
        PgConnection::connect_with(&options).await?.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(2))
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options)
            .await?;
        debug_assert!(origin.bytes().all(|b| b.is_ascii_alphanumeric()));
        Ok(PgLog {
            pool,
            url: redact_url(&config.url),
            origin: origin.into(),
            statement_timeout_ms: config
                .statement_timeout
                .map(|t| t.as_millis().clamp(1, i32::MAX as u128)),
        })
    }

    /// Runs the migrations not applied yet ([`migrate`]).
    pub async fn migrate(&self) -> Result<(), LogError> {
        migrate::run(&self.pool, &self.url).await
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn append(
        &self,
        batch: &PreparedBatch,
    ) -> Result<(AppendOutcome, Placement), LogError> {
        // Most batches are new: try without looking for their ids first and
        // let the unique index say if one is already there; only then look.
        // A conflict may be a retry of a batch already in the log (which is
        // not a conflict): look before reporting it.
        match self.append_with(batch, Lookup::Skip).await {
            Err(e) if is_duplicate_event_id(&e) || matches!(e, LogError::Conflict { .. }) => {
                self.append_with(batch, Lookup::Existing).await
            }
            other => other,
        }
    }

    async fn append_with(
        &self,
        batch: &PreparedBatch,
        lookup: Lookup,
    ) -> Result<(AppendOutcome, Placement), LogError> {
        let streams = batch.streams();
        let mut conn = self.pool.acquire().await.map_err(|e| self.map_err(e))?;
        // BEGIN, the append lock and the notification in one round trip. The
        // statements after this one take their snapshots once the lock is
        // held. The notification is delivered only if the append commits;
        // it names this log's feed, whose followers get the events in memory.
        let lock = format!(
            "SELECT pg_advisory_xact_lock({APPEND_LOCK_KEY}), pg_notify('{NOTIFY_CHANNEL}', '{}')",
            self.origin
        );
        let begin = match self.statement_timeout_ms {
            Some(ms) => format!(
                "BEGIN; SET LOCAL statement_timeout = 0; {lock}; SET LOCAL statement_timeout = {ms}"
            ),
            None => format!("BEGIN; {lock}"),
        };
        let mut tx = conn
            .begin_with(sqlx::AssertSqlSafe(begin))
            .await
            .map_err(|e| self.map_err(e))?;

        let mut existing = HashMap::new();
        if lookup == Lookup::Existing {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {SELECT_COLUMNS} FROM provenant.events WHERE event_id = ANY($1)"
            )))
            .bind(batch.event_ids())
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.map_err(e))?;
            for row in rows {
                let (position, event) = decode(&row)?;
                let event = event.map_err(|reason| LogError::Corrupt { position, reason })?;
                existing.insert(event.event_id, event);
            }
        }
        // The leases' epochs are read in the same statement as the head
        // (one round trip), FOR SHARE: a takeover in flight is waited for
        // and then seen, and one that comes later waits for this append.
        let (head, versions, leases) = head_and_versions(&mut tx, &streams, batch.fences())
            .await
            .map_err(|e| self.map_err(e))?;
        crate::fence_check::check_fences(batch.fences(), &leases)?;
        let plan = batch.plan(&existing, &versions, head, Utc::now())?;
        if plan.to_write.is_empty() {
            tx.rollback().await?;
            return Ok((
                AppendOutcome {
                    positions: plan.positions,
                    written: 0,
                    head,
                },
                Placement::default(),
            ));
        }

        let mut placer = plan.placer;
        if plan.to_write.len() <= INSERT_MAX {
            insert_rows(&mut tx, &mut placer, &plan.to_write)
                .await
                .map_err(|e| self.map_err(e))?;
        } else {
            copy_rows(&mut tx, &mut placer, &plan.to_write)
                .await
                .map_err(|e| self.map_err(e))?;
        }
        tx.commit().await.map_err(|e| self.map_err(e))?;
        Ok((
            AppendOutcome {
                written: plan.to_write.len(),
                positions: plan.positions,
                head: placer.head(),
            },
            placer.into_placement(),
        ))
    }

    pub async fn read_rows(&self, after: Position, limit: usize) -> Result<Vec<RawRow>, LogError> {
        self.forward(after, limit)
            .await?
            .iter()
            .map(decode)
            .collect()
    }

    pub async fn read_links(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RawLink>, LogError> {
        self.forward(after, limit)
            .await?
            .iter()
            .map(decode_link)
            .collect()
    }

    pub async fn read_rows_json(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RawJson>, LogError> {
        self.forward(after, limit)
            .await?
            .iter()
            .map(decode_json)
            .collect()
    }

    /// Up to `limit` rows after `after`, in position order.
    async fn forward(&self, after: Position, limit: usize) -> Result<Vec<PgRow>, LogError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SELECT_COLUMNS} FROM provenant.events WHERE position > $1 \
             ORDER BY position LIMIT $2"
        )))
        .bind(to_i64(after))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.map_err(e))
    }

    /// One equality per field the filter names, so that the database can
    /// use the index of that column (see migration 0005).
    pub async fn read_filtered(
        &self,
        after: Position,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<Vec<RawRow>, LogError> {
        let columns = filter.columns();
        let mut sql = format!("SELECT {SELECT_COLUMNS} FROM provenant.events WHERE position > $1");
        for (i, (column, _)) in columns.iter().enumerate() {
            let _ = write!(sql, " AND {column} = ${}", i + 2);
        }
        let kinds = filter.kind_list();
        let mut next = columns.len() + 2;
        if !kinds.is_empty() {
            let _ = write!(sql, " AND kind = ANY(${next})");
            next += 1;
        }
        let _ = write!(sql, " ORDER BY position LIMIT ${next}");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(to_i64(after));
        for (_, value) in &columns {
            query = query.bind(*value);
        }
        if !kinds.is_empty() {
            query = query.bind(kinds);
        }
        let rows = query
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.map_err(e))?;
        rows.iter().map(decode).collect()
    }

    pub async fn positions_of(
        &self,
        ids: &[uuid::Uuid],
    ) -> Result<HashMap<uuid::Uuid, Position>, LogError> {
        let rows: Vec<(uuid::Uuid, i64)> = sqlx::query_as(
            "SELECT event_id, position FROM provenant.events WHERE event_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.map_err(e))?;
        Ok(rows
            .into_iter()
            .map(|(id, position)| (id, position as Position))
            .collect())
    }

    pub async fn checkpoint(&self, name: &str) -> Result<Option<Position>, LogError> {
        let stored: Option<i64> =
            sqlx::query_scalar("SELECT position FROM provenant.checkpoints WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.map_err(e))?;
        stored.map(|p| checkpoint_position(name, p)).transpose()
    }

    /// An upsert that leaves a higher stored position as it is.
    pub async fn save_checkpoint(
        &self,
        name: &str,
        position: i64,
        fence: Option<&crate::append::Fence>,
    ) -> Result<(), LogError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.map_err(e))?;
        if let Some(fence) = fence
            && let Err(e) = self
                .check_fences(&mut tx, std::slice::from_ref(fence))
                .await
        {
            let _ = tx.rollback().await;
            return Err(e);
        }
        sqlx::query(
            "INSERT INTO provenant.checkpoints AS c (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now() \
             WHERE c.position <= excluded.position",
        )
        .bind(name)
        .bind(position)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.map_err(e))?;
        tx.commit().await.map_err(|e| self.map_err(e))?;
        Ok(())
    }

    /// An upsert that leaves a snapshot of a higher position as it is.
    pub async fn save_snapshot(
        &self,
        name: &str,
        position: i64,
        state: &str,
    ) -> Result<(), LogError> {
        sqlx::query(
            "INSERT INTO provenant.snapshots AS s (name, position, state) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, \
             state = excluded.state, updated_at = now() WHERE s.position <= excluded.position",
        )
        .bind(name)
        .bind(position)
        .bind(state)
        .execute(&self.pool)
        .await
        .map_err(|e| self.map_err(e))?;
        Ok(())
    }

    pub async fn load_snapshot(&self, name: &str) -> Result<Option<(i64, String)>, LogError> {
        sqlx::query_as("SELECT position, state FROM provenant.snapshots WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.map_err(e))
    }

    pub async fn load_projection(&self, name: &str) -> Result<Option<StoredProjection>, LogError> {
        self.read_projection(name, None).await
    }

    pub async fn projection_rows(
        &self,
        name: &str,
        keys: &[String],
    ) -> Result<Option<StoredProjection>, LogError> {
        self.read_projection(name, Some(keys)).await
    }

    /// The checkpoint and the rows (all, or those of `keys`) in one snapshot.
    async fn read_projection(
        &self,
        name: &str,
        keys: Option<&[String]>,
    ) -> Result<Option<StoredProjection>, LogError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| self.map_err(e))?;
        let checkpoint: Option<(i64, i32)> =
            sqlx::query_as("SELECT position, version FROM provenant.projections WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.map_err(e))?;
        let Some((position, version)) = checkpoint else {
            return Ok(None);
        };
        let rows: Vec<(String, String)> = match keys {
            None => {
                sqlx::query_as(
                    "SELECT key, value::text FROM provenant.projection_rows \
                     WHERE projection = $1 ORDER BY key",
                )
                .bind(name)
                .fetch_all(&mut *tx)
                .await
            }
            Some(keys) => {
                sqlx::query_as(
                    "SELECT key, value::text FROM provenant.projection_rows \
                     WHERE projection = $1 AND key = ANY($2) ORDER BY key",
                )
                .bind(name)
                .bind(keys)
                .fetch_all(&mut *tx)
                .await
            }
        }
        .map_err(|e| self.map_err(e))?;
        tx.commit().await.map_err(|e| self.map_err(e))?;
        Ok(Some(StoredProjection {
            position: checkpoint_position(name, position)?,
            version: projection_version(name, version)?,
            rows,
        }))
    }

    pub async fn commit_projection(
        &self,
        commit: &ProjectionCommit<'_>,
        to: i64,
    ) -> Result<(), LogError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.map_err(e))?;
        if let Some(fence) = commit.fence {
            self.check_fences(&mut tx, std::slice::from_ref(fence))
                .await?;
        }
        let stored: Option<(i64, i32)> = sqlx::query_as(
            "SELECT position, version FROM provenant.projections WHERE name = $1 FOR UPDATE",
        )
        .bind(commit.name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.map_err(e))?;
        check_projection_start(commit, stored)?;
        // A first commit inserts the checkpoint, and a concurrent first
        // commit that got there before this one makes the insert do nothing:
        // this one is then refused like any commit from a moved checkpoint.
        let moved = if stored.is_none() {
            sqlx::query(
                "INSERT INTO provenant.projections (name, position, version) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
            )
        } else {
            sqlx::query(
                "UPDATE provenant.projections SET position = $2, version = $3, updated_at = now() \
                 WHERE name = $1",
            )
        }
        .bind(commit.name)
        .bind(to)
        .bind(commit.version as i32)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.map_err(e))?
        .rows_affected()
            != 1;
        if moved {
            return Err(LogError::ProjectionMoved {
                name: commit.name.to_owned(),
                expected: commit.from,
                version: commit.version,
                actual: "committed by another runner meanwhile".to_owned(),
            });
        }
        let (mut put_keys, mut put_values, mut gone) = (Vec::new(), Vec::new(), Vec::new());
        for (key, value) in commit.changes {
            match value {
                Some(v) => {
                    put_keys.push(key.as_str());
                    put_values.push(v.as_str());
                }
                None => gone.push(key.as_str()),
            }
        }
        // Delivered only if the commit commits.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(PROJECTIONS_CHANNEL)
            .bind(commit.name)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.map_err(e))?;
        if !gone.is_empty() {
            sqlx::query(
                "DELETE FROM provenant.projection_rows WHERE projection = $1 AND key = ANY($2)",
            )
            .bind(commit.name)
            .bind(&gone)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.map_err(e))?;
        }
        if !put_keys.is_empty() {
            sqlx::query(
                "INSERT INTO provenant.projection_rows (projection, key, value) \
                 SELECT $1, k, v::json FROM UNNEST($2::text[], $3::text[]) AS t(k, v) \
                 ON CONFLICT (projection, key) DO UPDATE SET value = excluded.value",
            )
            .bind(commit.name)
            .bind(&put_keys)
            .bind(&put_values)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.map_err(e))?;
        }
        tx.commit().await.map_err(|e| self.map_err(e))?;
        Ok(())
    }

    pub async fn reset_projection(&self, name: &str) -> Result<(), LogError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.map_err(e))?;
        for sql in [
            "DELETE FROM provenant.projection_rows WHERE projection = $1",
            "DELETE FROM provenant.projections WHERE name = $1",
        ] {
            sqlx::query(sql)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.map_err(e))?;
        }
        tx.commit().await.map_err(|e| self.map_err(e))?;
        Ok(())
    }

    pub async fn projection_statuses(&self) -> Result<Vec<ProjectionStatus>, LogError> {
        let rows: Vec<(String, i64, i32, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "SELECT name, position, version, updated_at FROM provenant.projections ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.map_err(e))?;
        rows.into_iter()
            .map(|(name, position, version, updated_at)| {
                Ok(ProjectionStatus {
                    position: checkpoint_position(&name, position)?,
                    version: projection_version(&name, version)?,
                    updated_at: provenant_events::event::format_timestamp(&updated_at),
                    name,
                })
            })
            .collect()
    }

    pub async fn read_stream(
        &self,
        stream: &StreamName,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RawRow>, LogError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SELECT_COLUMNS} FROM provenant.events WHERE stream = $1 \
             AND stream_version > $2 ORDER BY stream_version LIMIT $3"
        )))
        .bind(stream.as_str())
        .bind(to_i64(after_version))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.map_err(e))?;
        rows.iter().map(decode).collect()
    }

    pub async fn stream_versions(
        &self,
        streams: &[StreamName],
    ) -> Result<HashMap<StreamName, u64>, LogError> {
        let mut conn = self.pool.acquire().await?;
        versions_in(&mut conn, streams)
            .await
            .map_err(|e| self.map_err(e))
    }

    pub async fn head(&self) -> Result<Head, LogError> {
        let mut conn = self.pool.acquire().await?;
        head_in(&mut conn).await.map_err(|e| self.map_err(e))
    }

    pub async fn position_of_hash(&self, hash: &EventHash) -> Result<Option<Position>, LogError> {
        let row: Option<i64> =
            sqlx::query_scalar("SELECT position FROM provenant.events WHERE hash = $1 LIMIT 1")
                .bind(&hash.0[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.map_err(e))?;
        Ok(row.map(|p| p as Position))
    }

    /// A channel that changes after every notification on `channel` (from
    /// any process) but those whose payload is `ignore`, and the task that
    /// feeds it from `LISTEN`; abort the task when done. The first `LISTEN`
    /// has completed when this returns.
    pub async fn notifications(
        &self,
        channel: &'static str,
        ignore: Option<&str>,
    ) -> Result<(watch::Receiver<Position>, tokio::task::JoinHandle<()>), LogError> {
        let ignore = ignore.map(str::to_owned);
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(channel).await?;
        let (tx, rx) = watch::channel(0);
        let task = tokio::spawn(async move {
            let mut seen: Position = 0;
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) if ignore.as_deref() == Some(n.payload()) => {}
                    // A notification, or a lost connection (reconnected on
                    // the next call): either way, readers should look.
                    Ok(_) => {
                        seen += 1;
                        if tx.send(seen).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN {channel} failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok((rx, task))
    }

    pub(crate) fn map_err(&self, e: sqlx::Error) -> LogError {
        let missing = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "42P01" || c == "3F000");
        if missing {
            LogError::NotMigrated {
                url: self.url.clone(),
                source: e,
            }
        } else {
            LogError::Database(e)
        }
    }
}

/// Writes rows with one multi-row `INSERT … SELECT FROM unnest(…)`: a single
/// round trip (see [`INSERT_MAX`]).
async fn insert_rows(
    conn: &mut PgConnection,
    placer: &mut Placer,
    to_write: &[&NewEvent],
) -> Result<(), sqlx::Error> {
    let n = to_write.len();
    let texts: Vec<Texts> = to_write.iter().map(|e| Texts::of(e)).collect();
    let mut position = Vec::with_capacity(n);
    let mut event_id = Vec::with_capacity(n);
    let mut stream = Vec::with_capacity(n);
    let mut stream_version = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut plugin_id = Vec::with_capacity(n);
    let mut world_id = Vec::with_capacity(n);
    let mut session_id = Vec::with_capacity(n);
    let mut occurred_at = Vec::with_capacity(n);
    let mut recorded_at = Vec::with_capacity(n);
    let mut provenance = Vec::with_capacity(n);
    let mut payload = Vec::with_capacity(n);
    let mut schema_version = Vec::with_capacity(n);
    let mut prev_hash = Vec::with_capacity(n);
    let mut hash = Vec::with_capacity(n);
    for (new, texts) in to_write.iter().zip(&texts) {
        let row = placer.place(new, texts);
        let f = &row.fields;
        position.push(row.position as i64);
        event_id.push(*f.event_id);
        stream.push(f.stream.as_str());
        stream_version.push(f.stream_version as i64);
        kind.push(f.kind.as_str());
        plugin_id.push(f.plugin_id.map(|p| p.as_str()));
        world_id.push(f.world_id.map(|w| w.as_str()));
        session_id.push(f.session_id.map(|s| s.as_str()));
        occurred_at.push(f.occurred_at);
        recorded_at.push(f.recorded_at);
        provenance.push(f.provenance);
        payload.push(f.payload);
        schema_version.push(f.schema_version as i32);
        prev_hash.push(row.prev_hash.0.to_vec());
        hash.push(row.hash.0.to_vec());
    }
    sqlx::query(
        "INSERT INTO provenant.events (position, event_id, stream, stream_version, kind, \
         plugin_id, world_id, session_id, occurred_at, recorded_at, provenance, payload, \
         schema_version, prev_hash, hash) \
         SELECT p, i, s, sv, k, pl, w, se, o, r, pr::json, pa::json, v, ph, h FROM unnest(\
         $1::bigint[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], \
         $8::text[], $9::timestamptz[], $10::timestamptz[], $11::text[], $12::text[], $13::int[], \
         $14::bytea[], $15::bytea[]) AS u(p, i, s, sv, k, pl, w, se, o, r, pr, pa, v, ph, h)",
    )
    .bind(position)
    .bind(event_id)
    .bind(stream)
    .bind(stream_version)
    .bind(kind)
    .bind(plugin_id)
    .bind(world_id)
    .bind(session_id)
    .bind(occurred_at)
    .bind(recorded_at)
    .bind(provenance)
    .bind(payload)
    .bind(schema_version)
    .bind(prev_hash)
    .bind(hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes rows with `COPY … FROM STDIN`, encoded and hashed chunk by chunk
/// while the server parses the chunk before: on two cores the work overlaps.
async fn copy_rows(
    conn: &mut PgConnection,
    placer: &mut Placer,
    to_write: &[&NewEvent],
) -> Result<(), sqlx::Error> {
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY provenant.events ({COPY_COLUMNS}) FROM STDIN"
        ))
        .await?;
    let mut text = String::with_capacity(COPY_CHUNK * 1200);
    for chunk in to_write.chunks(COPY_CHUNK) {
        text.clear();
        for new in chunk {
            let texts = Texts::of(new);
            write_copy_row(&mut text, &placer.place(new, &texts));
        }
        if let Err(e) = copy.send(text.as_bytes()).await {
            let _ = copy.abort("append failed").await;
            return Err(e);
        }
    }
    copy.finish().await?;
    Ok(())
}

async fn head_in(conn: &mut PgConnection) -> Result<Head, sqlx::Error> {
    Ok(head_and_versions(conn, &[], &[]).await?.0)
}

async fn versions_in(
    conn: &mut PgConnection,
    streams: &[StreamName],
) -> Result<HashMap<StreamName, u64>, sqlx::Error> {
    Ok(head_and_versions(conn, streams, &[]).await?.1)
}

/// The head and the current version of each stream (streams without events
/// are left out), in one round trip: one backward index probe each.
/// The fenced leases' rows: name, owner, epoch.
type LeaseRows = Vec<(String, String, i64)>;

/// The log's head, the streams' versions, and the fenced leases' rows
/// (read `FOR SHARE`), in one statement.
async fn head_and_versions(
    conn: &mut PgConnection,
    streams: &[StreamName],
    fences: &[crate::append::Fence],
) -> Result<(Head, HashMap<StreamName, u64>, LeaseRows), sqlx::Error> {
    let names: Vec<&str> = streams.iter().map(|s| s.as_str()).collect();
    let leases: Vec<&str> = fences.iter().map(|f| f.lease.as_str()).collect();
    type Row = (
        Option<i64>,
        Option<Vec<u8>>,
        Vec<i64>,
        Vec<String>,
        Vec<String>,
        Vec<i64>,
    );
    let (position, hash, versions, lease_names, owners, epochs): Row = sqlx::query_as(
        "WITH l AS (SELECT name, owner, epoch FROM provenant.leases WHERE name = ANY($2) FOR SHARE) \
         SELECT h.position, h.hash, \
                ARRAY(SELECT coalesce((SELECT e.stream_version FROM provenant.events e \
                                       WHERE e.stream = u.s ORDER BY e.stream_version DESC LIMIT 1), 0) \
                      FROM unnest($1::text[]) WITH ORDINALITY AS u(s, i) ORDER BY u.i), \
                ARRAY(SELECT name FROM l ORDER BY name), \
                ARRAY(SELECT owner FROM l ORDER BY name), \
                ARRAY(SELECT epoch FROM l ORDER BY name) \
         FROM (SELECT 1) AS one \
         LEFT JOIN (SELECT position, hash FROM provenant.events ORDER BY position DESC LIMIT 1) AS h ON true",
    )
    .bind(&names)
    .bind(&leases)
    .fetch_one(conn)
    .await?;
    let leases = lease_names
        .into_iter()
        .zip(owners)
        .zip(epochs)
        .map(|((name, owner), epoch)| (name, owner, epoch))
        .collect();
    let head = match (position, hash) {
        (Some(position), Some(hash)) => Head {
            position: position as Position,
            hash: EventHash::from_slice(&hash).unwrap_or_default(),
        },
        _ => Head::EMPTY,
    };
    let versions = streams
        .iter()
        .zip(versions)
        .filter(|(_, v)| *v > 0)
        .map(|(s, v)| (s.clone(), v as u64))
        .collect();
    Ok((head, versions, leases))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// Assume no event of the batch is in the log yet.
    Skip,
    /// Look the batch's ids up first.
    Existing,
}

/// The unique index on `event_id` refused a row: part of the batch is
/// already in the log.
fn is_duplicate_event_id(e: &LogError) -> bool {
    match e {
        LogError::Database(sqlx::Error::Database(d)) => {
            d.code().is_some_and(|c| c == "23505")
                && d.constraint().is_some_and(|c| c == "events_event_id_key")
        }
        _ => false,
    }
}

fn decode(row: &PgRow) -> Result<RawRow, LogError> {
    let (position, parts) = parts(row)?;
    Ok((position, parts.and_then(crate::decode::Parts::into_event)))
}

fn decode_link(row: &PgRow) -> Result<RawLink, LogError> {
    let (position, parts) = parts(row)?;
    Ok((position, parts.and_then(crate::decode::Parts::into_link)))
}

fn decode_json(row: &PgRow) -> Result<RawJson, LogError> {
    let (position, parts) = parts(row)?;
    Ok((position, parts.and_then(crate::decode::Parts::into_json)))
}

/// A row of [`SELECT_COLUMNS`], by column index.
fn parts(row: &PgRow) -> Result<(Position, Result<crate::decode::Parts, String>), LogError> {
    use crate::decode::{Id, Parts, Time};
    let position = row.try_get::<i64, _>(0)? as Position;
    let parts = (|| -> Result<Parts, sqlx::Error> {
        Ok(Parts {
            position,
            event_id: Id::Parsed(row.try_get(1)?),
            stream: row.try_get(2)?,
            stream_version: row.try_get(3)?,
            kind: row.try_get(4)?,
            plugin_id: row.try_get(5)?,
            world_id: row.try_get(6)?,
            session_id: row.try_get(7)?,
            occurred_at: Time::Parsed(row.try_get(8)?),
            recorded_at: Time::Parsed(row.try_get(9)?),
            provenance: row.try_get(10)?,
            payload: row.try_get(11)?,
            schema_version: row.try_get::<i32, _>(12)? as i64,
            prev_hash: row.try_get(13)?,
            hash: row.try_get(14)?,
        })
    })()
    .map_err(|e| e.to_string());
    Ok((position, parts))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Writes one event as a row of `COPY … FROM STDIN` text format, columns in
/// [`COPY_COLUMNS`] order.
pub fn write_copy_row(out: &mut String, row: &EventRow<'_>) {
    fn text(out: &mut String, s: &str) {
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let escaped = match b {
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                _ => continue,
            };
            out.push_str(&s[start..i]);
            out.push_str(escaped);
            start = i + 1;
        }
        out.push_str(&s[start..]);
    }
    fn opt(out: &mut String, s: Option<&str>) {
        match s {
            Some(s) => text(out, s),
            None => out.push_str("\\N"),
        }
    }
    let f = &row.fields;
    let _ = write!(out, "{}\t{}\t", row.position, f.event_id.hyphenated());
    text(out, f.stream.as_str());
    let _ = write!(out, "\t{}\t", f.stream_version);
    text(out, f.kind.as_str());
    out.push('\t');
    opt(out, f.plugin_id.map(|p| p.as_str()));
    out.push('\t');
    opt(out, f.world_id.map(|w| w.as_str()));
    out.push('\t');
    opt(out, f.session_id.map(|s| s.as_str()));
    out.push('\t');
    write_timestamp(out, &f.occurred_at);
    out.push('\t');
    write_timestamp(out, &f.recorded_at);
    out.push('\t');
    text(out, f.provenance);
    out.push('\t');
    text(out, f.payload);
    let _ = writeln!(
        out,
        "\t{}\t\\\\x{}\t\\\\x{}",
        f.schema_version,
        row.prev_hash.to_hex(),
        row.hash.to_hex()
    );
}

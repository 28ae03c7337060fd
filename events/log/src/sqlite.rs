//! The embedded SQLite log: table `events` in one database file.
//!
//! Appends run in `BEGIN IMMEDIATE` transactions, which take SQLite's write
//! lock up front, so writers (in this process or another) are serialised and
//! positions are dense and commit in order, as on PostgreSQL. The file is in
//! WAL mode with `synchronous = FULL`: an append is durable when it returns.
//! Tails in this process are woken by a watch channel after each commit.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use tokio::sync::watch;

use crate::append::AppendOutcome;
use crate::config::LogConfig;
use crate::decode::{Id, Parts, Time};
use crate::decode::{RawJson, RawLink, RawRow};
use crate::error::LogError;
use crate::filter::EventFilter;
use crate::plan::{Placement, PreparedBatch, Texts};
use crate::projection::{
    ProjectionCommit, ProjectionStatus, StoredProjection, check_projection_start,
    checkpoint_position, projection_version,
};
use crate::rows::stored_position;
use provenant_events::event::{EventHash, Position, format_timestamp, now};
use provenant_events::head::Head;
use provenant_events::ids::StreamName;

const SELECT_COLUMNS: &str = "position, event_id, stream, stream_version, kind, plugin_id, \
    world_id, session_id, occurred_at, recorded_at, provenance, payload, schema_version, \
    prev_hash, hash";

#[derive(Clone)]
pub(crate) struct SqliteLog {
    pub(crate) pool: SqlitePool,
    url: String,
    /// Bumped after each projection commit through this pool.
    projections: Arc<watch::Sender<u64>>,
}

impl SqliteLog {
    pub async fn open(config: &LogConfig) -> Result<Self, LogError> {
        let options = SqliteConnectOptions::from_str(&config.url)
            .map_err(|e| LogError::BadUrl {
                url: config.url.clone(),
                reason: e.to_string(),
            })?
            .create_if_missing(config.migrate)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .connect_with(options)
            .await?;
        Ok(SqliteLog {
            pool,
            url: config.url.clone(),
            projections: Arc::new(watch::channel(0).0),
        })
    }

    pub async fn migrate(&self) -> Result<(), LogError> {
        sqlx::migrate!("../../migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub fn subscribe_projections(&self) -> watch::Receiver<u64> {
        self.projections.subscribe()
    }

    pub async fn append(
        &self,
        batch: &PreparedBatch,
    ) -> Result<(AppendOutcome, Placement), LogError> {
        let ids: Vec<String> = batch.event_ids().iter().map(|id| id.to_string()).collect();
        let streams = batch.streams();
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.map_err(e))?;
        self.check_fences(&mut tx, batch.fences()).await?;

        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SELECT_COLUMNS} FROM events WHERE event_id IN (SELECT value FROM json_each(?))"
        )))
        .bind(serde_json::to_string(&ids).unwrap_or_default())
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.map_err(e))?;
        let mut existing = HashMap::with_capacity(rows.len());
        for row in rows {
            let (position, event) = decode(&row)?;
            let event = event.map_err(|reason| LogError::Corrupt { position, reason })?;
            existing.insert(event.event_id, event);
        }
        let head = head_in(&mut tx).await.map_err(|e| self.map_err(e))?;
        let versions = versions_in(&mut tx, &streams)
            .await
            .map_err(|e| self.map_err(e))?;
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
        for new in &plan.to_write {
            let texts = Texts::of(new);
            let row = placer.place(new, &texts);
            let f = &row.fields;
            sqlx::query(
                "INSERT INTO events (position, event_id, stream, stream_version, kind, plugin_id, \
                 world_id, session_id, occurred_at, recorded_at, provenance, payload, \
                 schema_version, prev_hash, hash) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(row.position as i64)
            .bind(f.event_id.to_string())
            .bind(f.stream.as_str())
            .bind(f.stream_version as i64)
            .bind(f.kind.as_str())
            .bind(f.plugin_id.map(|p| p.as_str()))
            .bind(f.world_id.map(|w| w.as_str()))
            .bind(f.session_id.map(|s| s.as_str()))
            .bind(format_timestamp(&f.occurred_at))
            .bind(format_timestamp(&f.recorded_at))
            .bind(f.provenance)
            .bind(f.payload)
            .bind(f.schema_version as i64)
            .bind(&row.prev_hash.0[..])
            .bind(&row.hash.0[..])
            .execute(&mut *tx)
            .await
            .map_err(|e| self.map_err(e))?;
        }
        tx.commit().await?;
        let head = placer.head();
        Ok((
            AppendOutcome {
                written: plan.to_write.len(),
                positions: plan.positions,
                head,
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
    async fn forward(&self, after: Position, limit: usize) -> Result<Vec<SqliteRow>, LogError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SELECT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
        )))
        .bind(after as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.map_err(e))
    }

    /// One equality per field the filter names, so that SQLite can use the
    /// index of that column (see migration 0005).
    pub async fn read_filtered(
        &self,
        after: Position,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<Vec<RawRow>, LogError> {
        let columns = filter.columns();
        let mut sql = format!("SELECT {SELECT_COLUMNS} FROM events WHERE position > ?");
        for (column, _) in &columns {
            sql.push_str(&format!(" AND {column} = ?"));
        }
        let kinds = filter.kind_list();
        if !kinds.is_empty() {
            let marks = vec!["?"; kinds.len()].join(", ");
            sql.push_str(&format!(" AND kind IN ({marks})"));
        }
        sql.push_str(" ORDER BY position LIMIT ?");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(stored_position(after));
        for (_, value) in &columns {
            query = query.bind(*value);
        }
        for kind in kinds {
            query = query.bind(kind);
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
        let texts: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT event_id, position FROM events \
             WHERE event_id IN (SELECT value FROM json_each(?))",
        )
        .bind(serde_json::to_string(&texts).unwrap_or_default())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.map_err(e))?;
        rows.into_iter()
            .map(|(id, position)| {
                let position = position as Position;
                uuid::Uuid::parse_str(&id)
                    .map(|id| (id, position))
                    .map_err(|e| LogError::Corrupt {
                        position,
                        reason: format!("event_id {id:?} is not a UUID: {e}"),
                    })
            })
            .collect()
    }

    pub async fn checkpoint(&self, name: &str) -> Result<Option<Position>, LogError> {
        let stored: Option<i64> =
            sqlx::query_scalar("SELECT position FROM checkpoints WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.map_err(e))?;
        stored.map(|p| checkpoint_position(name, p)).transpose()
    }

    /// An upsert that leaves a snapshot of a higher position as it is.
    pub async fn save_snapshot(
        &self,
        name: &str,
        position: i64,
        state: &str,
    ) -> Result<(), LogError> {
        sqlx::query(
            "INSERT INTO snapshots (name, position, state, updated_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, \
             state = excluded.state, updated_at = excluded.updated_at \
             WHERE snapshots.position <= excluded.position",
        )
        .bind(name)
        .bind(position)
        .bind(state)
        .bind(format_timestamp(&now()))
        .execute(&self.pool)
        .await
        .map_err(|e| self.map_err(e))?;
        Ok(())
    }

    pub async fn load_snapshot(&self, name: &str) -> Result<Option<(i64, String)>, LogError> {
        sqlx::query_as("SELECT position, state FROM snapshots WHERE name = ?")
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

    /// The checkpoint and the rows (all, or those of `keys`) in one snapshot
    /// (a read transaction).
    async fn read_projection(
        &self,
        name: &str,
        keys: Option<&[String]>,
    ) -> Result<Option<StoredProjection>, LogError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.map_err(e))?;
        let checkpoint: Option<(i64, i64)> =
            sqlx::query_as("SELECT position, version FROM projections WHERE name = ?")
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
                    "SELECT key, value FROM projection_rows WHERE projection = ? ORDER BY key",
                )
                .bind(name)
                .fetch_all(&mut *tx)
                .await
            }
            Some(keys) => {
                sqlx::query_as(
                    "SELECT key, value FROM projection_rows WHERE projection = ? \
                     AND key IN (SELECT value FROM json_each(?)) ORDER BY key",
                )
                .bind(name)
                .bind(serde_json::to_string(keys).unwrap_or_default())
                .fetch_all(&mut *tx)
                .await
            }
        }
        .map_err(|e| self.map_err(e))?;
        tx.commit().await.map_err(|e| self.map_err(e))?;
        Ok(Some(StoredProjection {
            position: checkpoint_position(name, position)?,
            version: projection_version(name, i32::try_from(version).unwrap_or(-1))?,
            rows,
        }))
    }

    pub async fn commit_projection(
        &self,
        commit: &ProjectionCommit<'_>,
        to: i64,
    ) -> Result<(), LogError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.map_err(e))?;
        if let Some(fence) = commit.fence {
            self.check_fences(&mut tx, std::slice::from_ref(fence))
                .await?;
        }
        let stored: Option<(i64, i64)> =
            sqlx::query_as("SELECT position, version FROM projections WHERE name = ?")
                .bind(commit.name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.map_err(e))?;
        let stored = stored.map(|(p, v)| (p, i32::try_from(v).unwrap_or(-1)));
        check_projection_start(commit, stored)?;
        sqlx::query(
            "INSERT INTO projections (name, position, version, updated_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, \
             version = excluded.version, updated_at = excluded.updated_at",
        )
        .bind(commit.name)
        .bind(to)
        .bind(i64::from(commit.version))
        .bind(format_timestamp(&now()))
        .execute(&mut *tx)
        .await
        .map_err(|e| self.map_err(e))?;
        for (key, value) in commit.changes {
            let query = match value {
                Some(value) => sqlx::query(
                    "INSERT INTO projection_rows (projection, key, value) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (projection, key) DO UPDATE SET value = excluded.value",
                )
                .bind(commit.name)
                .bind(key.as_str())
                .bind(value.as_str()),
                None => sqlx::query("DELETE FROM projection_rows WHERE projection = ? AND key = ?")
                    .bind(commit.name)
                    .bind(key.as_str()),
            };
            query.execute(&mut *tx).await.map_err(|e| self.map_err(e))?;
        }
        tx.commit().await.map_err(|e| self.map_err(e))?;
        self.projections.send_modify(|n| *n += 1);
        Ok(())
    }

    pub async fn reset_projection(&self, name: &str) -> Result<(), LogError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.map_err(e))?;
        for sql in [
            "DELETE FROM projection_rows WHERE projection = ?",
            "DELETE FROM projections WHERE name = ?",
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
        let rows: Vec<(String, i64, i64, String)> = sqlx::query_as(
            "SELECT name, position, version, updated_at FROM projections ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.map_err(e))?;
        rows.into_iter()
            .map(|(name, position, version, updated_at)| {
                Ok(ProjectionStatus {
                    position: checkpoint_position(&name, position)?,
                    version: projection_version(&name, i32::try_from(version).unwrap_or(-1))?,
                    updated_at,
                    name,
                })
            })
            .collect()
    }

    /// An upsert that leaves a higher stored position as it is.
    pub async fn save_checkpoint(
        &self,
        name: &str,
        position: i64,
        fence: Option<&crate::append::Fence>,
    ) -> Result<(), LogError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.map_err(e))?;
        if let Some(fence) = fence {
            self.check_fences(&mut tx, std::slice::from_ref(fence))
                .await?;
        }
        sqlx::query(
            "INSERT INTO checkpoints (name, position, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, \
             updated_at = excluded.updated_at WHERE checkpoints.position <= excluded.position",
        )
        .bind(name)
        .bind(position)
        .bind(format_timestamp(&now()))
        .execute(&mut *tx)
        .await
        .map_err(|e| self.map_err(e))?;
        tx.commit().await.map_err(|e| self.map_err(e))?;
        Ok(())
    }

    pub async fn read_stream(
        &self,
        stream: &StreamName,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RawRow>, LogError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SELECT_COLUMNS} FROM events WHERE stream = ? AND stream_version > ? \
             ORDER BY stream_version LIMIT ?"
        )))
        .bind(stream.as_str())
        .bind(after_version as i64)
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
            sqlx::query_scalar("SELECT position FROM events WHERE hash = ? LIMIT 1")
                .bind(&hash.0[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.map_err(e))?;
        Ok(row.map(|p| p as Position))
    }

    pub(crate) fn map_err(&self, e: sqlx::Error) -> LogError {
        let missing = e
            .as_database_error()
            .is_some_and(|d| d.message().contains("no such table"));
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

async fn head_in(conn: &mut SqliteConnection) -> Result<Head, sqlx::Error> {
    let row = sqlx::query("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
        .fetch_optional(conn)
        .await?;
    Ok(match row {
        None => Head::EMPTY,
        Some(row) => Head {
            position: row.try_get::<i64, _>(0)? as Position,
            hash: EventHash::from_slice(&row.try_get::<Vec<u8>, _>(1)?).unwrap_or_default(),
        },
    })
}

async fn versions_in(
    conn: &mut SqliteConnection,
    streams: &[StreamName],
) -> Result<HashMap<StreamName, u64>, sqlx::Error> {
    let names: Vec<&str> = streams.iter().map(|s| s.as_str()).collect();
    let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT j.value, (SELECT max(e.stream_version) FROM events e WHERE e.stream = j.value) \
         FROM json_each(?) AS j",
    )
    .bind(serde_json::to_string(&names).unwrap_or_default())
    .fetch_all(conn)
    .await?;
    let mut map = HashMap::with_capacity(rows.len());
    for (name, version) in rows {
        if let (Some(v), Ok(stream)) = (version, StreamName::new(name)) {
            map.insert(stream, v as u64);
        }
    }
    Ok(map)
}

fn decode(row: &SqliteRow) -> Result<RawRow, LogError> {
    let (position, parts) = parts(row)?;
    Ok((position, parts.and_then(Parts::into_event)))
}

fn decode_link(row: &SqliteRow) -> Result<RawLink, LogError> {
    let (position, parts) = parts(row)?;
    Ok((position, parts.and_then(Parts::into_link)))
}

fn decode_json(row: &SqliteRow) -> Result<RawJson, LogError> {
    let (position, parts) = parts(row)?;
    Ok((position, parts.and_then(Parts::into_json)))
}

/// A row of [`SELECT_COLUMNS`], by column index.
fn parts(row: &SqliteRow) -> Result<(Position, Result<Parts, String>), LogError> {
    let position = row.try_get::<i64, _>(0)? as Position;
    let parts = (|| -> Result<Parts, sqlx::Error> {
        Ok(Parts {
            position,
            event_id: Id::Text(row.try_get(1)?),
            stream: row.try_get(2)?,
            stream_version: row.try_get(3)?,
            kind: row.try_get(4)?,
            plugin_id: row.try_get(5)?,
            world_id: row.try_get(6)?,
            session_id: row.try_get(7)?,
            occurred_at: Time::Text(row.try_get(8)?),
            recorded_at: Time::Text(row.try_get(9)?),
            provenance: row.try_get(10)?,
            payload: row.try_get(11)?,
            schema_version: row.try_get(12)?,
            prev_hash: row.try_get(13)?,
            hash: row.try_get(14)?,
        })
    })()
    .map_err(|e| e.to_string());
    Ok((position, parts))
}

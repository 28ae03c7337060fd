//! The cluster's settings, recorded once in the log's database: how many
//! partitions the worlds are spread over ([`Partitions`]). The first engine
//! to start records the count it was given; every engine after it must
//! agree with it.

use provenant_events::partition::Partitions;

use crate::error::LogError;
use crate::log::{Backend, EventLog};

impl EventLog {
    /// The partition count recorded, if an engine has started yet (reads
    /// only).
    pub async fn recorded_partitions(&self) -> Result<Option<Partitions>, LogError> {
        let stored: Option<i64> = match &self.backend {
            Backend::Postgres(b) => {
                sqlx::query_scalar("SELECT partitions::int8 FROM provenant.cluster")
                    .fetch_optional(&b.pool)
                    .await
                    .map_err(|e| b.map_err(e))?
            }
            Backend::Sqlite(b) => sqlx::query_scalar("SELECT partitions FROM cluster")
                .fetch_optional(&b.pool)
                .await
                .map_err(|e| b.map_err(e))?,
        };
        stored.map(to_partitions).transpose()
    }

    /// The cluster's partition count. When none is recorded yet, `wanted`
    /// (or 1) is recorded; when one is, `wanted` must equal it
    /// ([`LogError::Invalid`] otherwise, saying both).
    pub async fn cluster_partitions(
        &self,
        wanted: Option<Partitions>,
    ) -> Result<Partitions, LogError> {
        let proposed = i64::from(wanted.map_or(1, Partitions::count));
        let stored: i64 = match &self.backend {
            Backend::Postgres(b) => {
                sqlx::query(
                    "INSERT INTO provenant.cluster (singleton, partitions) VALUES (true, $1) \
                     ON CONFLICT (singleton) DO NOTHING",
                )
                .bind(proposed)
                .execute(&b.pool)
                .await
                .map_err(|e| b.map_err(e))?;
                sqlx::query_scalar("SELECT partitions::int8 FROM provenant.cluster")
                    .fetch_one(&b.pool)
                    .await
                    .map_err(|e| b.map_err(e))?
            }
            Backend::Sqlite(b) => {
                sqlx::query(
                    "INSERT INTO cluster (singleton, partitions, created_ms) \
                     VALUES (1, ?1, CAST(unixepoch('subsec') * 1000 AS INTEGER)) \
                     ON CONFLICT (singleton) DO NOTHING",
                )
                .bind(proposed)
                .execute(&b.pool)
                .await
                .map_err(|e| b.map_err(e))?;
                sqlx::query_scalar("SELECT partitions FROM cluster")
                    .fetch_one(&b.pool)
                    .await
                    .map_err(|e| b.map_err(e))?
            }
        };
        let partitions = to_partitions(stored)?;
        if let Some(w) = wanted
            && w != partitions
        {
            return Err(LogError::Invalid(format!(
                "this cluster has {} partitions (recorded when its first engine started), not the {} asked for; the count cannot change while the log and the ticks stream hold worlds under it",
                partitions.count(),
                w.count()
            )));
        }
        Ok(partitions)
    }
}

fn to_partitions(stored: i64) -> Result<Partitions, LogError> {
    u32::try_from(stored)
        .ok()
        .and_then(|n| Partitions::new(n).ok())
        .ok_or_else(|| LogError::Corrupt {
            position: 0,
            reason: format!("the cluster's partition count {stored} is out of range"),
        })
}

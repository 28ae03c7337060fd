//! The leases' statements on each backend ([`crate::lease`] says what they
//! guarantee).

use chrono::{DateTime, Utc};

use crate::append::Fence;
use crate::error::LogError;
use crate::fence_check::check_fences;
use crate::lease::{LeaseStatus, from_ms};
use crate::postgres::PgLog;
use crate::sqlite::SqliteLog;

/// The epoch and expiry of a lease taken or renewed.
type Taken = Option<(i64, DateTime<Utc>)>;

impl PgLog {
    pub(crate) async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl_ms: i64,
        reclaim: bool,
    ) -> Result<Taken, LogError> {
        // A takeover waits for the appends in flight under the lease (they
        // read its row FOR SHARE), but not for long: a holder frozen in the
        // middle of one must not hold up the taker's other leases. It is
        // tried again at the next round; PostgreSQL ends the frozen
        // transaction after `idle_in_transaction_session_timeout`, and one
        // frozen in the middle of its COPY is ended here
        // (`end_frozen_copies`).
        let mut tx = self.pool.begin().await.map_err(|e| self.map_err(e))?;
        sqlx::query("SET LOCAL lock_timeout = '250ms'")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.map_err(e))?;
        let taken: Result<Taken, sqlx::Error> = sqlx::query_as(
            "INSERT INTO provenant.leases AS l (name, owner, epoch, expires_at) \
             VALUES ($1, $2, 1, now() + $3::float8 * interval '1 millisecond') \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, epoch = l.epoch + 1, \
             expires_at = excluded.expires_at, acquired_at = now(), renewed_at = now() \
             WHERE l.expires_at <= now() OR ($4 AND l.owner = excluded.owner) \
             RETURNING epoch, expires_at",
        )
        .bind(name)
        .bind(owner)
        .bind(ttl_ms)
        .bind(reclaim)
        .fetch_optional(&mut *tx)
        .await;
        match taken {
            Ok(taken) => {
                tx.commit().await.map_err(|e| self.map_err(e))?;
                Ok(taken)
            }
            // 55P03 lock_not_available: an append under the lease is in
            // flight; not taken now. The transaction is rolled back here,
            // not left to the pool.
            Err(sqlx::Error::Database(d)) if d.code().is_some_and(|c| c == "55P03") => {
                tx.rollback().await.map_err(|e| self.map_err(e))?;
                let ended = self.end_frozen_copies(ttl_ms).await;
                tracing::info!(
                    lease = name,
                    frozen_appends_ended = ended,
                    "not taken this round: a transaction under the lease holds its row"
                );
                Ok(None)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(self.map_err(e))
            }
        }
    }

    /// Ends the sessions whose append has waited for its client's `COPY`
    /// data longer than a lease: a holder frozen in the middle of sending
    /// its rows. `idle_in_transaction_session_timeout` does not apply (the
    /// session is active, reading COPY data; seen in the cluster test and
    /// in `leases::postgres_a_takeover_ends_an_append_frozen_in_its_copy`),
    /// and
    /// such a session holds the append lock and its lease rows: every
    /// engine's appends, and the takeover that would fence it, wait for it
    /// until the frozen process dies or wakes. Its transaction is rolled
    /// back (nothing of it was committed); when it wakes, its append fails
    /// and is refused again by the fence. How many were ended (0 when this
    /// role may not end them: it is then said once in the log).
    async fn end_frozen_copies(&self, ttl_ms: i64) -> i64 {
        let ended: Result<i64, sqlx::Error> = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND state = 'active' AND wait_event = 'ClientRead' \
             AND query LIKE 'COPY provenant.events %' \
             AND state_change < now() - $1::float8 * interval '1 millisecond'",
        )
        .bind(ttl_ms as f64)
        .fetch_one(&self.pool)
        .await;
        match ended {
            Ok(n) => {
                if n > 0 {
                    tracing::warn!(
                        sessions = n,
                        "ended appends frozen in the middle of their COPY for longer than a lease"
                    );
                }
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot end appends frozen in the middle of their COPY");
                0
            }
        }
    }

    pub(crate) async fn renew_lease(
        &self,
        name: &str,
        owner: &str,
        epoch: i64,
        ttl_ms: i64,
    ) -> Result<Option<DateTime<Utc>>, LogError> {
        sqlx::query_scalar(
            "UPDATE provenant.leases SET \
             expires_at = now() + $4::float8 * interval '1 millisecond', renewed_at = now() \
             WHERE name = $1 AND owner = $2 AND epoch = $3 RETURNING expires_at",
        )
        .bind(name)
        .bind(owner)
        .bind(epoch)
        .bind(ttl_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.map_err(e))
    }

    pub(crate) async fn release_lease(
        &self,
        name: &str,
        owner: &str,
        epoch: i64,
    ) -> Result<bool, LogError> {
        let done = sqlx::query(
            "UPDATE provenant.leases SET expires_at = now() \
             WHERE name = $1 AND owner = $2 AND epoch = $3",
        )
        .bind(name)
        .bind(owner)
        .bind(epoch)
        .execute(&self.pool)
        .await
        .map_err(|e| self.map_err(e))?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn leases(&self) -> Result<Vec<LeaseStatus>, LogError> {
        type Row = (
            String,
            String,
            i64,
            DateTime<Utc>,
            DateTime<Utc>,
            DateTime<Utc>,
            bool,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT name, owner, epoch, expires_at, acquired_at, renewed_at, expires_at <= now() \
             FROM provenant.leases ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.map_err(e))?;
        Ok(rows
            .into_iter()
            .map(
                |(name, owner, epoch, expires_at, acquired_at, renewed_at, expired)| LeaseStatus {
                    name,
                    owner,
                    epoch: u64::try_from(epoch).unwrap_or(0),
                    expires_at,
                    acquired_at,
                    renewed_at,
                    expired,
                },
            )
            .collect())
    }
    /// Inside a checkpoint's or a projection commit's transaction: the
    /// fenced leases' rows, read FOR SHARE (a takeover in flight is waited
    /// for and then seen), must still be at the fences' epochs. (An append
    /// reads them in its head statement instead: `head_and_versions`.)
    pub(crate) async fn check_fences(
        &self,
        conn: &mut sqlx::PgConnection,
        fences: &[Fence],
    ) -> Result<(), LogError> {
        if fences.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = fences.iter().map(|f| f.lease.as_str()).collect();
        let stored: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT name, owner, epoch FROM provenant.leases WHERE name = ANY($1) FOR SHARE",
        )
        .bind(&names)
        .fetch_all(conn)
        .await
        .map_err(|e| self.map_err(e))?;
        check_fences(fences, &stored)
    }
}

impl SqliteLog {
    pub(crate) async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl_ms: i64,
        reclaim: bool,
    ) -> Result<Taken, LogError> {
        let now = Utc::now().timestamp_millis();
        let row: Option<(i64, i64)> = sqlx::query_as(
            "INSERT INTO leases (name, owner, epoch, expires_ms, acquired_ms, renewed_ms) \
             VALUES (?1, ?2, 1, ?3 + ?4, ?3, ?3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, epoch = leases.epoch + 1, \
             expires_ms = excluded.expires_ms, acquired_ms = ?3, renewed_ms = ?3 \
             WHERE leases.expires_ms <= ?3 OR (?5 AND leases.owner = excluded.owner) \
             RETURNING epoch, expires_ms",
        )
        .bind(name)
        .bind(owner)
        .bind(now)
        .bind(ttl_ms)
        .bind(reclaim)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.map_err(e))?;
        Ok(row.map(|(epoch, ms)| (epoch, from_ms(ms))))
    }

    pub(crate) async fn renew_lease(
        &self,
        name: &str,
        owner: &str,
        epoch: i64,
        ttl_ms: i64,
    ) -> Result<Option<DateTime<Utc>>, LogError> {
        let now = Utc::now().timestamp_millis();
        let expires: Option<i64> = sqlx::query_scalar(
            "UPDATE leases SET expires_ms = ?4 + ?5, renewed_ms = ?4 \
             WHERE name = ?1 AND owner = ?2 AND epoch = ?3 RETURNING expires_ms",
        )
        .bind(name)
        .bind(owner)
        .bind(epoch)
        .bind(now)
        .bind(ttl_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.map_err(e))?;
        Ok(expires.map(from_ms))
    }

    pub(crate) async fn release_lease(
        &self,
        name: &str,
        owner: &str,
        epoch: i64,
    ) -> Result<bool, LogError> {
        let done = sqlx::query(
            "UPDATE leases SET expires_ms = ?4 WHERE name = ?1 AND owner = ?2 AND epoch = ?3",
        )
        .bind(name)
        .bind(owner)
        .bind(epoch)
        .bind(Utc::now().timestamp_millis())
        .execute(&self.pool)
        .await
        .map_err(|e| self.map_err(e))?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn leases(&self) -> Result<Vec<LeaseStatus>, LogError> {
        let now = Utc::now().timestamp_millis();
        let rows: Vec<(String, String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT name, owner, epoch, expires_ms, acquired_ms, renewed_ms FROM leases \
             ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.map_err(e))?;
        Ok(rows
            .into_iter()
            .map(
                |(name, owner, epoch, expires, acquired, renewed)| LeaseStatus {
                    name,
                    owner,
                    epoch: u64::try_from(epoch).unwrap_or(0),
                    expires_at: from_ms(expires),
                    acquired_at: from_ms(acquired),
                    renewed_at: from_ms(renewed),
                    expired: expires <= now,
                },
            )
            .collect())
    }
    /// Inside an append's, a checkpoint's or a projection commit's
    /// transaction (BEGIN IMMEDIATE: no lease changes while it runs): the
    /// fenced leases must still be at the fences' epochs.
    pub(crate) async fn check_fences(
        &self,
        conn: &mut sqlx::SqliteConnection,
        fences: &[Fence],
    ) -> Result<(), LogError> {
        if fences.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = fences.iter().map(|f| f.lease.as_str()).collect();
        let names = serde_json::to_string(&names)
            .map_err(|e| LogError::Invalid(format!("lease names: {e}")))?;
        let stored: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT name, owner, epoch FROM leases WHERE name IN (SELECT value FROM json_each(?))",
        )
        .bind(names)
        .fetch_all(conn)
        .await
        .map_err(|e| self.map_err(e))?;
        check_fences(fences, &stored)
    }
}

//! Leases: which holder has a named piece of work (a partition of the
//! worlds, the relay, the projections) and under which epoch.
//!
//! The epoch grows by one at every takeover. An append made for a piece of
//! work names the lease's epoch ([`Fence`], [`AppendBatch::fenced`]); the log
//! checks it inside the append's transaction and refuses the append with
//! [`LogError::Fenced`] when another holder has taken over since. That check
//! is what keeps a holder that paused past its lease (a GC pause, SIGSTOP, a
//! network split) from appending once its successor holds the lease: it does
//! not depend on any clock. Expiry, on the database's clock, only decides
//! when a lease may be taken over, so the lease length sets how fast
//! failover is.
//!
//! PostgreSQL reads the fenced rows `FOR SHARE` in the append: a takeover in
//! flight makes the append wait and then see the new epoch, and a takeover
//! waits for an append in flight. SQLite's appends and lease changes are
//! serialised by its single writer.
//!
//! [`AppendBatch::fenced`]: crate::AppendBatch::fenced

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::append::Fence;
use crate::error::LogError;
use crate::log::{Backend, EventLog};

/// A lease held: its name, holder, epoch and when it expires (the
/// database's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub owner: String,
    pub epoch: u64,
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    /// The fence an append made under this lease carries.
    pub fn fence(&self) -> Fence {
        Fence {
            lease: self.name.clone(),
            epoch: self.epoch,
        }
    }
}

/// A stored lease, as `leases` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseStatus {
    pub name: String,
    pub owner: String,
    pub epoch: u64,
    pub expires_at: DateTime<Utc>,
    pub acquired_at: DateTime<Utc>,
    pub renewed_at: DateTime<Utc>,
    /// Whether it had expired when read (the database's clock).
    pub expired: bool,
}

impl EventLog {
    /// Takes the lease `name` for `owner` for `ttl`: when no one has held it
    /// (epoch 1) or its holder let it expire (the epoch grows by one).
    /// `None` while another holder's lease runs, and while `owner`'s own
    /// runs (renew it instead).
    pub async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, LogError> {
        self.take_lease(name, owner, ttl, false).await
    }

    /// As [`acquire_lease`](Self::acquire_lease), and also while `owner`
    /// itself holds it: an engine restarted under the same instance name
    /// takes its own leases back at once instead of waiting for them to
    /// expire. The epoch grows all the same, so the earlier run, should it
    /// still be alive (two processes given one name), is fenced out.
    pub async fn reclaim_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, LogError> {
        self.take_lease(name, owner, ttl, true).await
    }

    async fn take_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        reclaim: bool,
    ) -> Result<Option<Lease>, LogError> {
        check_name(name)?;
        check_name(owner)?;
        let ttl_ms = ttl_ms(ttl)?;
        let row = match &self.backend {
            Backend::Postgres(b) => b.acquire_lease(name, owner, ttl_ms, reclaim).await?,
            Backend::Sqlite(b) => b.acquire_lease(name, owner, ttl_ms, reclaim).await?,
        };
        row.map(|(epoch, expires_at)| lease(name, owner, epoch, expires_at))
            .transpose()
    }

    /// Extends a lease held for another `ttl` from now; `None` when it is
    /// no longer held at that epoch (taken over: the holder must stop the
    /// work). A lease that expired but was not taken over is renewed.
    pub async fn renew_lease(
        &self,
        held: &Lease,
        ttl: Duration,
    ) -> Result<Option<Lease>, LogError> {
        let ttl_ms = ttl_ms(ttl)?;
        let epoch = stored_epoch(held.epoch)?;
        let expires = match &self.backend {
            Backend::Postgres(b) => {
                b.renew_lease(&held.name, &held.owner, epoch, ttl_ms)
                    .await?
            }
            Backend::Sqlite(b) => {
                b.renew_lease(&held.name, &held.owner, epoch, ttl_ms)
                    .await?
            }
        };
        expires
            .map(|at| lease(&held.name, &held.owner, epoch, at))
            .transpose()
    }

    /// Gives a lease up at once, so the next holder need not wait for it to
    /// expire; false when it was no longer held at that epoch.
    pub async fn release_lease(&self, held: &Lease) -> Result<bool, LogError> {
        let epoch = stored_epoch(held.epoch)?;
        match &self.backend {
            Backend::Postgres(b) => b.release_lease(&held.name, &held.owner, epoch).await,
            Backend::Sqlite(b) => b.release_lease(&held.name, &held.owner, epoch).await,
        }
    }

    /// Every lease stored, by name.
    pub async fn leases(&self) -> Result<Vec<LeaseStatus>, LogError> {
        match &self.backend {
            Backend::Postgres(b) => b.leases().await,
            Backend::Sqlite(b) => b.leases().await,
        }
    }
}

fn lease(
    name: &str,
    owner: &str,
    epoch: i64,
    expires_at: DateTime<Utc>,
) -> Result<Lease, LogError> {
    let epoch = u64::try_from(epoch).map_err(|_| LogError::Corrupt {
        position: 0,
        reason: format!("lease {name:?} has the negative epoch {epoch}"),
    })?;
    Ok(Lease {
        name: name.to_owned(),
        owner: owner.to_owned(),
        epoch,
        expires_at,
    })
}

fn check_name(s: &str) -> Result<(), LogError> {
    if s.is_empty() || s.len() > 200 || s.chars().any(char::is_control) {
        return Err(LogError::Invalid(format!(
            "a lease name or owner is 1 to 200 characters without control characters, not {s:?}"
        )));
    }
    Ok(())
}

fn ttl_ms(ttl: Duration) -> Result<i64, LogError> {
    i64::try_from(ttl.as_millis())
        .ok()
        .filter(|ms| *ms <= 86_400_000)
        .ok_or_else(|| LogError::Invalid(format!("a lease lasts at most a day, not {ttl:?}")))
}

fn stored_epoch(epoch: u64) -> Result<i64, LogError> {
    i64::try_from(epoch).map_err(|_| LogError::Invalid(format!("epoch {epoch} is out of range")))
}

/// Milliseconds since 1970 as a time (SQLite keeps lease times so).
pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

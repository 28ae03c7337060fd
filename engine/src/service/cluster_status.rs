//! What the cluster looks like now, from the log's database: the
//! instances, who holds each partition, the relay and the projections,
//! under which epoch and until when, and how far behind the log's head the
//! followers are (`provenant cluster status`, `GET /admin/cluster`).

use chrono::{DateTime, Utc};
use provenant_log::{EventLog, LeaseStatus, LogError};
use serde::Serialize;

use super::cluster::{PROJECTIONS_LEASE, RELAY_LEASE};
use super::ownership::lease_partition;

#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// The partition count (None: no engine has started on this log yet).
    pub partitions: Option<u32>,
    pub head: u64,
    pub instances: Vec<Holder>,
    /// Every partition, held or not.
    pub partition_leases: Vec<PartitionStatus>,
    pub relay: Follower,
    pub projections: Follower,
}

/// A lease as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Holder {
    pub name: String,
    pub owner: String,
    pub epoch: u64,
    pub expires_at: DateTime<Utc>,
    pub acquired_at: DateTime<Utc>,
    /// Expired when read (the database's clock): free to take.
    pub expired: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionStatus {
    pub partition: u32,
    /// None: never held.
    pub lease: Option<Holder>,
}

/// The relay or the projections: the lease they run under and their lag.
#[derive(Debug, Clone, Serialize)]
pub struct Follower {
    pub lease: Option<Holder>,
    /// Events between its checkpoint and the head (the slowest projection's).
    pub lag: Option<u64>,
}

fn holder(l: &LeaseStatus) -> Holder {
    Holder {
        name: l.name.clone(),
        owner: l.owner.clone(),
        epoch: l.epoch,
        expires_at: l.expires_at,
        acquired_at: l.acquired_at,
        expired: l.expired,
    }
}

/// Reads the cluster's state; `relay_checkpoint` names the relay's
/// checkpoint (it depends on the NATS prefix).
pub async fn read(log: &EventLog, relay_checkpoint: &str) -> Result<ClusterStatus, LogError> {
    let partitions = log.recorded_partitions().await?.map(|p| p.count());
    let leases = log.leases().await?;
    let head = log.head().await?.position;
    let find = |name: &str| leases.iter().find(|l| l.name == name).map(holder);
    let instances = leases
        .iter()
        .filter(|l| l.name.starts_with("instance:"))
        .map(holder)
        .collect();
    let partition_leases = (0..partitions.unwrap_or(0))
        .map(|k| PartitionStatus {
            partition: k,
            lease: leases
                .iter()
                .find(|l| lease_partition(&l.name) == Some(k))
                .map(holder),
        })
        .collect();
    let relay_at = log.checkpoint(relay_checkpoint).await?;
    let slowest = log
        .projection_statuses()
        .await?
        .iter()
        .map(|p| p.position)
        .min();
    Ok(ClusterStatus {
        partitions,
        head,
        instances,
        partition_leases,
        relay: Follower {
            lease: find(RELAY_LEASE),
            lag: relay_at.map(|p| head.saturating_sub(p)),
        },
        projections: Follower {
            lease: find(PROJECTIONS_LEASE),
            lag: slowest.map(|p| head.saturating_sub(p)),
        },
    })
}

impl ClusterStatus {
    /// The status as a few lines of text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let lease = |h: &Option<Holder>| match h {
            Some(h) if !h.expired => format!(
                "{} (epoch {}, until {})",
                h.owner,
                h.epoch,
                h.expires_at.format("%H:%M:%S%.3f")
            ),
            Some(h) => format!("free (last {} at epoch {})", h.owner, h.epoch),
            None => "free (never held)".to_owned(),
        };
        match self.partitions {
            Some(n) => out.push_str(&format!("partitions: {n}; log head: {}\n", self.head)),
            None => out.push_str(&format!(
                "no engine has started on this log yet; log head: {}\n",
                self.head
            )),
        }
        let live: Vec<&Holder> = self.instances.iter().filter(|i| !i.expired).collect();
        out.push_str(&format!("instances: {} live\n", live.len()));
        for i in &self.instances {
            out.push_str(&format!(
                "  {}{}\n",
                i.owner,
                if i.expired { " (gone)" } else { "" }
            ));
        }
        for p in &self.partition_leases {
            out.push_str(&format!("partition {}: {}\n", p.partition, lease(&p.lease)));
        }
        let lag =
            |l: Option<u64>| l.map_or("no checkpoint".to_owned(), |l| format!("{l} events behind"));
        out.push_str(&format!(
            "relay: {}; {}\n",
            lease(&self.relay.lease),
            lag(self.relay.lag)
        ));
        out.push_str(&format!(
            "projections: {}; {}\n",
            lease(&self.projections.lease),
            lag(self.projections.lag)
        ));
        out
    }
}

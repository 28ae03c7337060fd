//! Several engines on one log: who works what. Every `provenant serve` on
//! the same database holds a lease `instance:<name>` while it runs, and
//! takes leases for work: one per partition of the worlds
//! (`partition:<k>`), the relay (`relay`), the projections
//! (`projections`). Each round (a third of the lease length) it renews what
//! it holds, stops what it lost, and takes free work up to its share: the
//! partitions divided by the live instances, rounded up; above its share
//! it hands a partition over each round (stops it, then releases its lease
//! at once, so the next instance need not wait for it to expire).
//!
//! Correctness does not rest on this loop or on clocks: an append names
//! its partition's epoch and the log refuses it once the lease moved on
//! ([`super::ownership`]). The lease length only sets how fast an
//! instance that died is replaced.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use provenant_events::Partitions;
use provenant_log::{EventLog, Lease, LeaseStatus, LogError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::engine::Engine;
use super::ownership::{lease_partition, partition_lease};

/// The default lease length.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// The lease of the relay.
pub const RELAY_LEASE: &str = "relay";
/// The lease of the projections.
pub const PROJECTIONS_LEASE: &str = "projections";

/// The lease name of an instance.
pub fn instance_lease(instance: &str) -> String {
    format!("instance:{instance}")
}

/// Starts a piece of work under a lease taken; the task ends when told to
/// stop (having finished what it had in hand).
pub type Duty = Box<dyn Fn(&Lease, watch::Receiver<bool>) -> JoinHandle<()> + Send + Sync>;

/// What this instance can take on.
pub struct Duties {
    /// A partition's ticks (without NATS: nothing to consume, the gate is
    /// enough).
    pub partition: Option<Duty>,
    pub relay: Duty,
    /// None when the projections run in another process.
    pub projections: Option<Duty>,
}

struct Held {
    lease: Lease,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// This instance's part in the cluster.
pub struct Cluster {
    log: EventLog,
    engine: Arc<Engine>,
    instance: String,
    ttl: Duration,
    partitions: Partitions,
    duties: Duties,
    held: HashMap<String, Held>,
    /// This instance's own lease, while it holds it.
    me: Option<Lease>,
}

impl Cluster {
    pub fn new(
        log: EventLog,
        engine: Arc<Engine>,
        instance: String,
        ttl: Duration,
        duties: Duties,
    ) -> Self {
        let partitions = engine.worlds.ownership().partitions();
        Cluster {
            log,
            engine,
            instance,
            ttl,
            partitions,
            duties,
            held: HashMap::new(),
            me: None,
        }
    }

    /// The log, for one lease statement (counted for `/metrics`).
    fn counted(&self) -> &EventLog {
        self.engine
            .lease_operations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.log
    }

    /// Rounds until `shutdown`; then stops the partitions' work (the rest
    /// stops in [`finish`](Self::finish), once the worlds are closed).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Self {
        let every = self.ttl / 3;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = super::signals::stopped(&mut shutdown) => break,
            }
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "cannot renew or take leases; retrying next round");
            }
        }
        let partitions: Vec<String> = self
            .held
            .keys()
            .filter(|n| lease_partition(n).is_some())
            .cloned()
            .collect();
        for name in partitions {
            self.hand_over(&name, Wait::Full).await;
        }
        self
    }

    /// Stops the rest of the work and gives every lease up.
    pub async fn finish(mut self) {
        let names: Vec<String> = self.held.keys().cloned().collect();
        for name in names {
            self.hand_over(&name, Wait::Full).await;
        }
        if let Some(lease) = self.me.take() {
            let _ = self.counted().release_lease(&lease).await;
        }
    }

    /// One round: renew, take, hand over.
    pub async fn round(&mut self) -> Result<(), LogError> {
        self.renew_instance().await?;
        let names: Vec<String> = self.held.keys().cloned().collect();
        for name in names {
            let Some(held) = self.held.get(&name) else {
                continue;
            };
            match self.counted().renew_lease(&held.lease, self.ttl).await? {
                Some(lease) => {
                    if let Some(h) = self.held.get_mut(&name) {
                        h.lease = lease;
                    }
                }
                None => {
                    tracing::warn!(lease = %name, epoch = held.lease.epoch, "lease taken over by another instance; stopping its work");
                    self.lose(&name).await;
                }
            }
        }
        let leases = self.counted().leases().await?;
        let live = live_instances(&leases).max(1);
        // Partitions whose task ended by itself (its lease was found taken
        // over) are lost.
        let ended: Vec<String> = self
            .held
            .iter()
            .filter(|(n, h)| {
                lease_partition(n).is_some() && h.task.as_ref().is_some_and(|t| t.is_finished())
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in ended {
            self.lose(&name).await;
        }
        self.take(RELAY_LEASE, &leases).await?;
        if self.duties.projections.is_some() {
            self.take(PROJECTIONS_LEASE, &leases).await?;
        }
        let share = self.partitions.count().div_ceil(live as u32) as usize;
        let mut mine: Vec<u32> = self
            .held
            .keys()
            .filter_map(|n| lease_partition(n))
            .collect();
        mine.sort_unstable();
        if mine.len() > share {
            // One a round: a hand-over may wait for its work up to a round,
            // and the other leases must be renewed in time.
            if let Some(k) = mine.last() {
                tracing::info!(
                    partition = k,
                    share,
                    "handing a partition over to balance the cluster"
                );
                self.hand_over(&partition_lease(*k), Wait::Round).await;
            }
        } else {
            let start = provenant_events::partition::fnv1a_32(self.instance.as_bytes())
                % self.partitions.count();
            let count = self.partitions.count();
            let mut held = mine.len();
            for i in 0..count {
                if held >= share {
                    break;
                }
                let k = (start + i) % count;
                if self.take(&partition_lease(k), &leases).await? {
                    held += 1;
                }
            }
        }
        Ok(())
    }

    async fn renew_instance(&mut self) -> Result<(), LogError> {
        if let Some(me) = &self.me {
            self.me = self.counted().renew_lease(me, self.ttl).await?;
        }
        if self.me.is_none() {
            let name = instance_lease(&self.instance);
            // An earlier run of this instance, or another live process
            // given the same name: its leases are taken (and it is fenced
            // out).
            self.me = self
                .counted()
                .reclaim_lease(&name, &self.instance, self.ttl)
                .await?;
            if self.me.as_ref().is_some_and(|l| l.epoch > 1) {
                tracing::info!(instance = %self.instance, "took this instance's lease over from an earlier run (should another live engine have this name, give each its own --instance)");
            }
        }
        Ok(())
    }

    /// Takes `name` when it is free (never held, or expired) and starts its
    /// work; true when taken.
    async fn take(&mut self, name: &str, leases: &[LeaseStatus]) -> Result<bool, LogError> {
        if self.held.contains_key(name) {
            return Ok(false);
        }
        let stored = leases.iter().find(|l| l.name == name);
        // Held under this instance's name but not by this process: an
        // earlier run of it, taken back at once.
        let earlier_run = stored.is_some_and(|l| l.owner == self.instance && !l.expired);
        if !earlier_run && !stored.is_none_or(|l| l.expired) {
            return Ok(false);
        }
        let taken = if earlier_run {
            self.log
                .reclaim_lease(name, &self.instance, self.ttl)
                .await?
        } else {
            self.log
                .acquire_lease(name, &self.instance, self.ttl)
                .await?
        };
        let Some(lease) = taken else {
            return Ok(false);
        };
        tracing::info!(lease = %name, epoch = lease.epoch, "lease taken");
        let (stop, stop_rx) = watch::channel(false);
        let task = if let Some(k) = lease_partition(name) {
            let ownership = self.engine.worlds.ownership();
            match &self.duties.partition {
                Some(duty) => Some(duty(&lease, stop_rx)),
                None => {
                    ownership.open(k, lease.epoch);
                    None
                }
            }
        } else if name == RELAY_LEASE {
            Some((self.duties.relay)(&lease, stop_rx))
        } else {
            self.duties
                .projections
                .as_ref()
                .map(|duty| duty(&lease, stop_rx))
        };
        self.held
            .insert(name.to_owned(), Held { lease, stop, task });
        Ok(true)
    }

    /// Stops `name`'s work and releases its lease at once, so the next
    /// holder need not wait for it to expire. While the engine runs, the
    /// work is waited for at most a round (the other leases must be renewed
    /// meanwhile): work that takes longer goes on finishing and the lease
    /// is left to expire.
    async fn hand_over(&mut self, name: &str, wait: Wait) {
        let Some(lease) = self.stop(name, wait).await else {
            return;
        };
        match self.counted().release_lease(&lease).await {
            Ok(true) => tracing::info!(lease = %name, epoch = lease.epoch, "lease handed over"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(lease = %name, error = %e, "cannot release a lease; it expires by itself")
            }
        }
    }

    /// `name` was taken over: its work stops (fenced already), without
    /// holding up the round.
    async fn lose(&mut self, name: &str) {
        self.stop(name, Wait::No).await;
    }

    /// Stops `name`'s work; the lease it was under when the work finished
    /// within `wait` (None otherwise: it goes on finishing by itself).
    async fn stop(&mut self, name: &str, wait: Wait) -> Option<Lease> {
        let held = self.held.remove(name)?;
        let partition = lease_partition(name);
        if let Some(k) = partition {
            // No job of the partition is let in any more.
            self.engine.worlds.ownership().remove(k);
        }
        let _ = held.stop.send(true);
        let finished = match (held.task, wait) {
            (None, _) => true,
            (Some(task), Wait::Full) => {
                ended(name, task.await);
                true
            }
            (Some(mut task), Wait::Round) => {
                match tokio::time::timeout(self.ttl / 3, &mut task).await {
                    Ok(result) => {
                        ended(name, result);
                        true
                    }
                    Err(_) => {
                        tracing::warn!(lease = %name, "its work is still finishing; the lease is left to expire");
                        let name = name.to_owned();
                        tokio::spawn(async move { ended(&name, task.await) });
                        false
                    }
                }
            }
            (Some(task), Wait::No) => {
                let name = name.to_owned();
                tokio::spawn(async move { ended(&name, task.await) });
                false
            }
        };
        if let Some(k) = partition {
            // Its worlds' workers leave: a job of theirs still queued is
            // refused (the gate is gone).
            self.engine.worlds.evict(k);
        }
        finished.then_some(held.lease)
    }
}

/// How long stopping a piece of work waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Until it has finished (the engine stops).
    Full,
    /// At most a round.
    Round,
    /// Not at all.
    No,
}

fn ended(name: &str, result: Result<(), tokio::task::JoinError>) {
    if let Err(e) = result {
        tracing::error!(lease = %name, error = %e, "a task under a lease ended abnormally");
    }
}

/// Instances whose lease runs.
fn live_instances(leases: &[LeaseStatus]) -> usize {
    leases
        .iter()
        .filter(|l| l.name.starts_with("instance:") && !l.expired)
        .count()
}

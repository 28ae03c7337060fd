//! Which partitions of the worlds this instance works now, and under which
//! lease epoch: a gate per partition held. A job is let in with a
//! [`Ticket`] taken from its partition's gate; its events are appended
//! fenced by the gate's epoch ([`provenant_log::Fence`]), and only while
//! the gate that issued the ticket is still open.
//!
//! A gate closes when an append for its partition fails (the tick stays
//! unacknowledged, so the jobs taken after it must not be done before it
//! is redelivered): the partition's consumer stops, lets what it took be
//! answered, starts again from the partition's durable position (the first
//! unacknowledged tick) and opens a new generation. A gate is removed when
//! the partition's lease is lost or given up.

use std::collections::HashMap;
use std::sync::Mutex;

use provenant_events::{Partitions, WorldId};
use provenant_log::Fence;
use tokio::sync::watch;

/// The lease name of partition `k`.
pub fn partition_lease(k: u32) -> String {
    format!("partition:{k}")
}

/// The partition a lease name names, if it names one.
pub fn lease_partition(name: &str) -> Option<u32> {
    name.strip_prefix("partition:")?.parse().ok()
}

/// A job's admission: its partition's epoch and generation when it was
/// taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub partition: u32,
    pub epoch: u64,
    pub generation: u64,
}

/// Why a job is not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotHeld {
    #[error("world {world} is in partition {partition}, which this instance does not hold")]
    Elsewhere { world: WorldId, partition: u32 },
    #[error(
        "partition {partition} is restarting after a failed append; its ticks are taken again in order"
    )]
    Restarting { partition: u32 },
}

#[derive(Debug, Clone)]
struct Gate {
    epoch: u64,
    generation: u64,
    open: bool,
}

/// The gates of the partitions this instance holds.
pub struct Ownership {
    partitions: Partitions,
    gates: Mutex<HashMap<u32, Gate>>,
    /// Bumped at every change, for the tasks that follow a gate.
    changed: watch::Sender<u64>,
    /// Reopen a closed gate at once (no NATS: nothing to take again).
    reopen_at_once: bool,
}

impl Ownership {
    pub fn new(partitions: Partitions, reopen_at_once: bool) -> Self {
        Ownership {
            partitions,
            gates: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
            reopen_at_once,
        }
    }

    pub fn partitions(&self) -> Partitions {
        self.partitions
    }

    pub fn partition_of(&self, world: &WorldId) -> u32 {
        self.partitions.of(world)
    }

    /// A ticket for a job of `world` now.
    pub fn ticket(&self, world: &WorldId) -> Result<Ticket, NotHeld> {
        let partition = self.partitions.of(world);
        match lock(&self.gates).get(&partition) {
            Some(g) if g.open => Ok(Ticket {
                partition,
                epoch: g.epoch,
                generation: g.generation,
            }),
            Some(_) => Err(NotHeld::Restarting { partition }),
            None => Err(NotHeld::Elsewhere {
                world: world.clone(),
                partition,
            }),
        }
    }

    /// The fence to append `ticket`'s job under; None once its gate closed
    /// or moved on (the job must not be done).
    pub fn fence(&self, ticket: Ticket) -> Option<Fence> {
        let gates = lock(&self.gates);
        let g = gates.get(&ticket.partition)?;
        (g.open && g.epoch == ticket.epoch && g.generation == ticket.generation).then(|| Fence {
            lease: partition_lease(ticket.partition),
            epoch: ticket.epoch,
        })
    }

    /// Opens partition `k` under `epoch` (a lease just taken, or a restart
    /// after a close); returns the generation.
    pub fn open(&self, k: u32, epoch: u64) -> u64 {
        let generation = {
            let mut gates = lock(&self.gates);
            let generation = gates.get(&k).map_or(1, |g| g.generation + 1);
            gates.insert(
                k,
                Gate {
                    epoch,
                    generation,
                    open: true,
                },
            );
            generation
        };
        self.changed.send_modify(|n| *n += 1);
        generation
    }

    /// Closes `ticket`'s gate (an append of its partition failed), unless
    /// it moved on already.
    pub fn close(&self, ticket: Ticket) {
        {
            let mut gates = lock(&self.gates);
            let Some(g) = gates.get_mut(&ticket.partition) else {
                return;
            };
            if g.epoch != ticket.epoch || g.generation != ticket.generation || !g.open {
                return;
            }
            if self.reopen_at_once {
                g.generation += 1;
            } else {
                g.open = false;
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Partition `k` is no longer held.
    pub fn remove(&self, k: u32) {
        if lock(&self.gates).remove(&k).is_some() {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// Whether `k` is held and open at `epoch`, `generation`.
    pub fn is_open(&self, k: u32, epoch: u64, generation: u64) -> bool {
        lock(&self.gates)
            .get(&k)
            .is_some_and(|g| g.open && g.epoch == epoch && g.generation == generation)
    }

    /// Whether `k` is held at `epoch` (open or restarting).
    pub fn holds(&self, k: u32, epoch: u64) -> bool {
        lock(&self.gates).get(&k).is_some_and(|g| g.epoch == epoch)
    }

    /// The partitions held now, with their epochs.
    pub fn held(&self) -> Vec<(u32, u64)> {
        let mut held: Vec<_> = lock(&self.gates)
            .iter()
            .map(|(k, g)| (*k, g.epoch))
            .collect();
        held.sort_unstable();
        held
    }

    /// Follows changes of the gates.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(s: &str) -> WorldId {
        WorldId::new(s).unwrap()
    }

    #[test]
    fn a_ticket_fences_only_while_its_gate_is_the_same() {
        let o = Ownership::new(Partitions::new(1).unwrap(), false);
        assert!(matches!(
            o.ticket(&world("w")),
            Err(NotHeld::Elsewhere { partition: 0, .. })
        ));
        assert_eq!(o.open(0, 7), 1);
        let t = o.ticket(&world("w")).unwrap();
        assert_eq!(o.fence(t).unwrap().epoch, 7);
        o.close(t);
        assert_eq!(o.fence(t), None);
        assert_eq!(
            o.ticket(&world("w")),
            Err(NotHeld::Restarting { partition: 0 })
        );
        // Restarted: the old ticket stays refused, a new one is let in.
        assert_eq!(o.open(0, 7), 2);
        assert_eq!(o.fence(t), None);
        let t2 = o.ticket(&world("w")).unwrap();
        assert!(o.fence(t2).is_some());
        // A close with the old ticket does not close the new generation.
        o.close(t);
        assert!(o.fence(t2).is_some());
        o.remove(0);
        assert_eq!(o.fence(t2), None);
    }

    #[test]
    fn without_a_consumer_a_closed_gate_reopens_at_once() {
        let o = Ownership::new(Partitions::new(1).unwrap(), true);
        o.open(0, 1);
        let t = o.ticket(&world("w")).unwrap();
        o.close(t);
        assert_eq!(o.fence(t), None);
        let t2 = o.ticket(&world("w")).unwrap();
        assert_eq!(t2.generation, t.generation + 1);
    }

    #[test]
    fn lease_names_round_trip() {
        assert_eq!(lease_partition(&partition_lease(12)), Some(12));
        assert_eq!(lease_partition("relay"), None);
    }
}

//! The running engine's parts, shared by its tasks (the tick consumer, the
//! world workers, the HTTP handlers).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use provenant_events::{Event, Position};
use provenant_host::intake::{self, Rejection};
use provenant_host::plugin_host::PluginHost;
use provenant_log::{EventLog, LogError, TailCounters};
use tokio::sync::broadcast;

use super::commit::Committer;
use super::health::Health;
use super::worlds::Worlds;

/// Where the log's followers in the engine got their events: the feed (in
/// memory) or reads of the log.
#[derive(Default)]
pub struct FollowerReads {
    pub relay: Arc<TailCounters>,
    pub projections: Arc<TailCounters>,
}

/// The running engine's parts, shared by its tasks.
pub struct Engine {
    pub log: EventLog,
    pub host: Arc<PluginHost>,
    pub worlds: Worlds,
    pub committer: Committer,
    pub health: Arc<Health>,
    /// The position of the last event the relay published.
    pub relayed: Arc<AtomicU64>,
    /// Where the relay's and the projections' events come from.
    pub reads: FollowerReads,
    /// Live events, on the embedded default.
    pub bus: Option<broadcast::Sender<Arc<Event>>>,
    /// The roles' tokens; none: every route is open (loopback only).
    pub tokens: super::access::Tokens,
    /// The name of the relay's checkpoint in the log.
    pub relay_checkpoint: String,
    /// Lease statements this engine has run (renewals, takeovers, lists,
    /// releases): the cluster's cost on the database.
    pub lease_operations: AtomicU64,
}

impl Engine {
    /// Whether the relay publishes to NATS (else to the in-process bus).
    pub fn relays_to_nats(&self) -> bool {
        self.bus.is_none()
    }

    /// Appends the `TickRejected` event of a refused tick.
    pub async fn record_rejection(
        &self,
        rejection: &Rejection,
        source: &str,
    ) -> Result<Position, Arc<LogError>> {
        let mut event = intake::rejected_event(rejection, source);
        event.provenance.engine_version = Some(self.host.engine().version.clone());
        event.provenance.engine_instance = Some(self.host.engine().instance.clone());
        let positions = self.committer.append(vec![event], None, None).await?;
        Ok(positions.first().copied().unwrap_or_default())
    }
}

//! How the demo paces itself: ticks in flight and how long it waits.

use std::time::Duration;

/// The engine instance recorded in every event's provenance.
pub const INSTANCE: &str = "demo";
/// Where the demo's ticks come from, in their `TickProcessed` and
/// `TickRejected` events (in-process; over NATS the engine records the
/// subject).
pub const SOURCE: &str = "demo";
/// Ticks awaiting their answer (in-process) or their stream acknowledgment
/// (NATS) at once.
pub const IN_FLIGHT: usize = 2048;
/// How long without any acknowledgment before the ticks still missing are
/// an error.
pub const ACK_IDLE: Duration = Duration::from_secs(30);
/// How long to wait for one answer, a rejection to be recorded, or the relay
/// to reach the head.
pub const WAIT: Duration = Duration::from_secs(30);

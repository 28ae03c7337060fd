//! What became of a tick, as the engine answers it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::Position;
use crate::ids::WorldId;

/// The engine's acknowledgment of a tick: the body of `POST /v1/ticks`'s
/// answer and of the notice on `<prefix>.acked.<world_id>`, and what the
/// service hands back in-process. Given only once the tick's events are
/// durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickAck {
    pub tick_id: Uuid,
    pub world_id: WorldId,
    /// The tick was already in the log (or earlier in the same delivery):
    /// nothing was added.
    #[serde(default)]
    pub duplicate: bool,
    /// Events this tick added (0 for a duplicate).
    #[serde(default)]
    pub events: u64,
    /// The position of the tick's `TickProcessed` event.
    #[serde(default)]
    pub position: Position,
}

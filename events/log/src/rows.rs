//! An event in its JSON form, as the relay reads it straight from its row,
//! and positions as the databases store them.

use provenant_events::event::{Event, Position};
use provenant_events::ids::{EventKind, PluginId, WorldId};
use uuid::Uuid;

/// An event in its JSON form, read straight from its row, with the fields a
/// publisher routes by. `json` is the bytes [`Event::to_json`] gives for the
/// event, except that the payload and provenance are written as stored
/// (the log stores their canonical text, so this differs only for a row
/// changed by hand, which `audit verify` reports). They are checked for
/// being JSON, not parsed: this is the relay's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventJson {
    pub position: Position,
    pub event_id: Uuid,
    pub kind: EventKind,
    pub plugin_id: Option<PluginId>,
    pub world_id: Option<WorldId>,
    pub json: Vec<u8>,
}

/// A position as the databases store it (`bigint`, `INTEGER`).
pub(crate) fn stored_position(p: Position) -> i64 {
    i64::try_from(p).unwrap_or(i64::MAX)
}

impl EventJson {
    /// The JSON form of an event.
    pub fn of(event: &Event) -> Self {
        EventJson {
            position: event.position,
            event_id: event.event_id,
            json: event.to_json(),
            kind: event.kind.clone(),
            plugin_id: event.plugin_id.clone(),
            world_id: event.world_id.clone(),
        }
    }
}

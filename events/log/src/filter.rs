//! Which events a filtered read returns.

use provenant_events::ids::{EventKind, PluginId, SessionId, WorldId};

/// Which events [`EventLog::read_filtered`] returns: those that match every
/// field given (`None` matches anything, including an event without that
/// field). The default filter matches every event.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events of this world.
    pub world: Option<WorldId>,
    /// Only events of this session (session ids are unique within a world:
    /// give `world` too to name one session).
    pub session: Option<SessionId>,
    /// Only events of this plugin.
    pub plugin: Option<PluginId>,
    /// Only events of this kind.
    pub kind: Option<EventKind>,
}

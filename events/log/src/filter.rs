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
    /// Only events of one of these kinds (empty: any kind). Named with the
    /// world, session or plugin, the kinds a partial index covers (see
    /// `docs/log.md`) let the database use it.
    pub kinds: Vec<EventKind>,
}

impl EventFilter {
    /// The columns the filter names and the value each must have, in a
    /// fixed order: a backend writes one equality per named column (so the
    /// database can use that column's index) and nothing for the others.
    pub(crate) fn columns(&self) -> Vec<(&'static str, &str)> {
        [
            ("world_id", self.world.as_ref().map(|w| w.as_str())),
            ("session_id", self.session.as_ref().map(|s| s.as_str())),
            ("plugin_id", self.plugin.as_ref().map(|p| p.as_str())),
            ("kind", self.kind.as_ref().map(|k| k.as_str())),
        ]
        .into_iter()
        .filter_map(|(column, value)| Some((column, value?)))
        .collect()
    }

    /// The kinds of [`kinds`](Self::kinds), as text.
    pub(crate) fn kind_list(&self) -> Vec<&str> {
        self.kinds.iter().map(|k| k.as_str()).collect()
    }
}

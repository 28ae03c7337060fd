//! The game state plugins read, folded from the log. Pure.
//!
//! Everything a capability reads comes from here, and everything a
//! capability writes is an event that [`GameState::apply`] folds back in, so
//! the state at any position is a function of the log up to it.

use std::collections::BTreeMap;

use provenant_events::{Event, NewEvent, Payload, PluginId, SessionId, WorldId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use provenant_events::{keys, kinds};

/// A world: its configuration and what ticks said about its NPCs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorldState {
    pub name: String,
    pub description: String,
    /// `meta` of the last `WorldConfigured` (holds `behavior`).
    pub meta: Value,
    pub locations: Vec<Value>,
    pub npcs: BTreeMap<String, NpcState>,
    /// Whether a `WorldConfigured` was seen; a world never configured uses
    /// every plugin and has no activities.
    pub configured: bool,
    /// The effective simulation config last recorded.
    pub effective_config: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NpcState {
    pub location_id: Option<String>,
    pub state: Value,
}

/// A game session: flags (plugin flags under `plugin:<id>:<key>`) and
/// relationships (shared between plugins).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    pub flags: BTreeMap<String, Value>,
    pub relationships: BTreeMap<String, Value>,
}

/// Everything plugins can read. Serialized (as a world's snapshot) with
/// every field, so that decoding what was encoded gives the same state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GameState {
    pub worlds: BTreeMap<WorldId, WorldState>,
    /// Sessions by world, then by session id.
    pub sessions: BTreeMap<WorldId, BTreeMap<SessionId, SessionState>>,
    /// Each plugin's own key-value storage.
    pub storage: BTreeMap<PluginId, BTreeMap<String, Value>>,
}

/// A relationship after a shallow merge of `updates` into `current`,
/// stamped `meta.last_modified_by = modified_by` (a plugin id, or `game`).
pub fn merged_relationship(current: Option<&Value>, updates: &Value, modified_by: &str) -> Value {
    let mut merged = current
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(u) = updates.as_object() {
        for (k, v) in u {
            merged.insert(k.clone(), v.clone());
        }
    }
    let mut meta = merged
        .get("meta")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    meta.insert(
        "last_modified_by".into(),
        Value::String(modified_by.to_owned()),
    );
    merged.insert("meta".into(), Value::Object(meta));
    Value::Object(merged)
}

/// The parts of an event the state depends on.
pub struct Change<'a> {
    pub kind: &'a str,
    pub world: Option<&'a WorldId>,
    pub session: Option<&'a SessionId>,
    pub plugin: Option<&'a PluginId>,
    /// Parsed only by the kinds the fold reads (plugin calls are not among them).
    pub payload: &'a Payload,
}

impl<'a> From<&'a Event> for Change<'a> {
    fn from(e: &'a Event) -> Self {
        Change {
            kind: e.kind.as_str(),
            world: e.world_id.as_ref(),
            session: e.session_id.as_ref(),
            plugin: e.plugin_id.as_ref(),
            payload: &e.payload,
        }
    }
}

impl<'a> From<&'a NewEvent> for Change<'a> {
    fn from(e: &'a NewEvent) -> Self {
        Change {
            kind: e.kind.as_str(),
            world: e.world_id.as_ref(),
            session: e.session_id.as_ref(),
            plugin: e.plugin_id.as_ref(),
            payload: &e.payload,
        }
    }
}

impl GameState {
    pub fn world(&self, id: &WorldId) -> Option<&WorldState> {
        self.worlds.get(id)
    }

    pub fn session(&self, world: &WorldId, session: &SessionId) -> Option<&SessionState> {
        self.sessions.get(world)?.get(session)
    }

    /// Folds one event in. Kinds that do not change state are ignored.
    pub fn apply<'a>(&mut self, change: impl Into<Change<'a>>) {
        let c = change.into();
        let p = c.payload;
        match c.kind {
            kinds::WORLD_CONFIGURED => {
                if let Some(world) = c.world {
                    let w = self.worlds.entry(world.clone()).or_default();
                    w.name = p["name"].as_str().unwrap_or_default().to_owned();
                    w.description = p["description"].as_str().unwrap_or_default().to_owned();
                    w.meta = p.get("meta").cloned().unwrap_or(Value::Object(Map::new()));
                    w.locations = p["locations"].as_array().cloned().unwrap_or_default();
                    w.configured = true;
                }
            }
            kinds::SIMULATION_CONFIG_CHANGED => {
                if let Some(world) = c.world {
                    self.worlds
                        .entry(world.clone())
                        .or_default()
                        .effective_config = Some(p["config"].clone());
                }
            }
            kinds::NPC_STATE_SET => {
                if let (Some(world), Some(npc)) = (c.world, p[keys::NPC_ID].as_str()) {
                    let w = self.worlds.entry(world.clone()).or_default();
                    let n = w.npcs.entry(npc.to_owned()).or_default();
                    if let Some(loc) = p.get(keys::LOCATION_ID).and_then(Value::as_str) {
                        n.location_id = Some(loc.to_owned());
                    }
                    if let Some(state) = p.get(keys::STATE) {
                        n.state = state.clone();
                    }
                }
            }
            kinds::SESSION_FLAG_SET => {
                if let (Some(s), Some(key)) = (self.session_mut(&c), p[keys::KEY].as_str()) {
                    s.flags.insert(key.to_owned(), p[keys::VALUE].clone());
                }
            }
            kinds::RELATIONSHIP_UPDATED => {
                if let (Some(s), Some(npc)) = (self.session_mut(&c), p[keys::NPC_KEY].as_str()) {
                    s.relationships
                        .insert(npc.to_owned(), p[keys::RELATIONSHIP].clone());
                }
            }
            kinds::PLUGIN_STORAGE_SET => {
                if let (Some(plugin), Some(key)) = (c.plugin, p[keys::KEY].as_str()) {
                    self.storage
                        .entry(plugin.clone())
                        .or_default()
                        .insert(key.to_owned(), p[keys::VALUE].clone());
                }
            }
            _ => {}
        }
    }

    fn session_mut(&mut self, c: &Change<'_>) -> Option<&mut SessionState> {
        let (world, session) = (c.world?, c.session?);
        Some(
            self.sessions
                .entry(world.clone())
                .or_default()
                .entry(session.clone())
                .or_default(),
        )
    }
}

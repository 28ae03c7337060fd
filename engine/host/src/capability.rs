//! The capability API as data: what a plugin can ask for, which permission
//! each needs, and what each does when that permission is missing.
//!
//! Requests and responses are serializable so that sandboxed (WebAssembly)
//! and remote plugins can use the very same API later.

use provenant_events::canonical::Member;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::permissions::{FailureMode, Permission};

/// One call a plugin makes through its context. Calls act on the world and
/// session of the tick being evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "capability", rename_all = "snake_case")]
pub enum Request {
    GetWorld,
    /// A value inside the world's `meta`, by dot path (`behavior.simulationConfig.x`).
    GetWorldConfig {
        path: String,
    },
    ListWorldLocations,
    ListWorldNpcs,
    /// The session, with the game's flags and this plugin's own flags only.
    GetSession,
    /// This plugin's own flag `key` (stored as `plugin:<id>:<key>`).
    GetSessionFlag {
        key: String,
    },
    GetRelationship {
        npc_key: String,
    },
    SetSessionFlag {
        key: String,
        value: Value,
    },
    /// Shallow-merges `updates` into the shared relationship.
    UpdateRelationship {
        npc_key: String,
        updates: Value,
    },
    GetNpc {
        npc_id: String,
    },
    SetNpcState {
        npc_id: String,
        state: Value,
    },
    /// This plugin's own storage.
    StorageGet {
        key: String,
    },
    StorageSet {
        key: String,
        value: Value,
    },
    /// Every key of this plugin's own storage, with its value.
    ListStorage,
    Log {
        level: LogLevel,
        message: String,
        #[serde(default)]
        fields: Value,
    },
    /// Emits `plugin:<id>:<name>`.
    EmitEvent {
        name: String,
        payload: Value,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
}

/// A capability: a name (as in the original's API), its permission and its
/// default failure mode. A plugin may ask for another mode per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    pub name: &'static str,
    pub permission: Permission,
    pub mode: FailureMode,
}

impl Request {
    /// The capability this request uses.
    pub fn capability(&self) -> Capability {
        use FailureMode::*;
        use Permission::*;
        let (name, permission, mode) = match self {
            Request::GetWorld => ("world.get_world", WorldRead, Warn),
            Request::GetWorldConfig { .. } => ("world.get_world_config", WorldRead, Warn),
            Request::ListWorldLocations => ("world.list_world_locations", WorldRead, Warn),
            Request::ListWorldNpcs => ("world.list_world_npcs", WorldRead, Warn),
            Request::GetSession => ("session.get_session", SessionRead, Warn),
            Request::GetSessionFlag { .. } => ("session.get_session_flag", SessionRead, Warn),
            Request::GetRelationship { .. } => ("session.get_relationship", SessionRead, Warn),
            Request::SetSessionFlag { .. } => {
                ("session_write.set_session_flag", SessionWrite, Warn)
            }
            Request::UpdateRelationship { .. } => {
                ("session_write.update_relationship", SessionWrite, Warn)
            }
            Request::GetNpc { .. } => ("npc.get_npc", NpcRead, Warn),
            Request::SetNpcState { .. } => ("npc.set_npc_state", NpcWrite, Warn),
            Request::StorageGet { .. } => ("storage.get", DbRead, Warn),
            Request::StorageSet { .. } => ("storage.set", DbWrite, Warn),
            Request::ListStorage => ("storage.list", DbRead, Warn),
            Request::Log { .. } => ("log", LogEmit, Silent),
            Request::EmitEvent { .. } => ("events.emit", EventEmit, Raise),
        };
        Capability {
            name,
            permission,
            mode,
        }
    }

    /// The members of the serialized form of a read that names one thing
    /// (as `{"capability": .., <key>: ..}`), to record it without building a
    /// `Value`; `None` for the other requests.
    pub fn read_members(&self) -> Option<[(&'static str, Member<'_>); 2]> {
        let (tag, key, value) = match self {
            Request::GetSessionFlag { key } => ("get_session_flag", "key", key),
            Request::GetRelationship { npc_key } => ("get_relationship", "npc_key", npc_key),
            Request::GetNpc { npc_id } => ("get_npc", "npc_id", npc_id),
            Request::StorageGet { key } => ("storage_get", "key", key),
            Request::GetWorldConfig { path } => ("get_world_config", "path", path),
            _ => return None,
        };
        Some([
            ("capability", Member::Str(tag)),
            (key, Member::Str(value.as_str())),
        ])
    }

    /// Whether the request changes state (and so becomes an event).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Request::SetSessionFlag { .. }
                | Request::UpdateRelationship { .. }
                | Request::SetNpcState { .. }
                | Request::StorageSet { .. }
                | Request::EmitEvent { .. }
        )
    }
}

/// The capabilities used at start-up, not through a context. Registering
/// without the permission refuses to start (RAISE).
pub const REGISTRATION: [Capability; 4] = [
    Capability {
        name: "behavior.register_condition_evaluator",
        permission: Permission::BehaviorExtendConditions,
        mode: FailureMode::Raise,
    },
    Capability {
        name: "behavior.register_effect_handler",
        permission: Permission::BehaviorExtendEffects,
        mode: FailureMode::Raise,
    },
    Capability {
        name: "behavior.register_simulation_config",
        permission: Permission::BehaviorConfigureSimulation,
        mode: FailureMode::Raise,
    },
    Capability {
        name: "events.subscribe",
        permission: Permission::EventSubscribe,
        mode: FailureMode::Raise,
    },
];

/// A refused call, as RAISE reports it to the plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("plugin {plugin} was denied {capability}: {reason}")]
pub struct Denied {
    pub plugin: String,
    pub capability: String,
    /// The permission it lacks, when the refusal is about a permission.
    pub permission: Option<String>,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use provenant_events::canonical::{self, Canonical};
    use serde_json::json;

    #[test]
    fn a_reads_members_are_those_of_its_serialized_form() {
        let tricky = "k\"\\\n\u{1}é";
        let requests = [
            Request::GetWorld,
            Request::GetWorldConfig {
                path: tricky.into(),
            },
            Request::ListWorldLocations,
            Request::ListWorldNpcs,
            Request::GetSession,
            Request::GetSessionFlag { key: tricky.into() },
            Request::GetRelationship {
                npc_key: tricky.into(),
            },
            Request::SetSessionFlag {
                key: tricky.into(),
                value: json!({"b": 1, "a": [2.5]}),
            },
            Request::UpdateRelationship {
                npc_key: "n".into(),
                updates: json!({"x": 1}),
            },
            Request::GetNpc {
                npc_id: tricky.into(),
            },
            Request::SetNpcState {
                npc_id: "n".into(),
                state: json!(null),
            },
            Request::StorageGet { key: tricky.into() },
            Request::StorageSet {
                key: "k".into(),
                value: json!(1),
            },
            Request::Log {
                level: LogLevel::Info,
                message: "m".into(),
                fields: json!({}),
            },
            Request::EmitEvent {
                name: "e".into(),
                payload: json!([1]),
            },
        ];
        let mut named = 0;
        for r in requests {
            if let Some(members) = r.read_members() {
                named += 1;
                assert_eq!(
                    canonical::object(&members),
                    Canonical::of(&serde_json::to_value(&r).unwrap()),
                    "{r:?}"
                );
            }
        }
        assert_eq!(named, 5);
    }
}

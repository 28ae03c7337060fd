//! The capabilities the engine lends a plugin, one module per area of
//! `wit/plugin.wit`: JSON in and out as [`Value`]s. A capability the
//! plugin's permissions do not grant is refused (recorded as a
//! `PermissionDenied` event): in RAISE mode as `Err(Denied)`, otherwise as
//! nothing (`None`, `false`).

use serde_json::Value;

pub use crate::bindings::provenant::plugin::types::{Denied, FailureMode};

impl From<Denied> for String {
    /// A refusal as a call's error text.
    fn from(d: Denied) -> String {
        format!(
            "denied {} (needs {}): {}",
            d.capability, d.permission, d.reason
        )
    }
}

/// JSON the engine sent (it always sends JSON; anything else reads as null).
fn value(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn maybe(text: Option<String>) -> Option<Value> {
    text.map(value)
}

/// The call being made: game time, tick, NPC and context, randomness.
pub mod call {
    use super::*;
    use crate::bindings::provenant::plugin::call as wit;

    /// The tick's game time in microseconds since the Unix epoch: the only
    /// clock a plugin has.
    pub fn now_micros() -> i64 {
        wit::now_micros()
    }

    pub fn tick() -> u64 {
        wit::tick()
    }

    pub fn world_id() -> String {
        wit::world_id()
    }

    pub fn session_id() -> String {
        wit::session_id()
    }

    /// The NPC the call is about: `{"npc_id", "location_id", "state"}`.
    pub fn npc() -> Option<Value> {
        maybe(wit::npc())
    }

    /// A key of the tick's own context.
    pub fn tick_context(key: &str) -> Option<Value> {
        maybe(wit::tick_context(key))
    }

    /// Seeded from the tick, the plugin and the call: a replay draws the
    /// same numbers.
    pub fn random_u64() -> u64 {
        wit::random_u64()
    }

    /// Whether this call is a replay (`provenant audit replay`).
    pub fn replaying() -> bool {
        wit::replaying()
    }

    /// The failure mode of the capability calls that follow (`None`: each
    /// capability's own).
    pub fn set_failure_mode(mode: Option<FailureMode>) {
        wit::set_failure_mode(mode)
    }
}

/// `world:read`.
pub mod world {
    use super::*;
    use crate::bindings::provenant::plugin::world_read as wit;

    pub fn get() -> Result<Option<Value>, Denied> {
        wit::get_world().map(maybe)
    }

    /// A value in the world's `meta` by dot path.
    pub fn config(path: &str) -> Result<Option<Value>, Denied> {
        wit::get_world_config(path).map(maybe)
    }

    pub fn locations() -> Result<Vec<Value>, Denied> {
        wit::list_world_locations().map(|l| l.into_iter().map(value).collect())
    }

    pub fn npcs() -> Result<Vec<Value>, Denied> {
        wit::list_world_npcs().map(|l| l.into_iter().map(value).collect())
    }
}

/// `session:read` and `session:write`.
pub mod session {
    use super::*;
    use crate::bindings::provenant::plugin::{session_read, session_write};

    /// The session, with the game's flags and this plugin's own.
    pub fn get() -> Result<Option<Value>, Denied> {
        session_read::get_session().map(maybe)
    }

    /// This plugin's own flag `key`.
    pub fn get_flag(key: &str) -> Result<Option<Value>, Denied> {
        session_read::get_session_flag(key).map(maybe)
    }

    pub fn relationship(npc_key: &str) -> Result<Option<Value>, Denied> {
        session_read::get_relationship(npc_key).map(maybe)
    }

    /// Sets this plugin's own flag `key`; `false` when refused.
    pub fn set_flag(key: &str, value: &Value) -> Result<bool, Denied> {
        session_write::set_session_flag(key, &value.to_string())
    }

    /// Shallow-merges `updates` into a shared relationship.
    pub fn update_relationship(npc_key: &str, updates: &Value) -> Result<bool, Denied> {
        session_write::update_relationship(npc_key, &updates.to_string())
    }
}

/// `npc:read` and `npc:write`.
pub mod npc {
    use super::*;
    use crate::bindings::provenant::plugin::npc as wit;

    pub fn get(npc_id: &str) -> Result<Option<Value>, Denied> {
        wit::get_npc(npc_id).map(maybe)
    }

    pub fn set_state(npc_id: &str, state: &Value) -> Result<bool, Denied> {
        wit::set_npc_state(npc_id, &state.to_string())
    }
}

/// `db:read` and `db:write`: this plugin's own storage.
pub mod storage {
    use super::*;
    use crate::bindings::provenant::plugin::storage as wit;

    pub fn get(key: &str) -> Result<Option<Value>, Denied> {
        wit::get(key).map(maybe)
    }

    pub fn set(key: &str, value: &Value) -> Result<bool, Denied> {
        wit::set(key, &value.to_string())
    }
}

/// `log:emit`.
pub mod log {
    use crate::bindings::provenant::plugin::log::{Level, log};

    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }

    pub fn info(message: &str) {
        log(Level::Info, message)
    }

    pub fn warning(message: &str) {
        log(Level::Warning, message)
    }

    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}

/// `event:emit`.
pub mod events {
    use super::*;
    use crate::bindings::provenant::plugin::events as wit;

    /// Emits `plugin:<id>:<name>` with `payload`; `false` when refused.
    pub fn emit(name: &str, payload: &Value) -> Result<bool, Denied> {
        wit::emit(name, &payload.to_string())
    }
}

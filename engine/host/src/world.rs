//! A world's configuration: checked field by field, recorded as a
//! `WorldConfigured` event, and described with its effective simulation
//! config (as `GET /v1/worlds/{id}` and `provenant world show` answer).

use std::sync::Arc;

use provenant_events::{EventKind, NewEvent, SessionId, StreamName, WorldId, kinds};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::context::Scene;
use crate::plugin_host::PluginHost;
use crate::state::GameState;
use crate::tick::Activity;

/// Why a world configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldConfigError {
    /// The JSON is not a world configuration; the text names the field.
    #[error("not a world configuration: {0}")]
    Shape(String),
}

/// Checks a world configuration (`{name, description?, locations?, meta:
/// {behavior: {enabledPlugins?, disabledPlugins?, simulationConfig?,
/// activities?}}}`), naming the first field that is wrong. Other keys of
/// `meta` are kept as they are.
pub fn validate(config: &Value) -> Result<(), WorldConfigError> {
    #[derive(Deserialize)]
    #[allow(dead_code)] // read only to check the shape
    struct Shape {
        name: String,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        locations: Option<Vec<Value>>,
        #[serde(default)]
        meta: Option<Meta>,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Meta {
        #[serde(default)]
        behavior: Option<Behavior>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, non_snake_case)]
    struct Behavior {
        #[serde(default)]
        enabledPlugins: Option<Vec<String>>,
        #[serde(default)]
        disabledPlugins: Option<Vec<String>>,
        #[serde(default)]
        simulationConfig: Option<Map<String, Value>>,
        #[serde(default)]
        activities: Option<Vec<Activity>>,
    }
    objects_where_objects_go(config)?;
    Shape::deserialize(config)
        .map(|_| ())
        .map_err(|e| WorldConfigError::Shape(e.to_string()))
}

/// serde reads a struct from an array of its fields too: the objects of a
/// configuration must be objects (or null where optional), which
/// deserializing alone does not check.
fn objects_where_objects_go(config: &Value) -> Result<(), WorldConfigError> {
    let object = |value: &Value, at: &str, optional: bool| match value {
        Value::Object(_) => Ok(()),
        Value::Null if optional => Ok(()),
        _ => Err(WorldConfigError::Shape(format!("{at} must be an object"))),
    };
    object(config, "the configuration", false)?;
    let Some(meta) = config.get("meta") else {
        return Ok(());
    };
    object(meta, "meta", true)?;
    let Some(behavior) = meta.get("behavior") else {
        return Ok(());
    };
    object(behavior, "meta.behavior", true)?;
    let Some(activities) = behavior.get("activities").and_then(Value::as_array) else {
        return Ok(());
    };
    for (i, activity) in activities.iter().enumerate() {
        let at = format!("meta.behavior.activities[{i}]");
        object(activity, &at, false)?;
        for list in ["conditions", "effects"] {
            for (j, step) in activity
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                object(step, &format!("{at}.{list}[{j}]"), false)?;
            }
        }
    }
    Ok(())
}

/// The `WorldConfigured` event that sets `world` to `config`.
pub fn configured_event(world: &WorldId, config: Value) -> Result<NewEvent, WorldConfigError> {
    validate(&config)?;
    let mut e = NewEvent::new(
        StreamName::world(world),
        const { EventKind::known(kinds::WORLD_CONFIGURED) },
        config,
    );
    e.world_id = Some(world.clone());
    Ok(e)
}

/// A world's configuration and effective simulation config, as
/// `GET /v1/worlds/{id}` and `provenant world show --json` answer; `None`
/// for a world never configured.
pub fn describe(host: &PluginHost, state: &Arc<GameState>, world: &WorldId) -> Option<Value> {
    let w = state.world(world).filter(|w| w.configured)?;
    let config = json!({"name": w.name, "description": w.description, "meta": w.meta});
    let scene = Arc::new(Scene {
        world: world.clone(),
        session: SessionId::new("_").ok()?,
        tick_id: Uuid::nil(),
        tick: 0,
        at: provenant_events::event::now(),
        npcs: Arc::new(Vec::new()),
        npc: None,
        context: Value::Null,
        memo: Default::default(),
    });
    let (effective, providers) = host.simulation_config(state, &scene, 0).value;
    Some(json!({
        "world_id": world,
        "config": config,
        "effective_simulation_config": effective,
        "providers": providers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configurations_are_checked_field_by_field() {
        assert!(validate(&json!({"name": "W", "meta": {"behavior": {"enabledPlugins": ["a"], "activities": []}}})).is_ok());
        for (bad, needle) in [
            (json!({"meta": {}}), "name"),
            (json!({"name": 1}), "invalid type"),
            (
                json!({"name": "W", "meta": {"behavior": {"enabledPlugins": "a"}}}),
                "invalid type",
            ),
            (
                json!({"name": "W", "meta": {"behavior": {"activities": [{"conditions": []}]}}}),
                "id",
            ),
            (
                json!({"name": "W", "meta": {"behavior": {"enabledplugins": []}}}),
                "unknown field",
            ),
        ] {
            let err = validate(&bad).unwrap_err().to_string();
            assert!(err.starts_with("not a world configuration: "), "{err}");
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    /// Found by Schemathesis: serde reads a struct from an array of its
    /// fields in order, so `{"behavior": [null, null]}` passed (and its
    /// plugins and activities were then silently absent).
    #[test]
    fn objects_given_as_arrays_are_refused() {
        for (bad, needle) in [
            (json!(["W"]), "the configuration"),
            (json!({"name": "W", "meta": [null]}), "meta"),
            (
                json!({"name": "W", "meta": {"behavior": [null, null]}}),
                "meta.behavior",
            ),
            (
                json!({"name": "W", "meta": {"behavior": {"activities": [["a"]]}}}),
                "meta.behavior.activities[0]",
            ),
            (
                json!({"name": "W", "meta": {"behavior": {"activities": [{"id": "a", "effects": [["e"]]}]}}}),
                "meta.behavior.activities[0].effects[0]",
            ),
        ] {
            let err = validate(&bad).unwrap_err().to_string();
            assert!(err.contains("must be an object"), "{bad}: {err}");
            assert!(err.contains(needle), "{bad}: {err}");
        }
        assert!(validate(&json!({"name": "W", "meta": null})).is_ok());
        assert!(validate(&json!({"name": "W", "meta": {"behavior": null}})).is_ok());
    }
}

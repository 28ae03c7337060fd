//! `provenant world set` and `provenant world show`: a world's configuration
//! is a `WorldConfigured` event, and what the log says is what the engine
//! uses.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use provenant_events::{
    AppendBatch, EventKind, EventLog, LogConfig, NewEvent, StreamName, WorldId,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::host::kinds;
use crate::host::state::GameState;
use crate::host::tick::Activity;
use crate::host::{HostConfig, PluginHost, plugins};

/// Checks a world configuration (`{name, description?, locations?, meta:
/// {behavior: {enabledPlugins?, disabledPlugins?, simulationConfig?,
/// activities?}}}`), naming the first field that is wrong. Other keys of
/// `meta` are kept as they are.
pub fn validate(config: &Value) -> Result<(), String> {
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
    Shape::deserialize(config)
        .map(|_| ())
        .map_err(|e| format!("not a world configuration: {e}"))
}

/// The `WorldConfigured` event that sets `world` to `config`.
pub fn configured_event(world: &WorldId, config: Value) -> anyhow::Result<NewEvent> {
    validate(&config).map_err(anyhow::Error::msg)?;
    let mut e = NewEvent::new(
        StreamName::world(world),
        EventKind::from_static(kinds::WORLD_CONFIGURED)?,
        config,
    );
    e.world_id = Some(world.clone());
    Ok(e)
}

/// Records the configuration in `file` for `world`; prints the position.
pub async fn set(database_url: &str, world: &str, file: &Path) -> anyhow::Result<()> {
    let world = WorldId::new(world)?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let config: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    let event = configured_event(&world, config)
        .with_context(|| format!("{} is refused", file.display()))?;
    let log = EventLog::open(&LogConfig::new(database_url)).await?;
    let outcome = log.append(AppendBatch::new(vec![event])).await?;
    let position = outcome.positions.first().copied().unwrap_or_default();
    println!("world {world} configured (WorldConfigured at position {position})");
    Ok(())
}

/// Prints the world's current configuration and effective simulation config.
pub async fn show(database_url: &str, world: &str, as_json: bool) -> anyhow::Result<()> {
    let world = WorldId::new(world)?;
    let log = EventLog::open(&LogConfig {
        migrate: false,
        ..LogConfig::new(database_url)
    })
    .await?;
    let state = world_state(&log, &world).await?;
    let host = PluginHost::start(plugins::builtin(), HostConfig::default())?;
    let Some(description) = crate::service::worlds::describe(&host, &Arc::new(state), &world)
    else {
        bail!("world {world} has never been configured");
    };
    if as_json {
        println!("{description}");
    } else {
        let config = &description["config"];
        let providers: Vec<&str> = description["providers"]
            .as_array()
            .map(|p| p.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!(
            "world {world}: {}",
            config["name"].as_str().unwrap_or_default()
        );
        println!("config: {}", serde_json::to_string_pretty(config)?);
        println!("providers: {}", providers.join(", "));
        println!(
            "effective simulation config: {}",
            serde_json::to_string_pretty(&description["effective_simulation_config"])?
        );
    }
    Ok(())
}

/// The state of one world, folded from its stream.
async fn world_state(log: &EventLog, world: &WorldId) -> anyhow::Result<GameState> {
    let stream = StreamName::world(world);
    let mut state = GameState::default();
    let mut after = 0;
    loop {
        let page = log.read_stream(&stream, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.stream_version;
        for e in &page {
            state.apply(e);
        }
    }
    Ok(state)
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
            let err = validate(&bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}

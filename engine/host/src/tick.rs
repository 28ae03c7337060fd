//! Evaluating one tick of one world session: the game's own updates, the
//! effective simulation config, every activity for every NPC, then the event
//! handlers. A function of (state, tick) whose only output is events.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use provenant_events::{EventKind, NewEvent, SessionId, StreamName, WorldId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use provenant_events::{keys, kinds};
use sha2::{Digest, Sha256};

use crate::context::{Scene, TickNpc, tick_provenance};
use crate::plugin_host::PluginHost;
use crate::state::{GameState, merged_relationship};

/// A tick, as the game sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tick {
    /// The idempotency key.
    pub tick_id: Uuid,
    pub world_id: WorldId,
    pub session_id: SessionId,
    #[serde(deserialize_with = "whole_number")]
    pub tick: u64,
    /// Game time.
    pub at: DateTime<Utc>,
    #[serde(default, deserialize_with = "crate::json_object::objects")]
    pub npcs: Vec<TickNpc>,
    #[serde(default, deserialize_with = "crate::json_object::optional_object")]
    pub session_updates: Option<SessionUpdates>,
    #[serde(default)]
    pub context: Option<Value>,
}

/// A non-negative integer, also when written with a zero fraction (`23.0`,
/// `2.3e1`): JSON Schema counts those as integers, and a game's JSON
/// library may write them so. Floats are taken only below 2^53, where
/// every integer is exact.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct Whole;
    impl serde::de::Visitor<'_> for Whole {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a non-negative integer")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
            const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
            if v.fract() == 0.0 && (0.0..EXACT).contains(&v) {
                // In range and whole: the cast is exact.
                Ok(v as u64)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
            }
        }
    }
    d.deserialize_any(Whole)
}

/// Flags and relationships the game itself sets, applied before plugins run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionUpdates {
    #[serde(default)]
    pub flags: Map<String, Value>,
    #[serde(default)]
    pub relationships: Map<String, Value>,
}

/// An activity of a world: when all its conditions hold for an NPC, its
/// effects are applied, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub id: String,
    #[serde(default)]
    pub conditions: Vec<Step>,
    #[serde(default)]
    pub effects: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub id: String,
    #[serde(default)]
    pub params: Value,
}

/// The activities in a world's `meta.behavior.activities` (none when absent
/// or malformed).
pub fn activities(meta: &Value) -> Vec<Activity> {
    meta.pointer("/behavior/activities")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default()
}

/// Evaluates `tick` against `state`, folding every event it produces into
/// `state` as it goes (so later calls see earlier writes), and returns the
/// events in order.
pub fn evaluate_tick(host: &PluginHost, state: &mut Arc<GameState>, tick: &Tick) -> Vec<NewEvent> {
    let mut out: Vec<NewEvent> = Vec::new();
    let push = |state: &mut Arc<GameState>, out: &mut Vec<NewEvent>, events: Vec<NewEvent>| {
        let s = Arc::make_mut(state);
        for e in &events {
            s.apply(e);
        }
        out.extend(events);
    };
    let engine = host.engine();
    let engine_event = |kind: &str, stream: StreamName, payload: Value, session: bool| {
        let mut e = NewEvent::new(stream, EventKind::new(kind).ok()?, payload);
        e.world_id = Some(tick.world_id.clone());
        e.session_id = session.then(|| tick.session_id.clone());
        e.occurred_at = tick.at;
        e.provenance = tick_provenance(tick.tick_id, tick.tick, engine);
        Some(e)
    };
    let session_stream = StreamName::session(&tick.world_id, &tick.session_id);

    // 1. What the game itself set.
    if let Some(updates) = &tick.session_updates {
        let mut game = Vec::new();
        for (key, value) in &updates.flags {
            game.extend(engine_event(
                kinds::SESSION_FLAG_SET,
                session_stream.clone(),
                json!({keys::KEY: key, keys::VALUE: value, "set_by": "game"}),
                true,
            ));
        }
        for (npc_key, updates) in &updates.relationships {
            let current = state
                .session(&tick.world_id, &tick.session_id)
                .and_then(|s| s.relationships.get(npc_key));
            let merged = merged_relationship(current, updates, "game");
            game.extend(engine_event(
                kinds::RELATIONSHIP_UPDATED,
                session_stream.clone(),
                json!({keys::NPC_KEY: npc_key, keys::UPDATES: updates, keys::RELATIONSHIP: merged}),
                true,
            ));
        }
        push(state, &mut out, game);
    }

    let npcs = Arc::new(tick.npcs.clone());
    let scene_for = |npc: Option<usize>| {
        Arc::new(Scene {
            world: tick.world_id.clone(),
            session: tick.session_id.clone(),
            tick_id: tick.tick_id,
            tick: tick.tick,
            // As the events record it (to the microsecond), so that a
            // replay gives the same `now()`.
            at: provenant_events::event::truncate_timestamp(tick.at),
            npcs: npcs.clone(),
            npc,
            context: tick.context.clone().unwrap_or(Value::Null),
            memo: Default::default(),
        })
    };
    let mut call_index: u64 = 0;

    // 2. The effective simulation config, recorded when it changes.
    let world_scene = scene_for(None);
    let config = host.simulation_config(state, &world_scene, call_index);
    call_index += host.registry().providers.len() as u64;
    let (effective, providers) = config.value;
    push(state, &mut out, config.events);
    let last = state
        .world(&tick.world_id)
        .and_then(|w| w.effective_config.clone());
    if last.as_ref() != Some(&effective) {
        let changed = engine_event(
            kinds::SIMULATION_CONFIG_CHANGED,
            StreamName::world(&tick.world_id),
            json!({"config": effective, "providers": providers}),
            false,
        );
        push(state, &mut out, changed.into_iter().collect());
    }

    // 3. Every activity for every NPC.
    let world_activities = state
        .world(&tick.world_id)
        .map(|w| activities(&w.meta))
        .unwrap_or_default();
    let produced_from = out.len();
    for npc in 0..tick.npcs.len() {
        let scene = scene_for(Some(npc));
        for activity in &world_activities {
            let mut holds = true;
            for step in &activity.conditions {
                let d = host.evaluate_condition(
                    state,
                    &scene,
                    &activity.id,
                    &step.id,
                    &step.params,
                    call_index,
                );
                call_index += 1;
                push(state, &mut out, d.events);
                if !d.value {
                    holds = false;
                    break;
                }
            }
            if !holds {
                continue;
            }
            for step in &activity.effects {
                let d = host.apply_effect(
                    state,
                    &scene,
                    &activity.id,
                    &step.id,
                    &step.params,
                    call_index,
                );
                call_index += 1;
                push(state, &mut out, d.events);
            }
        }
    }

    // 4. Handlers for what plugins did this tick.
    let produced: Vec<NewEvent> = out[produced_from..].to_vec();
    let handled = host.dispatch(state, &world_scene, &produced, call_index);
    push(state, &mut out, handled);
    out
}

/// The id of a tick's `TickProcessed` event: derived from the tick id, so a
/// second delivery of the tick finds the first one's.
pub fn tick_marker_id(tick_id: Uuid) -> Uuid {
    let digest = Sha256::new()
        .chain_update(b"provenant/TickProcessed/")
        .chain_update(tick_id.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::new_v8(bytes)
}

/// The last event of a processed tick, `TickProcessed`, with the id
/// [`tick_marker_id`] gives: `events` counts the tick's events, itself
/// included; `source` says where the tick came from.
pub fn marker_event(host: &PluginHost, tick: &Tick, events: usize, source: &str) -> NewEvent {
    let mut e = NewEvent::at(
        StreamName::session(&tick.world_id, &tick.session_id),
        const { EventKind::known(kinds::TICK_PROCESSED) },
        json!({
            keys::TICK_ID: tick.tick_id,
            keys::TICK: tick.tick,
            keys::EVENTS: events,
            keys::SOURCE: source,
        }),
        tick.at,
    );
    e.event_id = tick_marker_id(tick.tick_id);
    e.world_id = Some(tick.world_id.clone());
    e.session_id = Some(tick.session_id.clone());
    e.provenance = tick_provenance(tick.tick_id, tick.tick, host.engine());
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_ids_are_a_function_of_the_tick_id() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        assert_eq!(tick_marker_id(a), tick_marker_id(a));
        assert_ne!(tick_marker_id(a), tick_marker_id(b));
        assert_ne!(tick_marker_id(a), a);
    }
}

//! The kinds of the events the plugin host writes.

/// A world's configuration (`{name, description?, meta: {behavior}, locations?}`).
pub const WORLD_CONFIGURED: &str = "WorldConfigured";
/// A session flag was set (`{key, value}`; plugin flags are `plugin:<id>:<key>`).
pub const SESSION_FLAG_SET: &str = "SessionFlagSet";
/// A relationship was updated (`{npc_key, updates, relationship}`), stamped
/// with `last_modified_by`.
pub const RELATIONSHIP_UPDATED: &str = "RelationshipUpdated";
/// An NPC's state was set (`{npc_id, location_id?, state}`).
pub const NPC_STATE_SET: &str = "NpcStateSet";
/// A plugin wrote its own storage (`{key, value}`).
pub const PLUGIN_STORAGE_SET: &str = "PluginStorageSet";
/// A capability was refused (`{capability, permission, mode, reason}`).
pub const PERMISSION_DENIED: &str = "PermissionDenied";
/// A condition was evaluated (`{condition_id, npc_id, params, inputs, result, duration_us}`).
pub const CONDITION_EVALUATED: &str = "ConditionEvaluated";
/// An effect was applied (`{effect_id, npc_id, params, inputs, result, duration_us}`).
pub const EFFECT_APPLIED: &str = "EffectApplied";
/// A plugin call returned an error (`{call, id, error, fallback}`).
pub const PLUGIN_CALL_FAILED: &str = "PluginCallFailed";
/// A plugin call panicked (`{call, id, panic, fallback}`).
pub const PLUGIN_CALL_PANICKED: &str = "PluginCallPanicked";
/// A plugin call overran its deadline (`{call, id, deadline_ms, fallback}`).
pub const PLUGIN_DEADLINE_EXCEEDED: &str = "PluginDeadlineExceeded";
/// A condition the host did not evaluate: not registered, not enabled for
/// the world, or missing required context (`{condition_id, reason, missing, context}`).
pub const CONDITION_SKIPPED: &str = "ConditionSkipped";
/// An effect the host did not apply: not registered or not enabled for the
/// world (`{effect_id, reason, missing, context}`).
pub const EFFECT_SKIPPED: &str = "EffectSkipped";
/// A plugin was loaded (`{manifest, granted, registered}`).
pub const PLUGIN_LOADED: &str = "PluginLoaded";
/// A plugin of the build did not load (`{plugin_id, reason}`).
pub const PLUGIN_SKIPPED: &str = "PluginSkipped";
/// A plugin's event handler ran (`{handler_for, event_id, duration_us}`).
pub const EVENT_HANDLED: &str = "EventHandled";
/// The effective simulation config of a world changed (`{config, providers}`).
pub const SIMULATION_CONFIG_CHANGED: &str = "SimulationConfigChanged";
/// The engine finished a tick (`{tick_id, tick, events, source}`): the last
/// event of every tick, with an id derived from the tick id, so a tick
/// delivered twice is recognised and adds nothing.
pub const TICK_PROCESSED: &str = "TickProcessed";

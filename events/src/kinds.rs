//! The kinds of the events provenant writes, declared once: the plugin
//! host, the service, the projections, the auditor's tools and the
//! benchmarks all name them from here. `kind` stays an open string in the
//! log (events of kinds a build does not know read, verify and pass
//! through); these are the ones this build writes and reads.

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
/// A tick the engine refused (`{reason, excerpt, bytes, source}`).
pub const TICK_REJECTED: &str = "TickRejected";
/// A remote plugin's circuit opened after repeated failures: its calls are
/// not sent until `cool_down_ms` has passed, then one probe decides
/// (`{endpoint, failures, cool_down_ms, error}`).
pub const PLUGIN_CIRCUIT_OPENED: &str = "PluginCircuitOpened";
/// A remote plugin's circuit closed: a probe succeeded
/// (`{endpoint, open_ms, skipped}`).
pub const PLUGIN_CIRCUIT_CLOSED: &str = "PluginCircuitClosed";
/// An operator reset a plugin's metrics, or every plugin's
/// (`{plugin_id: <id> | null, requested_by}`).
pub const METRICS_RESET: &str = "MetricsReset";

/// Every kind above, for checks and benchmarks that walk them all.
pub const ALL: &[&str] = &[
    WORLD_CONFIGURED,
    SESSION_FLAG_SET,
    RELATIONSHIP_UPDATED,
    NPC_STATE_SET,
    PLUGIN_STORAGE_SET,
    PERMISSION_DENIED,
    CONDITION_EVALUATED,
    EFFECT_APPLIED,
    PLUGIN_CALL_FAILED,
    PLUGIN_CALL_PANICKED,
    PLUGIN_DEADLINE_EXCEEDED,
    CONDITION_SKIPPED,
    EFFECT_SKIPPED,
    PLUGIN_LOADED,
    PLUGIN_SKIPPED,
    EVENT_HANDLED,
    SIMULATION_CONFIG_CHANGED,
    TICK_PROCESSED,
    TICK_REJECTED,
    PLUGIN_CIRCUIT_OPENED,
    PLUGIN_CIRCUIT_CLOSED,
    METRICS_RESET,
];

/// Whether `kind` records a plugin call: one that returned
/// (`ConditionEvaluated`, `EffectApplied`, `EventHandled`) or one that did
/// not ([`records_a_failed_call`]).
pub fn records_a_call(kind: &str) -> bool {
    matches!(kind, CONDITION_EVALUATED | EFFECT_APPLIED | EVENT_HANDLED)
        || records_a_failed_call(kind)
}

/// Every kind that records a plugin call, as [`records_a_call`] tells them.
pub const CALLS: &[&str] = &[
    CONDITION_EVALUATED,
    EFFECT_APPLIED,
    EVENT_HANDLED,
    PLUGIN_CALL_FAILED,
    PLUGIN_CALL_PANICKED,
    PLUGIN_DEADLINE_EXCEEDED,
];

/// Whether `kind` records a plugin call that did not produce a result: it
/// returned an error, panicked, or overran its deadline.
pub fn records_a_failed_call(kind: &str) -> bool {
    matches!(
        kind,
        PLUGIN_CALL_FAILED | PLUGIN_CALL_PANICKED | PLUGIN_DEADLINE_EXCEEDED
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_call_kinds_listed_are_those_that_record_a_call() {
        for kind in super::CALLS {
            assert!(super::records_a_call(kind), "{kind}");
        }
        let mut recording: Vec<&str> = super::ALL
            .iter()
            .copied()
            .filter(|k| super::records_a_call(k))
            .collect();
        let mut listed = super::CALLS.to_vec();
        recording.sort_unstable();
        listed.sort_unstable();
        assert_eq!(recording, listed);
    }

    use super::*;
    use crate::EventKind;

    #[test]
    fn every_kind_of_the_vocabulary_is_a_valid_event_kind_and_named_once() {
        for kind in ALL {
            assert!(EventKind::from_static(kind).is_ok(), "{kind}");
        }
        let distinct: std::collections::BTreeSet<_> = ALL.iter().collect();
        assert_eq!(distinct.len(), ALL.len());
    }

    #[test]
    fn calls_and_failed_calls_are_told_apart() {
        assert!(records_a_call(CONDITION_EVALUATED) && !records_a_failed_call(CONDITION_EVALUATED));
        assert!(
            records_a_call(PLUGIN_DEADLINE_EXCEEDED)
                && records_a_failed_call(PLUGIN_DEADLINE_EXCEEDED)
        );
        assert!(!records_a_call(PERMISSION_DENIED) && !records_a_call(TICK_PROCESSED));
    }
}

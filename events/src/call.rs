//! What a plugin call was: the `call` of the events that record it.

use serde::{Deserialize, Serialize};

use crate::{keys, kinds};

/// The kind of a plugin call, as events record it in their `call` key
/// (`condition`, `effect`, `event_handler`, `simulation_config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    Condition,
    Effect,
    EventHandler,
    SimulationConfig,
    /// A `call` this build does not know (the log may hold events written
    /// by another build). The host never makes such a call.
    Other,
}

impl CallKind {
    pub const ALL: [CallKind; 5] = [
        CallKind::Condition,
        CallKind::Effect,
        CallKind::EventHandler,
        CallKind::SimulationConfig,
        CallKind::Other,
    ];

    /// The name events record in their `call` key.
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Condition => "condition",
            CallKind::Effect => "effect",
            CallKind::EventHandler => "event_handler",
            CallKind::SimulationConfig => "simulation_config",
            CallKind::Other => "other",
        }
    }

    /// The kind named by a payload's `call`; unknown names are `Other`.
    pub fn from_call(call: &str) -> CallKind {
        match call {
            "condition" => CallKind::Condition,
            "effect" => CallKind::Effect,
            "event_handler" => CallKind::EventHandler,
            "simulation_config" => CallKind::SimulationConfig,
            _ => CallKind::Other,
        }
    }

    /// The payload key that holds the called thing's id.
    pub fn id_key(self) -> Option<&'static str> {
        match self {
            CallKind::Condition => Some(keys::CONDITION_ID),
            CallKind::Effect => Some(keys::EFFECT_ID),
            CallKind::EventHandler => Some(keys::HANDLER),
            CallKind::SimulationConfig => Some(keys::PROVIDER_ID),
            CallKind::Other => None,
        }
    }

    /// The kind of the event that records a call that returned a value; a
    /// provider's value is recorded only when the effective config changes,
    /// so it has none.
    pub fn success_kind(self) -> Option<&'static str> {
        match self {
            CallKind::Condition => Some(kinds::CONDITION_EVALUATED),
            CallKind::Effect => Some(kinds::EFFECT_APPLIED),
            CallKind::EventHandler => Some(kinds::EVENT_HANDLED),
            CallKind::SimulationConfig | CallKind::Other => None,
        }
    }
}

impl std::fmt::Display for CallKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_serialize_as_recorded() {
        for kind in CallKind::ALL {
            if kind != CallKind::Other {
                assert_eq!(CallKind::from_call(kind.as_str()), kind);
            }
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::Value::from(kind.as_str()))
            );
        }
        assert_eq!(CallKind::from_call("condition_v2"), CallKind::Other);
    }
}

//! Simulation config: what plugins suggest, and what the world says.
//!
//! Providers run in priority order and merge so that a lower priority number
//! wins (the original merged so that the highest number won); between equal
//! priorities the provider id that sorts first wins. The world's own
//! `meta.behavior.simulationConfig` is merged last and always wins over every
//! plugin (the original let plugins overwrite it). Objects merge key by key
//! at every depth; any other value replaces.

use serde_json::Value;

/// One provider's suggestion.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub provider_id: String,
    pub priority: i64,
    pub config: Value,
}

/// The effective config from `base`, the providers' suggestions and the
/// world's own config.
pub fn effective(base: &Value, suggestions: &[Suggestion], world: Option<&Value>) -> Value {
    let mut ordered: Vec<&Suggestion> = suggestions.iter().collect();
    // Applied from the weakest to the strongest: the strongest is merged last.
    ordered.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| b.provider_id.cmp(&a.provider_id))
    });
    let mut config = base.clone();
    for s in ordered {
        merge(&mut config, &s.config);
    }
    if let Some(world) = world {
        merge(&mut config, world);
    }
    config
}

/// Merges `over` into `into`: objects key by key, everything else replaces.
pub fn merge(into: &mut Value, over: &Value) {
    match (into, over) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (into, over) => *into = over.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(id: &str, priority: i64, config: Value) -> Suggestion {
        Suggestion {
            provider_id: id.into(),
            priority,
            config,
        }
    }

    #[test]
    fn lower_priority_numbers_win() {
        let out = effective(
            &json!({"tick": 1}),
            &[
                s("plugin:a:late", 500, json!({"speed": 5, "only_a": true})),
                s("plugin:b:early", 10, json!({"speed": 1})),
                s("plugin:c:mid", 100, json!({"speed": 3, "weather": "rain"})),
            ],
            None,
        );
        assert_eq!(
            out,
            json!({"tick": 1, "speed": 1, "only_a": true, "weather": "rain"})
        );
    }

    #[test]
    fn equal_priorities_are_broken_by_provider_id() {
        let out = effective(
            &json!({}),
            &[
                s("plugin:b:x", 100, json!({"v": "b"})),
                s("plugin:a:x", 100, json!({"v": "a"})),
            ],
            None,
        );
        assert_eq!(out["v"], "a");
    }

    #[test]
    fn the_world_always_wins_and_objects_merge_deeply() {
        let out = effective(
            &json!({}),
            &[s(
                "plugin:a:x",
                0,
                json!({"npc": {"speed": 9, "sight": 4}, "tick": 2}),
            )],
            Some(&json!({"npc": {"speed": 1}})),
        );
        assert_eq!(out, json!({"npc": {"speed": 1, "sight": 4}, "tick": 2}));
    }
}

//! What a plugin implements, and how its answers cross the interface.

use serde_json::Value;

/// A plugin: its conditions, effects, event handler and simulation config
/// providers, by the names its manifest declares. Each method's default
/// says the plugin has no such thing (a call of it fails, and is recorded
/// as a failed call).
pub trait Plugin {
    /// Whether condition `name` holds, given its params.
    fn condition(name: &str, params: Value) -> Result<bool, String> {
        let _ = params;
        Err(format!("this plugin has no condition {name}"))
    }

    /// Applies effect `name` (params: the manifest's `default_params`
    /// overlaid by the caller's); its result is recorded.
    fn effect(name: &str, params: Value) -> Result<Value, String> {
        let _ = params;
        Err(format!("this plugin has no effect {name}"))
    }

    /// Handles an event of a kind the manifest subscribes to (its JSON form:
    /// `kind`, `payload`, …).
    fn handle(event: Value) -> Result<(), String> {
        let _ = event;
        Err("this plugin handles no event".into())
    }

    /// Provider `name`'s simulation config.
    fn simulation_config(name: &str) -> Result<Value, String> {
        Err(format!("this plugin provides no simulation config {name}"))
    }
}

/// The JSON the engine passed, parsed (the engine always passes JSON).
pub fn parse(what: &str, json: &str) -> Result<Value, String> {
    serde_json::from_str(json)
        .map_err(|e| format!("the engine passed {what} that is not JSON: {e}"))
}

/// A value as the interface carries it.
pub fn text(value: &Value) -> String {
    value.to_string()
}

/// `P::condition` as the interface calls it.
pub fn condition<P: Plugin>(name: &str, params: &str) -> Result<bool, String> {
    P::condition(name, parse("params", params)?)
}

/// `P::effect` as the interface calls it.
pub fn effect<P: Plugin>(name: &str, params: &str) -> Result<String, String> {
    P::effect(name, parse("params", params)?).map(|v| text(&v))
}

/// `P::handle` as the interface calls it.
pub fn handle<P: Plugin>(event: &str) -> Result<(), String> {
    P::handle(parse("an event", event)?)
}

/// `P::simulation_config` as the interface calls it.
pub fn simulation_config<P: Plugin>(name: &str) -> Result<String, String> {
    P::simulation_config(name).map(|v| text(&v))
}

/// Exports `$plugin` (a type implementing [`Plugin`]) as the component's
/// conditions, effects, handlers and providers.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        struct __ProvenantExports;

        impl $crate::bindings::exports::provenant::plugin::conditions::Guest for __ProvenantExports {
            fn evaluate(name: String, params: String) -> Result<bool, String> {
                $crate::adapter::condition::<$plugin>(&name, &params)
            }
        }

        impl $crate::bindings::exports::provenant::plugin::effects::Guest for __ProvenantExports {
            fn apply(name: String, params: String) -> Result<String, String> {
                $crate::adapter::effect::<$plugin>(&name, &params)
            }
        }

        impl $crate::bindings::exports::provenant::plugin::handlers::Guest for __ProvenantExports {
            fn handle(event: String) -> Result<(), String> {
                $crate::adapter::handle::<$plugin>(&event)
            }
        }

        impl $crate::bindings::exports::provenant::plugin::providers::Guest for __ProvenantExports {
            fn provide(name: String) -> Result<String, String> {
                $crate::adapter::simulation_config::<$plugin>(&name)
            }
        }

        $crate::bindings::export_bindings!(__ProvenantExports with_types_in $crate::bindings);
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Doubler;

    impl Plugin for Doubler {
        fn condition(name: &str, params: Value) -> Result<bool, String> {
            match name {
                "positive" => Ok(params["n"].as_f64().unwrap_or(0.0) > 0.0),
                other => Err(format!("no condition {other}")),
            }
        }

        fn effect(_name: &str, params: Value) -> Result<Value, String> {
            Ok(json!({"doubled": params["n"].as_f64().unwrap_or(0.0) * 2.0}))
        }
    }

    #[test]
    fn calls_parse_their_json_and_answer_as_the_interface_carries_it() {
        assert_eq!(condition::<Doubler>("positive", r#"{"n": 2}"#), Ok(true));
        assert_eq!(condition::<Doubler>("positive", r#"{"n": -1}"#), Ok(false));
        assert_eq!(
            effect::<Doubler>("double", r#"{"n": 2.5}"#),
            Ok(r#"{"doubled":5.0}"#.to_owned())
        );
        let bad = condition::<Doubler>("positive", "{nope").unwrap_err();
        assert!(bad.contains("params that is not JSON"), "{bad}");
        assert_eq!(
            condition::<Doubler>("other", "{}").unwrap_err(),
            "no condition other"
        );
    }

    #[test]
    fn what_a_plugin_does_not_implement_fails_with_its_name() {
        assert!(
            handle::<Doubler>(r#"{"kind": "X"}"#)
                .unwrap_err()
                .contains("handles no event")
        );
        assert!(
            simulation_config::<Doubler>("stealth")
                .unwrap_err()
                .contains("no simulation config stealth")
        );
    }
}

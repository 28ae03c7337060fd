//! World scoping: which plugins a world uses.
//!
//! `meta.behavior.enabledPlugins` keeps the original's meaning: absent (or
//! not a list) = every plugin, `[]` = none, a list = only those. Disabling
//! one plugin in a world without a list must mean "all but that one" (the
//! original wrote `[]`, which disabled every plugin), so that case is kept in
//! `meta.behavior.disabledPlugins`, consulted only when there is no
//! `enabledPlugins` list. Scoping applies to conditions, effects, simulation
//! config providers and event handlers alike.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// The plugins a world uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    AllExcept(BTreeSet<String>),
    Only(BTreeSet<String>),
}

impl Scope {
    /// The scope a world's `meta` describes.
    pub fn of(meta: &Value) -> Scope {
        let behavior = &meta["behavior"];
        if let Some(list) = behavior["enabledPlugins"].as_array() {
            return Scope::Only(strings(list));
        }
        match behavior["disabledPlugins"].as_array() {
            Some(list) if !list.is_empty() => Scope::AllExcept(strings(list)),
            _ => Scope::All,
        }
    }

    pub fn allows(&self, plugin: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::AllExcept(off) => !off.contains(plugin),
            Scope::Only(on) => on.contains(plugin),
        }
    }
}

fn strings(list: &[Value]) -> BTreeSet<String> {
    list.iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// `meta` with `plugin` disabled for the world.
pub fn disable(meta: &Value, plugin: &str) -> Value {
    edit(meta, plugin, false)
}

/// `meta` with `plugin` enabled for the world.
pub fn enable(meta: &Value, plugin: &str) -> Value {
    edit(meta, plugin, true)
}

fn edit(meta: &Value, plugin: &str, on: bool) -> Value {
    let mut meta = meta.clone();
    if !meta.is_object() {
        meta = json!({});
    }
    let root = meta.as_object_mut().map(|m| {
        let behavior = m.entry("behavior").or_insert_with(|| json!({}));
        if !behavior.is_object() {
            *behavior = json!({});
        }
        behavior
    });
    let Some(Value::Object(behavior)) = root else {
        return meta;
    };
    let (key, add) = if behavior.get("enabledPlugins").is_some_and(Value::is_array) {
        ("enabledPlugins", on)
    } else {
        ("disabledPlugins", !on)
    };
    set_membership(behavior, key, plugin, add);
    if key == "disabledPlugins"
        && behavior
            .get("disabledPlugins")
            .and_then(Value::as_array)
            .is_some_and(|l| l.is_empty())
    {
        behavior.remove("disabledPlugins");
    }
    meta
}

fn set_membership(behavior: &mut Map<String, Value>, key: &str, plugin: &str, present: bool) {
    let mut set = behavior
        .get(key)
        .and_then(Value::as_array)
        .map(|l| strings(l))
        .unwrap_or_default();
    if present {
        set.insert(plugin.to_owned());
    } else {
        set.remove(plugin);
    }
    behavior.insert(key.to_owned(), json!(set));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_list_means_every_plugin() {
        for meta in [
            json!({}),
            json!({"behavior": {}}),
            json!({"behavior": {"enabledPlugins": "x"}}),
        ] {
            let scope = Scope::of(&meta);
            assert_eq!(scope, Scope::All, "{meta}");
            assert!(scope.allows("game-stealth"));
        }
    }

    #[test]
    fn an_empty_list_means_none_and_a_list_means_only_those() {
        assert!(!Scope::of(&json!({"behavior": {"enabledPlugins": []}})).allows("a"));
        let only = Scope::of(&json!({"behavior": {"enabledPlugins": ["a", "b"]}}));
        assert!(only.allows("a") && only.allows("b") && !only.allows("c"));
    }

    #[test]
    fn disabling_one_plugin_without_a_list_keeps_all_the_others() {
        let meta = disable(
            &json!({"behavior": {"simulationConfig": {"x": 1}}}),
            "game-romance",
        );
        let scope = Scope::of(&meta);
        assert!(!scope.allows("game-romance"));
        assert!(scope.allows("game-stealth"));
        assert!(scope.allows("a-plugin-added-later"));
        assert_eq!(meta["behavior"]["simulationConfig"], json!({"x": 1}));
        assert!(meta["behavior"].get("enabledPlugins").is_none());
        // And enabling it again gives back "all".
        let back = enable(&meta, "game-romance");
        assert_eq!(Scope::of(&back), Scope::All);
        assert!(back["behavior"].get("disabledPlugins").is_none());
    }

    #[test]
    fn enabling_and_disabling_edit_an_existing_list() {
        let meta = json!({"behavior": {"enabledPlugins": ["a"]}});
        let meta = enable(&meta, "b");
        assert_eq!(meta["behavior"]["enabledPlugins"], json!(["a", "b"]));
        let meta = disable(&meta, "a");
        assert_eq!(meta["behavior"]["enabledPlugins"], json!(["b"]));
        let meta = disable(&meta, "b");
        assert_eq!(Scope::of(&meta), Scope::Only(BTreeSet::new()));
    }

    #[test]
    fn an_enabled_list_takes_precedence_over_a_disabled_list() {
        let meta = json!({"behavior": {"enabledPlugins": ["a"], "disabledPlugins": ["a"]}});
        assert!(Scope::of(&meta).allows("a"));
    }
}

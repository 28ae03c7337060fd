//! What a plugin that is not Rust code (a WebAssembly component, a remote
//! service) registers, declared as data in its manifest: its conditions,
//! effects, event handlers and simulation config providers. Declared, they
//! are checked against the plugin's permissions before any of its code runs;
//! [`register`] registers them with the functions of the plugin's runtime.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::context::Ctx;
use crate::registry::{PluginError, RegisterError, Registrar};

/// What the plugin registers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registrations {
    #[serde(default)]
    pub conditions: Vec<ConditionDecl>,
    #[serde(default)]
    pub effects: Vec<EffectDecl>,
    #[serde(default)]
    pub event_handlers: Vec<HandlerDecl>,
    #[serde(default)]
    pub simulation_configs: Vec<ProviderDecl>,
}

/// Condition `plugin:<id>:<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionDecl {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Tick context keys the condition needs (it is skipped without them).
    #[serde(default)]
    pub required_context: Vec<String>,
}

/// Effect `effect:plugin:<id>:<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectDecl {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Params the caller's are overlaid on.
    #[serde(default)]
    pub default_params: Value,
}

/// A handler of events of these kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerDecl {
    pub kinds: Vec<String>,
}

/// Simulation config provider `plugin:<id>:<name>` (a lower priority
/// number wins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderDecl {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub priority: i64,
}

impl Registrations {
    /// Refuses registrations that could never be called.
    pub fn check(&self) -> Result<(), String> {
        if self.conditions.is_empty()
            && self.effects.is_empty()
            && self.event_handlers.is_empty()
            && self.simulation_configs.is_empty()
        {
            return Err("registrations is empty: the plugin would never be called".into());
        }
        if let Some(h) = self.event_handlers.iter().find(|h| h.kinds.is_empty()) {
            return Err(format!(
                "an event handler subscribes to no kind: {:?}",
                h.kinds
            ));
        }
        Ok(())
    }
}

/// The fields every plugin's manifest may have (`Manifest`'s), and
/// `registrations`.
const PLUGIN_KEYS: [&str; 10] = [
    "id",
    "name",
    "version",
    "description",
    "author",
    "kind",
    "permissions",
    "dependencies",
    "enabled",
    "registrations",
];

/// The fields of a `manifest.json`'s text, refused when it is not a JSON
/// object or has a key that is neither a plugin field nor one of `extra`
/// (a misspelt field is an error, not a field silently left out); `what`
/// names the kind of plugin in the error.
pub fn manifest_fields(
    text: &str,
    extra: &[&str],
    what: &str,
) -> Result<Map<String, Value>, String> {
    let fields: Map<String, Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
    let known = |k: &str| PLUGIN_KEYS.contains(&k) || extra.contains(&k);
    if let Some(unknown) = fields.keys().find(|k| !known(k)) {
        let keys: Vec<&str> = PLUGIN_KEYS.iter().chain(extra).copied().collect();
        return Err(format!(
            "unknown field {unknown:?} (the fields of {what} are {})",
            keys.join(", ")
        ));
    }
    Ok(fields)
}

/// Takes `registrations` out of a manifest's fields, checked.
pub fn take_registrations(fields: &mut Map<String, Value>) -> Result<Registrations, String> {
    let registrations: Registrations = match fields.remove("registrations") {
        None => Registrations::default(),
        Some(v) => serde_json::from_value(v).map_err(|e| format!("registrations: {e}"))?,
    };
    registrations.check()?;
    Ok(registrations)
}

/// How a runtime calls a declared plugin: by the name the manifest gives
/// each condition, effect and provider.
pub trait Calls: Send + Sync + 'static {
    fn condition(&self, ctx: &mut Ctx, name: &str, params: &Value) -> Result<bool, PluginError>;
    fn effect(&self, ctx: &mut Ctx, name: &str, params: &Value) -> Result<Value, PluginError>;
    /// Handles the JSON form of an event of a subscribed kind.
    fn handle(&self, ctx: &mut Ctx, event: &Value) -> Result<(), PluginError>;
    fn provide(&self, ctx: &mut Ctx, name: &str) -> Result<Value, PluginError>;
}

/// Registers what `declared` says, each call going to `calls`; the
/// registrar checks each against the plugin's permissions. No plugin code
/// runs here.
pub fn register<C: Calls>(
    declared: &Registrations,
    calls: &Arc<C>,
    registrar: &mut Registrar<'_>,
) -> Result<(), RegisterError> {
    for c in &declared.conditions {
        let (calls, name) = (calls.clone(), c.name.clone());
        let required: Vec<&str> = c.required_context.iter().map(String::as_str).collect();
        registrar.condition(&c.name, &c.description, &required, move |ctx, params| {
            calls.condition(ctx, &name, params)
        })?;
    }
    for e in &declared.effects {
        let (calls, name) = (calls.clone(), e.name.clone());
        registrar.effect(
            &e.name,
            &e.description,
            e.default_params.clone(),
            move |ctx, params| calls.effect(ctx, &name, params),
        )?;
    }
    for h in &declared.event_handlers {
        let calls = calls.clone();
        let kinds: Vec<&str> = h.kinds.iter().map(String::as_str).collect();
        registrar.subscribe(&kinds, move |ctx, event| calls.handle(ctx, event))?;
    }
    for p in &declared.simulation_configs {
        let (calls, name) = (calls.clone(), p.name.clone());
        registrar.simulation_config(&p.name, &p.description, p.priority, move |ctx| {
            calls.provide(ctx, &name)
        })?;
    }
    Ok(())
}

//! What plugins register at start-up: conditions, effects, simulation config
//! providers and event handlers. Locked once start-up ends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use provenant_events::Text;
use serde_json::Value;

use crate::capability::{Capability, Denied, REGISTRATION};
use crate::context::{Ctx, PluginInfo};

/// Why a plugin call did not produce a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PluginError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("{0}")]
    Failed(String),
    /// Set by the host when plugin code panics (the message), so that what
    /// the call recorded before it panicked (its denials) is kept.
    #[error("panicked: {0}")]
    Panicked(String),
    /// A sandboxed call stopped by its runtime at its deadline.
    #[error("stopped at its deadline of {deadline_ms} ms")]
    DeadlineExceeded { deadline_ms: u64 },
    /// A sandboxed call stopped by a limit of its sandbox: `limit` is
    /// `fuel`, `memory` or `result_bytes`.
    #[error("{message}")]
    LimitExceeded {
        limit: &'static str,
        message: String,
    },
    /// A remote plugin's call that failed or was not sent: `reason` says
    /// which (`unreachable`, `status`, `bad_reply`, `too_large`,
    /// `no_responders`, `circuit_open`, `rate_limited`).
    #[error("{message}")]
    Remote {
        reason: &'static str,
        message: String,
    },
}

pub type ConditionFn = Arc<dyn Fn(&mut Ctx, &Value) -> Result<bool, PluginError> + Send + Sync>;
pub type EffectFn = Arc<dyn Fn(&mut Ctx, &Value) -> Result<Value, PluginError> + Send + Sync>;
pub type ProviderFn = Arc<dyn Fn(&mut Ctx) -> Result<Value, PluginError> + Send + Sync>;
/// Called with the JSON form of an event of a subscribed kind.
pub type HandlerFn = Arc<dyn Fn(&mut Ctx, &Value) -> Result<(), PluginError> + Send + Sync>;

#[derive(Clone)]
pub struct ConditionEntry {
    /// The id it is registered under (shared by every call's records).
    pub id: Text,
    pub plugin: Arc<PluginInfo>,
    pub description: String,
    pub required_context: Vec<String>,
    pub f: ConditionFn,
}

#[derive(Clone)]
pub struct EffectEntry {
    /// The id it is registered under (shared by every call's records).
    pub id: Text,
    pub plugin: Arc<PluginInfo>,
    pub description: String,
    pub default_params: Value,
    pub f: EffectFn,
}

#[derive(Clone)]
pub struct ProviderEntry {
    /// The id it is registered under (shared by every call's records).
    pub id: Text,
    pub plugin: Arc<PluginInfo>,
    pub description: String,
    pub priority: i64,
    pub f: ProviderFn,
}

#[derive(Clone)]
pub struct HandlerEntry {
    pub plugin: Arc<PluginInfo>,
    pub kinds: BTreeSet<String>,
    pub f: HandlerFn,
}

/// Every registered extension, by id.
#[derive(Default, Clone)]
pub struct Registry {
    pub conditions: BTreeMap<String, ConditionEntry>,
    pub effects: BTreeMap<String, EffectEntry>,
    pub providers: BTreeMap<String, ProviderEntry>,
    pub handlers: Vec<HandlerEntry>,
    locked: bool,
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("plugin {plugin} may not {capability}: it lacks the permission {permission}")]
    Denied {
        plugin: String,
        capability: &'static str,
        permission: &'static str,
    },
    #[error("{id} is already registered")]
    Duplicate { id: String },
    #[error("the registry is locked: {id} cannot be registered after start-up")]
    Locked { id: String },
    #[error(
        "invalid name {name:?} for plugin {plugin}: names are 1 to 64 characters of [A-Za-z0-9_-]"
    )]
    InvalidName { plugin: String, name: String },
}

impl Registry {
    pub fn lock(&mut self) {
        self.locked = true;
    }

    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// The ids `plugin` registered, for `plugins list` and `PluginLoaded`.
    pub fn registered_by(&self, plugin: &str) -> Value {
        let of = |ids: Vec<&String>| ids.into_iter().cloned().collect::<Vec<_>>();
        serde_json::json!({
            "conditions": of(self.conditions.iter().filter(|(_, e)| e.plugin.id.as_str() == plugin).map(|(k, _)| k).collect()),
            "effects": of(self.effects.iter().filter(|(_, e)| e.plugin.id.as_str() == plugin).map(|(k, _)| k).collect()),
            "simulation_configs": of(self.providers.iter().filter(|(_, e)| e.plugin.id.as_str() == plugin).map(|(k, _)| k).collect()),
            "event_subscriptions": self.handlers.iter().filter(|h| h.plugin.id.as_str() == plugin)
                .flat_map(|h| h.kinds.iter().cloned()).collect::<Vec<_>>(),
        })
    }
}

/// What a plugin's `register` gets: registration checked against its
/// permissions and namespaced under its id.
pub struct Registrar<'r> {
    pub(crate) plugin: Arc<PluginInfo>,
    pub(crate) registry: &'r mut Registry,
}

impl<'r> Registrar<'r> {
    /// Registration for `plugin` into `registry`, as the host makes it when
    /// a plugin loads. Public so that a plugin's registration can be tested
    /// without a whole host.
    pub fn new(plugin: Arc<PluginInfo>, registry: &'r mut Registry) -> Self {
        Registrar { plugin, registry }
    }
}

impl Registrar<'_> {
    fn check(&self, cap: &Capability, id: &str) -> Result<(), RegisterError> {
        if self.registry.locked {
            return Err(RegisterError::Locked { id: id.to_owned() });
        }
        if !self.plugin.granted.contains(&cap.permission) {
            return Err(RegisterError::Denied {
                plugin: self.plugin.id.to_string(),
                capability: cap.name,
                permission: cap.permission.as_str(),
            });
        }
        Ok(())
    }

    fn id(&self, name: &str) -> Result<String, RegisterError> {
        provenant_events::ids::validate_id("name", name).map_err(|_| {
            RegisterError::InvalidName {
                plugin: self.plugin.id.to_string(),
                name: name.to_owned(),
            }
        })?;
        Ok(format!("plugin:{}:{name}", self.plugin.id))
    }

    /// Registers condition `plugin:<id>:<name>`.
    pub fn condition(
        &mut self,
        name: &str,
        description: &str,
        required_context: &[&str],
        f: impl Fn(&mut Ctx, &Value) -> Result<bool, PluginError> + Send + Sync + 'static,
    ) -> Result<(), RegisterError> {
        let id = self.id(name)?;
        self.check(&REGISTRATION[0], &id)?;
        if self.registry.conditions.contains_key(&id) {
            return Err(RegisterError::Duplicate { id });
        }
        self.registry.conditions.insert(
            id.clone(),
            ConditionEntry {
                id: id.into(),
                plugin: self.plugin.clone(),
                description: description.to_owned(),
                required_context: required_context.iter().map(|s| s.to_string()).collect(),
                f: Arc::new(f),
            },
        );
        Ok(())
    }

    /// Registers effect `effect:plugin:<id>:<name>`.
    pub fn effect(
        &mut self,
        name: &str,
        description: &str,
        default_params: Value,
        f: impl Fn(&mut Ctx, &Value) -> Result<Value, PluginError> + Send + Sync + 'static,
    ) -> Result<(), RegisterError> {
        let id = format!("effect:{}", self.id(name)?);
        self.check(&REGISTRATION[1], &id)?;
        if self.registry.effects.contains_key(&id) {
            return Err(RegisterError::Duplicate { id });
        }
        self.registry.effects.insert(
            id.clone(),
            EffectEntry {
                id: id.into(),
                plugin: self.plugin.clone(),
                description: description.to_owned(),
                default_params,
                f: Arc::new(f),
            },
        );
        Ok(())
    }

    /// Registers simulation config provider `plugin:<id>:<name>`; a lower
    /// priority number wins.
    pub fn simulation_config(
        &mut self,
        name: &str,
        description: &str,
        priority: i64,
        f: impl Fn(&mut Ctx) -> Result<Value, PluginError> + Send + Sync + 'static,
    ) -> Result<(), RegisterError> {
        let id = self.id(name)?;
        self.check(&REGISTRATION[2], &id)?;
        if self.registry.providers.contains_key(&id) {
            return Err(RegisterError::Duplicate { id });
        }
        self.registry.providers.insert(
            id.clone(),
            ProviderEntry {
                id: id.into(),
                plugin: self.plugin.clone(),
                description: description.to_owned(),
                priority,
                f: Arc::new(f),
            },
        );
        Ok(())
    }

    /// Subscribes a handler to event kinds.
    pub fn subscribe(
        &mut self,
        kinds: &[&str],
        f: impl Fn(&mut Ctx, &Value) -> Result<(), PluginError> + Send + Sync + 'static,
    ) -> Result<(), RegisterError> {
        let id = format!("handler of {}", self.plugin.id);
        self.check(&REGISTRATION[3], &id)?;
        self.registry.handlers.push(HandlerEntry {
            plugin: self.plugin.clone(),
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            f: Arc::new(f),
        });
        Ok(())
    }
}

//! The plugin host: loads plugins, locks their registrations, and runs their
//! conditions, effects, providers and handlers for a world, each call an
//! event.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use provenant_events::canonical::{self, Canonical, Member};
use provenant_events::{
    CallKind, EventKind, NewEvent, PluginId, Provenance, StreamName, Text, keys, kinds,
};
use serde_json::{Value, json};

use crate::capability::Capability;
use crate::context::{
    CallRecord, Ctx, EngineInfo, PluginInfo, Reads, RecordedReads, Scene, provenance,
    tick_provenance,
};
use crate::manifest::{LoadError, Manifest, PluginSettings, SkipReason, plan_load};
use crate::permissions::{FailureMode, Permission};
use crate::registry::{
    ConditionEntry, HandlerEntry, PluginError, RegisterError, Registrar, Registry,
};
use crate::runner::{Isolation, Outcome, Runner, panic_message};
use crate::runtime::Runtime;
use crate::scoping::Scope;
use crate::simconfig::{self, Suggestion};
use crate::state::GameState;

/// An in-process plugin: Rust code compiled into the binary.
pub trait Plugin: Send + Sync {
    fn manifest(&self) -> Manifest;
    /// Registers the plugin's conditions, effects, providers and handlers.
    fn register(&self, registrar: &mut Registrar<'_>) -> Result<(), RegisterError>;
    /// How its code runs: native unless a sandbox runtime says otherwise.
    fn runtime(&self) -> Runtime {
        Runtime::Native
    }
}

/// How the host runs.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub settings: PluginSettings,
    /// Per call; the engine stops waiting after it and uses the fallback.
    pub deadline: Duration,
    pub isolation: Isolation,
    pub engine: EngineInfo,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            settings: PluginSettings::default(),
            deadline: Duration::from_millis(50),
            isolation: Isolation::Thread,
            engine: EngineInfo {
                version: crate::context::ENGINE_VERSION.into(),
                instance: "local".into(),
            },
        }
    }
}

/// Why the host refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("plugin {plugin} failed to register: {source}")]
    Register {
        plugin: PluginId,
        #[source]
        source: RegisterError,
    },
}

/// A loaded plugin.
#[derive(Debug, Clone)]
pub struct LoadedPlugin {
    pub info: Arc<PluginInfo>,
    pub manifest: Manifest,
}

/// The result of a call, and the events that record it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<T> {
    pub value: T,
    pub events: Vec<NewEvent>,
}

pub struct PluginHost {
    registry: Registry,
    runner: Runner,
    engine: Arc<EngineInfo>,
    plugins: Vec<LoadedPlugin>,
    skipped: Vec<(PluginId, SkipReason)>,
}

/// The capability a call of `kind` exercises: its plugin must hold the
/// permission to have registered what is called.
fn call_capability(kind: CallKind) -> Capability {
    let (name, permission) = match kind {
        CallKind::Condition => (
            "behavior.evaluate_condition",
            Permission::BehaviorExtendConditions,
        ),
        CallKind::Effect => ("behavior.apply_effect", Permission::BehaviorExtendEffects),
        CallKind::SimulationConfig => (
            "behavior.build_simulation_config",
            Permission::BehaviorConfigureSimulation,
        ),
        // The host makes no call of another kind; were it to, the
        // narrowest capability applies.
        CallKind::EventHandler | CallKind::Other => ("events.handle", Permission::EventSubscribe),
    };
    Capability {
        name,
        permission,
        mode: FailureMode::Raise,
    }
}

/// One plugin call: what kind, by whom, where, and where its reads are
/// answered from.
struct CallSite<'a> {
    kind: CallKind,
    plugin: &'a Arc<PluginInfo>,
    scene: &'a Arc<Scene>,
    reads: Reads,
    id: Text,
    /// The activity a condition or effect is evaluated for.
    activity: Option<&'a str>,
    call_index: u64,
}

/// What [`PluginHost::invoke`] gives back.
struct Invoked<T> {
    decision: Decision<T>,
    /// Whether the call produced its own value.
    succeeded: bool,
    /// Replay only: requests the recording holds no result for.
    unrecorded: Vec<Canonical>,
}

impl<T> Invoked<T> {
    /// The events and the unanswered reads.
    fn into_parts(self) -> (Vec<NewEvent>, Vec<Canonical>) {
        (self.decision.events, self.unrecorded)
    }
}

/// A recorded plugin call, as `audit replay` feeds it back to the plugin:
/// the same scene (game time, NPC, tick context), params, call index (and
/// so the same seeded RNG) and, for every read, the result it recorded.
pub struct RecordedCall<'a> {
    pub call: ReplayedCall<'a>,
    pub scene: Arc<Scene>,
    pub params: &'a Value,
    pub reads: RecordedReads,
    pub call_index: u64,
}

/// Which call is replayed.
pub enum ReplayedCall<'a> {
    /// Condition `id`, for `activity`.
    Condition {
        id: &'a str,
        activity: Option<&'a str>,
    },
    /// Effect `id`, for `activity`.
    Effect {
        id: &'a str,
        activity: Option<&'a str>,
    },
    /// `plugin`'s handler of `event` (the JSON form of the event it
    /// handled); `nth` picks among several handlers of that plugin for
    /// the event's kind (0: the first registered).
    EventHandler {
        plugin: &'a str,
        event: Value,
        nth: usize,
    },
}

/// How a replayed call went.
#[derive(Debug)]
pub enum Replay {
    /// The call ran: the events it produced (as live, the call's own event
    /// last), and the reads the recording could not answer.
    Ran {
        events: Vec<NewEvent>,
        unrecorded: Vec<Canonical>,
    },
    /// This build registers no such condition, effect or handler.
    NotRegistered,
    /// This build's condition needs context keys the call did not have (a
    /// live engine would skip it).
    MissingContext(Vec<String>),
}

impl PluginHost {
    /// Plans the load (dependency order, settings), lets each plugin
    /// register, and locks the registry.
    pub fn start(plugins: Vec<Arc<dyn Plugin>>, config: HostConfig) -> Result<Self, HostError> {
        let manifests: Vec<Manifest> = plugins.iter().map(|p| p.manifest()).collect();
        let plan = plan_load(&manifests, &config.settings)?;
        let mut registry = Registry::default();
        let mut loaded = Vec::with_capacity(plan.order.len());
        for planned in plan.order {
            let Some(plugin) = plugins
                .iter()
                .find(|p| p.manifest().id == planned.id.as_str())
            else {
                continue;
            };
            let info = Arc::new(PluginInfo {
                id: planned.id.clone(),
                version: planned.manifest.version.clone().into(),
                granted: planned.granted.clone(),
                runtime: plugin.runtime(),
            });
            let mut registrar = Registrar {
                plugin: info.clone(),
                registry: &mut registry,
            };
            plugin
                .register(&mut registrar)
                .map_err(|source| HostError::Register {
                    plugin: planned.id.clone(),
                    source,
                })?;
            loaded.push(LoadedPlugin {
                info,
                manifest: planned.manifest,
            });
        }
        registry.lock();
        Ok(PluginHost {
            registry,
            runner: Runner::new(config.isolation, config.deadline),
            engine: Arc::new(config.engine),
            plugins: loaded,
            skipped: plan.skipped,
        })
    }

    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }

    pub fn skipped(&self) -> &[(PluginId, SkipReason)] {
        &self.skipped
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn engine(&self) -> &EngineInfo {
        &self.engine
    }

    /// `PluginLoaded` for each plugin that loaded and `PluginSkipped` for
    /// each that did not: what start-up records in the log.
    pub fn startup_events(&self) -> Vec<NewEvent> {
        let mut events = Vec::new();
        for p in &self.plugins {
            let mut payload = json!({
                keys::MANIFEST: p.manifest,
                keys::GRANTED: p.info.granted,
                keys::REGISTERED: self.registry.registered_by(p.info.id.as_str()),
                keys::RUNTIME: p.info.runtime.as_str(),
            });
            if let (Some(digest), Some(p)) = (p.info.runtime.digest(), payload.as_object_mut()) {
                p.insert(keys::DIGEST.into(), json!(digest));
            }
            if let (Some(endpoint), Some(p)) = (p.info.runtime.endpoint(), payload.as_object_mut())
            {
                p.insert(keys::ENDPOINT.into(), json!(endpoint));
            }
            events.extend(self.engine_event(
                kinds::PLUGIN_LOADED,
                StreamName::plugin(&p.info.id),
                payload,
                Some(&p.info),
            ));
        }
        for (id, reason) in &self.skipped {
            let payload = json!({keys::PLUGIN_ID: id, keys::REASON: reason});
            events.extend(self.engine_event(
                kinds::PLUGIN_SKIPPED,
                StreamName::plugin(id),
                payload,
                None,
            ));
        }
        events
    }

    fn engine_event(
        &self,
        kind: &str,
        stream: StreamName,
        payload: Value,
        plugin: Option<&PluginInfo>,
    ) -> Option<NewEvent> {
        let mut e = NewEvent::new(stream, EventKind::new(kind).ok()?, payload);
        e.plugin_id = plugin.map(|p| p.id.clone());
        e.provenance = Provenance {
            plugin_id: plugin.map(|p| p.id.clone()),
            plugin_version: plugin.map(|p| p.version.clone()),
            engine_version: Some(self.engine.version.clone()),
            engine_instance: Some(self.engine.instance.clone()),
            ..Provenance::default()
        };
        Some(e)
    }

    /// The world's plugin scope.
    pub fn scope(state: &GameState, scene: &Scene) -> Scope {
        state
            .world(&scene.world)
            .map(|w| Scope::of(&w.meta))
            .unwrap_or(Scope::All)
    }

    /// Evaluates condition `id`: false when it is not registered, its plugin
    /// is not enabled for the world, it lacks required context, or it fails,
    /// panics or overruns its deadline.
    pub fn evaluate_condition(
        &self,
        state: &Arc<GameState>,
        scene: &Arc<Scene>,
        activity: &str,
        id: &str,
        params: &Value,
        call_index: u64,
    ) -> Decision<bool> {
        let skip = |reason, missing| Decision {
            value: false,
            events: self.skipped_call(
                CallKind::Condition,
                scene,
                (Some(activity), id),
                reason,
                missing,
                call_index,
            ),
        };
        let entry = match self.gate(
            self.registry.conditions.get(id),
            |e| &e.plugin,
            state,
            scene,
        ) {
            Ok(entry) => entry,
            Err(reason) => return skip(reason, Value::Null),
        };
        let missing = missing_context(entry, scene);
        if !missing.is_empty() {
            return skip("missing_required_context", json!(missing));
        }
        let f = entry.f.clone();
        let site = CallSite {
            kind: CallKind::Condition,
            plugin: &entry.plugin,
            scene,
            reads: Reads::Live(state.clone()),
            id: entry.id.clone(),
            activity: Some(activity),
            call_index,
        };
        self.invoke(site, params, move |ctx, p| f(ctx, p), false)
            .decision
    }

    /// Applies effect `id` with its default params overlaid by `params`:
    /// `None` when it is not registered, not enabled for the world, or fails,
    /// panics or overruns.
    pub fn apply_effect(
        &self,
        state: &Arc<GameState>,
        scene: &Arc<Scene>,
        activity: &str,
        id: &str,
        params: &Value,
        call_index: u64,
    ) -> Decision<Option<Value>> {
        let entry = match self.gate(self.registry.effects.get(id), |e| &e.plugin, state, scene) {
            Ok(entry) => entry,
            Err(reason) => {
                return Decision {
                    value: None,
                    events: self.skipped_call(
                        CallKind::Effect,
                        scene,
                        (Some(activity), id),
                        reason,
                        Value::Null,
                        call_index,
                    ),
                };
            }
        };
        let mut merged = entry.default_params.clone();
        if let (Some(m), Some(p)) = (merged.as_object_mut(), params.as_object()) {
            for (k, v) in p {
                m.insert(k.clone(), v.clone());
            }
        } else if !params.is_null() {
            merged = params.clone();
        }
        let f = entry.f.clone();
        let site = CallSite {
            kind: CallKind::Effect,
            plugin: &entry.plugin,
            scene,
            reads: Reads::Live(state.clone()),
            id: entry.id.clone(),
            activity: Some(activity),
            call_index,
        };
        let invoked = self.invoke(site, &merged, move |ctx, p| f(ctx, p), Value::Null);
        let d = invoked.decision;
        Decision {
            value: invoked.succeeded.then_some(d.value),
            events: d.events,
        }
    }

    /// The world's effective simulation config: enabled providers merged in
    /// priority order (lower number wins), then the world's own
    /// `simulationConfig` over all of them.
    pub fn simulation_config(
        &self,
        state: &Arc<GameState>,
        scene: &Arc<Scene>,
        first_call_index: u64,
    ) -> Decision<(Value, Vec<String>)> {
        let scope = Self::scope(state, scene);
        let mut events = Vec::new();
        let mut suggestions = Vec::new();
        for (i, entry) in self
            .registry
            .providers
            .values()
            .filter(|e| scope.allows(e.plugin.id.as_str()))
            .enumerate()
        {
            let f = entry.f.clone();
            let index = first_call_index + i as u64;
            let site = CallSite {
                kind: CallKind::SimulationConfig,
                plugin: &entry.plugin,
                scene,
                reads: Reads::Live(state.clone()),
                id: entry.id.clone(),
                activity: None,
                call_index: index,
            };
            let invoked = self.invoke(site, &Value::Null, move |ctx, _| f(ctx), Value::Null);
            events.extend(invoked.decision.events);
            if invoked.succeeded {
                suggestions.push(Suggestion {
                    provider_id: entry.id.to_string(),
                    priority: entry.priority,
                    config: invoked.decision.value,
                });
            }
        }
        let world_config = state
            .world(&scene.world)
            .and_then(|w| w.meta.pointer("/behavior/simulationConfig"))
            .cloned();
        let config = simconfig::effective(&json!({}), &suggestions, world_config.as_ref());
        let providers = suggestions.iter().map(|s| s.provider_id.clone()).collect();
        Decision {
            value: (config, providers),
            events,
        }
    }

    /// Calls the handlers subscribed to the kinds of `events` (whose plugins
    /// are enabled for the world). What handlers write is not dispatched
    /// again.
    pub fn dispatch(
        &self,
        state: &Arc<GameState>,
        scene: &Arc<Scene>,
        events: &[NewEvent],
        first_call_index: u64,
    ) -> Vec<NewEvent> {
        let scope = Self::scope(state, scene);
        let mut out = Vec::new();
        let mut index = first_call_index;
        for event in events {
            for handler in &self.registry.handlers {
                if !handler.kinds.contains(event.kind.as_str())
                    || !scope.allows(handler.plugin.id.as_str())
                {
                    continue;
                }
                let body = serde_json::to_value(event).unwrap_or(Value::Null);
                let invoked = self.handle(handler, scene, Reads::Live(state.clone()), body, index);
                out.extend(invoked.decision.events);
                index += 1;
            }
        }
        out
    }

    /// Replays a recorded call (`audit replay`): runs this build's plugin
    /// code with the recorded scene, params and call index, its reads
    /// answered from the recording, and returns what it produced. Nothing
    /// is appended and no state is read.
    pub fn replay(&self, call: RecordedCall<'_>) -> Replay {
        let reads = Reads::Recorded(call.reads);
        let index = call.call_index;
        let (events, unrecorded) = match call.call {
            ReplayedCall::Condition { id, activity } => {
                let Some(entry) = self.registry.conditions.get(id) else {
                    return Replay::NotRegistered;
                };
                let missing = missing_context(entry, &call.scene);
                if !missing.is_empty() {
                    return Replay::MissingContext(missing.into_iter().cloned().collect());
                }
                let f = entry.f.clone();
                let site = CallSite {
                    kind: CallKind::Condition,
                    plugin: &entry.plugin,
                    scene: &call.scene,
                    reads,
                    id: entry.id.clone(),
                    activity,
                    call_index: index,
                };
                self.invoke(site, call.params, move |ctx, p| f(ctx, p), false)
                    .into_parts()
            }
            ReplayedCall::Effect { id, activity } => {
                let Some(entry) = self.registry.effects.get(id) else {
                    return Replay::NotRegistered;
                };
                let f = entry.f.clone();
                let site = CallSite {
                    kind: CallKind::Effect,
                    plugin: &entry.plugin,
                    scene: &call.scene,
                    reads,
                    id: entry.id.clone(),
                    activity,
                    call_index: index,
                };
                self.invoke(site, call.params, move |ctx, p| f(ctx, p), Value::Null)
                    .into_parts()
            }
            ReplayedCall::EventHandler { plugin, event, nth } => {
                let kind = event["kind"].as_str().unwrap_or_default();
                let Some(handler) = self
                    .registry
                    .handlers
                    .iter()
                    .filter(|h| h.plugin.id.as_str() == plugin && h.kinds.contains(kind))
                    .nth(nth)
                else {
                    return Replay::NotRegistered;
                };
                self.handle(handler, &call.scene, reads, event, index)
                    .into_parts()
            }
        };
        Replay::Ran { events, unrecorded }
    }

    /// Calls one handler with the JSON form of the event it handles.
    fn handle(
        &self,
        handler: &HandlerEntry,
        scene: &Arc<Scene>,
        reads: Reads,
        event: Value,
        call_index: u64,
    ) -> Invoked<Value> {
        let f = handler.f.clone();
        let kind = event["kind"].as_str().unwrap_or_default();
        let id = format!("{} on {kind}", handler.plugin.id);
        let params = json!({keys::EVENT_ID: event["event_id"], "kind": kind});
        let site = CallSite {
            kind: CallKind::EventHandler,
            plugin: &handler.plugin,
            scene,
            reads,
            id: id.into(),
            activity: None,
            call_index,
        };
        self.invoke(
            site,
            &params,
            move |ctx, _| f(ctx, &event).map(|()| Value::Null),
            Value::Null,
        )
    }

    /// Runs one plugin call and records it: its value (or `fallback` when it
    /// fails, panics or overruns) and the events that say what happened.
    fn invoke<T: Recorded + Send + 'static>(
        &self,
        site: CallSite<'_>,
        params: &Value,
        f: impl FnOnce(&mut Ctx, &Value) -> Result<T, PluginError> + Send + 'static,
        fallback: T,
    ) -> Invoked<T> {
        let cap = call_capability(site.kind);
        let id_key = site.kind.id_key().unwrap_or(keys::ID);
        let (plugin, scene, id, call_index) =
            (site.plugin, site.scene, site.id.clone(), site.call_index);
        let success_kind = site.kind.success_kind();
        // The payload is written straight to its canonical text: this runs
        // for every plugin call. The members every outcome records:
        let mut members: Vec<(&str, Member<'_>)> = Vec::with_capacity(10);
        if let Some(activity) = site.activity {
            members.push((keys::ACTIVITY, Member::Str(activity)));
        }
        members.extend([
            (keys::CALL, Member::Str(site.kind.as_str())),
            (id_key, Member::Str(id.as_str())),
            (keys::PARAMS, Member::Value(params)),
            (keys::CONTEXT, Member::Canonical(scene.recorded_context())),
        ]);
        let micros = |d: Duration| Member::U64(d.as_micros() as u64);
        // A sandboxed call stopped at its own deadline is an overrun, as a
        // native call the host stopped waiting for.
        // What the runtime itself recorded (a remote plugin's circuit
        // opening or closing) is kept whatever the call's outcome.
        let mut kept = Vec::new();
        let (outcome, deadline_ms) = match self.run(site, params.clone(), f) {
            Outcome::Done((Err(PluginError::DeadlineExceeded { deadline_ms }), record), took) => {
                kept = record.runtime_events;
                (Outcome::Overran(took), deadline_ms)
            }
            Outcome::Done((result, mut record), took) => {
                kept = std::mem::take(&mut record.runtime_events);
                (
                    Outcome::Done((result, record), took),
                    self.runner.deadline().as_millis() as u64,
                )
            }
            outcome => (outcome, self.runner.deadline().as_millis() as u64),
        };
        let (kind, value, payload, events, unrecorded) = match outcome {
            Outcome::Done((Ok(value), record), took) => {
                members.extend([
                    (keys::INPUTS, Member::Array(&record.inputs)),
                    (keys::RESULT, value.member()),
                    (keys::DURATION_US, micros(took)),
                ]);
                if let Some(fuel) = record.fuel_used {
                    members.push((keys::FUEL_USED, Member::U64(fuel)));
                }
                if let Some(reply) = &record.reply {
                    members.push((keys::REPLY, Member::Value(reply)));
                }
                let payload = canonical::object(&members);
                (
                    success_kind,
                    value,
                    payload,
                    record.events,
                    record.unrecorded,
                )
            }
            Outcome::Done((Err(error), record), took) => {
                let (kind, key, text, limit, reason) = match error {
                    PluginError::Panicked(message) => (
                        kinds::PLUGIN_CALL_PANICKED,
                        keys::PANIC,
                        message,
                        None,
                        None,
                    ),
                    PluginError::LimitExceeded { limit, message } => (
                        kinds::PLUGIN_CALL_FAILED,
                        keys::ERROR,
                        message,
                        Some(limit),
                        None,
                    ),
                    PluginError::Remote { reason, message } => (
                        kinds::PLUGIN_CALL_FAILED,
                        keys::ERROR,
                        message,
                        None,
                        Some(reason),
                    ),
                    error => (
                        kinds::PLUGIN_CALL_FAILED,
                        keys::ERROR,
                        error.to_string(),
                        None,
                        None,
                    ),
                };
                members.extend([
                    (key, Member::Str(&text)),
                    (keys::INPUTS, Member::Array(&record.inputs)),
                    (keys::FALLBACK, fallback.member()),
                    (keys::DURATION_US, micros(took)),
                ]);
                if let Some(limit) = limit {
                    members.push((keys::LIMIT, Member::Str(limit)));
                }
                if let Some(reason) = reason {
                    members.push((keys::REASON, Member::Str(reason)));
                }
                if let Some(reply) = &record.reply {
                    members.push((keys::REPLY, Member::Value(reply)));
                }
                if let Some(fuel) = record.fuel_used {
                    members.push((keys::FUEL_USED, Member::U64(fuel)));
                }
                let payload = canonical::object(&members);
                let unrecorded = record.unrecorded.clone();
                (
                    Some(kind),
                    fallback,
                    payload,
                    denials_of(record),
                    unrecorded,
                )
            }
            Outcome::Panicked(message, took) => {
                members.extend([
                    (keys::PANIC, Member::Str(&message)),
                    (keys::FALLBACK, fallback.member()),
                    (keys::DURATION_US, micros(took)),
                ]);
                let payload = canonical::object(&members);
                (
                    Some(kinds::PLUGIN_CALL_PANICKED),
                    fallback,
                    payload,
                    Vec::new(),
                    Vec::new(),
                )
            }
            Outcome::Overran(took) => {
                members.extend([
                    (keys::DEADLINE_MS, Member::U64(deadline_ms)),
                    (keys::WAITED_US, micros(took)),
                    (keys::FALLBACK, fallback.member()),
                ]);
                let payload = canonical::object(&members);
                (
                    Some(kinds::PLUGIN_DEADLINE_EXCEEDED),
                    fallback,
                    payload,
                    Vec::new(),
                    Vec::new(),
                )
            }
        };
        let mut events = events;
        // Before the call's own event, which comes last of its call.
        events.extend(kept);
        let succeeded = kind.is_none_or(|k| !kinds::records_a_failed_call(k));
        if let Some(e) =
            kind.and_then(|k| self.call_event(k, plugin, scene, payload, &cap, call_index))
        {
            events.push(e);
        }
        Invoked {
            decision: Decision { value, events },
            succeeded,
            unrecorded,
        }
    }

    fn run<T: Send + 'static>(
        &self,
        site: CallSite<'_>,
        params: Value,
        f: impl FnOnce(&mut Ctx, &Value) -> Result<T, PluginError> + Send + 'static,
    ) -> Outcome<(Result<T, PluginError>, CallRecord)> {
        let mut ctx = Ctx::new(
            site.plugin.clone(),
            site.scene.clone(),
            site.reads,
            self.engine.clone(),
            site.id,
            site.call_index,
        );
        let call = move || {
            // Caught here, inside the call, so that the context (and the
            // denials it recorded) survives a panic.
            let result = match catch_unwind(AssertUnwindSafe(|| f(&mut ctx, &params))) {
                Ok(result) => result,
                Err(panic) => Err(PluginError::Panicked(panic_message(&*panic))),
            };
            (result, ctx.finish())
        };
        if site.plugin.runtime.preempts() {
            self.runner.run_preempted(call)
        } else {
            self.runner.run(call)
        }
    }

    /// The registered entry for a call, or why the host does not make it.
    fn gate<'e, E>(
        &self,
        entry: Option<&'e E>,
        plugin: impl Fn(&E) -> &Arc<PluginInfo>,
        state: &GameState,
        scene: &Scene,
    ) -> Result<&'e E, &'static str> {
        let entry = entry.ok_or("not_registered")?;
        if Self::scope(state, scene).allows(plugin(entry).id.as_str()) {
            Ok(entry)
        } else {
            Err("not_enabled_for_world")
        }
    }

    /// `ConditionSkipped` / `EffectSkipped`: a call the host did not make,
    /// and why.
    fn skipped_call(
        &self,
        call: CallKind,
        scene: &Scene,
        (activity, id): (Option<&str>, &str),
        reason: &str,
        missing: Value,
        call_index: u64,
    ) -> Vec<NewEvent> {
        let (kind, id_key) = match call {
            CallKind::Effect => (kinds::EFFECT_SKIPPED, keys::EFFECT_ID),
            _ => (kinds::CONDITION_SKIPPED, keys::CONDITION_ID),
        };
        let mut members = vec![
            (id_key, Member::Str(id)),
            (keys::REASON, Member::Str(reason)),
            ("missing", Member::Value(&missing)),
            (keys::CONTEXT, Member::Canonical(scene.recorded_context())),
        ];
        if let Some(activity) = activity {
            members.push((keys::ACTIVITY, Member::Str(activity)));
        }
        let payload = canonical::object(&members);
        let Ok(kind) = EventKind::from_static(kind) else {
            return Vec::new();
        };
        let mut e = NewEvent::at(scene.session_stream().clone(), kind, payload, scene.at);
        e.world_id = Some(scene.world.clone());
        e.session_id = Some(scene.session.clone());
        e.provenance = Provenance {
            call_index: Some(call_index),
            ..tick_provenance(scene.tick_id, scene.tick, &self.engine)
        };
        vec![e]
    }

    fn call_event(
        &self,
        kind: &'static str,
        plugin: &PluginInfo,
        scene: &Scene,
        payload: Canonical,
        cap: &Capability,
        call_index: u64,
    ) -> Option<NewEvent> {
        let mut e = NewEvent::at(
            scene.session_stream().clone(),
            EventKind::from_static(kind).ok()?,
            payload,
            scene.at,
        );
        e.plugin_id = Some(plugin.id.clone());
        e.world_id = Some(scene.world.clone());
        e.session_id = Some(scene.session.clone());
        e.provenance = provenance(plugin, scene, &self.engine, Some(cap), call_index);
        Some(e)
    }
}

/// A call's value as its event records it.
trait Recorded {
    fn member(&self) -> Member<'_>;
}

impl Recorded for bool {
    fn member(&self) -> Member<'_> {
        Member::Bool(*self)
    }
}

impl Recorded for Value {
    fn member(&self) -> Member<'_> {
        Member::Value(self)
    }
}

/// The `required_context` keys of a condition that the scene lacks.
fn missing_context<'e>(entry: &'e ConditionEntry, scene: &Scene) -> Vec<&'e String> {
    entry
        .required_context
        .iter()
        .filter(|k| !scene.has_context_key(k))
        .collect()
}

/// A failed call's writes are discarded; its denials are kept for the auditor.
fn denials_of(record: CallRecord) -> Vec<NewEvent> {
    record
        .events
        .into_iter()
        .filter(|e| e.kind.as_str() == kinds::PERMISSION_DENIED)
        .collect()
}

//! The context a plugin call gets: the only way plugin code reaches the game.
//!
//! Every call goes through [`Ctx::call`], which checks the permission,
//! applies namespacing, records reads as the call's inputs and turns writes
//! into events with provenance. A refused call is a `PermissionDenied` event
//! whatever its failure mode. Time is the tick's game time and randomness is
//! seeded from the tick, plugin and call: there is no other source of either.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use provenant_events::canonical::{self, Canonical, Member};
use provenant_events::{
    EventKind, NewEvent, PluginId, Provenance, SessionId, StreamName, Text, WorldId,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::capability::{Capability, Denied, LogLevel, Request};
use crate::permissions::{FailureMode, Permission};
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::state::{GameState, merged_relationship};
use provenant_events::{keys, kinds};

/// A plugin as the host runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub id: PluginId,
    pub version: Text,
    pub granted: BTreeSet<Permission>,
    /// How its code runs (a sandboxed plugin's digest is in the provenance
    /// of every event its calls cause).
    pub runtime: Runtime,
}

/// The version of this build, recorded in every event's provenance.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Who runs the engine, for provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    pub version: Text,
    pub instance: Text,
}

/// One NPC as a tick describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TickNpc {
    pub npc_id: String,
    #[serde(default)]
    pub location_id: Option<String>,
    #[serde(default)]
    pub state: Value,
}

/// Where a call happens: the tick, and the NPC it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub world: WorldId,
    pub session: SessionId,
    pub tick_id: Uuid,
    pub tick: u64,
    /// Game time.
    pub at: DateTime<Utc>,
    pub npcs: Arc<Vec<TickNpc>>,
    /// The NPC being evaluated (index into `npcs`).
    pub npc: Option<usize>,
    /// The tick's extra context.
    pub context: Value,
    /// What is derived from the rest, computed once per scene
    /// (`Default::default()` when building one).
    pub memo: SceneMemo,
}

/// Values a scene derives once and every call in it shares.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SceneMemo {
    session_stream: OnceLock<StreamName>,
    recorded_context: OnceLock<Canonical>,
}

impl Scene {
    pub fn npc(&self) -> Option<&TickNpc> {
        self.npc.and_then(|i| self.npcs.get(i))
    }

    /// Whether the context a condition sees has `key`.
    pub fn has_context_key(&self, key: &str) -> bool {
        match key {
            "world_id" | "session_id" => true,
            keys::NPC_ID | keys::NPC_STATE => self.npc().is_some(),
            keys::LOCATION_ID => self.npc().is_some_and(|n| n.location_id.is_some()),
            other => self.context.get(other).is_some(),
        }
    }

    /// The context a call sees, as its event records it: `npc_id`,
    /// `location_id`, `npc_state` and the tick's own context keys (not
    /// `world_id` and `session_id`: the event carries those itself).
    /// Canonical JSON, made once per scene.
    pub fn recorded_context(&self) -> &Canonical {
        self.memo
            .recorded_context
            .get_or_init(|| Canonical::of(&Value::Object(self.recorded_context_map())))
    }

    fn recorded_context_map(&self) -> Map<String, Value> {
        let mut map = self.context.as_object().cloned().unwrap_or_default();
        if let Some(npc) = self.npc() {
            map.insert(keys::NPC_ID.into(), json!(npc.npc_id));
            if let Some(loc) = &npc.location_id {
                map.insert(keys::LOCATION_ID.into(), json!(loc));
            }
            map.insert(keys::NPC_STATE.into(), npc.state.clone());
        }
        map
    }

    /// `session:<world>/<session>`, the stream of what happens in the session.
    pub fn session_stream(&self) -> &StreamName {
        self.memo
            .session_stream
            .get_or_init(|| StreamName::session(&self.world, &self.session))
    }
}

/// Where a call's reads are answered from.
#[derive(Debug, Clone)]
pub enum Reads {
    /// The game state: a live call.
    Live(Arc<GameState>),
    /// What a recorded call's reads returned: a replay (`audit replay`).
    Recorded(RecordedReads),
}

/// The reads a recorded call made (its event's `inputs`), to answer the
/// same requests with the same results when it is replayed. A request made
/// several times gets its results in the order they were recorded.
#[derive(Debug, Clone, Default)]
pub struct RecordedReads {
    /// By the canonical text of the request.
    results: HashMap<String, VecDeque<Option<Value>>>,
    /// The last result given for each request.
    given: HashMap<String, Option<Value>>,
}

impl RecordedReads {
    /// From a call event's `inputs` (`[{"request": .., "result": ..}]`, no
    /// `result` for a read that returned nothing); anything else in the
    /// array is ignored.
    pub fn from_inputs(inputs: &[Value]) -> Self {
        let mut results: HashMap<String, VecDeque<Option<Value>>> = HashMap::new();
        for input in inputs {
            if let Some(request) = input.get(keys::REQUEST) {
                results
                    .entry(canonical::to_canonical_string(request))
                    .or_default()
                    .push_back(input.get(keys::RESULT).cloned());
            }
        }
        RecordedReads {
            results,
            given: HashMap::new(),
        }
    }

    /// The next recorded result of `request` (`Some(None)`: it returned
    /// nothing), or `None` when the recording holds no more of it.
    fn take(&mut self, request: &Canonical) -> Option<Option<Value>> {
        let result = self.results.get_mut(request.as_str())?.pop_front()?;
        self.given
            .insert(request.as_str().to_owned(), result.clone());
        Some(result)
    }

    /// The result last given for `request`, or else its first recorded one.
    fn peek(&self, request: &Canonical) -> Option<Value> {
        self.given
            .get(request.as_str())
            .or_else(|| self.results.get(request.as_str())?.front())
            .cloned()
            .flatten()
    }
}

/// A plugin call's context.
pub struct Ctx {
    plugin: Arc<PluginInfo>,
    scene: Arc<Scene>,
    reads: Reads,
    engine: Arc<EngineInfo>,
    /// What is being called, e.g. `plugin:game-stealth:has_disguise`.
    call: Text,
    call_index: u64,
    rng: Rng,
    mode: Option<FailureMode>,
    inputs: Vec<Canonical>,
    events: Vec<NewEvent>,
    unrecorded: Vec<Canonical>,
    fuel_used: Option<u64>,
    reply: Option<Value>,
    runtime_events: Vec<NewEvent>,
}

/// What a call left behind: the reads it made and the events it produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallRecord {
    /// Each read as `{"request": .., "result": ..}`, canonical JSON.
    pub inputs: Vec<Canonical>,
    pub events: Vec<NewEvent>,
    /// Replay only: the requests the recording holds no result for (the
    /// call was answered as if they returned nothing).
    pub unrecorded: Vec<Canonical>,
    /// The fuel a sandboxed call used (`None` for native code).
    pub fuel_used: Option<u64>,
    /// What a remote plugin answered (`None` for other plugins).
    pub reply: Option<Value>,
    /// What the runtime recorded about itself during the call (a remote
    /// plugin's circuit opening or closing): kept whatever the outcome.
    pub runtime_events: Vec<NewEvent>,
}

impl Ctx {
    /// The context of one call, as the host makes it for each call: the
    /// plugin, where the call happens, where its reads are answered from,
    /// the engine, the call's id and its index in the tick (which seeds its
    /// RNG). Public so that a plugin's functions can be tested on a game
    /// state without a whole host.
    pub fn new(
        plugin: Arc<PluginInfo>,
        scene: Arc<Scene>,
        reads: Reads,
        engine: Arc<EngineInfo>,
        call: Text,
        call_index: u64,
    ) -> Self {
        let rng = Rng::for_call(&scene.tick_id, plugin.id.as_str(), call_index);
        Ctx {
            plugin,
            scene,
            reads,
            engine,
            call,
            call_index,
            rng,
            mode: None,
            inputs: Vec::new(),
            events: Vec::new(),
            unrecorded: Vec::new(),
            fuel_used: None,
            reply: None,
            runtime_events: Vec::new(),
        }
    }

    pub(crate) fn finish(self) -> CallRecord {
        CallRecord {
            inputs: self.inputs,
            events: self.events,
            unrecorded: self.unrecorded,
            fuel_used: self.fuel_used,
            reply: self.reply,
            runtime_events: self.runtime_events,
        }
    }

    /// Moves this context out, leaving in its place an inert one of the same
    /// plugin and scene (no reads answered, nothing recorded): for a sandbox
    /// runtime whose per-call state must own the context. Put it back with
    /// `*ctx = lent` when the call returns; what the inert one recorded
    /// meanwhile is dropped.
    pub fn lend(&mut self) -> Ctx {
        let inert = Ctx::new(
            self.plugin.clone(),
            self.scene.clone(),
            Reads::Recorded(RecordedReads::default()),
            self.engine.clone(),
            self.call.clone(),
            self.call_index,
        );
        std::mem::replace(self, inert)
    }

    /// Records the fuel a sandboxed call used, for its event (`fuel_used`).
    /// Set by the sandbox runtime (crate `provenant-wasm`), never by plugin
    /// code: native code has no fuel.
    pub fn record_fuel_used(&mut self, fuel: u64) {
        self.fuel_used = Some(fuel);
    }

    /// Records what a remote plugin answered, for its event (`reply`). Set
    /// by the remote client (crate `provenant-remote`), never by plugin code.
    pub fn record_reply(&mut self, reply: Value) {
        self.reply = Some(reply);
    }

    /// Records an event about the plugin's runtime (a remote plugin's
    /// circuit opening or closing), on the plugin's stream with the call's
    /// provenance; it is kept even when the call fails. Set by a runtime,
    /// never by plugin code.
    pub fn record_runtime_event(&mut self, kind: &'static str, payload: Value) {
        let Ok(kind) = EventKind::from_static(kind) else {
            return;
        };
        let mut e = NewEvent::at(
            StreamName::plugin(&self.plugin.id),
            kind,
            payload,
            self.scene.at,
        );
        e.plugin_id = Some(self.plugin.id.clone());
        e.world_id = Some(self.scene.world.clone());
        e.session_id = Some(self.scene.session.clone());
        e.provenance = provenance(
            &self.plugin,
            &self.scene,
            &self.engine,
            None,
            self.call_index,
        );
        self.runtime_events.push(e);
    }

    /// The call's id (`plugin:<id>:<name>`, or what a handler handles).
    pub fn call_id(&self) -> &str {
        self.call.as_str()
    }

    /// The call's index in its tick.
    pub fn call_index(&self) -> u64 {
        self.call_index
    }

    /// The tick's id.
    pub fn tick_id(&self) -> uuid::Uuid {
        self.scene.tick_id
    }

    /// The tick context and the NPC the call is about, as its event records
    /// them (`context`).
    pub fn recorded_context(&self) -> &Canonical {
        self.scene.recorded_context()
    }

    pub fn plugin_id(&self) -> &PluginId {
        &self.plugin.id
    }

    /// The tick's game time: the only clock a plugin has.
    pub fn now(&self) -> DateTime<Utc> {
        self.scene.at
    }

    /// Randomness seeded from the tick id, the plugin and the call.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// The NPC the call is about (conditions and effects), as the tick
    /// described it.
    pub fn npc(&self) -> Option<&TickNpc> {
        self.scene.npc()
    }

    /// A key of the tick's own context.
    pub fn tick_context(&self, key: &str) -> Option<&Value> {
        self.scene.context.get(key)
    }

    /// The tick's number.
    pub fn tick(&self) -> u64 {
        self.scene.tick
    }

    pub fn world_id(&self) -> &WorldId {
        &self.scene.world
    }

    pub fn session_id(&self) -> &SessionId {
        &self.scene.session
    }

    /// Whether this call is a replay (`audit replay`) of a recorded one.
    pub fn replaying(&self) -> bool {
        matches!(self.reads, Reads::Recorded(_))
    }

    pub fn has_permission(&self, permission: Permission) -> bool {
        self.plugin.granted.contains(&permission)
    }

    /// Overrides the failure mode of the calls that follow (`None`: each
    /// capability's own mode).
    pub fn set_failure_mode(&mut self, mode: Option<FailureMode>) {
        self.mode = mode;
    }

    /// Makes one call. A refusal is `Err` in RAISE mode and `Ok(None)` in the
    /// others; either way it is recorded as a `PermissionDenied` event.
    pub fn call(&mut self, request: Request) -> Result<Option<Value>, Denied> {
        let cap = request.capability();
        if !self.has_permission(cap.permission) {
            return self.deny(&cap, true, "the plugin does not hold the permission".into());
        }
        if let Some(reason) = self.namespace_violation(&request) {
            return self.deny(&cap, false, reason);
        }
        if request.writes() || matches!(request, Request::Log { .. }) {
            return Ok(self.write(&request, &cap));
        }
        let key = request_key(&request);
        let result = match &mut self.reads {
            Reads::Live(state) => {
                let state = state.clone();
                self.live_read(&state, &request)
            }
            Reads::Recorded(recorded) => recorded.take(&key).unwrap_or_else(|| {
                self.unrecorded.push(key.clone());
                None
            }),
        };
        // A read that returned nothing has no `result` (one that returned
        // JSON null has `"result": null`).
        self.inputs.push(match &result {
            Some(read) => canonical::object(&[
                (keys::REQUEST, Member::Canonical(&key)),
                (keys::RESULT, Member::Value(read)),
            ]),
            None => canonical::object(&[(keys::REQUEST, Member::Canonical(&key))]),
        });
        Ok(result)
    }

    pub fn get_world(&mut self) -> Result<Option<Value>, Denied> {
        self.call(Request::GetWorld)
    }

    pub fn get_world_config(&mut self, path: &str) -> Result<Option<Value>, Denied> {
        self.call(Request::GetWorldConfig { path: path.into() })
    }

    pub fn list_world_locations(&mut self) -> Result<Vec<Value>, Denied> {
        Ok(array(self.call(Request::ListWorldLocations)?))
    }

    pub fn list_world_npcs(&mut self) -> Result<Vec<Value>, Denied> {
        Ok(array(self.call(Request::ListWorldNpcs)?))
    }

    pub fn get_session(&mut self) -> Result<Option<Value>, Denied> {
        self.call(Request::GetSession)
    }

    /// This plugin's own flag.
    pub fn get_session_flag(&mut self, key: impl Into<String>) -> Result<Option<Value>, Denied> {
        self.call(Request::GetSessionFlag { key: key.into() })
    }

    pub fn get_relationship(&mut self, npc_key: &str) -> Result<Option<Value>, Denied> {
        self.call(Request::GetRelationship {
            npc_key: npc_key.into(),
        })
    }

    /// Sets this plugin's own flag; `false` when refused.
    pub fn set_session_flag(&mut self, key: &str, value: Value) -> Result<bool, Denied> {
        Ok(self
            .call(Request::SetSessionFlag {
                key: key.into(),
                value,
            })?
            .is_some())
    }

    /// Shallow-merges `updates` into a shared relationship; `false` when refused.
    pub fn update_relationship(&mut self, npc_key: &str, updates: Value) -> Result<bool, Denied> {
        Ok(self
            .call(Request::UpdateRelationship {
                npc_key: npc_key.into(),
                updates,
            })?
            .is_some())
    }

    pub fn get_npc(&mut self, npc_id: &str) -> Result<Option<Value>, Denied> {
        self.call(Request::GetNpc {
            npc_id: npc_id.into(),
        })
    }

    pub fn set_npc_state(&mut self, npc_id: &str, state: Value) -> Result<bool, Denied> {
        Ok(self
            .call(Request::SetNpcState {
                npc_id: npc_id.into(),
                state,
            })?
            .is_some())
    }

    pub fn storage_get(&mut self, key: &str) -> Result<Option<Value>, Denied> {
        self.call(Request::StorageGet { key: key.into() })
    }

    /// Every key of this plugin's own storage, with its value.
    pub fn list_storage(&mut self) -> Result<Option<Value>, Denied> {
        self.call(Request::ListStorage)
    }

    pub fn storage_set(&mut self, key: &str, value: Value) -> Result<bool, Denied> {
        Ok(self
            .call(Request::StorageSet {
                key: key.into(),
                value,
            })?
            .is_some())
    }

    pub fn log(&mut self, level: LogLevel, message: &str) {
        let _ = self.call(Request::Log {
            level,
            message: message.into(),
            fields: Value::Null,
        });
    }

    /// Emits `plugin:<id>:<name>`; `false` when refused.
    pub fn emit(&mut self, name: &str, payload: Value) -> Result<bool, Denied> {
        Ok(self
            .call(Request::EmitEvent {
                name: name.into(),
                payload,
            })?
            .is_some())
    }

    fn own_flag(&self, key: &str) -> String {
        let id = self.plugin.id.as_str();
        let mut flag = String::with_capacity(8 + id.len() + key.len());
        flag.push_str("plugin:");
        flag.push_str(id);
        flag.push(':');
        flag.push_str(key);
        flag
    }

    fn namespace_violation(&self, request: &Request) -> Option<String> {
        match request {
            Request::GetSessionFlag { key } | Request::SetSessionFlag { key, .. }
                if key.starts_with("plugin:") =>
            {
                Some(format!(
                    "flag keys are this plugin's own (stored as {}); {key:?} reaches into a plugin namespace",
                    self.own_flag("<key>")
                ))
            }
            Request::EmitEvent { name, .. }
                if EventKind::new(format!("plugin:{}:{name}", self.plugin.id)).is_err()
                    || name.contains(':') =>
            {
                Some(format!(
                    "event name {name:?} is not valid: a plugin emits plugin:{}:<name> with a name of printable ASCII without ':', '.', '*', '>'",
                    self.plugin.id
                ))
            }
            _ => None,
        }
    }

    fn deny(
        &mut self,
        cap: &Capability,
        missing_permission: bool,
        reason: String,
    ) -> Result<Option<Value>, Denied> {
        let mode = self.mode.unwrap_or(cap.mode);
        let permission = missing_permission.then(|| cap.permission.as_str().to_owned());
        let payload = json!({
            keys::CAPABILITY: cap.name,
            keys::PERMISSION: permission,
            keys::MODE: mode,
            keys::REASON: reason,
            keys::CALL: self.call.as_str(),
        });
        let stream = StreamName::plugin(&self.plugin.id);
        self.push_event(kinds::PERMISSION_DENIED, stream, payload, cap, false);
        let denied = Denied {
            plugin: self.plugin.id.to_string(),
            capability: cap.name.to_owned(),
            permission,
            reason,
        };
        match mode {
            FailureMode::Raise => Err(denied),
            FailureMode::Warn => {
                if !self.replaying() {
                    tracing::warn!(plugin = %denied.plugin, capability = %denied.capability,
                        permission = ?denied.permission, "{}", denied.reason);
                }
                Ok(None)
            }
            FailureMode::Silent => Ok(None),
        }
    }

    /// What a read returns on a live call: this call's own writes first,
    /// then the game state.
    fn live_read(&self, state: &GameState, request: &Request) -> Option<Value> {
        let world = state.world(&self.scene.world);
        match request {
            Request::GetWorld => Some(json!({
                "id": self.scene.world,
                "name": world.map(|w| w.name.clone()).unwrap_or_default(),
                "description": world.map(|w| w.description.clone()).unwrap_or_default(),
                "meta": world.map(|w| w.meta.clone()).unwrap_or_else(|| json!({})),
            })),
            Request::GetWorldConfig { path } => {
                let mut v = world.map(|w| &w.meta)?;
                for part in path.split('.').filter(|p| !p.is_empty()) {
                    v = v.get(part)?;
                }
                Some(v.clone())
            }
            Request::ListWorldLocations => Some(json!(
                world.map(|w| w.locations.clone()).unwrap_or_default()
            )),
            Request::ListWorldNpcs => Some(json!(self.scene.npcs.as_ref())),
            Request::GetSession => {
                let own = format!("plugin:{}:", self.plugin.id);
                let session = state.session(&self.scene.world, &self.scene.session);
                let mut flags = Map::new();
                if let Some(s) = session {
                    for (k, v) in &s.flags {
                        // The game's flags and this plugin's own; never another plugin's.
                        if !k.starts_with("plugin:") || k.starts_with(&own) {
                            flags.insert(k.clone(), v.clone());
                        }
                    }
                }
                for e in &self.events {
                    if e.kind.as_str() == kinds::SESSION_FLAG_SET
                        && let Some(k) = e.payload[keys::KEY].as_str()
                    {
                        flags.insert(k.to_owned(), e.payload[keys::VALUE].clone());
                    }
                }
                let mut relationships: Map<String, Value> = session
                    .map(|s| {
                        s.relationships
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                for e in &self.events {
                    if e.kind.as_str() == kinds::RELATIONSHIP_UPDATED
                        && let Some(k) = e.payload[keys::NPC_KEY].as_str()
                    {
                        relationships.insert(k.to_owned(), e.payload[keys::RELATIONSHIP].clone());
                    }
                }
                Some(json!({
                    "id": self.scene.session,
                    "world_id": self.scene.world,
                    "flags": flags,
                    "relationships": relationships,
                }))
            }
            Request::GetSessionFlag { key } => {
                let key = self.own_flag(key);
                self.written(kinds::SESSION_FLAG_SET, keys::KEY, &key, keys::VALUE)
                    .or_else(|| {
                        state
                            .session(&self.scene.world, &self.scene.session)
                            .and_then(|s| s.flags.get(&key).cloned())
                    })
            }
            Request::GetRelationship { npc_key } => self
                .written(
                    kinds::RELATIONSHIP_UPDATED,
                    keys::NPC_KEY,
                    npc_key,
                    keys::RELATIONSHIP,
                )
                .or_else(|| {
                    state
                        .session(&self.scene.world, &self.scene.session)
                        .and_then(|s| s.relationships.get(npc_key).cloned())
                }),
            Request::GetNpc { npc_id } => self
                .written(kinds::NPC_STATE_SET, keys::NPC_ID, npc_id, keys::STATE)
                .or_else(|| {
                    let stored = world.and_then(|w| w.npcs.get(npc_id));
                    let in_tick = self.scene.npcs.iter().find(|n| &n.npc_id == npc_id);
                    match (stored, in_tick) {
                        (_, Some(n)) => Some(json!(n)),
                        (Some(s), None) => Some(json!({
                            "npc_id": npc_id, "location_id": s.location_id, "state": s.state
                        })),
                        (None, None) => None,
                    }
                }),
            Request::StorageGet { key } => self
                .written(kinds::PLUGIN_STORAGE_SET, keys::KEY, key, keys::VALUE)
                .or_else(|| {
                    state
                        .storage
                        .get(&self.plugin.id)
                        .and_then(|s| s.get(key).cloned())
                }),
            Request::ListStorage => {
                let mut all: Map<String, Value> = state
                    .storage
                    .get(&self.plugin.id)
                    .map(|s| s.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                for e in &self.events {
                    if e.kind.as_str() == kinds::PLUGIN_STORAGE_SET
                        && let Some(k) = e.payload[keys::KEY].as_str()
                    {
                        all.insert(k.to_owned(), e.payload[keys::VALUE].clone());
                    }
                }
                Some(Value::Object(all))
            }
            // Writes and log lines are not reads.
            _ => None,
        }
    }

    /// Performs a write (an event) or a log line.
    fn write(&mut self, request: &Request, cap: &Capability) -> Option<Value> {
        match request {
            Request::SetSessionFlag { key, value } => {
                let key = self.own_flag(key);
                let stream = self.scene.session_stream().clone();
                self.push_event(
                    kinds::SESSION_FLAG_SET,
                    stream,
                    json!({keys::KEY: key, keys::VALUE: value}),
                    cap,
                    true,
                );
                Some(Value::Bool(true))
            }
            Request::UpdateRelationship { npc_key, updates } => {
                let current = self.current_relationship(npc_key);
                let merged =
                    merged_relationship(current.as_ref(), updates, self.plugin.id.as_str());
                let stream = self.scene.session_stream().clone();
                let payload = json!({keys::NPC_KEY: npc_key, keys::UPDATES: updates, keys::RELATIONSHIP: merged});
                self.push_event(kinds::RELATIONSHIP_UPDATED, stream, payload, cap, true);
                Some(Value::Bool(true))
            }
            Request::SetNpcState { npc_id, state } => {
                let stream = StreamName::world(&self.scene.world);
                self.push_event(
                    kinds::NPC_STATE_SET,
                    stream,
                    json!({keys::NPC_ID: npc_id, keys::STATE: state}),
                    cap,
                    true,
                );
                Some(Value::Bool(true))
            }
            Request::StorageSet { key, value } => {
                let stream = StreamName::plugin(&self.plugin.id);
                self.push_event(
                    kinds::PLUGIN_STORAGE_SET,
                    stream,
                    json!({keys::KEY: key, keys::VALUE: value}),
                    cap,
                    false,
                );
                Some(Value::Bool(true))
            }
            Request::Log {
                level,
                message,
                fields,
            } => {
                let plugin = self.plugin.id.as_str();
                if self.replaying() {
                    // Said when the call was made.
                    return Some(Value::Bool(true));
                }
                match level {
                    LogLevel::Debug => tracing::debug!(plugin, fields = %fields, "{message}"),
                    LogLevel::Info => tracing::info!(plugin, fields = %fields, "{message}"),
                    LogLevel::Warning => tracing::warn!(plugin, fields = %fields, "{message}"),
                    LogLevel::Error => tracing::error!(plugin, fields = %fields, "{message}"),
                }
                Some(Value::Bool(true))
            }
            Request::EmitEvent { name, payload } => {
                let Ok(kind) = EventKind::new(format!("plugin:{}:{name}", self.plugin.id)) else {
                    return None;
                };
                let stream = self.scene.session_stream().clone();
                self.push_event_of_kind(kind, stream, payload.clone(), cap, true);
                Some(Value::Bool(true))
            }
            // Reads are answered by `call`.
            _ => None,
        }
    }

    /// The relationship an update merges into: this call's own last write
    /// of it, or else the game state's (live) or what the recorded call read
    /// of it (replay).
    fn current_relationship(&self, npc_key: &str) -> Option<Value> {
        let request = Request::GetRelationship {
            npc_key: npc_key.to_owned(),
        };
        match &self.reads {
            Reads::Live(state) => self.live_read(state, &request),
            Reads::Recorded(recorded) => self
                .written(
                    kinds::RELATIONSHIP_UPDATED,
                    keys::NPC_KEY,
                    npc_key,
                    keys::RELATIONSHIP,
                )
                .or_else(|| recorded.peek(&request_key(&request))),
        }
    }

    /// The last value this call wrote for `key`, if it wrote one.
    fn written(&self, kind: &str, key_field: &str, key: &str, value_field: &str) -> Option<Value> {
        self.events
            .iter()
            .rev()
            .find(|e| e.kind.as_str() == kind && e.payload[key_field].as_str() == Some(key))
            .map(|e| e.payload[value_field].clone())
    }

    fn push_event(
        &mut self,
        kind: &'static str,
        stream: StreamName,
        payload: Value,
        cap: &Capability,
        in_session: bool,
    ) {
        let Ok(kind) = EventKind::from_static(kind) else {
            return;
        };
        self.push_event_of_kind(kind, stream, payload, cap, in_session);
    }

    fn push_event_of_kind(
        &mut self,
        kind: EventKind,
        stream: StreamName,
        payload: Value,
        cap: &Capability,
        in_session: bool,
    ) {
        let mut e = NewEvent::at(stream, kind, payload, self.scene.at);
        e.plugin_id = Some(self.plugin.id.clone());
        e.world_id = Some(self.scene.world.clone());
        e.session_id = in_session.then(|| self.scene.session.clone());
        e.provenance = provenance(
            &self.plugin,
            &self.scene,
            &self.engine,
            Some(cap),
            self.call_index,
        );
        self.events.push(e);
    }
}

/// The provenance of what the engine itself records during a tick.
pub fn tick_provenance(tick_id: Uuid, tick: u64, engine: &EngineInfo) -> Provenance {
    Provenance {
        tick_id: Some(tick_id),
        tick: Some(tick),
        causation_id: Some(tick_id),
        correlation_id: Some(tick_id),
        engine_version: Some(engine.version.clone()),
        engine_instance: Some(engine.instance.clone()),
        ..Provenance::default()
    }
}

/// The provenance of something a plugin did during a tick.
pub fn provenance(
    plugin: &PluginInfo,
    scene: &Scene,
    engine: &EngineInfo,
    cap: Option<&Capability>,
    call_index: u64,
) -> Provenance {
    Provenance {
        plugin_id: Some(plugin.id.clone()),
        plugin_version: Some(plugin.version.clone()),
        plugin_digest: plugin.runtime.digest().cloned(),
        plugin_endpoint: plugin.runtime.endpoint().cloned(),
        capability: cap.map(|c| c.name.into()),
        permission: cap.map(|c| c.permission.as_str().into()),
        call_index: Some(call_index),
        ..tick_provenance(scene.tick_id, scene.tick, engine)
    }
}

/// A read request as its call's `inputs` record it: the canonical text of
/// its serialized form.
fn request_key(request: &Request) -> Canonical {
    match request.read_members() {
        Some(members) => canonical::object(&members),
        None => Canonical::of(&serde_json::to_value(request).unwrap_or(Value::Null)),
    }
}

fn array(v: Option<Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    }
}

//! The payload keys that more than one crate reads: the host and the service
//! write them, the projections, the auditor's tools and the benchmarks read
//! them. Declared once so that a writer and its readers cannot drift apart.
//! (A key only its writer reads stays a literal beside that writer.)

// What every recorded plugin call holds.
/// The kind of call ([`crate::CallKind`]).
pub const CALL: &str = "call";
/// The called thing's id, on failures (`PluginCallFailed`, …).
pub const ID: &str = "id";
/// A condition's id (`ConditionEvaluated`, `ConditionSkipped`).
pub const CONDITION_ID: &str = "condition_id";
/// An effect's id (`EffectApplied`, `EffectSkipped`).
pub const EFFECT_ID: &str = "effect_id";
/// The handler's id (`EventHandled`).
pub const HANDLER: &str = "handler";
/// A simulation config provider's id.
pub const PROVIDER_ID: &str = "provider_id";
/// How long the call ran, in microseconds.
pub const DURATION_US: &str = "duration_us";
/// How long the call waited for a worker thread, in microseconds.
pub const WAITED_US: &str = "waited_us";
/// The NPC a condition or effect was called for.
pub const NPC_ID: &str = "npc_id";
/// Where that NPC is.
pub const LOCATION_ID: &str = "location_id";
/// The NPC's state as the tick gave it.
pub const NPC_STATE: &str = "npc_state";
/// The params the call was given.
pub const PARAMS: &str = "params";
/// The results of the call's reads, in order.
pub const INPUTS: &str = "inputs";
/// A read's request, in each of a call's `inputs` (`{request, result?}`).
pub const REQUEST: &str = "request";
/// What the call returned.
pub const RESULT: &str = "result";
/// The activity a condition or effect was called for.
pub const ACTIVITY: &str = "activity";
/// The call's index within its tick (seeds its RNG).
pub const CALL_INDEX: &str = "call_index";
/// The tick's own context.
pub const CONTEXT: &str = "context";
/// An error a call returned (`PluginCallFailed`).
pub const ERROR: &str = "error";
/// A panic's message (`PluginCallPanicked`).
pub const PANIC: &str = "panic";
/// The deadline a call overran (`PluginDeadlineExceeded`).
pub const DEADLINE_MS: &str = "deadline_ms";
/// What the host used in place of a failed call's value.
pub const FALLBACK: &str = "fallback";
/// The fuel a sandboxed (WebAssembly) plugin's call used: deterministic, so
/// a replay uses the same.
pub const FUEL_USED: &str = "fuel_used";
/// The sandbox limit a failed call ran into (`PluginCallFailed`): `fuel`,
/// `memory` or `result_bytes`.
pub const LIMIT: &str = "limit";
/// The event a handler handled (`EventHandled.handler_for`).
pub const HANDLER_FOR: &str = "handler_for";
/// The id of an event named by another.
pub const EVENT_ID: &str = "event_id";

// Writes and refusals.
/// A session flag's or storage entry's key.
pub const KEY: &str = "key";
/// A session flag's or storage entry's value.
pub const VALUE: &str = "value";
/// The NPC a relationship is with (`RelationshipUpdated`).
pub const NPC_KEY: &str = "npc_key";
/// What a relationship update changed.
pub const UPDATES: &str = "updates";
/// The relationship after an update.
pub const RELATIONSHIP: &str = "relationship";
/// An NPC's state (`NpcStateSet`).
pub const STATE: &str = "state";
/// The capability a denial refused (`PermissionDenied`).
pub const CAPABILITY: &str = "capability";
/// The permission it needed.
pub const PERMISSION: &str = "permission";
/// The failure mode the host applied.
pub const MODE: &str = "mode";
/// Why something was refused or skipped.
pub const REASON: &str = "reason";

// Ticks and the engine.
/// A tick's id (`TickProcessed`).
pub const TICK_ID: &str = "tick_id";
/// A tick's number.
pub const TICK: &str = "tick";
/// How many events a tick added.
pub const EVENTS: &str = "events";
/// Where a tick came from (`nats:<subject>`, `http`, `demo`).
pub const SOURCE: &str = "source";
/// A plugin's id, in engine events (`PluginSkipped`, `MetricsReset`).
pub const PLUGIN_ID: &str = "plugin_id";
/// A loaded plugin's manifest (`PluginLoaded`).
pub const MANIFEST: &str = "manifest";
/// The permissions a loaded plugin was granted (`PluginLoaded`).
pub const GRANTED: &str = "granted";
/// What a loaded plugin registered (`PluginLoaded`).
pub const REGISTERED: &str = "registered";
/// How a loaded plugin runs (`PluginLoaded`): `native` or `wasm`.
pub const RUNTIME: &str = "runtime";
/// The `sha256:<hex>` digest of a sandboxed plugin's module (`PluginLoaded`).
pub const DIGEST: &str = "digest";
/// Where a remote plugin is called (`PluginLoaded`, circuit events).
pub const ENDPOINT: &str = "endpoint";
/// What a remote plugin answered, as it came back (its call's event).
pub const REPLY: &str = "reply";
/// Who asked for a metrics reset (`MetricsReset`).
pub const REQUESTED_BY: &str = "requested_by";

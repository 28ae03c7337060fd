//! `provenant audit trail`: the plugin actions that match, oldest first,
//! each with its provenance and its causal chain: the tick, the call that
//! made it, the activity, the condition results that led to an effect, and
//! for an event handler the event it handled.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Context;
use clap::Args;
use provenant_events::{CallKind, Event, Position, SessionId, WorldId, keys, kinds};
use serde::Serialize;
use serde_json::Value;

use super::reading::open_read_only;
use super::ticks::{CallEvents, TickEvents, TickReader, TickScope};
use crate::commands::args::{AuditScope, DbArgs};

#[derive(Debug, Args)]
pub struct TrailArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub scope: AuditScope,
    /// Only actions of calls about this NPC.
    #[arg(long)]
    pub npc: Option<String>,
    /// Only events of this kind (e.g. EffectApplied, RelationshipUpdated,
    /// PermissionDenied, plugin:game-stealth:suspicion_raised).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only actions of this tick (its number).
    #[arg(long)]
    pub tick: Option<u64>,
    /// Only actions at this position or later.
    #[arg(long, value_name = "POS")]
    pub since: Option<u64>,
    /// At most this many actions; 0: all.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl TrailArgs {
    pub fn config(self) -> TrailConfig {
        TrailConfig {
            database_url: self.db.database_url,
            filter: TrailFilter {
                world: self.scope.world,
                session: self.scope.session,
                npc: self.npc,
                plugin: self.scope.plugin,
                kind: self.kind,
                tick: self.tick,
            },
            since: self.since,
            limit: (self.limit > 0).then_some(self.limit),
            json: self.json,
        }
    }
}

/// `provenant audit trail`.
pub async fn run(args: TrailArgs) -> anyhow::Result<()> {
    trail_command(&args.config()).await
}

/// Settings of `provenant audit trail`.
#[derive(Debug, Clone)]
pub struct TrailConfig {
    pub database_url: String,
    pub filter: TrailFilter,
    /// Only actions at this position or later.
    pub since: Option<Position>,
    /// At most this many actions (`None`: all).
    pub limit: Option<usize>,
    pub json: bool,
}

/// Which actions: those that match every field given.
#[derive(Debug, Clone, Default)]
pub struct TrailFilter {
    pub world: Option<WorldId>,
    pub session: Option<SessionId>,
    /// The NPC a call was about (its writes are about the same NPC).
    pub npc: Option<String>,
    pub plugin: Option<String>,
    pub kind: Option<String>,
    /// The tick's number.
    pub tick: Option<u64>,
}

/// One plugin action and why it happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    pub position: Position,
    pub event_id: String,
    pub kind: String,
    /// Game time.
    pub occurred_at: String,
    /// The tick's world and session (a plugin's storage writes and denials
    /// carry no session of their own).
    pub world_id: Option<String>,
    pub session_id: Option<String>,
    /// The NPC of the call that made the action, if it was about one.
    pub npc_id: Option<String>,
    pub plugin_id: String,
    pub provenance: Value,
    pub payload: Value,
    pub cause: Cause,
}

/// The causal chain of an action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cause {
    pub tick: TickRef,
    /// The plugin call that made the action (absent when the action is the
    /// call's own event).
    pub call: Option<CallRef>,
    /// The activity a condition or effect was evaluated for.
    pub activity: Option<String>,
    /// For a condition or an effect (and what it wrote): the conditions of
    /// the same activity and NPC evaluated before it in the tick, each with
    /// its result (an effect runs only after all of them held).
    pub conditions: Vec<ConditionRef>,
    /// For an event handler (and what it wrote): the event it handled.
    pub handled: Option<HandledRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TickRef {
    pub tick_id: String,
    pub tick: Option<u64>,
    /// The position of the tick's `TickProcessed`.
    pub processed_at: Option<Position>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRef {
    pub position: Position,
    pub kind: String,
    /// `condition`, `effect`, `event_handler` or `simulation_config`.
    pub call: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionRef {
    pub position: Position,
    pub condition_id: String,
    /// `true`/`false`, or `null` when it failed.
    pub result: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandledRef {
    pub position: Position,
    pub kind: String,
    pub event_id: String,
    /// The call that emitted the handled event, when a plugin did.
    pub emitted_by: Option<CallRef>,
}

impl TrailFilter {
    fn matches(&self, a: &Action) -> bool {
        fn eq(want: Option<&str>, got: Option<&str>) -> bool {
            want.is_none_or(|w| got == Some(w))
        }
        eq(
            self.world.as_ref().map(|w| w.as_str()),
            a.world_id.as_deref(),
        ) && eq(
            self.session.as_ref().map(|s| s.as_str()),
            a.session_id.as_deref(),
        ) && eq(self.npc.as_deref(), a.npc_id.as_deref())
            && eq(self.plugin.as_deref(), Some(&a.plugin_id))
            && eq(self.kind.as_deref(), Some(&a.kind))
            && self.tick.is_none_or(|t| a.cause.tick.tick == Some(t))
    }
}

/// Every plugin action of a tick, with its causal chain: each event a
/// plugin call recorded or produced.
pub fn actions_of(tick: &TickEvents) -> Vec<Action> {
    let calls = tick.calls();
    // The call of each event, by position: itself for a call's own event.
    let mut call_of: HashMap<Position, usize> = HashMap::new();
    for (i, call) in calls.iter().enumerate() {
        call_of.insert(call.event.position, i);
        for e in &call.produced {
            call_of.insert(e.position, i);
        }
    }
    let tick_ref = TickRef {
        tick_id: tick.tick_id.to_string(),
        tick: tick.tick(),
        processed_at: tick.processed().map(|e| e.position),
    };
    let (world, session) = (tick.world(), tick.session());
    let mut actions = Vec::new();
    for e in &tick.events {
        let (Some(plugin), Some(_)) = (&e.plugin_id, e.provenance.call_index) else {
            continue;
        };
        // `None` for what a call made without recording an event of its own
        // (a simulation config provider that returned a value).
        let call = call_of.get(&e.position).map(|&i| &calls[i]);
        let own = call.is_some_and(|c| c.event.position == e.position);
        actions.push(Action {
            position: e.position,
            event_id: e.event_id.to_string(),
            kind: e.kind.to_string(),
            occurred_at: provenant_events::event::format_timestamp(&e.occurred_at),
            world_id: world.map(str::to_owned),
            session_id: session.map(str::to_owned),
            npc_id: call.and_then(|c| c.npc()).map(str::to_owned),
            plugin_id: plugin.to_string(),
            provenance: serde_json::to_value(&e.provenance).unwrap_or(Value::Null),
            payload: e.payload.value().clone(),
            cause: Cause {
                tick: tick_ref.clone(),
                call: call.filter(|_| !own).map(call_ref),
                activity: call.and_then(|c| c.activity()).map(str::to_owned),
                conditions: call
                    .map(|c| conditions_before(&calls, c))
                    .unwrap_or_default(),
                handled: call.and_then(|c| handled(tick, &calls, &call_of, c)),
            },
        });
    }
    actions
}

fn call_ref(call: &CallEvents<'_>) -> CallRef {
    CallRef {
        position: call.event.position,
        kind: call.event.kind.to_string(),
        call: call.call().to_owned(),
        id: call.id().to_owned(),
    }
}

/// The conditions evaluated before `call` for the same activity and NPC.
fn conditions_before(calls: &[CallEvents<'_>], call: &CallEvents<'_>) -> Vec<ConditionRef> {
    let (Some(activity), Some(index)) = (call.activity(), call.call_index()) else {
        return Vec::new();
    };
    calls
        .iter()
        .filter(|c| {
            c.kind() == CallKind::Condition
                && c.activity() == Some(activity)
                && c.npc() == call.npc()
                && c.call_index().is_some_and(|i| i < index)
        })
        .map(|c| ConditionRef {
            position: c.event.position,
            condition_id: c.id().to_owned(),
            result: match c.event.kind.as_str() {
                kinds::CONDITION_EVALUATED => c.event.payload.value()[keys::RESULT].clone(),
                _ => Value::Null,
            },
        })
        .collect()
}

/// For a handler call: the event it handled, and the call that emitted it.
fn handled(
    tick: &TickEvents,
    calls: &[CallEvents<'_>],
    call_of: &HashMap<Position, usize>,
    call: &CallEvents<'_>,
) -> Option<HandledRef> {
    if call.kind() != CallKind::EventHandler {
        return None;
    }
    let id = call.event.payload.value()[keys::PARAMS][keys::EVENT_ID].as_str()?;
    let event: &Event = tick.event(id)?;
    Some(HandledRef {
        position: event.position,
        kind: event.kind.to_string(),
        event_id: id.to_owned(),
        emitted_by: call_of.get(&event.position).map(|&i| call_ref(&calls[i])),
    })
}

/// `provenant audit trail`: prints the matching actions as they are found
/// (a table, or JSON lines with `--json`).
pub async fn trail_command(config: &TrailConfig) -> anyhow::Result<()> {
    let log = open_read_only(&config.database_url).await?;
    let stdout = std::io::stdout();
    let result = trail(&log, config, &mut stdout.lock()).await;
    log.close().await;
    result.map(|_| ())
}

/// Writes the matching actions of `log` to `out` as `audit trail` prints
/// them; how many it wrote.
pub async fn trail(
    log: &provenant_log::EventLog,
    config: &TrailConfig,
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    let head = log.head().await.context("cannot read the log")?;
    let since = config.since.unwrap_or(1).max(1);
    let scope = TickScope {
        world: config.filter.world.clone(),
        session: config.filter.session.clone(),
        plugin: config.filter.plugin.clone(),
    };
    let mut reader = TickReader::scoped(log, since, head.position, &scope)
        .await
        .context("cannot read the log")?;
    let limit = config.limit.unwrap_or(usize::MAX);
    let mut shown = 0usize;
    if !config.json {
        writeln!(out, "{}", header())?;
    }
    'ticks: while let Some(tick) = reader.next().await.context("cannot read the log")? {
        for action in actions_of(&tick) {
            if action.position < since || !config.filter.matches(&action) {
                continue;
            }
            if shown == limit {
                if !config.json {
                    writeln!(
                        out,
                        "(the first {limit} shown; the next is at position {}: --since {} for more)",
                        action.position, action.position
                    )?;
                }
                break 'ticks;
            }
            shown += 1;
            if config.json {
                serde_json::to_writer(&mut *out, &action)?;
                writeln!(out)?;
            } else {
                writeln!(out, "{}", row(&action))?;
                writeln!(out, "{:>10} because: {}", "", because(&action))?;
            }
        }
    }
    if !config.json && shown == 0 {
        writeln!(out, "(no plugin action matches)")?;
    }
    out.flush()?;
    Ok(shown)
}

fn header() -> String {
    format!(
        "{:>9} {:>6} {:<16} {:<8} {:<22} {:<22} {:<26} WHAT",
        "POSITION", "TICK", "WORLD/SESSION", "NPC", "PLUGIN", "KIND", "PERMISSION"
    )
}

fn row(a: &Action) -> String {
    let tick = a.cause.tick.tick.map_or("?".into(), |t| t.to_string());
    let version = a.provenance["plugin_version"].as_str().unwrap_or("?");
    format!(
        "{:>9} {:>6} {:<16} {:<8} {:<22} {:<22} {:<26} {}",
        a.position,
        tick,
        format!(
            "{}/{}",
            a.world_id.as_deref().unwrap_or("?"),
            a.session_id.as_deref().unwrap_or("?")
        ),
        a.npc_id.as_deref().unwrap_or("-"),
        format!("{}@{version}", a.plugin_id),
        a.kind,
        a.provenance["permission"].as_str().unwrap_or("-"),
        clip(&what(a), 90)
    )
}

/// What the action did, in a few words.
fn what(a: &Action) -> String {
    let p = &a.payload;
    let s = |k: &str| p[k].as_str().unwrap_or("?").to_owned();
    match a.kind.as_str() {
        kinds::CONDITION_EVALUATED => {
            format!("{} -> {}", short(&s(keys::CONDITION_ID)), p[keys::RESULT])
        }
        kinds::EFFECT_APPLIED => format!("{} -> {}", short(&s(keys::EFFECT_ID)), p[keys::RESULT]),
        kinds::EVENT_HANDLED => s(keys::HANDLER),
        kinds::SESSION_FLAG_SET | kinds::PLUGIN_STORAGE_SET => {
            format!("{} = {}", s(keys::KEY), p[keys::VALUE])
        }
        kinds::RELATIONSHIP_UPDATED => {
            format!("{} updated with {}", s(keys::NPC_KEY), p[keys::UPDATES])
        }
        kinds::NPC_STATE_SET => format!("{} state {}", s(keys::NPC_ID), p[keys::STATE]),
        kinds::PERMISSION_DENIED => format!(
            "denied {} ({}): {}",
            s(keys::CAPABILITY),
            s(keys::MODE),
            s(keys::REASON)
        ),
        kinds::PLUGIN_CALL_FAILED => format!("{} failed: {}", short(&call_id(p)), s(keys::ERROR)),
        kinds::PLUGIN_CALL_PANICKED => {
            format!("{} panicked: {}", short(&call_id(p)), s(keys::PANIC))
        }
        kinds::PLUGIN_DEADLINE_EXCEEDED => {
            format!(
                "{} overran its {} ms deadline",
                short(&call_id(p)),
                p[keys::DEADLINE_MS]
            )
        }
        _ => p.to_string(),
    }
}

/// Why the action happened, in a few words.
fn because(a: &Action) -> String {
    let c = &a.cause;
    let mut parts = Vec::new();
    if let Some(call) = &c.call {
        parts.push(format!(
            "{} {} at {}",
            call.call,
            short(&call.id),
            call.position
        ));
    }
    if let Some(activity) = &c.activity {
        let mut s = format!("activity {activity}");
        if !c.conditions.is_empty() {
            let held: Vec<String> = c
                .conditions
                .iter()
                .map(|r| format!("{}={} at {}", short(&r.condition_id), r.result, r.position))
                .collect();
            s.push_str(&format!(" after {}", held.join(", ")));
        }
        parts.push(s);
    }
    if let Some(h) = &c.handled {
        let mut s = format!("handled {} at {}", h.kind, h.position);
        if let Some(by) = &h.emitted_by {
            s.push_str(&format!(
                " (emitted by {} {} at {})",
                by.call,
                short(&by.id),
                by.position
            ));
        }
        parts.push(s);
    }
    parts.push(format!(
        "tick {} ({}{})",
        c.tick.tick.map_or("?".into(), |t| t.to_string()),
        c.tick.tick_id,
        c.tick
            .processed_at
            .map(|p| format!(", processed at {p}"))
            .unwrap_or_default()
    ));
    parts.join("; ")
}

fn call_id(p: &Value) -> String {
    [
        keys::CONDITION_ID,
        keys::EFFECT_ID,
        keys::HANDLER,
        keys::PROVIDER_ID,
    ]
    .into_iter()
    .find_map(|k| p[k].as_str())
    .unwrap_or("?")
    .to_owned()
}

/// `plugin:<id>:<name>` and `effect:plugin:<id>:<name>` as `<name>`.
fn short(id: &str) -> &str {
    if id.starts_with("plugin:") || id.starts_with("effect:plugin:") {
        id.rsplit(':').next().unwrap_or(id)
    } else {
        id
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

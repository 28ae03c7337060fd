//! `provenant demo`: the whole story in one process, on the embedded log by
//! default. Two worlds use the four example plugins through the plugin host;
//! a few thousand ticks are evaluated and every plugin action is appended to
//! the log in group-committed batches; then the demo shows an idempotent
//! retry, an optimistic-concurrency refusal, what each plugin did, and the
//! verified head of the chain.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::Duration;
use provenant_events::log::{BackendKind, LogConfig, redact_url};
use provenant_events::{
    AppendBatch, EventKind, EventLog, ExpectedVersion, NewEvent, Provenance, SessionId, StreamName,
    VerifyConfig, WorldId,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::host::context::{EngineInfo, TickNpc};
use crate::host::kinds;
use crate::host::state::GameState;
use crate::host::tick::{Tick, evaluate_tick};
use crate::host::{HostConfig, PluginHost, plugins};

/// Settings of `provenant demo`.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub database_url: String,
    pub ticks: u64,
}

/// Ticks appended per batch: the group commit the engine does.
const TICKS_PER_BATCH: u64 = 20;
const NPCS: usize = 3;

pub async fn run(config: &DemoConfig) -> anyhow::Result<()> {
    let url = redact_url(&config.database_url);
    let log = EventLog::open(&LogConfig::new(&config.database_url))
        .await
        .with_context(|| format!("cannot open the log at {url}"))?;
    println!("provenant demo");
    println!("log: {} at {url}", log.backend_kind());
    if log.backend_kind() == BackendKind::Sqlite {
        println!("(set DATABASE_URL=postgres://… to use PostgreSQL instead)");
    }
    let host = PluginHost::start(
        plugins::builtin(),
        HostConfig {
            engine: EngineInfo {
                version: crate::ENGINE_VERSION.into(),
                instance: "demo".into(),
            },
            ..HostConfig::default()
        },
    )?;
    let mut state = Arc::new(fold_log(&log).await?);
    let start_head = log.head().await?;
    if start_head.position > 0 {
        println!(
            "(the log already holds {} events; this run appends after them)",
            start_head.position
        );
    }
    println!();

    let loaded = host.startup_events();
    println!(
        "plugins loaded: {} (each load is a PluginLoaded event)",
        host.plugins()
            .iter()
            .map(|p| p.info.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    log.append(AppendBatch::new(loaded)).await?;

    let tavern = WorldId::new("tavern")?;
    let cellar = WorldId::new("cellar")?;
    let mut setup = vec![
        world_configured(&tavern, "The Tavern", tavern_behavior()),
        world_configured(
            &cellar,
            "The Cellar",
            json!({
                "enabledPlugins": ["example-nosy"],
                "activities": [{"id": "snoop", "effects": [{"id": "effect:plugin:example-nosy:peek"}]}],
            }),
        ),
    ];
    for e in &mut setup {
        Arc::make_mut(&mut state).apply(&*e);
        e.provenance = engine_provenance();
    }
    log.append(AppendBatch::new(setup)).await?;
    println!(
        "worlds configured: tavern (stealth, romance, flaky; nosy disabled), cellar (only nosy)"
    );

    let sessions = [SessionId::new("s1")?, SessionId::new("s2")?];
    let game_start = provenant_events::event::now();
    let mut per_plugin: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    let mut last_batch = AppendBatch::default();
    let mut last_positions = Vec::new();
    let (mut written, mut batches, mut ticks_run) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut tick_no = 0;
    while tick_no < config.ticks {
        let mut events = Vec::new();
        for t in tick_no..(tick_no + TICKS_PER_BATCH).min(config.ticks) {
            let n = t + 1;
            let at = game_start + Duration::seconds(n as i64);
            for session in &sessions {
                events.extend(evaluate_tick(
                    &host,
                    &mut state,
                    &tavern_tick(&tavern, session, n, at),
                ));
                ticks_run += 1;
            }
            if n.is_multiple_of(100) {
                events.extend(evaluate_tick(
                    &host,
                    &mut state,
                    &cellar_tick(&cellar, n, at),
                ));
                ticks_run += 1;
            }
        }
        tick_no += TICKS_PER_BATCH;
        for e in &events {
            if let Some(plugin) = &e.plugin_id
                && let Some(label) = summary_label(e.kind.as_str())
            {
                *per_plugin
                    .entry(plugin.to_string())
                    .or_default()
                    .entry(label)
                    .or_default() += 1;
            }
        }
        last_batch = AppendBatch::new(events);
        let out = log.append(last_batch.clone()).await?;
        written += out.written as u64;
        batches += 1;
        last_positions = out.positions;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{ticks_run} ticks evaluated: {written} events recorded in {batches} atomic batches, {:.0} events/s, each durable when its batch returns",
        written as f64 / elapsed.max(1e-9)
    );
    println!();
    let columns = [
        "evaluations",
        "effects",
        "handled",
        "failures",
        "panics",
        "timeouts",
        "denials",
    ];
    print!("  {:<15}", "plugin");
    for c in columns {
        print!(" {c:>11}");
    }
    println!();
    for (plugin, counts) in &per_plugin {
        print!("  {plugin:<15}");
        for c in columns {
            print!(" {:>11}", counts.get(c).copied().unwrap_or(0));
        }
        println!();
    }
    println!(
        "  (failures, panics and timeouts come from example-flaky on purpose; denials from example-nosy,"
    );
    println!(
        "   which probes another plugin's flags and a session write in each failure mode: RAISE, WARN, SILENT)"
    );
    if let Some(w) = state.world(&tavern) {
        println!(
            "  tavern's effective simulation config: {}",
            w.effective_config.clone().unwrap_or(Value::Null)
        );
    }
    println!();

    let retry = log.append(last_batch).await?;
    println!(
        "retrying the last batch: {} events written, same positions: {} (appends are idempotent by event_id)",
        retry.written,
        if retry.positions == last_positions {
            "yes"
        } else {
            "NO"
        }
    );
    let stream = StreamName::session(&tavern, &sessions[0]);
    let version = log.stream_version(&stream).await?;
    let mut late = NewEvent::new(stream.clone(), EventKind::new("DemoLateWrite")?, json!({}));
    late.world_id = Some(tavern.clone());
    let stale = AppendBatch::new(vec![late])
        .expect(stream, ExpectedVersion::Exact(version.saturating_sub(5)));
    match log.append(stale).await {
        Err(e) => println!(
            "a writer that read {} five events ago: refused: {e}",
            sessions[0]
        ),
        Ok(_) => anyhow::bail!("a stale expected version was accepted"),
    }

    let report = log.verify(&VerifyConfig::default(), &mut |_| {}).await?;
    println!();
    match &report.violation {
        None => println!(
            "chain verified: {} events intact, head {}",
            report.count, report.head
        ),
        Some(v) => println!(
            "chain TAMPERED at position {}: {}: {}",
            v.position, v.fault, v.detail
        ),
    }
    println!("store the head elsewhere, then check the log later with:");
    println!("  provenant audit verify --expect-head {}", report.head);
    log.close().await;
    Ok(())
}

/// The state the log describes, folded from its first event.
async fn fold_log(log: &EventLog) -> anyhow::Result<GameState> {
    let mut state = GameState::default();
    let mut after = 0;
    loop {
        let page = log.read_forward(after, 5_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for e in &page {
            state.apply(e);
        }
    }
    Ok(state)
}

fn summary_label(kind: &str) -> Option<&'static str> {
    Some(match kind {
        kinds::CONDITION_EVALUATED => "evaluations",
        kinds::EFFECT_APPLIED => "effects",
        kinds::EVENT_HANDLED => "handled",
        kinds::PLUGIN_CALL_FAILED => "failures",
        kinds::PLUGIN_CALL_PANICKED => "panics",
        kinds::PLUGIN_DEADLINE_EXCEEDED => "timeouts",
        kinds::PERMISSION_DENIED => "denials",
        _ => return None,
    })
}

fn tavern_behavior() -> Value {
    json!({
        "disabledPlugins": ["example-nosy"],
        "simulationConfig": {"tickSeconds": 1},
        "activities": [
            {"id": "sneak",
             "conditions": [{"id": "plugin:game-stealth:has_disguise"}],
             "effects": [{"id": "effect:plugin:game-stealth:raise_suspicion", "params": {"amount": 1}}]},
            {"id": "chat",
             "effects": [{"id": "effect:plugin:game-romance:affinity_boost", "params": {"amount": 1}}]},
            {"id": "flirt",
             "conditions": [{"id": "plugin:game-romance:is_attracted", "params": {"threshold": 100}}],
             "effects": [{"id": "effect:plugin:game-romance:affinity_boost", "params": {"amount": 3}}]},
            {"id": "gamble",
             "conditions": [{"id": "plugin:example-flaky:coin_flip",
                             "params": {"fail_rate": 0.02, "panic_rate": 0.005, "overrun_rate": 0.001, "overrun_ms": 80}}],
             "effects": [{"id": "effect:plugin:game-stealth:raise_suspicion", "params": {"amount": 0.5}}]}
        ]
    })
}

fn world_configured(world: &WorldId, name: &str, behavior: Value) -> NewEvent {
    let kind =
        EventKind::new(kinds::WORLD_CONFIGURED).unwrap_or_else(|_| unreachable!("constant kind"));
    let mut e = NewEvent::new(
        StreamName::world(world),
        kind,
        json!({"name": name, "meta": {"behavior": behavior}}),
    );
    e.world_id = Some(world.clone());
    e
}

fn tavern_tick(
    world: &WorldId,
    session: &SessionId,
    n: u64,
    at: chrono::DateTime<chrono::Utc>,
) -> Tick {
    let npcs = (0..NPCS)
        .map(|i| TickNpc {
            npc_id: format!("npc-{i}"),
            location_id: Some(["hall", "bar", "stairs"][i % 3].into()),
            state: json!({"disguise": (n + i as u64).is_multiple_of(7)}),
        })
        .collect();
    Tick {
        tick_id: Uuid::now_v7(),
        world_id: world.clone(),
        session_id: session.clone(),
        tick: n,
        at,
        npcs,
        session_updates: None,
        context: None,
    }
}

fn cellar_tick(world: &WorldId, n: u64, at: chrono::DateTime<chrono::Utc>) -> Tick {
    Tick {
        tick_id: Uuid::now_v7(),
        world_id: world.clone(),
        session_id: SessionId::new("s1").unwrap_or_else(|_| unreachable!("valid id")),
        tick: n,
        at,
        npcs: vec![TickNpc {
            npc_id: "rat".into(),
            location_id: Some("cellar".into()),
            state: json!({}),
        }],
        session_updates: None,
        context: None,
    }
}

fn engine_provenance() -> Provenance {
    Provenance {
        engine_version: Some(crate::ENGINE_VERSION.into()),
        engine_instance: Some("demo".into()),
        ..Provenance::default()
    }
}

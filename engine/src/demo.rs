//! `provenant demo`: the whole story in one process, on the embedded log by
//! default. At this stage the story is the log itself: a world is configured,
//! game ticks produce plugin actions (synthetic until the plugin host lands),
//! each recorded with provenance in atomic batches, then retried, contested
//! and verified.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use provenant_events::log::{BackendKind, LogConfig, redact_url};
use provenant_events::{
    AppendBatch, EventKind, EventLog, ExpectedVersion, NewEvent, Provenance, SessionId, StreamName,
    VerifyConfig, WorldId,
};
use serde_json::json;

use crate::sample::{self, Rng, Scene};

/// Settings of `provenant demo`.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub database_url: String,
    pub ticks: u64,
}

/// Ticks appended per batch: the group commit the engine will do.
const TICKS_PER_BATCH: u64 = 20;

pub async fn run(config: &DemoConfig) -> anyhow::Result<()> {
    let url = redact_url(&config.database_url);
    let log = EventLog::open(&LogConfig::new(&config.database_url))
        .await
        .with_context(|| format!("cannot open the log at {url}"))?;
    println!("provenant demo: the event log");
    println!("log: {} at {url}", log.backend_kind());
    if log.backend_kind() == BackendKind::Sqlite {
        println!("(set DATABASE_URL=postgres://… to use PostgreSQL instead)");
    }
    let start_head = log.head().await?;
    if start_head.position > 0 {
        println!(
            "(the log already holds {} events; this run appends after them)",
            start_head.position
        );
    }
    println!();

    let world = WorldId::new("tavern")?;
    let sessions = [SessionId::new("s1")?, SessionId::new("s2")?];
    let mut configured = NewEvent::new(
        StreamName::world(&world),
        EventKind::new("WorldConfigured")?,
        json!({"name": "The Tavern", "meta": {"behavior": {
            "enabledPlugins": sample::PLUGINS.iter().map(|p| p.0).collect::<Vec<_>>(),
            "simulationConfig": {"tickSeconds": 1}
        }}}),
    );
    configured.world_id = Some(world.clone());
    configured.provenance = engine_provenance();
    let out = log.append(AppendBatch::new(vec![configured])).await?;
    println!(
        "world tavern configured: WorldConfigured at position {}",
        out.positions[0]
    );

    let mut rng = Rng::new(0x7072_6f76);
    let game_start = provenant_events::event::now();
    let mut per_plugin: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut last_batch = AppendBatch::default();
    let mut last_positions = Vec::new();
    let mut written = 0u64;
    let mut batches = 0u64;
    let started = Instant::now();
    let mut tick = 0;
    while tick < config.ticks {
        let mut events = Vec::new();
        for t in tick..(tick + TICKS_PER_BATCH).min(config.ticks) {
            for session in &sessions {
                let scene = Scene::new(&world, session, t + 1, game_start);
                for _ in 0..1 + rng.below(3) {
                    let e = sample::plugin_action(&scene, &mut rng);
                    let counts = per_plugin
                        .entry(
                            e.plugin_id
                                .as_ref()
                                .map(|p| p.to_string())
                                .unwrap_or_default(),
                        )
                        .or_default();
                    if e.kind.as_str() == "EffectApplied" {
                        counts.1 += 1;
                    } else {
                        counts.0 += 1;
                    }
                    events.push(e);
                }
            }
        }
        tick += TICKS_PER_BATCH;
        last_batch = AppendBatch::new(events);
        let out = log.append(last_batch.clone()).await?;
        written += out.written as u64;
        batches += 1;
        last_positions = out.positions;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{} ticks of {} sessions: {written} plugin actions recorded in {batches} atomic batches, {:.0} events/s, each durable when its batch returns",
        config.ticks,
        sessions.len(),
        written as f64 / elapsed.max(1e-9)
    );
    println!(
        "  {:<16} {:>22} {:>16}",
        "plugin", "condition evaluations", "effects applied"
    );
    for (plugin, (conditions, effects)) in &per_plugin {
        println!("  {plugin:<16} {conditions:>22} {effects:>16}");
    }
    println!("  (plugin actions are synthetic at this stage: the plugin host comes next)");
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

    let stream = StreamName::session(&world, &sessions[0]);
    let version = log.stream_version(&stream).await?;
    let mut late =
        sample::plugin_action(&Scene::new(&world, &sessions[0], 1, game_start), &mut rng);
    late.kind = EventKind::new("EffectApplied")?;
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

fn engine_provenance() -> Provenance {
    Provenance {
        engine_version: Some(crate::ENGINE_VERSION.into()),
        engine_instance: Some("demo".into()),
        ..Provenance::default()
    }
}

//! The plugin host's events in the real logs: every plugin action lands in
//! the log with complete provenance, the chain verifies, and the state folded
//! back from the log is the state the host evaluated against.

use std::sync::Arc;

use chrono::Utc;
use provenant_events::kinds;
use provenant_events::{EventKind, NewEvent, SessionId, StreamName, WorldId};
use provenant_host::context::TickNpc;
use provenant_host::state::GameState;
use provenant_host::tick::{Tick, evaluate_tick};
use provenant_host::{HostConfig, PluginHost};
use provenant_log::{AppendBatch, VerifyConfig};
use provenant_plugins as plugins;
use provenant_tests::{Backend, TestLog};
use serde_json::json;
use uuid::Uuid;

async fn run(backend: Backend) {
    let t = TestLog::new(backend).await;
    let log = t.open().await;
    let host = PluginHost::start(plugins::builtin(), HostConfig::default()).unwrap();
    log.append(AppendBatch::new(host.startup_events()))
        .await
        .unwrap();

    let world = WorldId::new("w1").unwrap();
    let mut configured = NewEvent::new(
        StreamName::world(&world),
        EventKind::new(kinds::WORLD_CONFIGURED).unwrap(),
        json!({"name": "W", "meta": {"behavior": {"activities": [
            {"id": "sneak", "conditions": [{"id": "plugin:game-stealth:has_disguise"}],
             "effects": [{"id": "effect:plugin:game-stealth:raise_suspicion"}]},
            {"id": "woo", "effects": [{"id": "effect:plugin:game-romance:affinity_boost"}]},
            {"id": "nosy", "effects": [{"id": "effect:plugin:example-nosy:peek"}]},
            {"id": "flip", "conditions": [{"id": "plugin:example-flaky:coin_flip", "params": {"fail_rate": 0.3}}]}
        ]}}}),
    );
    configured.world_id = Some(world.clone());
    let mut state = GameState::default();
    state.apply(&configured);
    log.append(AppendBatch::new(vec![configured]))
        .await
        .unwrap();

    let mut state = Arc::new(state);
    for n in 1..=5 {
        let tick = Tick {
            tick_id: Uuid::now_v7(),
            world_id: world.clone(),
            session_id: SessionId::new("s1").unwrap(),
            tick: n,
            at: Utc::now(),
            npcs: vec![TickNpc {
                npc_id: "guard".into(),
                location_id: None,
                state: json!({"disguise": true}),
            }],
            session_updates: None,
            context: None,
        };
        let events = evaluate_tick(&host, &mut state, &tick);
        log.append(AppendBatch::new(events)).await.unwrap();
    }

    let all = log.read_forward(0, 10_000).await.unwrap();
    let count = |kind: &str| all.iter().filter(|e| e.kind.as_str() == kind).count();
    assert_eq!(count(kinds::PLUGIN_LOADED), 4);
    assert_eq!(count(kinds::PERMISSION_DENIED), 5 * 6);
    assert_eq!(count(kinds::EVENT_HANDLED), 5);
    assert_eq!(count("plugin:game-stealth:suspicion_raised"), 5);
    assert!(count(kinds::CONDITION_EVALUATED) + count(kinds::PLUGIN_CALL_FAILED) >= 10);
    for e in all
        .iter()
        .filter(|e| e.plugin_id.is_some() && e.kind.as_str() != kinds::PLUGIN_LOADED)
    {
        let p = &e.provenance;
        assert_eq!(p.plugin_id, e.plugin_id, "{}", e.kind);
        assert!(
            p.plugin_version.is_some() && p.capability.is_some() && p.permission.is_some(),
            "{}",
            e.kind
        );
        assert!(
            p.tick_id.is_some() && p.tick.is_some() && p.causation_id.is_some(),
            "{}",
            e.kind
        );
        assert!(
            p.engine_version.is_some() && p.engine_instance.is_some(),
            "{}",
            e.kind
        );
        assert!(p.call_index.is_some(), "{}", e.kind);
    }
    let report = log
        .verify(&VerifyConfig::default(), &mut |_| {})
        .await
        .unwrap();
    assert!(report.intact(), "{report:?}");

    // The state folded from the log is the state the host ended with.
    let mut folded = GameState::default();
    for e in &all {
        folded.apply(e);
    }
    assert_eq!(&folded, state.as_ref());
    let flags = &folded
        .session(&world, &SessionId::new("s1").unwrap())
        .unwrap()
        .flags;
    assert_eq!(flags["plugin:game-stealth:suspicion:guard"], json!(5.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_actions_land_in_postgres_with_provenance() {
    run(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_actions_land_in_sqlite_with_provenance() {
    run(Backend::Sqlite).await;
}

//! The plugin host, end to end in memory: the example plugins through ticks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use provenant_events::{EventKind, NewEvent, SessionId, StreamName, WorldId};
use serde_json::{Value, json};
use uuid::Uuid;

use provenant_events::kinds;
use provenant_host::context::TickNpc;
use provenant_host::manifest::{LoadError, Manifest, PluginKind, PluginSettings};
use provenant_host::registry::{RegisterError, Registrar, Registry};
use provenant_host::runner::Isolation;
use provenant_host::state::GameState;
use provenant_host::tick::{Tick, evaluate_tick};
use provenant_host::{HostConfig, HostError, Plugin, PluginHost};
use provenant_plugins::{self as plugins, ExampleFlaky};

fn host() -> PluginHost {
    PluginHost::start(plugins::builtin(), HostConfig::default()).expect("host starts")
}

fn world() -> WorldId {
    WorldId::new("w1").unwrap()
}

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A state in which world w1 is configured with `behavior`.
fn configured(behavior: Value) -> Arc<GameState> {
    let mut e = NewEvent::new(
        StreamName::world(&world()),
        EventKind::new(kinds::WORLD_CONFIGURED).unwrap(),
        json!({"name": "W1", "meta": {"behavior": behavior}}),
    );
    e.world_id = Some(world());
    let mut state = GameState::default();
    state.apply(&e);
    Arc::new(state)
}

fn tick(n: u64, npcs: &[(&str, Value)]) -> Tick {
    Tick {
        tick_id: Uuid::from_u128(0x1000 + n as u128),
        world_id: world(),
        session_id: SessionId::new("s1").unwrap(),
        tick: n,
        at: at(),
        npcs: npcs
            .iter()
            .map(|(id, state)| TickNpc {
                npc_id: id.to_string(),
                location_id: Some("hall".into()),
                state: state.clone(),
            })
            .collect(),
        session_updates: None,
        context: None,
    }
}

fn of_kind<'a>(events: &'a [NewEvent], kind: &str) -> Vec<&'a NewEvent> {
    events.iter().filter(|e| e.kind.as_str() == kind).collect()
}

fn activity(id: &str, conditions: Value, effects: Value) -> Value {
    json!({"id": id, "conditions": conditions, "effects": effects})
}

#[test]
fn an_activity_applies_its_effects_when_all_conditions_hold() {
    let host = host();
    let mut state = configured(json!({"activities": [activity(
        "sneak",
        json!([{"id": "plugin:game-stealth:has_disguise"}]),
        json!([{"id": "effect:plugin:game-stealth:raise_suspicion", "params": {"amount": 2}}]),
    )]}));
    let events = evaluate_tick(
        &host,
        &mut state,
        &tick(
            1,
            &[("guard", json!({"disguise": true})), ("cook", json!({}))],
        ),
    );
    let evaluated = of_kind(&events, kinds::CONDITION_EVALUATED);
    assert_eq!(evaluated.len(), 2);
    assert_eq!(evaluated[0].payload["result"], true);
    assert_eq!(evaluated[1].payload["result"], false);
    // The cook's flag was read and is not there: a read that returned
    // nothing records no result (one that returned null records null).
    assert_eq!(
        evaluated[1].payload["inputs"],
        json!([{"request": {"capability": "get_session_flag", "key": "disguise:cook"}}])
    );
    let applied = of_kind(&events, kinds::EFFECT_APPLIED);
    assert_eq!(applied.len(), 1, "only the disguised guard");
    assert_eq!(applied[0].payload["params"], json!({"amount": 2}));
    // The flag is stored namespaced, and the plugin reads it back by its own key.
    let session = state
        .session(&world(), &SessionId::new("s1").unwrap())
        .unwrap();
    assert_eq!(
        session.flags["plugin:game-stealth:suspicion:guard"],
        json!(2.0)
    );
    let again = evaluate_tick(
        &host,
        &mut state,
        &tick(2, &[("guard", json!({"disguise": true}))]),
    );
    let applied = of_kind(&again, kinds::EFFECT_APPLIED);
    assert_eq!(
        applied[0].payload["result"]["suspicion"],
        json!(4.0),
        "accumulates in its own flags"
    );
    assert_eq!(
        applied[0].payload["inputs"][0]["request"],
        json!({"capability": "get_session_flag", "key": "suspicion:guard"}),
        "reads are recorded as the call's inputs"
    );
}

#[test]
fn effect_params_are_defaults_overlaid_with_given_params() {
    let host = host();
    let mut state = configured(json!({"activities": [activity(
        "woo",
        json!([]),
        json!([{"id": "effect:plugin:game-romance:affinity_boost"}, {"id": "effect:plugin:game-romance:affinity_boost", "params": {"amount": 20, "extra": 1}}]),
    )]}));
    let events = evaluate_tick(&host, &mut state, &tick(1, &[("bard", json!({}))]));
    let applied = of_kind(&events, kinds::EFFECT_APPLIED);
    assert_eq!(applied[0].payload["params"], json!({"amount": 5}));
    assert_eq!(
        applied[1].payload["params"],
        json!({"amount": 20, "extra": 1})
    );
    let rel = &state
        .session(&world(), &SessionId::new("s1").unwrap())
        .unwrap()
        .relationships["bard"];
    assert_eq!(rel["affinity"], json!(25.0));
    assert_eq!(
        rel["meta"]["last_modified_by"], "game-romance",
        "shared writes are stamped"
    );
}

#[test]
fn each_failure_mode_behaves_and_every_denial_is_recorded() {
    let host = host();
    let mut state = configured(
        json!({"activities": [activity("nosy", json!([]), json!([{"id": "effect:plugin:example-nosy:peek"}]))]}),
    );
    let events = evaluate_tick(&host, &mut state, &tick(1, &[("guard", json!({}))]));
    let applied = of_kind(&events, kinds::EFFECT_APPLIED);
    let seen = &applied[0].payload["result"];
    // RAISE: an error naming plugin, permission and capability.
    let raised = seen["RAISE"]["write"]["error"].as_str().unwrap();
    assert!(
        raised.contains("example-nosy") && raised.contains("session_write.set_session_flag"),
        "{raised}"
    );
    assert!(
        seen["RAISE"]["peek"]["error"]
            .as_str()
            .unwrap()
            .contains("namespace")
    );
    // WARN and SILENT: nothing returned.
    for mode in ["WARN", "SILENT"] {
        assert_eq!(seen[mode]["peek"], json!({"returned": null}), "{mode}");
        assert_eq!(seen[mode]["write"], json!({"returned": false}), "{mode}");
    }
    let denied = of_kind(&events, kinds::PERMISSION_DENIED);
    assert_eq!(denied.len(), 6, "two denials in each of three modes");
    let modes: Vec<&str> = denied
        .iter()
        .map(|e| e.payload["mode"].as_str().unwrap())
        .collect();
    assert_eq!(
        modes,
        ["RAISE", "RAISE", "WARN", "WARN", "SILENT", "SILENT"]
    );
    let write = denied
        .iter()
        .find(|e| e.payload["capability"] == "session_write.set_session_flag")
        .unwrap();
    assert_eq!(write.payload["permission"], "session:write");
    assert_eq!(write.plugin_id.as_ref().unwrap().as_str(), "example-nosy");
    assert_eq!(write.provenance.tick, Some(1));
    // Nothing was written.
    let session = state.session(&world(), &SessionId::new("s1").unwrap());
    assert!(session.is_none_or(|s| s.flags.is_empty()));
}

#[test]
fn a_plugin_sees_the_game_and_its_own_flags_but_never_another_plugins() {
    let host = host();
    let mut state = configured(json!({"activities": [
        activity("a", json!([]), json!([{"id": "effect:plugin:game-stealth:raise_suspicion"}])),
    ]}));
    let mut t = tick(1, &[("guard", json!({}))]);
    t.session_updates = Some(
        serde_json::from_value(
            json!({"flags": {"chapter": 2}, "relationships": {"bard": {"affinity": 10}}}),
        )
        .unwrap(),
    );
    evaluate_tick(&host, &mut state, &t);
    let bard = &state
        .session(&world(), &SessionId::new("s1").unwrap())
        .unwrap()
        .relationships["bard"];
    assert_eq!(
        bard,
        &json!({"affinity": 10, "meta": {"last_modified_by": "game"}})
    );
    let state_ref = state.clone();
    let scene = Arc::new(provenant_host::context::Scene {
        world: world(),
        session: SessionId::new("s1").unwrap(),
        tick_id: Uuid::nil(),
        tick: 2,
        at: at(),
        npcs: Arc::new(vec![]),
        npc: None,
        context: Value::Null,
        memo: Default::default(),
    });
    let romance = host
        .plugins()
        .iter()
        .find(|p| p.info.id.as_str() == "game-romance")
        .unwrap();
    let mut ctx = provenant_host::context::Ctx::new(
        romance.info.clone(),
        scene,
        provenant_host::context::Reads::Live(state_ref),
        Arc::new(host.engine().clone()),
        "test".into(),
        0,
    );
    let session = ctx.get_session().unwrap().unwrap();
    assert_eq!(
        session["flags"],
        json!({"chapter": 2}),
        "the game's flag, not game-stealth's"
    );
    assert_eq!(
        ctx.get_session_flag("suspicion:guard").unwrap(),
        None,
        "its own namespace is empty"
    );
}

#[test]
fn world_scoping_applies_to_conditions_effects_providers_and_handlers() {
    let host = host();
    let acts = json!([
        activity(
            "sneak",
            json!([]),
            json!([{"id": "effect:plugin:game-stealth:raise_suspicion"}])
        ),
        activity(
            "woo",
            json!([{"id": "plugin:game-romance:is_attracted", "params": {"threshold": 0}}]),
            json!([])
        ),
    ]);
    let run = |behavior: Value| {
        let mut state = configured(behavior);
        evaluate_tick(&host, &mut state, &tick(1, &[("guard", json!({}))]))
    };
    let plugins_acting = |events: &[NewEvent]| {
        let mut p: Vec<String> = events
            .iter()
            .filter(|e| {
                [
                    kinds::EFFECT_APPLIED,
                    kinds::CONDITION_EVALUATED,
                    kinds::EVENT_HANDLED,
                ]
                .contains(&e.kind.as_str())
            })
            .filter_map(|e| e.plugin_id.as_ref().map(|p| p.to_string()))
            .collect();
        p.sort();
        p.dedup();
        p
    };
    // Absent: every plugin, the romance handler reacts to stealth's event.
    let all = run(json!({"activities": acts}));
    assert_eq!(plugins_acting(&all), ["game-romance", "game-stealth"]);
    assert_eq!(of_kind(&all, kinds::EVENT_HANDLED).len(), 1);
    // []: none; the conditions are skipped as not enabled.
    let none = run(json!({"activities": acts, "enabledPlugins": []}));
    assert!(plugins_acting(&none).is_empty());
    assert_eq!(
        of_kind(&none, kinds::CONDITION_SKIPPED)[0].payload["reason"],
        "not_enabled_for_world"
    );
    let cfg = &of_kind(&none, kinds::SIMULATION_CONFIG_CHANGED)[0].payload;
    assert_eq!(cfg["config"], json!({}), "no provider runs");
    // A list: only those; handlers of others do not run.
    let only = run(json!({"activities": acts, "enabledPlugins": ["game-stealth"]}));
    assert_eq!(plugins_acting(&only), ["game-stealth"]);
    assert!(of_kind(&only, kinds::EVENT_HANDLED).is_empty());
    let cfg = &of_kind(&only, kinds::SIMULATION_CONFIG_CHANGED)[0].payload;
    assert_eq!(
        cfg["providers"],
        json!(["plugin:game-stealth:stealth_defaults"])
    );
    // All but one.
    let meta = provenant_host::scoping::disable(
        &json!({"behavior": {"activities": acts}}),
        "game-stealth",
    );
    let but_one = run(meta["behavior"].clone());
    assert_eq!(plugins_acting(&but_one), ["game-romance"]);
}

#[test]
fn providers_merge_by_priority_and_the_world_always_wins() {
    let host = host();
    let mut state = configured(json!({}));
    let events = evaluate_tick(&host, &mut state, &tick(1, &[]));
    let changed = of_kind(&events, kinds::SIMULATION_CONFIG_CHANGED);
    assert_eq!(
        changed[0].payload["config"],
        json!({"stealth": {"detection_radius": 5, "suspicion_decay": 0.1}, "romance": {"pace": "slow"}}),
        "stealth (100) beats romance (200)"
    );
    // Unchanged: no new event.
    let events = evaluate_tick(&host, &mut state, &tick(2, &[]));
    assert!(of_kind(&events, kinds::SIMULATION_CONFIG_CHANGED).is_empty());
    // The world's own config beats every plugin.
    let mut state = configured(json!({"simulationConfig": {"stealth": {"detection_radius": 1}}}));
    let events = evaluate_tick(&host, &mut state, &tick(1, &[]));
    assert_eq!(
        of_kind(&events, kinds::SIMULATION_CONFIG_CHANGED)[0].payload["config"]["stealth"]["detection_radius"],
        1
    );
}

#[test]
fn failures_panics_and_overruns_are_events_and_the_tick_goes_on() {
    let host = PluginHost::start(
        plugins::builtin(),
        HostConfig {
            deadline: Duration::from_millis(50),
            ..HostConfig::default()
        },
    )
    .unwrap();
    let flip = |params: Value| {
        activity(
            "flip",
            json!([{"id": "plugin:example-flaky:coin_flip", "params": params}]),
            json!([]),
        )
    };
    let mut state = configured(json!({"activities": [
        flip(json!({"fail_rate": 1.0})),
        flip(json!({"panic_rate": 1.0})),
        flip(json!({"overrun_rate": 1.0, "overrun_ms": 2000})),
        activity("after", json!([]), json!([{"id": "effect:plugin:game-romance:affinity_boost"}])),
    ]}));
    let started = Instant::now();
    let events = evaluate_tick(&host, &mut state, &tick(1, &[("guard", json!({}))]));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the engine stopped waiting: {:?}",
        started.elapsed()
    );
    let failed = of_kind(&events, kinds::PLUGIN_CALL_FAILED);
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].payload["error"]
            .as_str()
            .unwrap()
            .contains("coin fell")
    );
    assert_eq!(failed[0].payload["fallback"], false);
    assert_eq!(
        of_kind(&events, kinds::PLUGIN_CALL_PANICKED)[0].payload["panic"]
            .as_str()
            .unwrap()
            .split(" (")
            .next(),
        Some("example-flaky panicked on purpose")
    );
    let overran = of_kind(&events, kinds::PLUGIN_DEADLINE_EXCEEDED);
    assert_eq!(overran[0].payload["deadline_ms"], 50);
    assert_eq!(
        of_kind(&events, kinds::EFFECT_APPLIED).len(),
        1,
        "the rest of the tick went on"
    );
}

#[test]
fn a_condition_without_its_required_context_is_false_and_recorded() {
    let host = host();
    let mut state = configured(
        json!({"activities": [activity("sneak", json!([{"id": "plugin:game-stealth:has_disguise"}]), json!([]))]}),
    );
    // No NPC in a world-level scene: run the condition directly.
    let scene = Arc::new(provenant_host::context::Scene {
        world: world(),
        session: SessionId::new("s1").unwrap(),
        tick_id: Uuid::nil(),
        tick: 1,
        at: at(),
        npcs: Arc::new(vec![]),
        npc: None,
        context: Value::Null,
        memo: Default::default(),
    });
    let d = host.evaluate_condition(
        &state,
        &scene,
        "sneak",
        "plugin:game-stealth:has_disguise",
        &Value::Null,
        0,
    );
    assert!(!d.value);
    assert_eq!(d.events[0].kind.as_str(), kinds::CONDITION_SKIPPED);
    assert_eq!(d.events[0].payload["missing"], json!(["npc_id"]));
    let d = host.evaluate_condition(
        &state,
        &scene,
        "sneak",
        "plugin:nobody:nothing",
        &Value::Null,
        0,
    );
    assert!(!d.value);
    assert_eq!(d.events[0].payload["reason"], "not_registered");
    let e = host.apply_effect(
        &state,
        &scene,
        "sneak",
        "effect:plugin:nobody:nothing",
        &Value::Null,
        0,
    );
    assert_eq!(e.value, None);
    // An effect that is not made is recorded as an effect, not as a condition.
    assert_eq!(e.events[0].kind.as_str(), kinds::EFFECT_SKIPPED);
    assert_eq!(
        e.events[0].payload["effect_id"],
        "effect:plugin:nobody:nothing"
    );
    assert_eq!(e.events[0].payload["reason"], "not_registered");
    let _ = evaluate_tick(&host, &mut state, &tick(1, &[]));
}

#[test]
fn every_plugin_action_carries_complete_provenance() {
    let host = host();
    let mut state = configured(json!({"activities": [
        activity("sneak", json!([{"id": "plugin:game-stealth:has_disguise"}]), json!([{"id": "effect:plugin:game-stealth:raise_suspicion"}])),
        activity("nosy", json!([]), json!([{"id": "effect:plugin:example-nosy:peek"}])),
    ]}));
    let events = evaluate_tick(
        &host,
        &mut state,
        &tick(7, &[("guard", json!({"disguise": true}))]),
    );
    let by_plugins: Vec<&NewEvent> = events.iter().filter(|e| e.plugin_id.is_some()).collect();
    assert!(by_plugins.len() >= 8, "{}", by_plugins.len());
    for e in by_plugins {
        let p = &e.provenance;
        assert_eq!(p.plugin_id, e.plugin_id, "{}", e.kind);
        assert_eq!(p.plugin_version.as_deref(), Some("1.0.0"), "{}", e.kind);
        assert!(
            p.capability.is_some() && p.permission.is_some(),
            "{}",
            e.kind
        );
        assert_eq!(p.tick, Some(7));
        assert_eq!(p.tick_id, Some(Uuid::from_u128(0x1007)));
        assert_eq!(p.causation_id, p.tick_id);
        assert!(p.engine_version.is_some() && p.engine_instance.is_some());
        assert_eq!(e.occurred_at, at(), "game time, not wall time");
    }
}

#[test]
fn the_same_tick_on_the_same_state_decides_the_same() {
    let host = host();
    let state = configured(json!({"activities": [
        activity("flip", json!([{"id": "plugin:example-flaky:coin_flip"}]), json!([{"id": "effect:plugin:game-romance:affinity_boost"}])),
    ]}));
    let npcs: Vec<(String, Value)> = (0..20).map(|i| (format!("npc-{i}"), json!({}))).collect();
    let npcs: Vec<(&str, Value)> = npcs.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
    let decide = || {
        let mut s = state.clone();
        evaluate_tick(&host, &mut s, &tick(3, &npcs))
            .into_iter()
            .map(|e| (e.kind.to_string(), e.payload["result"].clone()))
            .collect::<Vec<_>>()
    };
    let first = decide();
    assert_eq!(first, decide());
    let trues = first
        .iter()
        .filter(|(k, r)| k == kinds::CONDITION_EVALUATED && r == &json!(true))
        .count();
    assert!(
        trues > 0 && trues < 20,
        "the seeded coin varies between NPCs: {trues}"
    );
}

struct Greedy;

impl Plugin for Greedy {
    fn manifest(&self) -> Manifest {
        Manifest {
            id: "greedy".into(),
            name: "Greedy".into(),
            version: "0.1.0".into(),
            description: String::new(),
            author: String::new(),
            kind: PluginKind::Feature,
            permissions: vec!["group:readonly".into()],
            dependencies: vec![],
            enabled: true,
        }
    }

    fn register(&self, r: &mut Registrar<'_>) -> Result<(), RegisterError> {
        r.effect("grab", "", json!({}), |_, _| Ok(Value::Null))
    }
}

#[test]
fn registering_without_permission_twice_or_after_the_lock_is_refused() {
    let err = PluginHost::start(vec![Arc::new(Greedy)], HostConfig::default())
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "plugin greedy failed to register: plugin greedy may not behavior.register_effect_handler: it lacks the permission behavior:extend_effects"
    );
    let info = Arc::new(provenant_host::context::PluginInfo {
        id: provenant_events::PluginId::new("example-flaky").unwrap(),
        version: "1".into(),
        granted: provenant_host::permissions::resolve(&["group:behavior".into()]).unwrap(),
        runtime: provenant_host::Runtime::Native,
    });
    let mut registry = Registry::default();
    let mut r = Registrar::new(info.clone(), &mut registry);
    ExampleFlaky.register(&mut r).unwrap();
    let mut r = Registrar::new(info.clone(), &mut registry);
    assert_eq!(
        ExampleFlaky.register(&mut r).unwrap_err(),
        RegisterError::Duplicate {
            id: "plugin:example-flaky:coin_flip".into()
        }
    );
    registry.lock();
    let mut r = Registrar::new(info, &mut registry);
    assert!(matches!(
        r.condition("late", "", &[], |_, _| Ok(true)).unwrap_err(),
        RegisterError::Locked { .. }
    ));
}

#[test]
fn load_errors_refuse_to_start_and_settings_skip_plugins() {
    let mut all = plugins::builtin();
    all.push(Arc::new(GameStealthAgain));
    match PluginHost::start(all, HostConfig::default()) {
        Err(HostError::Load(LoadError::Duplicate { plugin })) => {
            assert_eq!(plugin.as_str(), "game-stealth")
        }
        other => panic!("{:?}", other.err()),
    }
    let host = PluginHost::start(
        plugins::builtin(),
        HostConfig {
            settings: PluginSettings {
                denylist: ["example-nosy".to_string()].into(),
                ..PluginSettings::default()
            },
            ..HostConfig::default()
        },
    )
    .unwrap();
    assert!(
        host.registry()
            .effects
            .keys()
            .all(|k| !k.contains("example-nosy"))
    );
    let startup = host.startup_events();
    assert_eq!(of_kind(&startup, kinds::PLUGIN_LOADED).len(), 3);
    let skipped = of_kind(&startup, kinds::PLUGIN_SKIPPED);
    assert_eq!(
        skipped[0].payload,
        json!({"plugin_id": "example-nosy", "reason": "denylisted"})
    );
    let loaded = &of_kind(&startup, kinds::PLUGIN_LOADED)[0].payload;
    assert!(loaded["registered"]["conditions"].is_array());
}

struct GameStealthAgain;

impl Plugin for GameStealthAgain {
    fn manifest(&self) -> Manifest {
        plugins::GameStealth.manifest()
    }
    fn register(&self, _: &mut Registrar<'_>) -> Result<(), RegisterError> {
        Ok(())
    }
}

#[test]
fn inline_isolation_records_overruns_too() {
    let host = PluginHost::start(
        plugins::builtin(),
        HostConfig {
            isolation: Isolation::Inline,
            deadline: Duration::from_millis(20),
            ..HostConfig::default()
        },
    )
    .unwrap();
    let mut state = configured(json!({"activities": [activity(
        "flip",
        json!([{"id": "plugin:example-flaky:coin_flip", "params": {"overrun_rate": 1.0, "overrun_ms": 40}}]),
        json!([]),
    )]}));
    let events = evaluate_tick(&host, &mut state, &tick(1, &[("a", json!({}))]));
    assert_eq!(of_kind(&events, kinds::PLUGIN_DEADLINE_EXCEEDED).len(), 1);
}

struct DeniedThenPanics;

impl Plugin for DeniedThenPanics {
    fn manifest(&self) -> Manifest {
        Manifest {
            id: "reckless".into(),
            name: "Reckless".into(),
            version: "0.1.0".into(),
            description: String::new(),
            author: String::new(),
            kind: PluginKind::Feature,
            permissions: vec!["group:behavior".into()],
            dependencies: vec![],
            enabled: true,
        }
    }

    fn register(&self, r: &mut Registrar<'_>) -> Result<(), RegisterError> {
        r.effect("crash", "", json!({}), |ctx, _| {
            ctx.set_session_flag("x", json!(1))?;
            panic!("after a denied write");
        })
    }
}

#[test]
fn a_denial_is_kept_when_the_call_then_fails_or_panics() {
    for isolation in [Isolation::Thread, Isolation::Inline] {
        let host = PluginHost::start(
            vec![Arc::new(DeniedThenPanics)],
            HostConfig {
                isolation,
                ..HostConfig::default()
            },
        )
        .unwrap();
        let mut state = configured(
            json!({"activities": [activity("c", json!([]), json!([{"id": "effect:plugin:reckless:crash"}]))]}),
        );
        let events = evaluate_tick(&host, &mut state, &tick(1, &[("a", json!({}))]));
        assert_eq!(
            of_kind(&events, kinds::PERMISSION_DENIED).len(),
            1,
            "{isolation:?}"
        );
        let panicked = of_kind(&events, kinds::PLUGIN_CALL_PANICKED);
        assert_eq!(
            panicked[0].payload["panic"], "after a denied write",
            "{isolation:?}"
        );
    }
}

/// A call replayed with what its event recorded (scene, params, call index,
/// reads) produces the same events, whatever the state is now; a read the
/// recording does not hold is reported, not answered from the state.
#[test]
fn a_replayed_call_is_fed_its_recorded_reads_and_does_the_same() {
    use provenant_host::context::RecordedReads;
    use provenant_host::plugin_host::{RecordedCall, Replay, ReplayedCall};

    let host = host();
    let mut state = configured(json!({"activities": [activity(
        "chat",
        json!([]),
        json!([{"id": "effect:plugin:game-romance:affinity_boost", "params": {"amount": 2}}]),
    )]}));
    let live = tick(1, &[("bard", json!({"mood": "merry"}))]);
    evaluate_tick(&host, &mut state, &live);
    let events = evaluate_tick(&host, &mut state, &tick(2, &[("bard", json!({}))]));
    let effect = of_kind(&events, kinds::EFFECT_APPLIED)[0];
    assert_eq!(effect.payload["result"]["affinity"], json!(4.0));
    assert_eq!(effect.payload["activity"], "chat");
    let index = effect.provenance.call_index.unwrap();
    let recorded: Vec<&NewEvent> = events
        .iter()
        .filter(|e| e.provenance.call_index == Some(index) && e.plugin_id.is_some())
        .collect();
    assert_eq!(recorded.len(), 2, "the relationship update, then the call");

    let scene = Arc::new(provenant_host::context::Scene {
        world: world(),
        session: SessionId::new("s1").unwrap(),
        tick_id: Uuid::from_u128(0x1000 + 2),
        tick: 2,
        at: at(),
        npcs: Arc::new(vec![TickNpc {
            npc_id: "bard".into(),
            location_id: Some("hall".into()),
            state: json!({}),
        }]),
        npc: Some(0),
        context: json!({}),
        memo: Default::default(),
    });
    let replay = |inputs: &[Value]| {
        host.replay(RecordedCall {
            call: ReplayedCall::Effect {
                id: "effect:plugin:game-romance:affinity_boost",
                activity: Some("chat"),
            },
            scene: scene.clone(),
            params: &effect.payload["params"],
            reads: RecordedReads::from_inputs(inputs),
            call_index: index,
        })
    };
    let inputs = effect.payload["inputs"].as_array().unwrap().clone();
    let Replay::Ran {
        events: again,
        unrecorded,
    } = replay(&inputs)
    else {
        panic!("not replayed");
    };
    assert!(unrecorded.is_empty());
    let without_timing = |e: &NewEvent| {
        let mut p = e.payload.value().clone();
        p.as_object_mut().map(|m| m.remove("duration_us"));
        (e.kind.clone(), e.stream.clone(), p)
    };
    assert_eq!(
        again.iter().map(without_timing).collect::<Vec<_>>(),
        recorded
            .iter()
            .map(|e| without_timing(e))
            .collect::<Vec<_>>()
    );

    // Fed another recorded affinity, it does something else; fed nothing,
    // it says which read it was not given.
    let mut other = inputs.clone();
    other[0]["result"]["affinity"] = json!(10.0);
    let Replay::Ran {
        events: changed, ..
    } = replay(&other)
    else {
        panic!("not replayed");
    };
    assert_eq!(
        changed.last().unwrap().payload["result"]["affinity"],
        json!(12.0)
    );
    let Replay::Ran { unrecorded, .. } = replay(&[]) else {
        panic!("not replayed");
    };
    assert_eq!(
        unrecorded
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect::<Vec<_>>(),
        [r#"{"capability":"get_relationship","npc_key":"bard"}"#]
    );
    // A condition this build does not register is not made.
    let missing = host.replay(RecordedCall {
        call: ReplayedCall::Condition {
            id: "plugin:game-romance:gone",
            activity: None,
        },
        scene: scene.clone(),
        params: &Value::Null,
        reads: RecordedReads::default(),
        call_index: 0,
    });
    assert!(matches!(missing, Replay::NotRegistered), "{missing:?}");
}

//! Sandboxed plugins in the host: WebAssembly components built at test time
//! from WAT, loaded from a plugins directory beside the built-in plugins,
//! evaluated through ticks.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use provenant_bench::wasm_fixtures as fx;
use provenant_events::{EventKind, NewEvent, SessionId, StreamName, WorldId, kinds};
use provenant_host::context::TickNpc;
use provenant_host::state::GameState;
use provenant_host::tick::{Tick, evaluate_tick};
use provenant_host::{HostConfig, Plugin, PluginHost};
use provenant_wasm::{WasmConfig, WasmRuntime};
use serde_json::{Value, json};
use uuid::Uuid;

fn runtime() -> WasmRuntime {
    WasmRuntime::new(&WasmConfig::default()).expect("the runtime starts")
}

fn load(dir: &Path) -> Result<Vec<Arc<dyn Plugin>>, String> {
    provenant_wasm::load_dir(dir, &runtime())
        .map(|ps| {
            ps.into_iter()
                .map(|p| Arc::new(p) as Arc<dyn Plugin>)
                .collect()
        })
        .map_err(|e| e.to_string())
}

/// The built-in plugins and those of `dir`.
fn host(dir: &Path) -> PluginHost {
    let mut plugins = provenant_plugins::builtin();
    plugins.extend(load(dir).expect("the plugins load"));
    PluginHost::start(plugins, HostConfig::default()).expect("the host starts")
}

fn world() -> WorldId {
    WorldId::new("w1").unwrap()
}

fn configured(activities: Value) -> Arc<GameState> {
    let mut e = NewEvent::new(
        StreamName::world(&world()),
        EventKind::new(kinds::WORLD_CONFIGURED).unwrap(),
        json!({"name": "W1", "meta": {"behavior": {"activities": activities}}}),
    );
    e.world_id = Some(world());
    let mut state = GameState::default();
    state.apply(&e);
    Arc::new(state)
}

fn tick(n: u64) -> Tick {
    let at: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    Tick {
        tick_id: Uuid::from_u128(0x2000 + n as u128),
        world_id: world(),
        session_id: SessionId::new("s1").unwrap(),
        tick: n,
        at,
        npcs: vec![TickNpc {
            npc_id: "guard".into(),
            location_id: Some("hall".into()),
            state: json!({}),
        }],
        session_updates: None,
        context: None,
    }
}

fn of_kind<'a>(events: &'a [NewEvent], kind: &str) -> Vec<&'a NewEvent> {
    events.iter().filter(|e| e.kind.as_str() == kind).collect()
}

/// The event recording the call of `id`.
fn call_of<'a>(events: &'a [NewEvent], id: &str) -> &'a NewEvent {
    events
        .iter()
        .find(|e| {
            let p = e.payload.value();
            [p["condition_id"].as_str(), p["effect_id"].as_str()].contains(&Some(id))
        })
        .unwrap_or_else(|| panic!("no event records {id}: {events:#?}"))
}

fn greeter_manifest() -> Value {
    fx::manifest(
        "wasm-greeter",
        &["group:behavior", "session:write"],
        json!({"registrations": {
            "conditions": [{"name": "likes_player"}],
            "effects": [{"name": "cheer", "default_params": {"loud": true}}],
        }}),
    )
}

#[test]
fn a_wasm_plugin_acts_beside_the_built_in_ones_with_its_digest_and_fuel_in_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let module = fx::greeter("\"cheerful\"").unwrap();
    fx::write_plugin(dir.path(), "greeter", &greeter_manifest(), &module).unwrap();
    let digest = provenant_wasm::manifest::digest_of(&module);
    let host = host(dir.path());

    let loaded = host
        .startup_events()
        .into_iter()
        .find(|e| {
            e.plugin_id
                .as_ref()
                .is_some_and(|p| p.as_str() == "wasm-greeter")
        })
        .expect("PluginLoaded");
    assert_eq!(loaded.payload["runtime"], "wasm");
    assert_eq!(loaded.payload["digest"], json!(digest));
    assert_eq!(
        loaded.payload["registered"]["conditions"],
        json!(["plugin:wasm-greeter:likes_player"])
    );

    let mut state = configured(json!([
        {"id": "greet", "conditions": [{"id": "plugin:wasm-greeter:likes_player"}],
         "effects": [{"id": "effect:plugin:game-stealth:raise_suspicion", "params": {"amount": 1}}]},
        {"id": "cheer", "conditions": [], "effects": [{"id": "effect:plugin:wasm-greeter:cheer"}]},
    ]));
    let first = evaluate_tick(&host, &mut state, &tick(1));
    let evaluated = call_of(&first, "plugin:wasm-greeter:likes_player");
    assert_eq!(evaluated.kind.as_str(), kinds::CONDITION_EVALUATED);
    assert_eq!(evaluated.payload["result"], false, "no mood yet");
    assert_eq!(
        evaluated.payload["inputs"],
        json!([{"request": {"capability": "get_session_flag", "key": "mood"}}])
    );
    let applied = call_of(&first, "effect:plugin:wasm-greeter:cheer");
    assert_eq!(applied.kind.as_str(), kinds::EFFECT_APPLIED);
    assert_eq!(applied.payload["result"], json!({"cheered": true}));
    assert_eq!(applied.payload["params"], json!({"loud": true}));
    // The write is an event of its own, namespaced under the plugin's id,
    // and every event the call caused names the module that ran.
    let set = of_kind(&first, kinds::SESSION_FLAG_SET);
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].payload["key"], "plugin:wasm-greeter:mood");
    assert_eq!(set[0].payload["value"], "cheerful");
    for e in [evaluated, applied, set[0]] {
        assert_eq!(
            e.provenance.plugin_digest.as_deref(),
            Some(digest.as_str()),
            "{e:?}"
        );
    }
    let fuel = |e: &NewEvent| e.payload["fuel_used"].as_u64().expect("fuel_used");
    assert!(fuel(evaluated) > 0 && fuel(applied) > 0);
    // Built-in plugins' events carry no digest and no fuel.
    let session = state
        .session(&world(), &SessionId::new("s1").unwrap())
        .unwrap();
    assert!(session.flags.contains_key("plugin:wasm-greeter:mood"));
    assert!(!session.flags.contains_key("mood"));

    let second = evaluate_tick(&host, &mut state, &tick(2));
    let evaluated_again = call_of(&second, "plugin:wasm-greeter:likes_player");
    assert_eq!(
        evaluated_again.payload["result"], true,
        "reads its own flag"
    );
    let native = call_of(&second, "effect:plugin:game-stealth:raise_suspicion");
    assert_eq!(native.provenance.plugin_digest, None);
    assert!(native.payload.value().get("fuel_used").is_none());

    // The same calls on the same inputs use the same fuel.
    let mut again = configured(json!([
        {"id": "cheer", "conditions": [], "effects": [{"id": "effect:plugin:wasm-greeter:cheer"}]},
    ]));
    let repeat = evaluate_tick(&host, &mut again, &tick(1));
    assert_eq!(
        fuel(call_of(&repeat, "effect:plugin:wasm-greeter:cheer")),
        fuel(applied)
    );
}

#[test]
fn a_wasm_plugin_handles_events_and_provides_simulation_config() {
    let dir = tempfile::tempdir().unwrap();
    fx::write_plugin(
        dir.path(),
        "greeter",
        &greeter_manifest(),
        &fx::greeter("\"cheerful\"").unwrap(),
    )
    .unwrap();
    let watcher = fx::manifest(
        "wasm-watcher",
        &["event:subscribe", "behavior:configure_simulation"],
        json!({"registrations": {
            "event_handlers": [{"kinds": ["SessionFlagSet"]}],
            "simulation_configs": [{"name": "speed", "priority": 50}],
        }}),
    );
    let module = fx::watcher().unwrap();
    fx::write_plugin(dir.path(), "watcher", &watcher, &module).unwrap();
    let host = host(dir.path());
    let mut state = configured(json!([
        {"id": "cheer", "conditions": [], "effects": [{"id": "effect:plugin:wasm-greeter:cheer"}]},
    ]));
    let events = evaluate_tick(&host, &mut state, &tick(1));

    let handled = of_kind(&events, kinds::EVENT_HANDLED);
    let handled: Vec<_> = handled
        .iter()
        .filter(|e| {
            e.plugin_id
                .as_ref()
                .is_some_and(|p| p.as_str() == "wasm-watcher")
        })
        .collect();
    assert_eq!(handled.len(), 1, "{events:#?}");
    let flag = of_kind(&events, kinds::SESSION_FLAG_SET)[0];
    assert_eq!(
        handled[0].payload["params"]["event_id"],
        json!(flag.event_id)
    );
    assert!(handled[0].payload["fuel_used"].as_u64().is_some());
    let digest = provenant_wasm::manifest::digest_of(&module);
    assert_eq!(
        handled[0].provenance.plugin_digest.as_deref(),
        Some(digest.as_str())
    );

    let config = of_kind(&events, kinds::SIMULATION_CONFIG_CHANGED);
    assert_eq!(config.len(), 1, "{events:#?}");
    assert_eq!(config[0].payload["config"]["wasm"], json!({"speed": 2}));
    assert!(
        config[0].payload["providers"]
            .as_array()
            .unwrap()
            .contains(&json!("plugin:wasm-watcher:speed")),
        "{:?}",
        config[0].payload
    );
}

#[test]
fn each_hostile_plugin_is_stopped_by_the_sandbox_and_the_tick_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plain = |id: &str| fx::manifest(id, &["group:behavior"], json!({}));
    let effect = |id: &str, perms: &[&str]| {
        fx::manifest(
            id,
            perms,
            json!({"registrations": {"effects": [{"name": "e"}]}}),
        )
    };
    fx::write_endless_loop(d).unwrap();
    let hang = fx::manifest(
        "wasm-hang",
        &["group:behavior"],
        json!({"limits": {"fuel_per_call": 1_000_000_000_000u64, "timeout_ms": 20}}),
    );
    fx::write_plugin(d, "hang", &hang, &fx::endless_loop().unwrap()).unwrap();
    let bomb = fx::manifest(
        "wasm-bomb",
        &["group:behavior"],
        json!({"limits": {"memory_max_bytes": 1 << 20}}),
    );
    fx::write_plugin(d, "bomb", &bomb, &fx::memory_bomb().unwrap()).unwrap();
    fx::write_plugin(d, "trap", &plain("wasm-trap"), &fx::trap().unwrap()).unwrap();
    fx::write_plugin(
        d,
        "huge",
        &effect("wasm-huge", &["group:behavior"]),
        &fx::huge_result().unwrap(),
    )
    .unwrap();
    fx::write_plugin(
        d,
        "badjson",
        &effect("wasm-badjson", &["group:behavior", "session:write"]),
        &fx::bad_json().unwrap(),
    )
    .unwrap();
    fx::write_plugin(
        d,
        "greeter",
        &greeter_manifest(),
        &fx::greeter("\"cheerful\"").unwrap(),
    )
    .unwrap();
    let host = host(d);
    let activity = |id: &str| json!({"id": id, "conditions": [{"id": format!("plugin:{id}:c")}], "effects": []});
    let effect_activity = |id: &str| json!({"id": id, "conditions": [], "effects": [{"id": format!("effect:plugin:{id}:e")}]});
    let mut state = configured(json!([
        activity("wasm-loop"),
        activity("wasm-hang"),
        activity("wasm-bomb"),
        activity("wasm-trap"),
        effect_activity("wasm-huge"),
        effect_activity("wasm-badjson"),
        {"id": "cheer", "conditions": [], "effects": [{"id": "effect:plugin:wasm-greeter:cheer"}]},
    ]));
    let started = Instant::now();
    let events = evaluate_tick(&host, &mut state, &tick(1));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    let failed = |id: &str, limit: Option<&str>| {
        let e = call_of(&events, id);
        assert_eq!(e.kind.as_str(), kinds::PLUGIN_CALL_FAILED, "{id}: {e:?}");
        assert_eq!(e.payload["limit"].as_str(), limit, "{id}: {e:?}");
        e.payload["error"].as_str().unwrap().to_owned()
    };
    assert!(failed("plugin:wasm-loop:c", Some("fuel")).contains("ran out of fuel"));
    assert!(failed("plugin:wasm-bomb:c", Some("memory")).contains("a call may use 1048576"));
    assert!(
        failed("effect:plugin:wasm-huge:e", Some("result_bytes"))
            .contains("returned 2097152 bytes")
    );
    assert!(
        failed("effect:plugin:wasm-badjson:e", None)
            .contains("set-session-flag's value is not JSON")
    );
    let hang = call_of(&events, "plugin:wasm-hang:c");
    assert_eq!(
        hang.kind.as_str(),
        kinds::PLUGIN_DEADLINE_EXCEEDED,
        "{hang:?}"
    );
    assert_eq!(hang.payload["deadline_ms"], 20);
    let trap = call_of(&events, "plugin:wasm-trap:c");
    assert_eq!(trap.kind.as_str(), kinds::PLUGIN_CALL_PANICKED);
    assert!(
        trap.payload["panic"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{trap:?}"
    );
    // Nothing a failed call wrote is kept; the good plugin's call went on.
    assert_eq!(
        of_kind(&events, kinds::SESSION_FLAG_SET)
            .iter()
            .map(|e| e.payload["key"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["plugin:wasm-greeter:mood"]
    );
    assert_eq!(
        call_of(&events, "effect:plugin:wasm-greeter:cheer")
            .kind
            .as_str(),
        kinds::EFFECT_APPLIED
    );
    assert_eq!(
        of_kind(&events, kinds::TICK_PROCESSED).len(),
        0,
        "the caller marks the tick"
    );
}

#[test]
fn a_capability_the_plugin_lacks_is_denied_in_each_failure_mode() {
    let dir = tempfile::tempdir().unwrap();
    // npc:read (from group:behavior) grants the npc interface; set-npc-state
    // needs npc:write.
    let manifest = fx::manifest(
        "wasm-nosy",
        &["group:behavior"],
        json!({"registrations": {"conditions": [{"name": "warn"}, {"name": "raise"}, {"name": "silent"}]}}),
    );
    fx::write_plugin(dir.path(), "nosy", &manifest, &fx::nosy().unwrap()).unwrap();
    let host = host(dir.path());
    for (name, kind, mode) in [
        ("warn", kinds::CONDITION_EVALUATED, "WARN"),
        ("raise", kinds::PLUGIN_CALL_FAILED, "RAISE"),
        ("silent", kinds::CONDITION_EVALUATED, "SILENT"),
    ] {
        let id = format!("plugin:wasm-nosy:{name}");
        let mut state = configured(json!([{"id": "a", "conditions": [{"id": id}], "effects": []}]));
        let events = evaluate_tick(&host, &mut state, &tick(1));
        let call = call_of(&events, &id);
        assert_eq!(call.kind.as_str(), kind, "{name}: {call:?}");
        let denied = of_kind(&events, kinds::PERMISSION_DENIED);
        assert_eq!(denied.len(), 1, "{name}: {events:#?}");
        assert_eq!(denied[0].payload["mode"], mode);
        assert_eq!(denied[0].payload["permission"], "npc:write");
        assert!(denied[0].provenance.plugin_digest.is_some());
        if kind == kinds::CONDITION_EVALUATED {
            assert_eq!(call.payload["result"], false);
        } else {
            assert!(
                call.payload["error"].as_str().unwrap().contains("denied"),
                "{call:?}"
            );
        }
        assert!(of_kind(&events, kinds::NPC_STATE_SET).is_empty());
    }
}

#[test]
fn every_refusal_at_load_names_the_plugin_and_the_problem() {
    let greeter = fx::greeter("\"cheerful\"").unwrap();
    let cases: Vec<(&str, Value, Vec<u8>, &str)> = vec![
        (
            "missing-module",
            greeter_manifest(),
            Vec::new(),
            "its module plugin.wasm is missing",
        ),
        (
            "digest",
            {
                let mut m = greeter_manifest();
                m["digest"] = json!(format!("sha256:{}", "0".repeat(64)));
                m
            },
            greeter.clone(),
            "digest mismatch: the manifest says sha256:0000",
        ),
        (
            "core",
            fx::manifest("wasm-core", &["group:behavior"], json!({})),
            fx::core_module().unwrap(),
            "it is a core WebAssembly module",
        ),
        (
            "garbage",
            fx::manifest("wasm-garbage", &["group:behavior"], json!({})),
            b"not wasm".to_vec(),
            "not a valid component",
        ),
        (
            "ungranted",
            fx::manifest(
                "wasm-greedy",
                &["group:behavior"],
                json!({"registrations": {"conditions": [{"name": "c"}], "effects": [{"name": "e"}]}}),
            ),
            greeter.clone(),
            "imports provenant:plugin/session-write@0.1.0, which needs session:write",
        ),
        (
            "wasi",
            fx::manifest("wasm-wasi", &["group:behavior"], json!({})),
            fx::wasi().unwrap(),
            "imports wasi:cli/environment@0.2.0, which provenant does not provide: plugins get no WASI",
        ),
        (
            "no-export",
            fx::manifest(
                "wasm-noexport",
                &["group:behavior"],
                json!({"registrations": {"effects": [{"name": "e"}]}}),
            ),
            fx::trap().unwrap(),
            "registers effects, but it does not export provenant:plugin/effects@0.1.0#apply",
        ),
    ];
    for (folder, manifest, module, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        fx::write_plugin(dir.path(), folder, &manifest, &module).unwrap();
        if module.is_empty() {
            std::fs::remove_file(dir.path().join(folder).join("plugin.wasm")).unwrap();
        }
        let error = load(dir.path())
            .err()
            .unwrap_or_else(|| panic!("{folder} loaded"));
        let id = manifest["id"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("plugin {id} (")),
            "{folder}: {error}"
        );
        assert!(error.contains(expected), "{folder}: {error}");
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("broken")).unwrap();
    std::fs::write(dir.path().join("broken/manifest.json"), "{not json").unwrap();
    let error = load(dir.path()).err().unwrap();
    assert!(
        error.contains("plugin broken (") && error.contains("invalid manifest.json"),
        "{error}"
    );
    std::fs::remove_file(dir.path().join("broken/manifest.json")).unwrap();
    let error = load(dir.path()).err().unwrap();
    assert!(error.contains("cannot read manifest.json"), "{error}");
    assert!(
        load(&dir.path().join("nowhere"))
            .err()
            .unwrap()
            .contains("cannot read the plugins directory")
    );

    // What it registers is checked against its permissions before any of
    // its code runs.
    let dir = tempfile::tempdir().unwrap();
    let manifest = fx::manifest("wasm-unprivileged", &["group:readonly"], json!({}));
    fx::write_plugin(dir.path(), "p", &manifest, &fx::trap().unwrap()).unwrap();
    let error = PluginHost::start(load(dir.path()).unwrap(), HostConfig::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("wasm-unprivileged") && error.contains("behavior:extend_conditions"),
        "{error}"
    );

    // A wasm plugin may not take a built-in plugin's id.
    let dir = tempfile::tempdir().unwrap();
    let manifest = fx::manifest("game-stealth", &["group:behavior"], json!({}));
    fx::write_plugin(dir.path(), "p", &manifest, &fx::trap().unwrap()).unwrap();
    let mut plugins = provenant_plugins::builtin();
    plugins.extend(load(dir.path()).unwrap());
    let error = PluginHost::start(plugins, HostConfig::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("game-stealth is declared twice"), "{error}");
}

/// `audit replay` gives WebAssembly calls at least its own deadline: a
/// replay asks what a plugin does, not how fast the auditor's machine is.
/// The same plugin (1 ms in its manifest, fuel for far longer) overruns its
/// deadline under the manifest's limit and runs out of fuel, deterministic
/// whatever the machine, under a runtime with a floor.
#[test]
fn a_runtime_floor_on_the_wall_clock_deadline_leaves_fuel_to_bound_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = fx::manifest(
        "wasm-slow",
        &["group:behavior"],
        json!({"limits": {"fuel_per_call": 300_000_000u64, "timeout_ms": 1}}),
    );
    fx::write_plugin(dir.path(), "slow", &manifest, &fx::endless_loop().unwrap()).unwrap();
    let outcome = |floor: Option<u64>| {
        let runtime = WasmRuntime::new(&WasmConfig {
            min_timeout_ms: floor,
            ..WasmConfig::default()
        })
        .expect("the runtime starts");
        let mut plugins = provenant_plugins::builtin();
        plugins.extend(
            provenant_wasm::load_dir(dir.path(), &runtime)
                .expect("the plugin loads")
                .into_iter()
                .map(|p| Arc::new(p) as Arc<dyn Plugin>),
        );
        // The host waits as long as the replay would.
        let host = PluginHost::start(
            plugins,
            HostConfig {
                deadline: Duration::from_secs(60),
                ..HostConfig::default()
            },
        )
        .expect("the host starts");
        let mut state = configured(json!([
            {"id": "slow", "conditions": [{"id": "plugin:wasm-slow:c"}], "effects": []}
        ]));
        let events = evaluate_tick(&host, &mut state, &tick(1));
        call_of(&events, "plugin:wasm-slow:c").clone()
    };
    let manifest_limit = outcome(None);
    assert_eq!(
        manifest_limit.kind.as_str(),
        kinds::PLUGIN_DEADLINE_EXCEEDED,
        "{manifest_limit:?}"
    );
    assert_eq!(manifest_limit.payload["deadline_ms"], 1);
    let floored = outcome(Some(60_000));
    assert_eq!(
        floored.kind.as_str(),
        kinds::PLUGIN_CALL_FAILED,
        "{floored:?}"
    );
    assert_eq!(floored.payload["limit"], "fuel", "{floored:?}");
}

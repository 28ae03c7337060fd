//! Sandboxed plugins through the real binary and PostgreSQL: `serve
//! --plugins-dir`, `plugins list`, and `audit replay` with the recorded
//! module, a changed one, and none.

use provenant_bench::wasm_fixtures as fx;
use provenant_tests::Backend;
use provenant_tests::cli::{json, provenant_on, stderr, stdout};
use provenant_tests::engine::{EngineOptions, EngineProcess};
use provenant_tests::fixtures::tick;
use provenant_tests::log::TestLog;
use provenant_tests::replay::{plugin_report as plugin, replay_json};
use serde_json::{Value, json};

/// A plugins directory: the greeter (its effect writes `mood`), and a
/// hostile plugin of each kind.
fn greeter_dir(mood: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let manifest = fx::manifest(
        "wasm-greeter",
        &["group:behavior", "session:write"],
        json!({"registrations": {
            "conditions": [{"name": "likes_player"}],
            "effects": [{"name": "cheer"}],
        }}),
    );
    fx::write_plugin(d, "greeter", &manifest, &fx::greeter(mood).unwrap()).unwrap();
    let plain = |id: &str| fx::manifest(id, &["group:behavior"], json!({}));
    fx::write_endless_loop(d).unwrap();
    let bomb = fx::manifest(
        "wasm-bomb",
        &["group:behavior"],
        json!({"limits": {"memory_max_bytes": 1 << 20}}),
    );
    fx::write_plugin(d, "bomb", &bomb, &fx::memory_bomb().unwrap()).unwrap();
    fx::write_plugin(d, "trap", &plain("wasm-trap"), &fx::trap().unwrap()).unwrap();
    let huge = fx::manifest(
        "wasm-huge",
        &["group:behavior"],
        json!({"registrations": {"effects": [{"name": "e"}]}}),
    );
    fx::write_plugin(d, "huge", &huge, &fx::huge_result().unwrap()).unwrap();
    let nosy = fx::manifest(
        "wasm-nosy",
        &["group:behavior"],
        json!({"registrations": {"conditions": [{"name": "warn"}, {"name": "raise"}, {"name": "silent"}]}}),
    );
    fx::write_plugin(d, "nosy", &nosy, &fx::nosy().unwrap()).unwrap();
    dir
}

fn path(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().unwrap()
}

#[test]
fn plugins_list_shows_each_wasm_plugin_with_its_runtime_and_digest() {
    let dir = greeter_dir("\"cheerful\"");
    let out = provenant_on(
        "sqlite::memory:",
        &[
            "plugins",
            "list",
            "--json",
            "--plugin-cache",
            "off",
            "--plugins-dir",
            path(&dir),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = json(&out);
    let plugins = listed["plugins"].as_array().unwrap();
    let greeter = plugins
        .iter()
        .find(|p| p["id"] == "wasm-greeter")
        .expect("listed");
    assert_eq!(greeter["runtime"], "wasm");
    let module = std::fs::read(dir.path().join("greeter/plugin.wasm")).unwrap();
    assert_eq!(
        greeter["digest"],
        json!(provenant_wasm::manifest::digest_of(&module))
    );
    let native = plugins.iter().find(|p| p["id"] == "game-stealth").unwrap();
    assert_eq!(
        (native["runtime"].clone(), native["digest"].clone()),
        (json!("native"), Value::Null)
    );

    let text = stdout(&provenant_on(
        "sqlite::memory:",
        &[
            "plugins",
            "list",
            "--plugin-cache",
            "off",
            "--plugins-dir",
            path(&dir),
        ],
    ));
    assert!(
        text.contains("wasm-greeter 1.0.0 (feature, wasm)"),
        "{text}"
    );
    assert!(text.contains("  digest: sha256:"), "{text}");

    // A bad plugin is refused, named, and nothing starts.
    std::fs::write(dir.path().join("loop/plugin.wasm"), b"garbage").unwrap();
    let out = provenant_on(
        "sqlite::memory:",
        &[
            "plugins",
            "list",
            "--plugin-cache",
            "off",
            "--plugins-dir",
            path(&dir),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("plugin wasm-loop ("),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("not a valid component"),
        "{}",
        stderr(&out)
    );
}

/// `audit replay --json` with `args`, compiling the plugins afresh.
fn replay(url: &str, args: &[&str], code: i32) -> Value {
    let mut all = vec!["--plugin-cache", "off"];
    all.extend(args);
    replay_json(url, &all, code)
}

#[tokio::test]
async fn the_engine_runs_wasm_plugins_and_replay_matches_them_or_finds_a_changed_module() {
    let db = TestLog::new(Backend::Postgres).await;
    let plugins = greeter_dir("\"cheerful\"");
    let cache = tempfile::tempdir().unwrap();
    let engine = EngineProcess::start(&EngineOptions {
        database_url: db.url.clone(),
        args: vec![
            "--plugins-dir".into(),
            path(&plugins).into(),
            "--plugin-cache".into(),
            cache.path().to_str().unwrap().into(),
        ],
        ..Default::default()
    });
    let condition = |id: &str| json!({"id": id, "conditions": [{"id": id}], "effects": []});
    let world = json!({"name": "Inn", "meta": {"behavior": {"activities": [
        {"id": "greet", "conditions": [{"id": "plugin:wasm-greeter:likes_player"}],
         "effects": [{"id": "effect:plugin:game-stealth:raise_suspicion", "params": {"amount": 1}}]},
        {"id": "cheer", "conditions": [], "effects": [{"id": "effect:plugin:wasm-greeter:cheer"}]},
        condition("plugin:wasm-loop:c"),
        condition("plugin:wasm-bomb:c"),
        condition("plugin:wasm-trap:c"),
        {"id": "huge", "conditions": [], "effects": [{"id": "effect:plugin:wasm-huge:e"}]},
        condition("plugin:wasm-nosy:warn"),
        condition("plugin:wasm-nosy:raise"),
        condition("plugin:wasm-nosy:silent"),
    ]}}});
    let (status, body) = engine.put("/v1/worlds/inn", &world).await;
    assert_eq!(status, 200, "{body}");
    for n in 1..=4 {
        let (status, body) = engine
            .post(
                "/v1/ticks",
                tick("inn", "s1", n, &["n1", "n2"]).to_string().as_bytes(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // Flags are namespaced by plugin, native and sandboxed alike.
    db.projections_caught_up().await;
    let (status, session) = engine.get("/v1/sessions/inn/s1").await;
    assert_eq!(status, 200, "{session}");
    let flags: Vec<&String> = session["flags"].as_object().unwrap().keys().collect();
    assert!(
        flags.iter().any(|k| *k == "plugin:wasm-greeter:mood"),
        "{session}"
    );
    assert!(
        flags.iter().any(|k| k.starts_with("plugin:game-stealth:")),
        "{session}"
    );
    assert!(flags.iter().all(|k| k.starts_with("plugin:")), "{session}");
    drop(engine);
    assert!(
        std::fs::read_dir(cache.path()).unwrap().next().is_some(),
        "compiled plugins are cached"
    );

    let log = db.open().await;
    let events = provenant_tests::all_events(&log).await;
    let loaded = events
        .iter()
        .find(|e| {
            e.kind.as_str() == "PluginLoaded"
                && e.plugin_id
                    .as_ref()
                    .is_some_and(|p| p.as_str() == "wasm-greeter")
        })
        .expect("PluginLoaded");
    let digest = loaded.payload["digest"].as_str().unwrap().to_owned();
    let stopped = events
        .iter()
        .filter(|e| e.kind.as_str() == "PluginCallFailed" && e.payload["limit"] == "fuel")
        .count();
    assert_eq!(
        stopped, 8,
        "the endless loop, stopped for each NPC of each tick"
    );
    assert!(events.iter().any(|e| e.kind.as_str() == "SessionFlagSet"
        && e.provenance.plugin_digest.as_deref() == Some(digest.as_str())));

    // The recorded modules: everything matches, fuel included.
    let report = replay(&db.url, &["--plugins-dir", path(&plugins)], 0);
    let greeter = plugin(&report, "wasm-greeter");
    assert_eq!(greeter["recorded_digest"], json!(digest));
    assert_eq!(greeter["replayed_digest"], json!(digest));
    assert_eq!(greeter["replayed"], 16, "two calls per NPC per tick");
    assert_eq!(greeter["matched"], 16);
    assert_eq!(
        plugin(&report, "wasm-loop")["matched"],
        8,
        "running out of fuel replays too"
    );

    // A changed module diverges at exactly the calls that behave
    // differently: its effect's write, not its condition.
    let changed = greeter_dir("\"grumpier\"");
    let report = replay(&db.url, &["--plugins-dir", path(&changed)], 1);
    let greeter = plugin(&report, "wasm-greeter");
    assert_ne!(greeter["replayed_digest"], greeter["recorded_digest"]);
    assert_eq!(
        (greeter["matched"].clone(), greeter["diverged"].clone()),
        (json!(8), json!(8))
    );
    for d in greeter["divergences"].as_array().unwrap() {
        assert_eq!(
            (d["kind"].as_str(), d["what"].as_str()),
            (Some("EffectApplied"), Some("writes")),
            "{d}"
        );
    }
    let out = provenant_on(
        &db.url,
        &[
            "audit",
            "replay",
            "--plugin-cache",
            "off",
            "--plugins-dir",
            path(&changed),
        ],
    );
    assert!(
        stdout(&out).contains("replayed with another module"),
        "{}",
        stdout(&out)
    );

    // Without the plugins, their calls are skipped, not failed.
    let report = replay(&db.url, &["--plugins-dir", "/nonexistent-but-unused"], 2);
    assert_eq!(report["status"], "error");
    let report = replay(&db.url, &[], 0);
    assert_eq!(
        plugin(&report, "wasm-greeter")["skipped"]["module_not_available"],
        16
    );
}

#[tokio::test]
async fn the_engine_refuses_to_start_with_a_plugin_that_cannot_load_and_names_it() {
    let db = TestLog::new(Backend::Sqlite).await;
    let plugins = greeter_dir("\"cheerful\"");
    let mut manifest: Value = serde_json::from_slice(
        &std::fs::read(plugins.path().join("greeter/manifest.json")).unwrap(),
    )
    .unwrap();
    manifest["digest"] = json!(format!("sha256:{}", "1".repeat(64)));
    std::fs::write(
        plugins.path().join("greeter/manifest.json"),
        manifest.to_string(),
    )
    .unwrap();
    let refused = EngineProcess::try_start(&EngineOptions {
        database_url: db.url.clone(),
        args: vec![
            "--plugins-dir".into(),
            path(&plugins).into(),
            "--plugin-cache".into(),
            "off".into(),
        ],
        ..Default::default()
    })
    .err()
    .expect("the engine refuses to start");
    assert!(refused.contains("plugin wasm-greeter ("), "{refused}");
    assert!(refused.contains("digest mismatch"), "{refused}");
    assert!(
        provenant_tests::all_events(&db.open().await)
            .await
            .is_empty(),
        "nothing is recorded"
    );
}

//! Remote plugins through the real binary: `serve` calling real HTTP
//! services (with a token from the environment), a hanging service that
//! delays only the worlds that use it, `plugins list`, and `audit replay`
//! reporting remote calls or sending them again (`--remote-live`).

use std::time::{Duration, Instant};

use provenant_events::Event;
use provenant_tests::cli::{json, provenant_on_env, stderr};
use provenant_tests::engine::{EngineOptions, EngineProcess};
use provenant_tests::fixtures::tick;
use provenant_tests::log::TestLog;
use provenant_tests::remote::{Answer, RemoteService, write_remote_plugin};
use provenant_tests::replay::{plugin_report as plugin, replay_json};
use provenant_tests::{Backend, http, http_text};
use serde_json::{Value, json};

fn condition_world(plugin: &str) -> Value {
    json!({"name": plugin, "meta": {"behavior": {
        "enabledPlugins": [plugin],
        "activities": [{"id": "a", "conditions": [{"id": format!("plugin:{plugin}:c")}],
                        "effects": [{"id": format!("effect:plugin:{plugin}:e")}]}]}}})
}

fn engine(db: &TestLog, dir: &tempfile::TempDir, env: Vec<(String, String)>) -> EngineProcess {
    EngineProcess::start(&EngineOptions {
        database_url: db.url.clone(),
        args: vec!["--plugins-dir".into(), dir.path().to_str().unwrap().into()],
        env,
        ..Default::default()
    })
}

#[tokio::test]
async fn serve_calls_a_remote_plugin_with_its_token_and_replay_reports_or_resends_its_calls() {
    let db = TestLog::new(Backend::Postgres).await;
    let oracle = RemoteService::start(|op, body| match op {
        "evaluate-condition" => Answer::Json(json!({"result": body["context"]["npc_id"] == "n1"})),
        _ => Answer::Json(json!({"writes": [
            {"capability": "set_session_flag", "key": "omen", "value": "crows"}]})),
    });
    let dir = tempfile::tempdir().unwrap();
    write_remote_plugin(
        dir.path(),
        "oracle",
        &["group:behavior", "session:write"],
        &oracle.endpoint(),
        json!({"token_env": "ORACLE_TOKEN"}),
    );
    let env = vec![("ORACLE_TOKEN".to_owned(), "s3cret".to_owned())];
    let running = engine(&db, &dir, env.clone());
    let (status, body) = running
        .put("/v1/worlds/inn", &condition_world("oracle"))
        .await;
    assert_eq!(status, 200, "{body}");
    for n in 1..=3 {
        let (status, body) = running
            .post(
                "/v1/ticks",
                tick("inn", "s1", n, &["n1", "n2"]).to_string().as_bytes(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    drop(running);
    let received = oracle.received();
    assert_eq!(received.len(), 9, "two conditions and one effect per tick");
    assert!(
        received
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer s3cret"))
    );

    let log = db.open().await;
    let events = provenant_tests::all_events(&log).await;
    let loaded = events
        .iter()
        .find(|e| e.kind.as_str() == "PluginLoaded" && e.payload["manifest"]["id"] == "oracle")
        .expect("PluginLoaded");
    assert_eq!(loaded.payload["runtime"], "remote");
    assert_eq!(loaded.payload["endpoint"], json!(oracle.endpoint()));
    let flags: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind.as_str() == "SessionFlagSet")
        .collect();
    assert_eq!(flags.len(), 3, "one omen a tick, from n1's effect");
    assert_eq!(flags[0].payload["key"], "plugin:oracle:omen");
    assert_eq!(flags[0].payload["value"], "crows");
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains("s3cret"), "the token is never recorded");

    // Plain replay: the calls are remote, nothing is sent.
    let dir_arg = dir.path().to_str().unwrap();
    let plain = provenant_on_env(
        &db.url,
        &["audit", "replay", "--json", "--plugins-dir", dir_arg],
        &env,
    );
    assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));
    let report = json(&plain);
    let p = plugin(&report, "oracle");
    assert_eq!(p["skipped"]["remote"], 9, "{p}");
    assert_eq!(p["replayed"], 0);
    assert_eq!(oracle.received().len(), 9, "a plain replay sends nothing");

    // --remote-live: each recorded request sent again; same answers match.
    let live = |code| {
        let out = provenant_on_env(
            &db.url,
            &[
                "audit",
                "replay",
                "--json",
                "--remote-live",
                "--plugins-dir",
                dir_arg,
            ],
            &env,
        );
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
        json(&out)
    };
    let report = live(0);
    assert_eq!(plugin(&report, "oracle")["matched"], 9, "{report}");
    let resent = &oracle.received()[9..];
    assert_eq!(resent.len(), 9);
    // The same request as recorded: context, params and ids.
    assert_eq!(resent[0].body, received[0].body);

    // Today the oracle answers otherwise: the divergences say where.
    oracle.set(|op, _| match op {
        "evaluate-condition" => Answer::Json(json!({"result": true})),
        _ => Answer::Json(json!({"writes": [
            {"capability": "set_session_flag", "key": "omen", "value": "doves"}]})),
    });
    let report = live(1);
    let p = plugin(&report, "oracle");
    // n1's conditions still answer true; n2's now do too (recorded
    // false); every effect writes doves, not crows.
    assert_eq!(
        (p["matched"].clone(), p["diverged"].clone()),
        (json!(3), json!(6)),
        "{p}"
    );
    for d in p["divergences"].as_array().unwrap() {
        let expected = match d["call"].as_str() {
            Some("condition") => (json!("n2"), json!("result")),
            _ => (json!("n1"), json!("writes")),
        };
        assert_eq!((d["npc_id"].clone(), d["what"].clone()), expected, "{d}");
    }

    // Without the plugin: nothing to send to.
    let report = replay_json(&db.url, &["--remote-live"], 0);
    assert_eq!(
        plugin(&report, "oracle")["skipped"]["endpoint_not_available"],
        9
    );

    // plugins list shows where it is served.
    let out = provenant_on_env(
        &db.url,
        &["plugins", "list", "--json", "--plugins-dir", dir_arg],
        &env,
    );
    let listed = json(&out);
    let entry = listed["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "oracle")
        .unwrap();
    assert_eq!(
        (entry["runtime"].clone(), entry["endpoint"].clone()),
        (json!("remote"), json!(oracle.endpoint()))
    );
}

#[tokio::test]
async fn a_hanging_remote_plugin_delays_only_the_worlds_that_use_it() {
    let db = TestLog::new(Backend::Sqlite).await;
    let hang = RemoteService::start(|_, _| Answer::Hang);
    let fine = RemoteService::start(|_, _| Answer::Json(json!({"result": true})));
    let dir = tempfile::tempdir().unwrap();
    write_remote_plugin(
        dir.path(),
        "hang",
        &["group:behavior"],
        &hang.endpoint(),
        json!({"timeout_ms": 3000}),
    );
    write_remote_plugin(
        dir.path(),
        "fine",
        &["group:behavior"],
        &fine.endpoint(),
        json!({}),
    );
    let running = engine(&db, &dir, Vec::new());
    for (world, plugin) in [("slow", "hang"), ("quick", "fine")] {
        let (status, body) = running
            .put(&format!("/v1/worlds/{world}"), &condition_world(plugin))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let started = Instant::now();
    let slow_tick = tick("slow", "s1", 1, &["n1"]).to_string();
    let slow = {
        let url = format!("http://{}/v1/ticks", running.addr);
        tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(url)
                .body(slow_tick)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), started.elapsed())
        })
    };
    // Once the slow world's call is out, the quick world's ticks go through.
    let hang = std::sync::Arc::new(hang);
    let waiter = hang.clone();
    let sent = tokio::task::spawn_blocking(move || waiter.wait_for(1, Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(sent, "the slow world's call was never sent");
    for n in 1..=5 {
        let (status, body) = running
            .post(
                "/v1/ticks",
                tick("quick", "s1", n, &["n1"]).to_string().as_bytes(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let quick_done = started.elapsed();
    assert!(
        !slow.is_finished(),
        "the quick world waited for the slow one ({quick_done:?})"
    );
    let (status, took) = slow.await.unwrap();
    assert_eq!(status, 200);
    assert!(took >= Duration::from_millis(3000), "{took:?}");
    assert!(quick_done < took, "{quick_done:?} vs {took:?}");
    assert_eq!(
        fine.received().len(),
        10,
        "a condition and an effect a tick"
    );
}

#[tokio::test]
async fn health_and_metrics_show_a_remote_plugins_circuit_and_its_failures_by_reason() {
    const TOKEN: &str = "remote-test-token";
    let db = TestLog::new(Backend::Postgres).await;
    let down = RemoteService::start(|_, _| Answer::Status(503, "down".into()));
    let dir = tempfile::tempdir().unwrap();
    write_remote_plugin(
        dir.path(),
        "shaky",
        &["group:behavior"],
        &down.endpoint(),
        json!({"circuit": {"failures": 2, "cool_down_ms": 600000}}),
    );
    let running = EngineProcess::start(&EngineOptions {
        database_url: db.url.clone(),
        admin_token: Some(TOKEN.into()),
        args: vec!["--plugins-dir".into(), dir.path().to_str().unwrap().into()],
        ..Default::default()
    });
    let body = serde_json::to_vec(&condition_world("shaky")).unwrap();
    let (status, _) = http(
        running.addr,
        "PUT",
        "/v1/worlds/inn",
        Some(&body),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    for n in 1..=2 {
        let body = tick("inn", "s1", n, &["n1", "n2"]).to_string();
        let (status, answer) = http(
            running.addr,
            "POST",
            "/v1/ticks",
            Some(body.as_bytes()),
            Some(TOKEN),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(
        down.received().len(),
        2,
        "the circuit opened after two failures"
    );
    let log = db.open().await;
    let head = log.head().await.unwrap().position;
    assert!(
        log.wait_for_projections(&["plugin_metrics"], head, Duration::from_secs(30))
            .await
            .unwrap()
    );

    let (status, health) = http(
        running.addr,
        "GET",
        "/admin/plugins/health",
        None,
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    let circuit = &health["health_status"]["shaky"]["circuit"];
    assert_eq!(circuit["state"], "open", "{health}");
    assert_eq!(circuit["times_opened"], 1);
    assert_eq!(circuit["not_sent"]["circuit_open"], 2);
    assert!(
        health["health_status"]["game-stealth"]
            .get("circuit")
            .is_none(),
        "only remote plugins have a circuit"
    );
    let text = http_text(running.addr, "GET", "/metrics", None, Some(TOKEN))
        .await
        .1;
    for line in [
        "provenant_plugin_circuit_open{plugin=\"shaky\"} 1",
        "provenant_plugin_call_failures_total{plugin=\"shaky\",reason=\"status\"} 2",
        "provenant_plugin_call_failures_total{plugin=\"shaky\",reason=\"circuit_open\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
}

#[test]
fn the_demo_starts_the_python_example_and_shows_its_calls() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(provenant_tests::binary())
        .args(["demo", "--ticks", "15", "--remote-example"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("NATS_URL")
        .env_remove("PROVENANT_PLUGINS_DIR")
        .output()
        .expect("the demo runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("remote plugin: the tavern oracle, a Python service"),
        "{text}"
    );
    // Its row: a condition for each of 3 NPCs of each of 30 tavern ticks,
    // and no failure.
    let row: Vec<u64> = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("tavern-oracle "))
        .unwrap_or_else(|| panic!("no tavern-oracle row:\n{text}"))
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    assert_eq!(row[0], 90, "{text}");
    assert!(row[1] > 0, "some NPCs are fated: {text}");
    assert_eq!(row[3], 0, "no failure: {text}");
    let remote = row[0] + row[1];
    assert!(
        text.contains(&format!("{remote} remote")),
        "replay reports them remote:\n{text}"
    );
}

//! Projections, the admin API and Prometheus, through the real binary:
//! values checked against what the ticks sent must produce, health that
//! follows a plugin's failure rate both ways, reset, a SIGKILL between
//! events and checkpoints, rebuild equal to live, and `promtool`.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use provenant_log::EventLog;
use provenant_tests::cli::provenant_on as provenant;
use provenant_tests::{Backend, TestLog};
use serde_json::{Value, json};

use provenant_tests::{EngineOptions, EngineProcess, http, http_text, tavern, tick, try_http_text};

const TOKEN: &str = "projection-test-token";
pub(crate) const PROJECTIONS: [&str; 3] = ["plugin_metrics", "sessions", "totals"];

/// A world whose one activity is example-flaky's coin flip, failing at
/// `fail_rate`.
fn casino(fail_rate: f64) -> Value {
    json!({
        "name": "Casino",
        "meta": {"behavior": {
            "enabledPlugins": ["example-flaky"],
            "activities": [{"id": "gamble",
                "conditions": [{"id": "plugin:example-flaky:coin_flip", "params": {"fail_rate": fail_rate}}],
                "effects": []}]
        }}
    })
}

/// The engine on `db`'s log (HTTP only), with the admin token and `args`.
fn with_token(db: &TestLog, args: &[&str]) -> EngineOptions {
    EngineOptions {
        database_url: db.url.clone(),
        admin_token: Some(TOKEN.into()),
        args: args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    }
}

async fn put_world(engine: &EngineProcess, world: &str, config: &Value) {
    let body = serde_json::to_vec(config).unwrap();
    let (status, answer) = http(
        engine.addr,
        "PUT",
        &format!("/v1/worlds/{world}"),
        Some(&body),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

async fn send_tick(engine: &EngineProcess, world: &str, session: &str, n: u64, npcs: &[&str]) {
    let body = serde_json::to_vec(&tick(world, session, n, npcs)).unwrap();
    let (status, answer) = http(engine.addr, "POST", "/v1/ticks", Some(&body), Some(TOKEN)).await;
    assert_eq!(status, 200, "{answer}");
}

async fn get(engine: &EngineProcess, path: &str) -> (u16, Value) {
    http(engine.addr, "GET", path, None, Some(TOKEN)).await
}

/// Waits until every projection has committed the log up to its head.
async fn caught_up(log: &EventLog) -> u64 {
    let head = log.head().await.unwrap().position;
    let done = log
        .wait_for_projections(&PROJECTIONS, head, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        done,
        "projections did not reach the head {head}: {:?}",
        log.projection_statuses().await.unwrap()
    );
    head
}

/// The `MetricsReset` events of the log.
async fn metrics_resets(log: &EventLog) -> Vec<provenant_events::Event> {
    log.read_filtered(
        0,
        10,
        &provenant_log::EventFilter {
            kind: Some(provenant_events::EventKind::new("MetricsReset").unwrap()),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn flaky_metrics(engine: &EngineProcess) -> Value {
    let (status, m) = get(engine, "/admin/plugins/metrics/example-flaky").await;
    assert_eq!(status, 200, "{m}");
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_failure_rate_and_the_admin_api_keeps_the_original_shapes() {
    let db = TestLog::new(Backend::Sqlite).await;
    let engine = EngineProcess::start(&with_token(&db, &["--health-window-calls", "20"]));
    let log = db.open().await;

    // 15 calls, every one failing: above the 10 samples health needs.
    put_world(&engine, "casino", &casino(1.0)).await;
    for n in 1..=15 {
        send_tick(&engine, "casino", "s1", n, &["gambler"]).await;
    }
    caught_up(&log).await;
    let m = flaky_metrics(&engine).await;
    assert_eq!(m["plugin_id"], "example-flaky");
    assert_eq!(m["requests"]["total"], 15, "{m}");
    assert_eq!(m["requests"]["errors"], 15, "{m}");
    assert_eq!(m["requests"]["error_rate"], 1.0, "{m}");
    assert!(m["requests"]["average_time_ms"].is_number(), "{m}");
    assert!(m["requests"]["last_request"].is_string(), "{m}");
    let b = &m["behavior_extensions"];
    assert_eq!(
        (
            &b["condition_evaluations"],
            &b["condition_failures"],
            &b["condition_failure_rate"]
        ),
        (&json!(15), &json!(15), &json!(1.0)),
        "{m}"
    );
    assert_eq!(
        (
            &b["effect_applications"],
            &b["effect_failures"],
            &b["effect_failure_rate"]
        ),
        (&json!(0), &json!(0), &json!(0.0)),
        "{m}"
    );
    assert_eq!(
        m["event_handlers"],
        json!({"calls": 0, "failures": 0, "failure_rate": 0.0})
    );
    assert_eq!(m["health"]["is_healthy"], false, "{m}");
    assert_eq!(m["health"]["state"], "unhealthy", "{m}");
    assert!(m["health"]["last_check"].is_string(), "{m}");
    let errors = m["health"]["recent_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 10, "the last 10 errors: {m}");
    assert!(
        errors
            .iter()
            .all(|e| e["error_message"].as_str().unwrap().contains("coin")),
        "{m}"
    );
    let (status, h) = get(&engine, "/admin/plugins/health").await;
    assert_eq!(status, 200);
    assert_eq!(h["overall_healthy"], false, "{h}");
    assert_eq!(h["unhealthy_plugins"], json!(["example-flaky"]), "{h}");
    let fh = &h["health_status"]["example-flaky"];
    assert_eq!(
        (
            &fh["is_healthy"],
            &fh["error_count"],
            &fh["request_error_rate"],
            &fh["condition_failure_rate"],
            &fh["effect_failure_rate"]
        ),
        (
            &json!(false),
            &json!(15),
            &json!(1.0),
            &json!(1.0),
            &json!(0.0)
        ),
        "{h}"
    );
    assert!(fh["last_check"].is_string(), "{h}");
    // Plugins that did nothing are unknown, not unhealthy.
    assert_eq!(
        h["health_status"]["game-romance"]["is_healthy"], true,
        "{h}"
    );
    assert_eq!(
        h["health_status"]["game-romance"]["state"], "unknown",
        "{h}"
    );

    // The plugin recovers: 20 good calls fill the 20-call window.
    put_world(&engine, "casino", &casino(0.0)).await;
    for n in 16..=35 {
        send_tick(&engine, "casino", "s1", n, &["gambler"]).await;
    }
    caught_up(&log).await;
    let m = flaky_metrics(&engine).await;
    assert_eq!(m["health"]["state"], "healthy", "{m}");
    assert_eq!(m["health"]["is_healthy"], true, "{m}");
    // The counters since the last reset keep the failures.
    assert_eq!(
        (&m["requests"]["total"], &m["requests"]["errors"]),
        (&json!(35), &json!(15)),
        "{m}"
    );
    let (_, h) = get(&engine, "/admin/plugins/health").await;
    assert_eq!(h["overall_healthy"], true, "{h}");

    // Reset one plugin: a MetricsReset event, and its counters restart.
    let (status, answer) = http(
        engine.addr,
        "POST",
        "/admin/plugins/metrics/reset?plugin_id=example-flaky",
        None,
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "ok", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("example-flaky"),
        "{answer}"
    );
    caught_up(&log).await;
    let m = flaky_metrics(&engine).await;
    assert_eq!(
        (&m["requests"]["total"], &m["requests"]["errors"]),
        (&json!(0), &json!(0)),
        "{m}"
    );
    assert_eq!(m["health"]["state"], "unknown", "{m}");
    let resets = metrics_resets(&log).await;
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].payload["plugin_id"], "example-flaky");
    send_tick(&engine, "casino", "s1", 36, &["gambler"]).await;
    caught_up(&log).await;
    assert_eq!(flaky_metrics(&engine).await["requests"]["total"], 1);

    // The summary of every plugin.
    let (status, all) = get(&engine, "/admin/plugins/metrics").await;
    assert_eq!(status, 200);
    let summary = &all["summary"];
    assert_eq!(summary["total_plugins"], 4, "{all}");
    assert_eq!(
        (&summary["total_requests"], &summary["total_errors"]),
        (&json!(1), &json!(0)),
        "{all}"
    );
    assert_eq!(summary["overall_error_rate"], 0.0, "{all}");
    assert_eq!(
        (&summary["unhealthy_count"], &summary["unhealthy_plugins"]),
        (&json!(0), &json!([])),
        "{all}"
    );
    assert_eq!(
        all["plugins"]["example-flaky"]["requests"]["total"], 1,
        "{all}"
    );

    // list, behavior-extensions and details, in the original's shapes.
    let (status, list) = get(&engine, "/admin/plugins/list").await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 4, "{list}");
    assert_eq!(list["route_plugins"], json!([]), "{list}");
    let ids: Vec<&str> = list["feature_plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4, "{list}");
    assert!(
        ids.contains(&"example-flaky") && ids.contains(&"game-stealth"),
        "{list}"
    );
    for p in list["feature_plugins"].as_array().unwrap() {
        for key in ["id", "name", "version", "enabled"] {
            assert!(p.get(key).is_some(), "{key} missing in {p}");
        }
    }
    let (status, ext) = get(&engine, "/admin/plugins/behavior-extensions").await;
    assert_eq!(status, 200);
    assert_eq!(ext["registry_locked"], true, "{ext}");
    let flip = ext["conditions"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["condition_id"] == "plugin:example-flaky:coin_flip")
        .unwrap_or_else(|| panic!("coin_flip missing: {ext}"));
    assert_eq!(flip["plugin_id"], "example-flaky");
    assert!(
        flip["description"].is_string() && flip["required_context"].is_array(),
        "{flip}"
    );
    assert_eq!(ext["conditions"]["by_plugin"]["example-flaky"], 1, "{ext}");
    assert!(ext["conditions"]["total"].as_u64().unwrap() >= 3, "{ext}");
    for e in ext["effects"]["list"].as_array().unwrap() {
        assert!(
            e["effect_id"].is_string()
                && e["plugin_id"].is_string()
                && e.get("default_params").is_some(),
            "{e}"
        );
    }
    for p in ext["simulation_configs"]["providers"].as_array().unwrap() {
        assert!(
            p["provider_id"].is_string() && p["priority"].is_number(),
            "{p}"
        );
    }
    assert!(ext["simulation_configs"]["total"].is_number(), "{ext}");
    let (status, d) = get(&engine, "/admin/plugins/example-flaky/details").await;
    assert_eq!(status, 200, "{d}");
    for key in [
        "plugin_id",
        "name",
        "version",
        "description",
        "author",
        "kind",
        "enabled",
        "permissions",
        "dependencies",
        "metrics",
    ] {
        assert!(d.get(key).is_some(), "{key} missing in {d}");
    }
    assert_eq!(
        d["behavior_extensions"]["conditions"],
        json!(["plugin:example-flaky:coin_flip"]),
        "{d}"
    );
    assert_eq!(d["behavior_extensions"]["effects"], json!([]), "{d}");
    assert_eq!(d["metrics"]["requests"]["total"], 1, "{d}");

    // An unknown plugin: 404 with a JSON error, and no reset recorded.
    for (method, path) in [
        ("GET", "/admin/plugins/metrics/no-such-plugin"),
        ("GET", "/admin/plugins/no-such-plugin/details"),
        (
            "POST",
            "/admin/plugins/metrics/reset?plugin_id=no-such-plugin",
        ),
    ] {
        let (status, answer) = http(engine.addr, method, path, None, Some(TOKEN)).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("no-such-plugin"),
            "{answer}"
        );
    }

    // Without the token: 401 on every admin endpoint, and nothing reset.
    for (method, path) in [
        ("GET", "/admin/plugins/list"),
        ("GET", "/admin/plugins/metrics"),
        ("GET", "/admin/plugins/metrics/example-flaky"),
        ("GET", "/admin/plugins/health"),
        ("GET", "/admin/plugins/behavior-extensions"),
        ("GET", "/admin/plugins/example-flaky/details"),
        ("POST", "/admin/plugins/metrics/reset"),
    ] {
        for bearer in [None, Some("wrong")] {
            let (status, answer) = http(engine.addr, method, path, None, bearer).await;
            assert_eq!(status, 401, "{method} {path} with {bearer:?}: {answer}");
            assert!(answer["error"].is_string(), "{answer}");
        }
    }
    caught_up(&log).await;
    assert_eq!(flaky_metrics(&engine).await["requests"]["total"], 1);
    let resets = metrics_resets(&log).await;
    assert_eq!(resets.len(), 1, "refused resets recorded nothing");
}

/// `name{labels} value` lines of a Prometheus text, keyed by the name and
/// its labels in sorted order.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let key = match series.split_once('{') {
            Some((name, labels)) => {
                let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                labels.sort();
                format!("{name}{{{}}}", labels.join(","))
            }
            None => series.to_owned(),
        };
        out.insert(
            key,
            value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        );
    }
    out
}

async fn scrape(engine: &EngineProcess) -> (String, BTreeMap<String, f64>) {
    let (status, text) = http_text(
        engine.addr,
        "GET",
        "/metrics",
        None,
        engine.bearer.as_deref(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let parsed = samples(&text);
    (text, parsed)
}

/// `promtool check metrics` on the text, where promtool is installed (CI
/// installs it, and there its absence is a failure).
fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is not installed in CI: {e}"
            );
            eprintln!("promtool not installed: `promtool check metrics` not run ({e})");
            return;
        }
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_reports_the_projections_totals_and_a_restart_keeps_them() {
    let db = TestLog::new(Backend::Postgres).await;
    let options = with_token(&db, &[]);
    let mut engine = EngineProcess::start(&options);
    let log = db.open().await;
    put_world(&engine, "casino", &casino(1.0)).await;
    put_world(&engine, "tavern", &tavern()).await;
    for n in 1..=12 {
        send_tick(&engine, "casino", "s1", n, &["gambler"]).await;
    }
    for n in 1..=5 {
        send_tick(&engine, "tavern", "s1", n, &["npc-1"]).await;
    }
    // A bad tick: rejected and counted.
    let (status, _) = http(
        engine.addr,
        "POST",
        "/v1/ticks",
        Some(b"{not json"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 400);
    let head = caught_up(&log).await;

    let (text, m) = scrape(&engine).await;
    promtool_check(&text);
    let flaky_errors =
        r#"provenant_plugin_calls_total{kind="condition",outcome="error",plugin="example-flaky"}"#;
    assert_eq!(m.get(flaky_errors), Some(&12.0), "{text}");
    assert_eq!(
        m.get(r#"provenant_plugin_call_duration_seconds_count{kind="condition",plugin="example-flaky"}"#),
        Some(&12.0),
        "{text}"
    );
    assert_eq!(
        m.get(r#"provenant_plugin_call_duration_seconds_bucket{kind="condition",le="+Inf",plugin="example-flaky"}"#),
        Some(&12.0),
        "a real histogram, with buckets: {text}"
    );
    assert_eq!(
        m.get(r#"provenant_plugin_health{plugin="example-flaky"}"#),
        Some(&3.0),
        "{text}"
    );
    assert_eq!(
        m.get(r#"provenant_plugin_health{plugin="example-nosy"}"#),
        Some(&0.0),
        "{text}"
    );
    // Five tavern ticks with one NPC: each evaluates has_disguise once.
    assert_eq!(
        m.get(
            r#"provenant_plugin_calls_total{kind="condition",outcome="ok",plugin="game-stealth"}"#
        ),
        Some(&5.0),
        "{text}"
    );
    assert_eq!(
        m.get("provenant_ticks_processed_total"),
        Some(&17.0),
        "{text}"
    );
    assert_eq!(
        m.get("provenant_ticks_rejected_total"),
        Some(&1.0),
        "{text}"
    );
    assert_eq!(
        m.get("provenant_log_head_position"),
        Some(&(head as f64)),
        "{text}"
    );
    for name in PROJECTIONS {
        assert_eq!(
            m.get(&format!(
                r#"provenant_projection_lag_events{{projection="{name}"}}"#
            )),
            Some(&0.0),
            "{text}"
        );
    }
    assert!(
        m.keys().any(|k| k.starts_with("provenant_build_info{")),
        "{text}"
    );
    // Bounded labels only: no world, session, NPC or event ids.
    for forbidden in ["casino", "tavern", "gambler", "npc-1", "s1\""] {
        assert!(!text.contains(forbidden), "{forbidden} in a label: {text}");
    }

    // The session state the game reads.
    let (status, session) = get(&engine, "/v1/sessions/tavern/s1").await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(
        (&session["world_id"], &session["session_id"]),
        (&json!("tavern"), &json!("s1"))
    );
    assert_eq!(session["last_tick"], 5, "{session}");
    assert!(
        session["relationships"]["npc-1"]["affinity"].is_number(),
        "{session}"
    );
    assert_eq!(
        session["flags"]["plugin:game-stealth:suspicion:npc-1"].as_f64(),
        Some(2.0),
        "two disguised ticks (2 and 4) raised suspicion by 1 each: {session}"
    );
    // NPC state is what plugins and the game's session updates wrote
    // (NpcStateSet); the tick's own NPC list is context, not state.
    assert!(session["npcs"].is_object(), "{session}");
    let (status, missing) = get(&engine, "/v1/sessions/tavern/nobody").await;
    assert_eq!(status, 404, "{missing}");
    assert!(missing["error"].is_string());

    // A restarted engine reports the same totals.
    assert!(engine.terminate().success());
    let engine = EngineProcess::start(&options);
    caught_up(&log).await;
    let (_, again) = scrape(&engine).await;
    for key in [
        flaky_errors,
        "provenant_ticks_processed_total",
        "provenant_ticks_rejected_total",
        r#"provenant_plugin_call_duration_seconds_count{kind="condition",plugin="example-flaky"}"#,
    ] {
        assert_eq!(again.get(key), m.get(key), "{key} after a restart");
    }
}

/// Every projection's rows, by projection.
pub(crate) async fn all_rows(
    log: &EventLog,
) -> BTreeMap<&'static str, (u64, Vec<(String, String)>)> {
    let mut out = BTreeMap::new();
    for name in PROJECTIONS {
        let stored = log.load_projection(name).await.unwrap().unwrap();
        out.insert(name, (stored.position, stored.rows));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_between_events_and_checkpoints_neither_loses_nor_double_counts() {
    let db = TestLog::new(Backend::Postgres).await;
    let options = with_token(&db, &[]);
    let mut engine = EngineProcess::start(&options);
    put_world(&engine, "casino", &casino(0.3)).await;
    put_world(&engine, "tavern", &tavern()).await;
    // Ticks from another thread while the engine is killed: some are
    // acknowledged, some fail with the connection.
    let addr = engine.addr;
    let sender = tokio::spawn(async move {
        let mut acknowledged = 0u64;
        for n in 1..=400u64 {
            let (world, npcs): (&str, &[&str]) = if n % 2 == 0 {
                ("casino", &["gambler", "dealer"])
            } else {
                ("tavern", &["npc-1", "npc-2"])
            };
            let body = serde_json::to_vec(&tick(world, "s1", n, npcs)).unwrap();
            let sent = try_http_text(addr, "POST", "/v1/ticks", Some(&body), Some(TOKEN)).await;
            match sent {
                Ok((200, _)) => acknowledged += 1,
                _ => break,
            }
        }
        acknowledged
    });
    let log = db.open().await;
    // Kill once the projections have committed something and more is coming.
    let committed = log
        .wait_for_projections(&["plugin_metrics"], 201, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        committed,
        "the projections never committed: {:?}",
        log.projection_statuses().await.unwrap()
    );
    engine.kill();
    let acknowledged = sender.await.unwrap();
    assert!(acknowledged > 0);

    let engine = EngineProcess::start(&options);
    for n in 1000..1010 {
        send_tick(&engine, "casino", "s2", n, &["gambler"]).await;
    }
    let head = caught_up(&log).await;
    let mut engine = engine;
    assert!(engine.terminate().success());
    let live = all_rows(&log).await;

    // Independent counts, straight from the log.
    let mut processed = 0u64;
    let mut calls = 0u64;
    let mut after = 0;
    loop {
        let page = log.read_forward(after, 5000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        for e in &page {
            match e.kind.as_str() {
                "TickProcessed" => processed += 1,
                "ConditionEvaluated"
                | "EffectApplied"
                | "EventHandled"
                | "PluginCallFailed"
                | "PluginCallPanicked"
                | "PluginDeadlineExceeded" => calls += 1,
                _ => {}
            }
        }
    }
    let totals: Value = serde_json::from_str(&live["totals"].1[0].1).unwrap();
    assert_eq!(totals["events"], head, "{totals}");
    assert_eq!(totals["ticks_processed"], processed, "{totals}");
    let mut counted = 0u64;
    for (_, row) in &live["plugin_metrics"].1 {
        let m: provenant_projections::plugin_metrics::PluginMetrics =
            serde_json::from_str(row).unwrap();
        counted += m.lifetime_calls().map(|(_, _, n)| n).sum::<u64>();
    }
    assert_eq!(counted, calls, "every call counted once");

    // Rebuilt from position 0: the same rows.
    let out = Command::new(provenant_tests::binary())
        .args(["projections", "rebuild"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in PROJECTIONS {
        assert!(
            stdout.contains(&format!("{name}: rebuilt to position {head}")),
            "{stdout}"
        );
        assert!(stdout.contains("events/s"), "{stdout}");
    }
    assert_eq!(all_rows(&log).await, live, "rebuild equals live");
}

fn status_json(url: &str) -> Value {
    let out = provenant(url, &["projections", "status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_run_as_their_own_process_and_status_shows_their_lag() {
    let db = TestLog::new(Backend::Sqlite).await;
    let engine = EngineProcess::start(&with_token(&db, &["--projections", "external"]));
    put_world(&engine, "casino", &casino(1.0)).await;
    for n in 1..=12 {
        send_tick(&engine, "casino", "s1", n, &["gambler"]).await;
    }
    let log = db.open().await;
    let head = log.head().await.unwrap().position;
    let status = status_json(&db.url);
    assert_eq!(status["head"], head);
    for p in status["projections"].as_array().unwrap() {
        assert_eq!(
            (&p["position"], &p["lag"]),
            (&json!(0), &json!(head)),
            "never run: {status}"
        );
    }
    // Nothing projected yet: zeros for a loaded plugin.
    assert_eq!(flaky_metrics(&engine).await["requests"]["total"], 0);

    let mut runner = Command::new(provenant_tests::binary())
        .args(["projections", "run"])
        .env("DATABASE_URL", &db.url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let caught = caught_up(&log).await;
    assert!(caught >= head);
    let status = status_json(&db.url);
    for p in status["projections"].as_array().unwrap() {
        assert_eq!(p["lag"], 0, "{status}");
    }
    let text = String::from_utf8_lossy(&provenant(&db.url, &["projections", "status"]).stdout)
        .into_owned();
    assert!(
        text.contains("plugin_metrics") && text.contains("lag"),
        "{text}"
    );
    // The engine's admin API reads what the other process committed.
    assert_eq!(flaky_metrics(&engine).await["requests"]["errors"], 12);
    let kill = Command::new("kill")
        .args(["-TERM", &runner.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let exit = runner.wait().unwrap();
    assert!(exit.success(), "projections run exits 0 on SIGTERM: {exit}");

    // An unknown projection is refused with the names.
    let out = provenant(&db.url, &["projections", "rebuild", "nope"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("plugin_metrics, sessions, totals"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_exactly_the_routes_served() {
    let db = TestLog::new(Backend::Sqlite).await;
    let engine = EngineProcess::start(&with_token(&db, &[]));
    put_world(&engine, "tavern", &tavern()).await;
    send_tick(&engine, "tavern", "s1", 1, &["npc-1"]).await;
    let (status, doc) = http(engine.addr, "GET", "/openapi.json", None, Some(TOKEN)).await;
    assert_eq!(status, 200, "{doc}");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    // What the issues promise is there.
    for (method, path) in [
        ("POST", "/v1/ticks"),
        ("PUT", "/v1/worlds/{world_id}"),
        ("GET", "/v1/worlds/{world_id}"),
        ("GET", "/v1/events"),
        ("GET", "/v1/sessions/{world_id}/{session_id}"),
        ("GET", "/admin/plugins/list"),
        ("GET", "/admin/plugins/metrics"),
        ("GET", "/admin/plugins/metrics/{plugin_id}"),
        ("GET", "/admin/plugins/health"),
        ("GET", "/admin/plugins/behavior-extensions"),
        ("GET", "/admin/plugins/{plugin_id}/details"),
        ("POST", "/admin/plugins/metrics/reset"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/livez"),
        ("GET", "/readyz"),
    ] {
        assert!(
            documented.contains(&(method.to_owned(), path.to_owned())),
            "{method} {path} is not documented: {documented:?}"
        );
    }
    // Every documented route is served (not the fallback, not 405).
    let tick_body = serde_json::to_vec(&tick("tavern", "s1", 2, &["npc-1"])).unwrap();
    let world_body = serde_json::to_vec(&tavern()).unwrap();
    for (method, path) in &documented {
        let concrete = path
            .replace("{world_id}", "tavern")
            .replace("{session_id}", "s1")
            .replace("{plugin_id}", "example-flaky");
        let body = match (method.as_str(), path.as_str()) {
            ("POST", "/v1/ticks") => Some(tick_body.as_slice()),
            ("PUT", _) => Some(world_body.as_slice()),
            _ => None,
        };
        let (status, answer) = http_text(engine.addr, method, &concrete, body, Some(TOKEN)).await;
        assert!(
            status != 405 && !answer.contains("no route for"),
            "{method} {concrete} is documented but not served: {status} {answer}"
        );
        assert!(status < 500, "{method} {concrete}: {status} {answer}");
    }
    // The check above can tell a route from the fallback.
    let (status, answer) = http_text(
        engine.addr,
        "GET",
        "/admin/plugins/nope/nothing",
        None,
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 404);
    assert!(answer.contains("no route for"), "{answer}");
}

/// Counts events: the smallest projection, to test the runner itself.
#[derive(Default)]
struct Count {
    n: u64,
    dirty: bool,
}

impl provenant_projections::Projection for Count {
    fn name(&self) -> &'static str {
        "count"
    }
    fn version(&self) -> u32 {
        1
    }
    fn restore(&mut self, rows: Vec<(String, String)>) -> Result<(), String> {
        for (_, v) in rows {
            self.n = v.parse().map_err(|e| format!("{e}"))?;
        }
        Ok(())
    }
    fn apply(&mut self, _: &provenant_events::Event) {
        self.n += 1;
        self.dirty = true;
    }
    fn take_changes(&mut self) -> Vec<(String, Option<String>)> {
        if std::mem::take(&mut self.dirty) {
            vec![("n".into(), Some(self.n.to_string()))]
        } else {
            vec![]
        }
    }
}

async fn append_events(log: &EventLog, n: usize) {
    let events = (0..n)
        .map(|i| {
            provenant_events::NewEvent::new(
                provenant_tests::stream("runner"),
                provenant_events::EventKind::new("Counted").unwrap(),
                json!({ "i": i }),
            )
        })
        .collect();
    log.append(provenant_log::AppendBatch::new(events))
        .await
        .unwrap();
}

async fn runner_fences_concurrent_runners(backend: Backend) {
    use provenant_projections::{Factory, Runner, RunnerConfig};
    let db = TestLog::new(backend).await;
    let log = db.open().await;
    append_events(&log, 100).await;
    let factory: Factory = std::sync::Arc::new(|| {
        Box::new(Count::default()) as Box<dyn provenant_projections::Projection>
    });
    let config = RunnerConfig {
        page: 7,
        catch_up_commit: 20,
        ..Default::default()
    };
    let stored_n = |log: EventLog| async move {
        let s = log.load_projection("count").await.unwrap().unwrap();
        (s.position, s.rows[0].1.parse::<u64>().unwrap())
    };

    // Catching up in pages, committing as it goes: each event counted once.
    let mut a = Runner::load(log.clone(), factory.clone(), config)
        .await
        .unwrap();
    let mut b = Runner::load(log.clone(), factory.clone(), config)
        .await
        .unwrap();
    let mut seen = Vec::new();
    a.catch_up(60, |p| seen.push(p)).await.unwrap();
    assert_eq!(stored_n(log.clone()).await, (60, 60));
    assert!(
        seen.len() >= 8 && seen.windows(2).all(|w| w[0] < w[1]),
        "{seen:?}"
    );

    // A second runner loaded before that commit is refused: it never
    // counts the first 60 events twice.
    let err = b.catch_up(100, |_| {}).await.unwrap_err();
    assert!(err.to_string().contains("moved"), "{err}");
    assert_eq!(stored_n(log.clone()).await, (60, 60));

    // Following the log, it reloads the stored state and goes on.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let b = Runner::load(log.clone(), factory.clone(), config)
        .await
        .unwrap();
    let progress = b.progress();
    let follower = tokio::spawn(b.run(stopped));
    append_events(&log, 30).await;
    let mut progress = progress;
    progress.wait_for(|p| *p >= 130).await.unwrap();
    // A rebuild meanwhile (the stored state vanishes, then comes back to
    // the same position): whichever commits first, the count stays exact.
    log.reset_projection("count").await.unwrap();
    let mut rebuilt = Runner::load(log.clone(), factory.clone(), config)
        .await
        .unwrap();
    rebuilt.catch_up(130, |_| {}).await.unwrap();
    append_events(&log, 5).await;
    // The follower has committed the last event itself (its progress moves
    // only with its commits and reloads).
    tokio::time::timeout(Duration::from_secs(20), progress.wait_for(|p| *p >= 135))
        .await
        .expect("the follower reaches the head")
        .unwrap();
    assert_eq!(stored_n(log.clone()).await, (135, 135));
    stop.send(true).unwrap();
    follower.await.unwrap();
    assert_eq!(stored_n(log.clone()).await, (135, 135));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_fences_concurrent_runners_on_postgres() {
    runner_fences_concurrent_runners(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_fences_concurrent_runners_on_sqlite() {
    runner_fences_concurrent_runners(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catching_up_past_the_head_stops_at_the_end_of_the_log() {
    use provenant_projections::{Factory, Runner, RunnerConfig};
    let db = TestLog::new(Backend::Sqlite).await;
    let log = db.open().await;
    append_events(&log, 23).await;
    let factory: Factory = std::sync::Arc::new(|| {
        Box::new(Count::default()) as Box<dyn provenant_projections::Projection>
    });
    let config = RunnerConfig {
        page: 5,
        ..Default::default()
    };
    let mut runner = Runner::load(log.clone(), factory, config).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), runner.catch_up(u64::MAX, |_| {}))
        .await
        .expect("catch_up(u64::MAX) returns at the end of the log")
        .unwrap();
    assert_eq!(runner.position(), 23);
    let stored = log.load_projection("count").await.unwrap().unwrap();
    assert_eq!((stored.position, stored.rows[0].1.as_str()), (23, "23"));
}

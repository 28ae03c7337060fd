//! The alerting rules and the dashboard shipped in `docs/monitoring/`:
//! `promtool` checks the rules and runs their unit tests, and every metric
//! the rules and the dashboard's queries name is one a running engine
//! exports (a real scrape: NATS, a remote plugin whose circuit opens, the
//! projections caught up).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use provenant_tests::engine::{EngineOptions, EngineProcess};
use provenant_tests::fixtures::tick;
use provenant_tests::log::TestLog;
use provenant_tests::remote::{Answer, RemoteService, write_remote_plugin};
use provenant_tests::{Backend, TestNats, http, http_text};
use serde_json::json;

fn monitoring_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/monitoring")
}

/// Runs `promtool` with `args` in docs/monitoring; its output. CI installs
/// promtool; elsewhere its absence fails the test too (the rules would
/// otherwise ship unchecked).
fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(monitoring_dir())
        .output()
        .unwrap_or_else(|e| panic!("promtool is needed to check the alerting rules: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

#[test]
fn the_alerting_rules_are_valid_and_their_unit_tests_pass() {
    let checked = promtool(&["check", "rules", "alerts.yml"]);
    assert!(checked.contains("SUCCESS: 9 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// The `provenant_*` names in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("provenant_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// The `provenant_*` names the rules' expressions use.
fn rule_metrics() -> BTreeSet<String> {
    let rules = std::fs::read_to_string(monitoring_dir().join("alerts.yml")).unwrap();
    rules
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:"))
        .flat_map(metric_names)
        .collect()
}

/// The `provenant_*` names the dashboard's queries use.
fn dashboard_metrics() -> BTreeSet<String> {
    let text = std::fs::read_to_string(monitoring_dir().join("dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .flat_map(|t| metric_names(t["expr"].as_str().expect("every target has a query")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_rules_and_the_dashboard_name_is_exported_by_a_running_engine() {
    const TOKEN: &str = "monitoring-test-token";
    let rules = rule_metrics();
    assert!(rules.len() >= 7, "{rules:?}");
    let dashboard = dashboard_metrics();
    assert!(dashboard.len() >= 10, "{dashboard:?}");
    let db = TestLog::new(Backend::Postgres).await;
    let nats = TestNats::new();
    let down = RemoteService::start(|_, _| Answer::Status(503, "down".into()));
    let dir = tempfile::tempdir().unwrap();
    write_remote_plugin(
        dir.path(),
        "shaky",
        &["group:behavior"],
        &down.endpoint(),
        json!({"circuit": {"failures": 1, "cool_down_ms": 600000}}),
    );
    let engine = EngineProcess::start(&EngineOptions {
        admin_token: Some(TOKEN.into()),
        args: vec!["--plugins-dir".into(), dir.path().to_str().unwrap().into()],
        ..EngineOptions::with_nats(&db.url, &nats)
    });
    let world = json!({"name": "inn", "meta": {"behavior": {
        "enabledPlugins": ["shaky"],
        "activities": [{"id": "a", "conditions": [{"id": "plugin:shaky:c"}],
                        "effects": [{"id": "effect:plugin:shaky:e"}]}]}}});
    let body = serde_json::to_vec(&world).unwrap();
    let (status, _) = http(
        engine.addr,
        "PUT",
        "/v1/worlds/inn",
        Some(&body),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    let body = tick("inn", "s1", 1, &["n1"]).to_string();
    let (status, answer) = http(
        engine.addr,
        "POST",
        "/v1/ticks",
        Some(body.as_bytes()),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let log = db.open().await;
    let head = log.head().await.unwrap().position;
    assert!(
        log.wait_for_projections(&["plugin_metrics"], head, Duration::from_secs(30))
            .await
            .unwrap()
    );
    let text = http_text(engine.addr, "GET", "/metrics", None, Some(TOKEN))
        .await
        .1;
    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for name in rules.iter().chain(&dashboard) {
        assert!(
            exported.contains(name.as_str()),
            "{name} is not exported:\n{text}"
        );
    }
    assert!(text.lines().any(|l| l == "provenant_ready 1"), "{text}");
}

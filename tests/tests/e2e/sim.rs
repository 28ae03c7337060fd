//! `provenant sim`, the real binary, against a real engine: over HTTP on
//! SQLite, over NATS JetStream on PostgreSQL, and what it says when it
//! cannot run.

use std::collections::BTreeMap;
use std::process::Output;

use provenant_events::Event;
use provenant_tests::TestLog;
use serde_json::Value;

use provenant_tests::{EngineOptions, EngineProcess, TestNats, free_port};

/// Runs `provenant sim` with `args`, with none of its settings from the
/// environment.
async fn sim(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(provenant_tests::binary());
    cmd.arg("sim")
        .args(args)
        .env_remove("PROVENANT_ENGINE_URL")
        .env_remove("NATS_URL")
        .env_remove("PROVENANT_NATS_PREFIX")
        .env_remove("PROVENANT_ADMIN_TOKEN")
        .env_remove("PROVENANT_GAME_TOKEN")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("run provenant sim")
}

/// The JSON report of a successful run.
fn report(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}: {stdout}\n{stderr}",
        output.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}

/// Every event of the log, in order.
async fn all_events(db: &TestLog) -> Vec<Event> {
    let log = db.open().await;
    let out = provenant_tests::all_events(&log).await;
    log.close().await;
    out
}

/// The run's figures are consistent, and the log holds exactly the ticks it
/// reports acknowledged, each once, in order per (world, session).
async fn check_run(report: &Value, transport: &str, db: &TestLog) {
    let n = |key: &str| {
        report[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {key} in {report}"))
    };
    assert_eq!(report["transport"], transport, "{report}");
    let sent = n("sent");
    // 100 ticks/s for 1 s; a stalled machine may send a few fewer.
    assert!((90..=100).contains(&sent), "{report}");
    assert_eq!(n("acknowledged"), sent, "{report}");
    assert_eq!(
        (n("duplicates"), n("failed"), n("missing")),
        (0, 0, 0),
        "{report}"
    );
    assert!(n("events") > sent, "{report}");
    assert!(
        report["ticks_per_second"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        report["events_per_second"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    let latency = &report["latency_ms"];
    let (p50, p99, max) = (
        latency["p50"].as_f64().unwrap(),
        latency["p99"].as_f64().unwrap(),
        latency["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{report}");

    let events = all_events(db).await;
    let processed: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind.as_str() == "TickProcessed")
        .collect();
    assert_eq!(processed.len() as u64, n("acknowledged"));
    let ids: std::collections::BTreeSet<&str> = processed
        .iter()
        .map(|e| e.payload["tick_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), processed.len(), "each tick once");
    // The events the acknowledgments counted are the run's: everything after
    // the worlds were configured.
    let configured = events
        .iter()
        .filter(|e| e.kind.as_str() == "WorldConfigured")
        .map(|e| e.position)
        .collect::<Vec<_>>();
    assert_eq!(configured.len(), 2, "sim-1 and sim-2");
    let after_config = events.iter().filter(|e| e.position > configured[1]).count();
    assert_eq!(after_config as u64, n("events"), "{report}");
    // Round-robin over 2 worlds x 2 sessions, tick numbers from 1 per pair.
    let mut per_pair: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for e in &processed {
        let world = e.world_id.as_ref().unwrap().as_str().to_owned();
        let session = e.session_id.as_ref().unwrap().as_str().to_owned();
        per_pair
            .entry((world, session))
            .or_default()
            .push(e.payload["tick"].as_u64().unwrap());
    }
    assert_eq!(per_pair.len(), 4, "{:?}", per_pair.keys());
    for (pair, mut ticks) in per_pair {
        ticks.sort_unstable();
        let expected: Vec<u64> = (1..=ticks.len() as u64).collect();
        assert_eq!(ticks, expected, "{pair:?}");
    }
}

const RUN: &[&str] = &[
    "--worlds",
    "2",
    "--sessions",
    "2",
    "--npcs",
    "3",
    "--rate",
    "100",
    "--duration",
    "1",
    "--json",
];

#[tokio::test(flavor = "multi_thread")]
async fn sim_over_http_on_sqlite() {
    let db = TestLog::sqlite();
    let mut engine = EngineProcess::start(&EngineOptions {
        database_url: db.url.clone(),
        ..Default::default()
    });
    let url = format!("http://{}", engine.addr);
    let mut args = vec!["--engine", url.as_str()];
    args.extend_from_slice(RUN);
    let output = sim(&args, &[]).await;
    let report = report(&output);
    let status = engine.terminate();
    assert!(status.success(), "{status}: {}", engine.stderr());
    check_run(&report, "http", &db).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sim_over_nats_on_postgres() {
    let db = TestLog::postgres().await;
    let nats = TestNats::new();
    let mut engine = EngineProcess::start(&EngineOptions::with_nats(&db.url, &nats));
    let url = format!("http://{}", engine.addr);
    // The engine's address and the prefix from the environment, this time.
    let output = sim(
        RUN,
        &[
            ("PROVENANT_ENGINE_URL", url.as_str()),
            ("NATS_URL", nats.url.as_str()),
            ("PROVENANT_NATS_PREFIX", nats.prefix.as_str()),
        ],
    )
    .await;
    let report = report(&output);
    let status = engine.terminate();
    assert!(status.success(), "{status}: {}", engine.stderr());
    check_run(&report, "nats", &db).await;

    // Every plugin call the engine recorded replays the same with this build.
    let out = std::process::Command::new(provenant_tests::binary())
        .args(["audit", "replay", "--json"])
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("run provenant audit replay");
    let replayed: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{replayed}");
    provenant_tests::replay::assert_all_replayed_and_matched(&replayed, &all_events(&db).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn sim_says_why_it_cannot_run() {
    // Nothing listens there.
    let url = format!("http://127.0.0.1:{}", free_port());
    let output = sim(&["--engine", &url, "--duration", "1"], &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach the engine at {url}")),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());

    // An engine that needs a token, asked without one.
    let db = TestLog::sqlite();
    let engine = EngineProcess::start(&EngineOptions {
        database_url: db.url.clone(),
        env: vec![("PROVENANT_GAME_TOKEN".into(), "s3cret".into())],
        ..Default::default()
    });
    let url = format!("http://{}", engine.addr);
    let output = sim(&["--engine", &url, "--duration", "0.1"], &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("refused the configuration of world sim-1: HTTP 401"),
        "{stderr}"
    );
    // With the game's token, the run goes through.
    let output = sim(
        &[
            "--engine",
            &url,
            "--duration",
            "0.1",
            "--rate",
            "50",
            "--json",
        ],
        &[("PROVENANT_GAME_TOKEN", "s3cret")],
    )
    .await;
    let report = report(&output);
    assert_eq!(report["acknowledged"], report["sent"], "{report}");

    // NATS where no server listens.
    let output = sim(
        &[
            "--engine",
            &url,
            "--game-token",
            "s3cret",
            "--nats-url",
            &format!("nats://127.0.0.1:{}", free_port()),
        ],
        &[],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("cannot connect to NATS"), "{stderr}");

    // --help documents every flag and its environment variable.
    let output = sim(&["--help"], &[]).await;
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--engine",
        "PROVENANT_ENGINE_URL",
        "--nats-url",
        "NATS_URL",
        "--nats-prefix",
        "PROVENANT_NATS_PREFIX",
        "--game-token",
        "PROVENANT_GAME_TOKEN",
        "--nats-creds",
        "--nats-tls-ca",
        "--worlds",
        "--sessions",
        "--npcs",
        "--rate",
        "--duration",
        "--drain",
        "--world-prefix",
        "--json",
    ] {
        assert!(help.contains(flag), "{flag} missing from\n{help}");
    }
}

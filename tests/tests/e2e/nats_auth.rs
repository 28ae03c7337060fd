//! The engine, a game and an auditor on a nats-server that requires TLS
//! (a CA and client certificates made by the test) and a user and password,
//! each user held to the permissions `docs/nats/permissions.conf` gives:
//! the engine runs and publishes under its own, a subject outside them is
//! refused, and `audit anchors` reads the anchors as the auditor.

use std::time::Duration;

use futures_util::StreamExt;
use provenant_tests::cli::{json, provenant_on_env, stderr, stdout};
use provenant_tests::tls::{Issued, TestCa};
use provenant_tests::{Backend, EngineOptions, EngineProcess, PrivateNats, TestLog, tavern, tick};

const ENGINE_PASSWORD: &str = "engine-pw-31d9";
const GAME_PASSWORD: &str = "game-pw-77a0";
const AUDITOR_PASSWORD: &str = "auditor-pw-c2f4";

fn server_config(ca: &TestCa, server: &Issued) -> String {
    let permissions = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/nats/permissions.conf"),
    )
    .expect("docs/nats/permissions.conf");
    format!(
        r#"{permissions}
tls {{
  cert_file: "{cert}"
  key_file: "{key}"
  ca_file: "{ca}"
  verify: true
  timeout: 5
}}
authorization {{
  users = [
    {{user: engine, password: "{ENGINE_PASSWORD}", permissions: $ENGINE}}
    {{user: game, password: "{GAME_PASSWORD}", permissions: $GAME}}
    {{user: auditor, password: "{AUDITOR_PASSWORD}", permissions: $AUDITOR}}
  ]
}}
"#,
        cert = server.cert.display(),
        key = server.key.display(),
        ca = ca.ca.display(),
    )
}

/// A client of the test's as `user`, with TLS and a client certificate;
/// the errors the server sends it arrive on the receiver.
async fn connect(
    url: &str,
    ca: &TestCa,
    client: &Issued,
    user: &str,
    password: &str,
) -> (
    async_nats::Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
        .add_root_certificates(ca.ca.clone())
        .add_client_certificate(client.cert.clone(), client.key.clone())
        .require_tls(true)
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"));
    (client, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_runs_on_an_authenticated_tls_nats_with_only_its_own_permissions() {
    let ca = TestCa::new();
    let server_cert = ca.server("nats-server");
    let engine_cert = ca.client("engine");
    let game_cert = ca.client("game");
    let auditor_cert = ca.client("auditor");
    let nats = PrivateNats::start_with_config(&server_config(&ca, &server_cert));
    let url = nats.url();
    let db = TestLog::new(Backend::Postgres).await;

    let tls_env = |cert: &Issued, user: &str, password: &str| {
        vec![
            ("PROVENANT_NATS_USER".to_owned(), user.to_owned()),
            ("PROVENANT_NATS_PASSWORD".to_owned(), password.to_owned()),
            (
                "PROVENANT_NATS_TLS_CA".to_owned(),
                ca.ca.display().to_string(),
            ),
            (
                "PROVENANT_NATS_TLS_CERT".to_owned(),
                cert.cert.display().to_string(),
            ),
            (
                "PROVENANT_NATS_TLS_KEY".to_owned(),
                cert.key.display().to_string(),
            ),
        ]
    };
    let mut engine = EngineProcess::start(&EngineOptions {
        database_url: db.url.clone(),
        nats: Some((url.clone(), "provenant".into())),
        env: tls_env(&engine_cert, "engine", ENGINE_PASSWORD),
        args: vec!["--anchor-interval-seconds".into(), "1".into()],
        ..Default::default()
    });
    let (status, answer) = engine.put("/v1/worlds/tavern", &tavern()).await;
    assert_eq!(status, 200, "{answer}");

    // The game publishes a tick and hears the engine's notice.
    let (game, _) = connect(&url, &ca, &game_cert, "game", GAME_PASSWORD).await;
    let mut notices = game.subscribe("provenant.acked.tavern").await.unwrap();
    game.flush().await.unwrap();
    let js = async_nats::jetstream::new(game.clone());
    let body = tick("tavern", "s1", 1, &["npc-1"]);
    let tick_id = body["tick_id"].as_str().unwrap().to_owned();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, tick_id.as_str());
    js.publish_with_headers("provenant.ticks.tavern", headers, body.to_string().into())
        .await
        .expect("publish")
        .await
        .expect("the ticks stream stored the tick");
    let notice = tokio::time::timeout(Duration::from_secs(60), notices.next())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no notice within 60 s; the engine said:\n{}",
                engine.stderr()
            )
        })
        .expect("a notice");
    let notice: serde_json::Value = serde_json::from_slice(&notice.payload).unwrap();
    assert_eq!(notice["tick_id"], tick_id.as_str(), "{notice}");

    // `provenant sim` as the game: every tick it sent acknowledged.
    let out = std::process::Command::new(provenant_tests::binary())
        .args(["sim", "--engine", &format!("http://{}", engine.addr)])
        .args([
            "--nats-url",
            &url,
            "--duration",
            "0.5",
            "--rate",
            "20",
            "--json",
        ])
        .envs(tls_env(&game_cert, "game", GAME_PASSWORD))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&out);
    assert!(report["sent"].as_u64() > Some(0), "{report}");
    assert_eq!(report["acknowledged"], report["sent"], "{report}");
    assert!(engine.terminate().success(), "{}", engine.stderr());

    // No secret reached the engine's log.
    assert!(!engine.stderr().contains(ENGINE_PASSWORD));

    // The engine's user cannot publish outside its subjects: the server
    // refuses it and logs a violation (the line the check below looks for).
    let (as_engine, mut errors) = connect(&url, &ca, &engine_cert, "engine", ENGINE_PASSWORD).await;
    as_engine
        .publish("provenant.ticks.tavern", "forged".into())
        .await
        .unwrap();
    as_engine.flush().await.unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(30), errors.recv())
        .await
        .expect("the server answers a publish outside the permissions")
        .unwrap();
    assert!(refused.contains("Permissions Violation"), "{refused}");
    assert!(refused.contains("provenant.ticks.tavern"), "{refused}");
    assert!(
        nats.wait_for_log("Publish Violation", Duration::from_secs(30)),
        "{}",
        nats.log()
    );
    // Nothing the engine, the game or sim did before needed more than its
    // permissions: the one violation logged is the one just made.
    let log = nats.log();
    assert_eq!(log.matches("Violation").count(), 1, "{log}");

    // The auditor reads the anchors over TLS and verifies the log.
    let audit = |env: Vec<(String, String)>| {
        let mut env = env;
        env.push(("NATS_URL".into(), url.clone()));
        provenant_on_env(&db.url, &["audit", "anchors", "--json"], &env)
    };
    let out = audit(tls_env(&auditor_cert, "auditor", AUDITOR_PASSWORD));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let report = json(&out);
    assert_eq!(report["verify"]["status"], "intact", "{report}");
    // A wrong password, or no CA to check the server with: refused at once.
    let out = audit(tls_env(&auditor_cert, "auditor", "guess"));
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("cannot connect to NATS"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("guess"), "{}", stdout(&out));
    let mut no_ca = tls_env(&auditor_cert, "auditor", AUDITOR_PASSWORD);
    no_ca.retain(|(k, _)| k != "PROVENANT_NATS_TLS_CA");
    let out = audit(no_ca);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("cannot connect to NATS"),
        "{}",
        stdout(&out)
    );
}

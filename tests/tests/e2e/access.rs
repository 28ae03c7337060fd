//! The roles' tokens, through the real binary: each route admits the roles
//! it names (401 without a token, 403 with another role's), the probes stay
//! open, tokens come from flags, variables and files, and no token is ever
//! shown in `--help`, in the engine's output or in an answer.

use std::process::Command;

use provenant_tests::{EngineOptions, EngineProcess, TestLog, http, tavern, tick};

const GAME: &str = "game-7c1d2e";
const READER: &str = "reader-93ab41";
const ADMIN: &str = "admin-5f0e88";

#[tokio::test(flavor = "multi_thread")]
async fn each_route_admits_the_roles_it_names_and_no_one_else() {
    let db = TestLog::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let reader_file = dir.path().join("reader-token");
    std::fs::write(&reader_file, format!("{READER}\n")).unwrap();
    let admin_file = dir.path().join("admin-token");
    std::fs::write(&admin_file, ADMIN).unwrap();
    // One token from each source: a variable, a variable naming a file, a
    // flag naming a file. The address is not loopback: tokens allow it.
    let engine = EngineProcess::start(&EngineOptions {
        database_url: db.url.clone(),
        http_addr: Some("0.0.0.0:0".into()),
        args: vec![
            "--admin-token-file".into(),
            admin_file.display().to_string(),
        ],
        env: vec![
            ("PROVENANT_GAME_TOKEN".into(), GAME.into()),
            (
                "PROVENANT_READER_TOKEN_FILE".into(),
                reader_file.display().to_string(),
            ),
        ],
        ..Default::default()
    });
    let world = tavern().to_string();
    let t1 = tick("w", "s", 1, &["npc-1"]).to_string();
    let t2 = tick("w", "s", 2, &["npc-1"]).to_string();
    let none: Option<&str> = None;

    // Configure the world and send a tick as the game; the admin may too.
    let put = |token| {
        http(
            engine.addr,
            "PUT",
            "/v1/worlds/w",
            Some(world.as_bytes()),
            token,
        )
    };
    assert_eq!(put(none).await.0, 401);
    assert_eq!(put(Some("guess")).await.0, 401);
    assert_eq!(put(Some(READER)).await.0, 403);
    assert_eq!(put(Some(GAME)).await.0, 200);
    assert_eq!(put(Some(ADMIN)).await.0, 200);
    let post = |body: &str, token| {
        let body = body.as_bytes().to_vec();
        async move { http(engine.addr, "POST", "/v1/ticks", Some(&body), token).await }
    };
    assert_eq!(post(&t1, none).await.0, 401);
    let (status, answer) = post(&t1, Some(READER)).await;
    assert_eq!(status, 403, "{answer}");
    let message = answer["error"].as_str().unwrap();
    assert!(message.contains("game or admin"), "{message}");
    assert!(message.contains("reader"), "{message}");
    assert_eq!(post(&t1, Some(GAME)).await.0, 200);
    assert_eq!(post(&t2, Some(ADMIN)).await.0, 200);

    // (method, path, the roles admitted)
    let routes: &[(&str, &str, &[&str])] = &[
        ("GET", "/v1/worlds/w", &[GAME, READER, ADMIN]),
        ("GET", "/v1/events", &[READER, ADMIN]),
        ("GET", "/v1/sessions/w/s", &[READER, ADMIN]),
        ("GET", "/metrics", &[READER, ADMIN]),
        ("GET", "/openapi.json", &[GAME, READER, ADMIN]),
        ("GET", "/admin/plugins/list", &[ADMIN]),
        ("GET", "/admin/plugins/health", &[ADMIN]),
        ("GET", "/admin/cluster", &[ADMIN]),
    ];
    for (method, path, admitted) in routes {
        let (status, answer) = http(engine.addr, method, path, None, None).await;
        assert_eq!(status, 401, "{method} {path} without a token: {answer}");
        for token in [GAME, READER, ADMIN] {
            let (status, answer) = http(engine.addr, method, path, None, Some(token)).await;
            if admitted.contains(&token) {
                // Admitted: answered by the route (a session may be 404
                // while its projection catches up), never refused.
                assert!(
                    status != 401 && status != 403 && status < 500,
                    "{method} {path} with {token}: {status} {answer}"
                );
            } else {
                assert_eq!(status, 403, "{method} {path} with {token}: {answer}");
            }
        }
    }
    // The log's reads show the game's ticks to a reader.
    let (_, events) = http(
        engine.addr,
        "GET",
        "/v1/events?limit=1000",
        None,
        Some(READER),
    )
    .await;
    let ticks = events["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{events}"))
        .iter()
        .filter(|e| e["kind"] == "TickProcessed")
        .count();
    assert_eq!(ticks, 2, "{events}");
    // Only the admin may reset metrics, and a refused reset records nothing.
    for (token, expected) in [(none, 401), (Some(GAME), 403), (Some(READER), 403)] {
        let (status, _) = http(
            engine.addr,
            "POST",
            "/admin/plugins/metrics/reset",
            None,
            token,
        )
        .await;
        assert_eq!(status, expected, "reset with {token:?}");
    }
    let (_, events) = http(
        engine.addr,
        "GET",
        "/v1/events?kind=MetricsReset",
        None,
        Some(ADMIN),
    )
    .await;
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(0),
        "{events}"
    );
    // An unknown route answers nobody without a token.
    assert_eq!(
        http(engine.addr, "GET", "/nowhere", None, None).await.0,
        401
    );
    assert_eq!(
        http(engine.addr, "GET", "/nowhere", None, Some(READER))
            .await
            .0,
        404
    );
    // A doubled slash reaches no admin route; HEAD is a read of its route;
    // the scheme's case does not matter.
    let (status, _) = http(
        engine.addr,
        "GET",
        "//admin/plugins/list",
        None,
        Some(READER),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = http(
        engine.addr,
        "HEAD",
        "/admin/plugins/list",
        None,
        Some(READER),
    )
    .await;
    assert_eq!(status, 403);
    let lower = provenant_tests::http::try_http_text_with_header(
        engine.addr,
        "/v1/events",
        ("authorization", &format!("bearer {READER}")),
    )
    .await
    .unwrap();
    assert_eq!(lower.0, 200, "{}", lower.1);
    // The probes are open.
    assert_eq!(http(engine.addr, "GET", "/livez", None, None).await.0, 200);
    assert_eq!(http(engine.addr, "GET", "/readyz", None, None).await.0, 200);

    // The document says the same: every operation but the probes names
    // its roles and its 401 and 403.
    let (_, doc) = http(engine.addr, "GET", "/openapi.json", None, Some(READER)).await;
    let ticks_op = &doc["paths"]["/v1/ticks"]["post"];
    assert_eq!(
        ticks_op["security"],
        serde_json::json!([{"token": ["game", "admin"]}]),
        "{ticks_op}"
    );
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let open = path == "/livez" || path == "/readyz";
            assert_eq!(op.get("security").is_none(), open, "{method} {path}: {op}");
            assert_eq!(
                op["responses"].get("403").is_none(),
                open,
                "{method} {path}"
            );
        }
    }

    // No token in anything the engine said.
    let said = engine.stderr();
    for token in [GAME, READER, ADMIN] {
        assert!(!said.contains(token), "the engine wrote a token: {said}");
    }
}

#[test]
fn tokens_are_checked_at_the_start_and_never_shown() {
    let db = TestLog::sqlite();
    // Without any token, a public address is refused.
    let refused = EngineProcess::try_start(&EngineOptions {
        database_url: db.url.clone(),
        http_addr: Some("0.0.0.0:0".into()),
        ..Default::default()
    });
    let Err(message) = refused else {
        panic!("the engine listened on 0.0.0.0 without a token")
    };
    assert!(message.contains("without a token"), "{message}");
    // Two roles with one token: refused, the token not repeated.
    let refused = EngineProcess::try_start(&EngineOptions {
        database_url: db.url.clone(),
        env: vec![
            ("PROVENANT_GAME_TOKEN".into(), ADMIN.into()),
            ("PROVENANT_ADMIN_TOKEN".into(), ADMIN.into()),
        ],
        ..Default::default()
    });
    let Err(message) = refused else {
        panic!("the engine started with one token for two roles")
    };
    assert!(
        message.contains("game and admin tokens are the same"),
        "{message}"
    );
    assert!(!message.contains(ADMIN), "{message}");
    // A token file that is missing is named.
    let refused = EngineProcess::try_start(&EngineOptions {
        database_url: db.url.clone(),
        args: vec!["--reader-token-file".into(), "/nonexistent/token".into()],
        ..Default::default()
    });
    let Err(message) = refused else {
        panic!("the engine started without its reader token")
    };
    assert!(
        message.contains("--reader-token-file: cannot read /nonexistent/token"),
        "{message}"
    );
    // --help names the variables, never their values.
    let help = Command::new(provenant_tests::binary())
        .args(["serve", "--help"])
        .env("PROVENANT_GAME_TOKEN", GAME)
        .env("PROVENANT_READER_TOKEN", READER)
        .env("PROVENANT_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for (var, token) in [
        ("PROVENANT_GAME_TOKEN", GAME),
        ("PROVENANT_READER_TOKEN", READER),
        ("PROVENANT_ADMIN_TOKEN", ADMIN),
    ] {
        assert!(help.contains(var), "{help}");
        assert!(!help.contains(token), "{help}");
    }
}

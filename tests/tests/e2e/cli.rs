//! The real `provenant` binary, run as a user would.

use provenant_events::Head;
use provenant_tests::cli::{demo, demo_log, json, provenant, provenant_on, stderr, stdout};
use provenant_tests::{Backend, TestLog};

#[test]
fn help_documents_the_commands_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = provenant(dir.path(), &["--help"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).starts_with("provenant's plugin host and the `provenant` command\n"),
        "{}",
        stdout(&out)
    );
    for command in ["demo", "migrate", "audit", "bench"] {
        assert!(
            stdout(&out).contains(command),
            "{command} missing from --help"
        );
    }
    let out = provenant(dir.path(), &["audit", "verify", "--help"]);
    let help = stdout(&out);
    for needle in [
        "--expect-head",
        "--json",
        "--database-url",
        "DATABASE_URL",
        "0 intact",
        "2 could not run",
    ] {
        assert!(
            help.contains(needle),
            "{needle} missing from audit verify --help:\n{help}"
        );
    }
}

#[test]
fn demo_runs_on_the_embedded_default_and_the_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out = demo(Some(dir.path()), None, "100");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("log: embedded SQLite at sqlite://provenant.db"),
        "{text}"
    );
    assert!(
        text.contains("ticks: handed to the engine in this process"),
        "{text}"
    );
    // 100 ticks for each of the tavern's two sessions, 1 for the cellar.
    assert!(text.contains("201 ticks sent"), "{text}");
    assert!(
        text.contains("recorded as TickRejected at position"),
        "{text}"
    );
    assert!(
        text.contains("sent again: answered duplicate: true")
            && text.contains("0 events added, the log's head unchanged"),
        "{text}"
    );
    assert!(
        text.contains("0 events written, same positions: yes"),
        "{text}"
    );
    assert!(text.contains("refused: concurrency conflict"), "{text}");
    assert!(text.contains("engine stopped gracefully"), "{text}");
    for plugin in [
        "example-flaky",
        "example-nosy",
        "game-romance",
        "game-stealth",
    ] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(plugin)),
            "{plugin} missing from the table:\n{text}"
        );
    }
    assert!(
        text.contains("exactly once: 201 TickProcessed events for 201 ticks sent"),
        "{text}"
    );
    assert!(text.contains("chain verified:"), "{text}");
    assert!(dir.path().join("provenant.db").exists());
    // The demo replays the calls it recorded: all of them match.
    let replayed = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "replayed with this build's plugins, each call fed what its event recorded: ",
            )
        })
        .unwrap_or_else(|| panic!("no replay line:\n{text}"));
    let words: Vec<&str> = replayed.split_whitespace().collect();
    assert_eq!((words[1], words[3], words[4]), ("of", "calls", "matched"));
    assert_eq!(words[0], words[2], "{replayed}");
    assert!(words[0].parse::<u64>().unwrap() > 500, "{replayed}");

    let head_out = provenant(dir.path(), &["audit", "head"]);
    assert!(head_out.status.success(), "{}", stderr(&head_out));
    let head: Head = stdout(&head_out).trim().parse().unwrap();
    assert!(head.position > 100);
    assert!(text.contains(&format!("--expect-head {head}")), "{text}");

    let verify = provenant(
        dir.path(),
        &["audit", "verify", "--expect-head", &head.to_string()],
    );
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
    assert_eq!(
        stdout(&verify).trim(),
        format!("intact: {} events, head {head}", head.position)
    );
}

#[tokio::test]
async fn demo_runs_on_postgres_when_given_its_url() {
    let t = TestLog::postgres().await;
    let out = demo(None, Some(&t.url), "50");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("log: PostgreSQL at postgres://"),
        "{}",
        stdout(&out)
    );
    let verify = provenant_on(&t.url, &["audit", "verify", "--json"]);
    assert_eq!(verify.status.code(), Some(0));
    let report = json(&verify);
    assert_eq!(report["status"], "intact");
    assert!(report["count"].as_u64().unwrap() > 50);
}

#[tokio::test]
async fn verify_exits_1_with_the_first_bad_position_on_both_logs() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let t = demo_log(backend).await;
        t.tamper("UPDATE {events} SET payload = '{\"result\":true}' WHERE position = 7")
            .await;
        let out = provenant_on(&t.url, &["audit", "verify"]);
        assert_eq!(out.status.code(), Some(1), "{backend:?}: {}", stdout(&out));
        assert!(
            stdout(&out).starts_with("TAMPERED at position 7: edited:"),
            "{backend:?}: {}",
            stdout(&out)
        );
        let out = provenant_on(&t.url, &["audit", "verify", "--json"]);
        assert_eq!(out.status.code(), Some(1));
        let report = json(&out);
        assert_eq!(report["status"], "tampered");
        assert_eq!(report["violation"]["position"], 7);
        assert_eq!(report["violation"]["fault"], "edited");
        assert_eq!(report["head"]["position"], 6);
    }
}

#[tokio::test]
async fn verify_catches_a_truncated_tail_against_a_pinned_head() {
    let t = demo_log(Backend::Postgres).await;
    let head = stdout(&provenant_on(&t.url, &["audit", "head"]))
        .trim()
        .to_owned();
    let pinned: Head = head.parse().unwrap();
    t.tamper(&format!(
        "DELETE FROM {{events}} WHERE position > {}",
        pinned.position - 3
    ))
    .await;
    let unpinned = provenant_on(&t.url, &["audit", "verify"]);
    assert_eq!(
        unpinned.status.code(),
        Some(0),
        "a shorter chain is still a chain"
    );
    let out = provenant_on(
        &t.url,
        &["audit", "verify", "--expect-head", &head, "--json"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = json(&out);
    assert_eq!(report["violation"]["fault"], "pinned_head_gone");
    assert_eq!(report["violation"]["position"], pinned.position);
}

#[tokio::test]
async fn verify_exits_2_when_it_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    // No log file here: verify reads only, it does not create one.
    let out = provenant(dir.path(), &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!dir.path().join("provenant.db").exists());

    let out = provenant_on(
        "postgres://postgres@127.0.0.1:1/nothing",
        &["audit", "verify", "--json"],
    );
    assert_eq!(out.status.code(), Some(2));
    let report = json(&out);
    assert_eq!(report["status"], "error");
    assert!(
        report["error"].as_str().unwrap().contains("refused"),
        "{report}"
    );

    // A database without a provenant log says what to do.
    let t = TestLog::postgres().await;
    let out = provenant_on(&t.url, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("run `provenant migrate` first"),
        "{}",
        stderr(&out)
    );

    let out = provenant_on("mysql://somewhere/db", &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("expected postgres://… or sqlite://…"));

    let out = provenant_on(&t.url, &["audit", "verify", "--expect-head", "12"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("POSITION:HASH"), "{}", stderr(&out));
}

#[tokio::test]
async fn migrate_creates_the_log_and_is_repeatable() {
    let t = TestLog::postgres().await;
    for _ in 0..2 {
        let out = provenant_on(&t.url, &["migrate"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("is up to date (head 0:"),
            "{}",
            stdout(&out)
        );
    }
    let out = provenant_on(&t.url, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("intact: 0 events"));
}

#[test]
fn plugins_list_shows_versions_permissions_and_registrations() {
    let dir = tempfile::tempdir().unwrap();
    let out = provenant(dir.path(), &["plugins", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("game-stealth 1.0.0 (feature, native)"),
        "{text}"
    );
    assert!(
        text.contains("effects: effect:plugin:game-stealth:raise_suspicion"),
        "{text}"
    );
    let out = provenant(dir.path(), &["plugins", "list", "--json"]);
    let list = json(&out);
    assert_eq!(list["registry_locked"], true);
    let nosy = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "example-nosy")
        .unwrap();
    assert!(
        !nosy["granted"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("session:write"))
    );
    assert_eq!(
        nosy["registered"]["effects"],
        serde_json::json!(["effect:plugin:example-nosy:peek"])
    );
}

#[test]
fn world_set_records_a_configuration_and_show_answers_it_with_the_effective_config() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("log.db").display());
    let file = dir.path().join("tavern.json");
    std::fs::write(
        &file,
        r#"{"name": "The Tavern", "meta": {"behavior": {
            "enabledPlugins": ["game-stealth", "game-romance"],
            "simulationConfig": {"stealth": {"detection_radius": 2}}}}}"#,
    )
    .unwrap();
    let out = provenant_on(&url, &["world", "set", "tavern", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("WorldConfigured at position 1"),
        "{}",
        stdout(&out)
    );

    let out = provenant_on(&url, &["world", "show", "tavern", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = json(&out);
    assert_eq!(shown["config"]["name"], "The Tavern");
    let effective = &shown["effective_simulation_config"];
    // The world's own value wins over every provider; the rest comes from
    // the providers of the enabled plugins.
    assert_eq!(effective["stealth"]["detection_radius"], 2);
    assert_eq!(effective["stealth"]["suspicion_decay"], 0.1);

    // A refused configuration appends nothing and says why.
    std::fs::write(
        &file,
        r#"{"name": "X", "meta": {"behavior": {"enabledPlugins": "all"}}}"#,
    )
    .unwrap();
    let out = provenant_on(&url, &["world", "set", "tavern", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid type"), "{}", stderr(&out));
    let out = provenant_on(&url, &["audit", "head", "--json"]);
    assert_eq!(json(&out)["position"], 1, "{}", stdout(&out));

    let out = provenant_on(&url, &["world", "show", "cellar"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("never been configured"),
        "{}",
        stderr(&out)
    );
}

/// `audit verify` through the CLI on a demo log tampered by hand: each kind of
/// tampering is reported at its position, with exit status 1.
#[tokio::test]
async fn verify_reports_each_kind_of_tampering_through_the_cli() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let cases: [(&str, &str, u64); 3] = [
            (
                "UPDATE {events} SET provenance = '{\"permission\":\"admin:routes\"}' WHERE position = 9",
                "edited",
                9,
            ),
            ("DELETE FROM {events} WHERE position = 12", "missing", 12),
            (
                "UPDATE {events} SET position = 1000000 WHERE position = 15; \
                 UPDATE {events} SET position = 15 WHERE position = 16; \
                 UPDATE {events} SET position = 16 WHERE position = 1000000",
                "reordered",
                15,
            ),
        ];
        for (sql, fault, position) in cases {
            let t = demo_log(backend).await;
            t.tamper(sql).await;
            let out = provenant_on(&t.url, &["audit", "verify", "--json"]);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{backend:?} {fault}: {}",
                stdout(&out)
            );
            let report = json(&out);
            assert_eq!(report["violation"]["fault"], fault, "{backend:?}: {report}");
            assert_eq!(
                report["violation"]["position"], position,
                "{backend:?}: {report}"
            );
        }

        // A forged event that chains correctly, slipped in at position 20.
        let t = demo_log(backend).await;
        let log = t.open().await;
        let before = log.read_forward(18, 1).await.unwrap().remove(0);
        let mut forged = before.clone();
        forged.position = 20;
        forged.event_id = uuid::Uuid::now_v7();
        forged.stream = provenant_tests::stream("forged");
        forged.stream_version = 1;
        forged.payload = serde_json::json!({"forged": true}).into();
        forged.prev_hash = before.hash;
        forged.hash = forged.compute_hash();
        t.tamper(
            "UPDATE {events} SET position = position + 1000000 WHERE position >= 20; \
             UPDATE {events} SET position = position - 999999 WHERE position > 1000000",
        )
        .await;
        t.insert_raw(&forged).await;
        let out = provenant_on(&t.url, &["audit", "verify", "--json"]);
        assert_eq!(out.status.code(), Some(1), "{backend:?}: {}", stdout(&out));
        let report = json(&out);
        assert_eq!(
            report["violation"]["fault"], "inserted",
            "{backend:?}: {report}"
        );
        assert_eq!(report["violation"]["position"], 20, "{backend:?}: {report}");
    }
}

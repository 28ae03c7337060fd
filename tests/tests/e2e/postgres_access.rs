//! PostgreSQL as an operator runs it: over TLS with the server's
//! certificate checked (`sslmode=verify-full`, a CA of the test's own in
//! `sslrootcert`), and under a role with only the grants
//! `docs/postgres/grants.sql` gives, which cannot change the log.

use provenant_tests::cli::{provenant_on, stderr, stdout};
use provenant_tests::postgres_server::PrivatePostgres;
use provenant_tests::tls::TestCa;
use provenant_tests::{Backend, EngineOptions, EngineProcess, TestLog, tavern, tick};
use sqlx::Connection as _;

async fn send_ticks(engine: &EngineProcess, n: u64) {
    let (status, answer) = engine.put("/v1/worlds/tavern", &tavern()).await;
    assert_eq!(status, 200, "{answer}");
    for t in 1..=n {
        let body = serde_json::to_vec(&tick("tavern", "s1", t, &["npc-1"])).unwrap();
        let (status, answer) = engine.post("/v1/ticks", &body).await;
        assert_eq!(status, 200, "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_reaches_postgres_over_tls_and_checks_its_certificate() {
    let ca = TestCa::new();
    let pg = PrivatePostgres::start_tls(&ca.server("postgres"));
    let verified = pg.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        ca.ca.display()
    ));
    let out = provenant_on(&verified, &["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut engine = EngineProcess::start(&EngineOptions {
        database_url: verified.clone(),
        ..Default::default()
    });
    send_ticks(&engine, 3).await;
    assert!(engine.terminate().success(), "{}", engine.stderr());
    let out = provenant_on(&verified, &["audit", "verify"]);
    assert!(out.status.success(), "{}", stdout(&out));
    // The connection was encrypted: the server takes nothing else.
    let mut conn = sqlx::PgConnection::connect(&verified).await.unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(ssl);
    let out = provenant_on(&pg.url("sslmode=disable"), &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no encryption"), "{}", stderr(&out));

    // A server whose certificate another CA signed is refused.
    let other = TestCa::new();
    let wrong = pg.url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        other.ca.display()
    ));
    let out = provenant_on(&wrong, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(2));
    let said = stderr(&out).to_lowercase();
    assert!(said.contains("certificate"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_runs_under_a_role_that_cannot_change_the_log() {
    let db = TestLog::new(Backend::Postgres).await;
    db.open().await.close().await; // migrated by the owner
    let name = db.database_name().unwrap().to_owned();
    let role = format!("{name}_engine");
    let grants = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/postgres/grants.sql"),
    )
    .expect("docs/postgres/grants.sql");
    db.sql(&format!(
        "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; {}",
        grants.replace("provenant_engine", &role)
    ))
    .await
    .unwrap();
    let as_role = db
        .url
        .replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    assert_ne!(as_role, db.url);

    let mut engine = EngineProcess::start(&EngineOptions {
        database_url: as_role.clone(),
        args: vec!["--world-idle-seconds".into(), "0.001".into()],
        ..Default::default()
    });
    send_ticks(&engine, 5).await;
    // Everything the engine keeps beside the log was written under the role.
    let head = db.projections_caught_up().await;
    assert!(head > 5);
    assert!(engine.terminate().success(), "{}", engine.stderr());
    let said = engine.stderr();
    assert!(!said.contains("permission denied"), "{said}");

    // The role cannot change or remove what is in the log.
    let mut conn = sqlx::PgConnection::connect(&as_role).await.unwrap();
    for sql in [
        "UPDATE provenant.events SET kind = 'x' WHERE position = 1",
        "DELETE FROM provenant.events WHERE position = 1",
        "TRUNCATE provenant.events",
        "CREATE TABLE provenant.intruder (x int)",
    ] {
        let err = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect_err(sql);
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.to_string());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {err}");
    }
    conn.close().await.unwrap();
    // A migration pending would need the owner: the role says so.
    db.sql(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .await
    .unwrap();
    let out = provenant_on(&as_role, &["migrate"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("run `provenant migrate` as the log's owner"),
        "{}",
        stderr(&out)
    );
    db.sql(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .ok();
}

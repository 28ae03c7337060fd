//! PostgreSQL keeps a connection's plan of a prepared statement: after five
//! executions it may settle on a generic plan and keep it until the table's
//! statistics change. A plan made while the log was nearly empty is a
//! sequential scan, and with autovacuum off or behind (nothing then
//! analyzes the table) the log would scan every row of a growing table on
//! every lookup. These tests hold the lookups the engine makes for every
//! tick (by id, forward by position, the head, the append's own) to the
//! indexes; and questions about one world, session or plugin to theirs.

use std::time::{Duration, Instant};

use provenant_events::{EventKind, NewEvent, PluginId, SessionId, WorldId, kinds};

use provenant_log::{AppendBatch, EventFilter, EventLog};
use provenant_tests::{TestLog, stream};
use serde_json::json;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// Events appended once the plans are made: the table the lookups must not
/// scan.
const GROWN: u64 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_keep_using_the_indexes_as_the_log_grows() {
    let t = TestLog::postgres().await;
    let name = t.database_name().expect("a PostgreSQL log").to_owned();
    let mut admin = PgConnection::connect(&t.url).await.expect("connect");
    // This server's own setting would hide the fault (the test is about a
    // table nothing analyzes): keep autovacuum off for the events table.
    let log = t.open().await;
    sqlx::raw_sql("ALTER TABLE provenant.events SET (autovacuum_enabled = false)")
        .execute(&mut admin)
        .await
        .expect("turn autovacuum off for the table");

    // Plans made while the log holds one event, on every pooled connection.
    let first = append(&log, 0, 1).await;
    for _ in 0..20 {
        log.positions_of(&[first, uuid::Uuid::now_v7()])
            .await
            .unwrap();
        log.read_forward(0, 100).await.unwrap();
        log.head().await.unwrap();
    }

    let mut at = 1;
    while at < GROWN {
        append(&log, at, 1000).await;
        at += 1000;
    }

    // The same lookups on the grown log.
    for _ in 0..20 {
        let found = log
            .positions_of(&[first, uuid::Uuid::now_v7()])
            .await
            .unwrap();
        assert_eq!(found.get(&first), Some(&1));
        log.read_forward(GROWN - 10, 100).await.unwrap();
        log.head().await.unwrap();
    }
    log.close().await;

    connections_gone(&mut admin, &name).await;
    let (inserted, rows_scanned): (i64, i64) = sqlx::query_as(
        "SELECT n_tup_ins, seq_tup_read FROM pg_stat_user_tables \
         WHERE schemaname = 'provenant' AND relname = 'events'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(
        inserted >= GROWN as i64,
        "statistics not written yet: {inserted} inserts counted"
    );
    assert!(
        rows_scanned < GROWN as i64,
        "the log's lookups read {rows_scanned} rows sequentially from a table of {GROWN}: \
         a plan made when it was empty is still used"
    );
}

/// Waits until the log's connections are gone: a backend writes out its
/// statistics before it leaves pg_stat_activity, so what they did is
/// counted.
async fn connections_gone(admin: &mut PgConnection, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (connected,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(name)
        .fetch_one(&mut *admin)
        .await
        .unwrap();
        if connected == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the log's connections did not close"
        );
        tokio::task::yield_now().await;
    }
}

/// Rows of the events table read so far: by sequential scans, and fetched
/// through indexes.
async fn rows_read(admin: &mut PgConnection) -> i64 {
    let (seq, idx): (i64, i64) = sqlx::query_as(
        "SELECT seq_tup_read, coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables \
         WHERE schemaname = 'provenant' AND relname = 'events'",
    )
    .fetch_one(&mut *admin)
    .await
    .unwrap();
    seq + idx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_about_one_world_session_or_plugin_reads_its_events_not_the_log() {
    const WORLDS: u64 = 20;
    const PER_WORLD: u64 = 1000;
    let t = TestLog::postgres().await;
    let name = t.database_name().expect("a PostgreSQL log").to_owned();
    let mut admin = PgConnection::connect(&t.url).await.expect("connect");
    let log = t.open().await;
    // Each world: 1 tick marker, 6 calls and 3 other plugin events in ten.
    for round in 0..PER_WORLD / 10 {
        let events: Vec<NewEvent> = (0..WORLDS * 10)
            .map(|i| {
                let world = format!("w{}", i % WORLDS);
                let kind = match i / WORLDS {
                    0 => kinds::TICK_PROCESSED,
                    1..=6 => kinds::CONDITION_EVALUATED,
                    _ => kinds::PLUGIN_STORAGE_SET,
                };
                let mut e = NewEvent::new(
                    stream(&format!("plans/{world}")),
                    EventKind::new(kind).unwrap(),
                    json!({ "round": round, "i": i }),
                );
                e.world_id = Some(WorldId::new(&world).unwrap());
                e.session_id = Some(SessionId::new(format!("s-{world}")).unwrap());
                if kind != kinds::TICK_PROCESSED {
                    let plugin = PluginId::new(format!("p-{world}")).unwrap();
                    e.provenance.plugin_id = Some(plugin.clone());
                    e.plugin_id = Some(plugin);
                }
                e
            })
            .collect();
        log.append(AppendBatch::new(events)).await.unwrap();
    }
    sqlx::raw_sql("ANALYZE provenant.events")
        .execute(&mut admin)
        .await
        .unwrap();
    log.close().await;
    connections_gone(&mut admin, &name).await;
    let before = rows_read(&mut admin).await;

    let log = t.open().await;
    let questions = [
        // A world's events.
        (
            EventFilter {
                world: Some(WorldId::new("w7").unwrap()),
                ..EventFilter::default()
            },
            PER_WORLD,
        ),
        // A session's ticks: its markers.
        (
            EventFilter {
                session: Some(SessionId::new("s-w3").unwrap()),
                kind: Some(EventKind::known(kinds::TICK_PROCESSED)),
                ..EventFilter::default()
            },
            PER_WORLD / 10,
        ),
        // A plugin's calls.
        (
            EventFilter {
                plugin: Some(PluginId::new("p-w11").unwrap()),
                kinds: kinds::CALLS.iter().map(|k| EventKind::known(k)).collect(),
                ..EventFilter::default()
            },
            PER_WORLD * 6 / 10,
        ),
    ];
    let mut returned = 0;
    for (filter, expected) in &questions {
        let found = log.read_filtered(0, 5000, filter).await.unwrap();
        assert_eq!(found.len() as u64, *expected, "{filter:?}");
        returned += expected;
    }
    log.close().await;
    connections_gone(&mut admin, &name).await;
    let read = rows_read(&mut admin).await - before;
    // Walking the log would read all 20,000 events for each question.
    assert!(
        read <= (returned + 100) as i64,
        "three questions returning {returned} events read {read} rows of a log of {}",
        WORLDS * PER_WORLD
    );
}

/// The plugin calls' partial index names every kind that records a call.
#[test]
fn the_plugin_calls_index_names_every_call_kind() {
    let sql = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../migrations/postgres/0005_event_indexes.sql"
    ))
    .unwrap();
    let predicate = sql
        .split("events_plugin_calls")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("the plugin calls index");
    for kind in kinds::CALLS {
        assert!(
            predicate.contains(&format!("'{kind}'")),
            "{kind} missing from {predicate}"
        );
    }
    assert_eq!(
        predicate.matches('\'').count(),
        2 * kinds::CALLS.len(),
        "{predicate}"
    );
}

/// Appends `n` events numbered from `from`; the first one's id.
async fn append(log: &EventLog, from: u64, n: u64) -> uuid::Uuid {
    let events: Vec<NewEvent> = (from..from + n)
        .map(|i| {
            NewEvent::new(
                stream(&format!("plans/{}", i % 7)),
                EventKind::new("test:plans:row").unwrap(),
                json!({ "n": i }),
            )
        })
        .collect();
    let first = events[0].event_id;
    log.append(AppendBatch::new(events)).await.unwrap();
    first
}

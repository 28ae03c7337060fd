//! PostgreSQL keeps a connection's plan of a prepared statement: after five
//! executions it may settle on a generic plan and keep it until the table's
//! statistics change. A plan made while the log was nearly empty is a
//! sequential scan, and with autovacuum off or behind (nothing then
//! analyzes the table) the log would scan every row of a growing table on
//! every lookup. These tests hold the lookups the engine makes for every
//! tick (by id, forward by position, the head, the append's own) to the
//! indexes.

use std::time::{Duration, Instant};

use provenant_events::{EventKind, NewEvent};

use provenant_log::{AppendBatch, EventLog};
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

    // A backend writes out its statistics before it leaves
    // pg_stat_activity: once the log's connections are gone, what they did
    // is counted.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (connected,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&name)
        .fetch_one(&mut admin)
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

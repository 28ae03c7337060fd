//! The log conformance suite. Every test here runs against both logs: the
//! real PostgreSQL server (a fresh database each) and embedded SQLite (a
//! fresh file each).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use provenant_events::{
    Event, EventHash, EventKind, Head, NewEvent, PluginId, Provenance, SessionId, WorldId,
};
use provenant_log::{
    AppendBatch, EventFilter, EventLog, ExpectedVersion, LogError, ProjectionCommit,
    StoredProjection,
};
use provenant_log::{Fault, VerifyConfig};
use provenant_tests::{Backend, TestLog, stream};
use serde_json::{Value, json};

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(provenant_tests::TestLog::new(provenant_tests::Backend::Postgres).await).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(provenant_tests::TestLog::new(provenant_tests::Backend::Sqlite).await).await
                }
            )*
        }
    };
}

conformance!(
    appends_get_dense_positions_and_stream_versions,
    a_failing_batch_leaves_nothing,
    invalid_batches_are_refused_before_touching_the_log,
    expected_versions_conflict_with_a_typed_error,
    appends_are_idempotent_by_event_id,
    reads_are_ordered_by_position_and_by_stream_version,
    head_is_the_last_position_and_hash,
    tail_waits_for_new_events_and_returns_each_once,
    unknown_kinds_read_verify_and_pass_through,
    hashes_verify_after_a_database_round_trip,
    large_batches_round_trip_like_small_ones,
    update_delete_and_truncate_are_refused,
    verify_reports_an_edited_payload,
    verify_reports_edited_provenance,
    verify_reports_an_edit_that_keeps_the_json_value,
    verify_reports_a_row_that_is_not_an_event,
    verify_walks_many_chunks_read_ahead,
    verify_beside_appends_reports_an_intact_prefix,
    verify_reports_a_deleted_row,
    verify_reports_an_inserted_row,
    verify_reports_an_inserted_row_with_a_bad_hash,
    verify_reports_reordered_rows,
    verify_catches_a_truncated_tail_only_with_a_pinned_head,
    concurrent_writers_never_make_a_tailing_reader_skip,
    read_filtered_matches_every_given_field,
    read_filtered_respects_after_and_limit,
    read_filtered_reports_an_unreadable_row,
    positions_of_maps_the_ids_in_the_log,
    checkpoints_start_absent_and_never_move_backwards,
    checkpoints_are_independent_by_name,
    checkpoints_survive_reopening_the_log,
    json_reads_give_the_bytes_of_to_json,
    json_reads_report_an_unreadable_row,
    projections_commit_rows_with_their_checkpoint,
    projection_commits_are_refused_when_the_checkpoint_moved,
    projections_reset_and_read_by_key,
    waiting_for_projections_wakes_on_their_commits,
);

const DEADLINE: Duration = Duration::from_secs(20);

fn event(stream_name: &str, kind: &str, payload: Value) -> NewEvent {
    NewEvent::new(stream(stream_name), EventKind::new(kind).unwrap(), payload)
}

fn plugin_event(n: u64) -> NewEvent {
    let mut e = event(
        "session:w1/s1",
        "plugin:game-stealth:noticed",
        json!({"npc": "guard-1", "n": n, "suspicion": 0.25 * n as f64}),
    );
    e.plugin_id = Some(PluginId::new("game-stealth").unwrap());
    e.world_id = Some(WorldId::new("w1").unwrap());
    e.session_id = Some(SessionId::new("s1").unwrap());
    e.provenance = Provenance {
        plugin_id: e.plugin_id.clone(),
        plugin_version: Some("1.2.0".into()),
        capability: Some("event.emit".into()),
        permission: Some("event:emit".into()),
        tick_id: Some(uuid::Uuid::now_v7()),
        tick: Some(n),
        engine_version: Some("0.1.0".into()),
        engine_instance: Some("test".into()),
        ..Provenance::default()
    };
    e
}

async fn append_n(log: &EventLog, n: u64) -> Vec<NewEvent> {
    let events: Vec<NewEvent> = (1..=n).map(plugin_event).collect();
    log.append(AppendBatch::new(events.clone())).await.unwrap();
    events
}

async fn read_all(log: &EventLog) -> Vec<Event> {
    log.read_forward(0, 100_000).await.unwrap()
}

async fn verify(log: &EventLog, expect_head: Option<Head>) -> provenant_log::VerifyReport {
    let config = VerifyConfig {
        expect_head,
        chunk: Some(3),
    };
    log.verify(&config, &mut |_| {}).await.unwrap()
}

async fn appends_get_dense_positions_and_stream_versions(t: TestLog) {
    let log = t.open().await;
    let out = log
        .append(AppendBatch::new(vec![
            event("a", "K", json!(1)),
            event("b", "K", json!(2)),
            event("a", "K", json!(3)),
        ]))
        .await
        .unwrap();
    assert_eq!(out.positions, vec![1, 2, 3]);
    assert_eq!(out.written, 3);
    let out = log
        .append(AppendBatch::new(vec![event("a", "K", json!(4))]))
        .await
        .unwrap();
    assert_eq!(out.positions, vec![4]);
    let all = read_all(&log).await;
    let got: Vec<(u64, &str, u64)> = all
        .iter()
        .map(|e| (e.position, e.stream.as_str(), e.stream_version))
        .collect();
    assert_eq!(
        got,
        vec![(1, "a", 1), (2, "b", 1), (3, "a", 2), (4, "a", 3)]
    );
    assert_eq!(all[0].prev_hash, EventHash::ZERO);
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    assert_eq!(log.stream_version(&stream("a")).await.unwrap(), 3);
    assert_eq!(log.stream_version(&stream("nope")).await.unwrap(), 0);
}

async fn a_failing_batch_leaves_nothing(t: TestLog) {
    let log = t.open().await;
    append_n(&log, 2).await;
    let head = log.head().await.unwrap();
    // A database failure in the middle of a batch: the third row is refused.
    let poison = match t.backend {
        Backend::Postgres => {
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'poisoned row'; END $$; \
             CREATE TRIGGER poison BEFORE INSERT ON provenant.events FOR EACH ROW \
             WHEN (NEW.kind = 'Poison') EXECUTE FUNCTION poison();"
        }
        Backend::Sqlite => {
            "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.kind = 'Poison' \
             BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;"
        }
    };
    t.sql(poison).await.unwrap();
    let batch = vec![
        event("x", "Fine", json!({})),
        event("y", "Fine", json!({})),
        event("x", "Poison", json!({})),
    ];
    let err = log
        .append(AppendBatch::new(batch.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::Database(_)), "{err:?}");
    assert!(err.to_string().contains("poisoned row"), "{err}");
    assert_eq!(log.head().await.unwrap(), head);
    assert_eq!(read_all(&log).await.len(), 2);
    assert_eq!(log.stream_version(&stream("x")).await.unwrap(), 0);
    // The log goes on: the good part appends at the next position.
    let out = log
        .append(AppendBatch::new(batch[..2].to_vec()))
        .await
        .unwrap();
    assert_eq!(out.positions, vec![3, 4]);
    assert!(verify(&log, None).await.intact());
}

async fn invalid_batches_are_refused_before_touching_the_log(t: TestLog) {
    let log = t.open().await;
    let err = log.append(AppendBatch::new(vec![])).await.unwrap_err();
    assert!(matches!(err, LogError::Invalid(_)), "{err:?}");

    let e = event("a", "K", json!(1));
    let err = log
        .append(AppendBatch::new(vec![e.clone(), e.clone()]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("appears twice"), "{err}");

    let mut e = plugin_event(1);
    e.provenance.plugin_id = Some(PluginId::new("someone-else").unwrap());
    let err = log.append(AppendBatch::new(vec![e])).await.unwrap_err();
    assert!(err.to_string().contains("someone-else"), "{err}");

    let mut e = event("a", "K", json!(1));
    e.schema_version = u32::MAX;
    let err = log.append(AppendBatch::new(vec![e])).await.unwrap_err();
    assert!(err.to_string().contains("schema_version"), "{err}");

    assert_eq!(log.head().await.unwrap(), Head::EMPTY);
}

async fn expected_versions_conflict_with_a_typed_error(t: TestLog) {
    let log = t.open().await;
    let s = stream("session:w1/s1");
    let first = AppendBatch::new(vec![event("session:w1/s1", "K", json!(1))])
        .expect(s.clone(), ExpectedVersion::NoStream);
    log.append(first).await.unwrap();

    let again = AppendBatch::new(vec![event("session:w1/s1", "K", json!(2))])
        .expect(s.clone(), ExpectedVersion::NoStream);
    match log.append(again).await.unwrap_err() {
        LogError::Conflict {
            stream,
            expected,
            actual,
        } => {
            assert_eq!(stream, s);
            assert_eq!(expected, ExpectedVersion::NoStream);
            assert_eq!(actual, 1);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    let next = AppendBatch::new(vec![event("session:w1/s1", "K", json!(3))])
        .expect(s.clone(), ExpectedVersion::Exact(1));
    log.append(next).await.unwrap();
    // A conflict on one stream refuses the whole batch, other streams too.
    let stale = AppendBatch::new(vec![
        event("other", "K", json!(4)),
        event("session:w1/s1", "K", json!(5)),
    ])
    .expect(s.clone(), ExpectedVersion::Exact(1));
    let err = log.append(stale).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "concurrency conflict on stream session:w1/s1: expected version 1, actual version 2"
    );
    assert_eq!(log.head().await.unwrap().position, 2);
    assert_eq!(log.stream_version(&stream("other")).await.unwrap(), 0);
}

async fn appends_are_idempotent_by_event_id(t: TestLog) {
    let log = t.open().await;
    let batch: Vec<NewEvent> = (1..=3).map(plugin_event).collect();
    let first = log.append(AppendBatch::new(batch.clone())).await.unwrap();
    let head = log.head().await.unwrap();

    // The whole batch again, even with a stale expectation: a retry.
    let retry = log
        .append(
            AppendBatch::new(batch.clone())
                .expect(stream("session:w1/s1"), ExpectedVersion::NoStream),
        )
        .await
        .unwrap();
    assert_eq!(retry.positions, first.positions);
    assert_eq!(retry.written, 0);
    assert_eq!(log.head().await.unwrap(), head);

    // Part of it again, with something new: only the new event is written.
    let fresh = plugin_event(4);
    let mixed = log
        .append(AppendBatch::new(vec![batch[1].clone(), fresh.clone()]))
        .await
        .unwrap();
    assert_eq!(mixed.positions, vec![2, 4]);
    assert_eq!(mixed.written, 1);

    // The same id with different content is an error and writes nothing.
    let mut changed = batch[0].clone();
    changed.payload = json!({"npc": "someone else"}).into();
    match log
        .append(AppendBatch::new(vec![changed, plugin_event(5)]))
        .await
        .unwrap_err()
    {
        LogError::IdReused { event_id, position } => {
            assert_eq!(event_id, batch[0].event_id);
            assert_eq!(position, 1);
        }
        other => panic!("expected IdReused, got {other:?}"),
    }
    assert_eq!(log.head().await.unwrap().position, 4);
    assert!(verify(&log, None).await.intact());
}

async fn reads_are_ordered_by_position_and_by_stream_version(t: TestLog) {
    let log = t.open().await;
    for i in 0..10 {
        let name = if i % 3 == 0 { "three" } else { "other" };
        log.append(AppendBatch::new(vec![event(name, "K", json!(i))]))
            .await
            .unwrap();
    }
    let page = log.read_forward(4, 3).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    assert!(log.read_forward(10, 5).await.unwrap().is_empty());

    let three = log.read_stream(&stream("three"), 0, 100).await.unwrap();
    assert_eq!(
        three
            .iter()
            .map(|e| (e.stream_version, e.payload.value().clone()))
            .collect::<Vec<_>>(),
        vec![(1, json!(0)), (2, json!(3)), (3, json!(6)), (4, json!(9))]
    );
    let later = log.read_stream(&stream("three"), 2, 1).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].stream_version, 3);
}

async fn head_is_the_last_position_and_hash(t: TestLog) {
    let log = t.open().await;
    assert_eq!(log.head().await.unwrap(), Head::EMPTY);
    append_n(&log, 5).await;
    let last = read_all(&log).await.pop().unwrap();
    assert_eq!(
        log.head().await.unwrap(),
        Head {
            position: 5,
            hash: last.hash
        }
    );
    let text = log.head().await.unwrap().to_string();
    assert_eq!(text.parse::<Head>().unwrap(), log.head().await.unwrap());
}

async fn tail_waits_for_new_events_and_returns_each_once(t: TestLog) {
    let log = t.open().await;
    append_n(&log, 2).await;
    let mut tail = log.tail(0).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < 7 {
            seen.push(tail.next().await.unwrap().position);
        }
        seen
    });
    // Written by another connection pool while the reader waits.
    let writer = t.open().await;
    for i in 0..5 {
        writer
            .append(AppendBatch::new(vec![event("w", "K", json!(i))]))
            .await
            .unwrap();
    }
    let seen = tokio::time::timeout(DEADLINE, reader)
        .await
        .expect("tail did not deliver the new events in time")
        .unwrap();
    assert_eq!(seen, vec![1, 2, 3, 4, 5, 6, 7]);
}

async fn unknown_kinds_read_verify_and_pass_through(t: TestLog) {
    let log = t.open().await;
    let mut e = event(
        "world:w1",
        "TeleportedAcrossDimensions",
        json!({"from": "a", "to": "b", "v": 9}),
    );
    e.schema_version = 7;
    e.provenance
        .extra
        .insert("signature".into(), json!({"alg": "ed25519", "sig": "abc"}));
    log.append(AppendBatch::new(vec![e.clone()])).await.unwrap();
    let read = read_all(&log).await.pop().unwrap();
    assert_eq!(read.kind.as_str(), "TeleportedAcrossDimensions");
    assert_eq!(read.as_new_event(), e);
    assert_eq!(read.compute_hash(), read.hash);
    // Through its JSON form (as on HTTP and NATS) and back, unchanged.
    let wire = serde_json::to_string(&read).unwrap();
    let back: Event = serde_json::from_str(&wire).unwrap();
    assert_eq!(back, read);
    assert_eq!(back.compute_hash(), read.hash);
    assert!(verify(&log, None).await.intact());
}

async fn hashes_verify_after_a_database_round_trip(t: TestLog) {
    let log = t.open().await;
    let payloads = [
        r#"{"z": 1, "a": {"y": [3, 1, 2], "b": null}, "m": true}"#,
        r#"{"name": "Zoë", "greeting": "こんにちは 👋", "rtl": "שלום", "esc": "a\"b\\c\nd\te\u0001", "nul": "x\u0000y"}"#,
        r#"{"pi": 3.141592653589793, "tenth": 0.1, "one": 1.0, "neg_zero": -0.0, "exp": 1e300, "tiny": 5e-324, "hundred": 1e2}"#,
        r#"{"big": 9007199254740993, "max_u64": 18446744073709551615, "min_i64": -9223372036854775808, "huge": 123456789012345678901234567890}"#,
        r#"[1, "two", {"three": 3.0}, [], {}]"#,
        r#""just a string""#,
    ];
    let events: Vec<NewEvent> = payloads
        .iter()
        .map(|p| event("payloads", "Payload", serde_json::from_str(p).unwrap()))
        .collect();
    log.append(AppendBatch::new(events.clone())).await.unwrap();
    let read = read_all(&log).await;
    assert_eq!(read.len(), payloads.len());
    for (stored, written) in read.iter().zip(&events) {
        assert_eq!(
            stored.compute_hash(),
            stored.hash,
            "payload {}",
            written.payload
        );
        assert_eq!(stored.payload, written.payload);
    }
    assert_eq!(read[3].payload["big"], json!(9007199254740993u64));
    assert_eq!(read[3].payload["max_u64"], json!(u64::MAX));
    assert!(verify(&log, None).await.intact());
}

/// Large batches take another path on PostgreSQL (COPY instead of one
/// INSERT): the same rows must come back, escapes and all.
async fn large_batches_round_trip_like_small_ones(t: TestLog) {
    let log = t.open().await;
    let tricky = [
        json!({"tab": "a\tb", "nl": "line1\nline2\r\n", "bs": "C:\\path\\", "q": "\"", "nul": "\u{0}"}),
        json!({"uni": "Zoë こんにちは 👋", "f": 0.1, "big": u64::MAX, "nested": {"b": [1, {"a": null}]}}),
    ];
    let batch: Vec<NewEvent> = (0..700)
        .map(|i| {
            let mut e = plugin_event(i);
            e.payload = json!({"i": i, "tricky": tricky[i as usize % 2].clone()}).into();
            e.stream = stream(&format!("large-{}", i % 7));
            e
        })
        .collect();
    let out = log.append(AppendBatch::new(batch.clone())).await.unwrap();
    assert_eq!(out.positions, (1..=700).collect::<Vec<_>>());
    assert_eq!(out.written, 700);
    let read = read_all(&log).await;
    assert_eq!(read.len(), 700);
    for (stored, written) in read.iter().zip(&batch) {
        assert_eq!(stored.as_new_event(), *written);
        assert_eq!(stored.compute_hash(), stored.hash);
    }
    assert_eq!(log.stream_version(&stream("large-3")).await.unwrap(), 100);
    assert_eq!(out.head, log.head().await.unwrap());
    // The same large batch again is a retry, whichever path it took.
    let again = log.append(AppendBatch::new(batch)).await.unwrap();
    assert_eq!(again.written, 0);
    assert_eq!(again.positions, out.positions);
    assert!(verify(&log, None).await.intact());
}

async fn update_delete_and_truncate_are_refused(t: TestLog) {
    let log = t.open().await;
    append_n(&log, 3).await;
    let mut attempts = vec![
        "UPDATE {events} SET payload = '{\"n\": 99}' WHERE position = 2",
        "DELETE FROM {events} WHERE position = 3",
        "DELETE FROM {events}",
    ];
    if t.backend == Backend::Postgres {
        attempts.push("TRUNCATE provenant.events");
    }
    for sql in attempts {
        let err = t.sql(sql).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(read_all(&log).await.len(), 3);
    assert!(verify(&log, None).await.intact());
}

fn fault(report: &provenant_log::VerifyReport) -> (u64, Fault) {
    let v = report
        .violation
        .as_ref()
        .unwrap_or_else(|| panic!("tampering went unnoticed: {report:?}"));
    (v.position, v.fault)
}

async fn verify_reports_an_edited_payload(t: TestLog) {
    let log = t.open().await;
    append_n(&log, 8).await;
    t.tamper("UPDATE {events} SET payload = '{\"n\":4,\"npc\":\"guard-1\",\"suspicion\":0.0}' WHERE position = 4")
        .await;
    let report = verify(&log, None).await;
    assert_eq!(fault(&report), (4, Fault::Edited));
    assert_eq!(report.count, 3);
    assert_eq!(report.head.position, 3);
}

async fn verify_reports_edited_provenance(t: TestLog) {
    let log = t.open().await;
    append_n(&log, 8).await;
    t.tamper(
        "UPDATE {events} SET provenance = '{\"permission\":\"admin:routes\"}' WHERE position = 6",
    )
    .await;
    assert_eq!(fault(&verify(&log, None).await), (6, Fault::Edited));
}

/// The hash covers the stored text: whitespace added to the provenance, or
/// its keys reordered, is an edit even though the JSON value is the same.
async fn verify_reports_an_edit_that_keeps_the_json_value(t: TestLog) {
    let log = t.open().await;
    let appended = append_n(&log, 8).await;
    let spaced = match t.backend {
        Backend::Postgres => {
            "UPDATE {events} SET provenance = replace(provenance::text, '{\"', '{ \"')::json WHERE position = 6"
        }
        Backend::Sqlite => {
            "UPDATE {events} SET provenance = replace(provenance, '{\"', '{ \"') WHERE position = 6"
        }
    };
    t.tamper(spaced).await;
    let stored = read_all(&log).await.remove(5);
    assert_eq!(stored.provenance, appended[5].provenance, "the same value");
    assert_eq!(fault(&verify(&log, None).await), (6, Fault::Edited));
}

async fn verify_reports_a_row_that_is_not_an_event(t: TestLog) {
    let log = t.open().await;
    append_n(&log, 8).await;
    t.tamper("UPDATE {events} SET plugin_id = 'no.dots' WHERE position = 3")
        .await;
    let report = verify(&log, None).await;
    assert_eq!(fault(&report), (3, Fault::Edited));
    let detail = report.violation.unwrap().detail;
    assert!(
        detail.starts_with("the row cannot be read as an event"),
        "{detail}"
    );
}

/// Many small chunks, each read ahead of the one checked: intact, a row
/// deleted inside a chunk, a row edited at a chunk's end.
async fn verify_walks_many_chunks_read_ahead(t: TestLog) {
    let log = t.open().await;
    append_n(&log, 50).await;
    let chunked = |expect_head| VerifyConfig {
        expect_head,
        chunk: Some(4),
    };
    let report = log.verify(&chunked(None), &mut |_| {}).await.unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.count, 50);
    let head = log.head().await.unwrap();
    assert!(
        log.verify(&chunked(Some(head)), &mut |_| {})
            .await
            .unwrap()
            .intact()
    );

    t.tamper("UPDATE {events} SET payload = '{\"n\":0}' WHERE position = 20")
        .await;
    let report = log.verify(&chunked(None), &mut |_| {}).await.unwrap();
    assert_eq!(fault(&report), (20, Fault::Edited));
    assert_eq!(report.count, 19);

    let t2 = TestLog::new(t.backend).await;
    let log2 = t2.open().await;
    append_n(&log2, 50).await;
    t2.tamper("DELETE FROM {events} WHERE position = 14").await;
    let report = log2.verify(&chunked(None), &mut |_| {}).await.unwrap();
    assert_eq!(fault(&report), (14, Fault::Missing));
}

/// Verifying while a writer appends: every walk ends intact, at a head
/// that was the log's at some point (chunks are read ahead; one that came
/// back short was the end of the log when it was read, and what the log
/// grew by since is left for the next walk).
async fn verify_beside_appends_reports_an_intact_prefix(t: TestLog) {
    let log = t.open().await;
    append_n(&log, 20).await;
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            // Batches larger than a chunk: the log can grow past a chunk
            // between two reads.
            for n in 0..60u64 {
                let batch = (0..7).map(|i| plugin_event(n * 7 + i)).collect();
                log.append(AppendBatch::new(batch)).await.unwrap();
            }
        })
    };
    let config = VerifyConfig {
        expect_head: None,
        chunk: Some(3),
    };
    let mut walks = 0;
    let mut last = 0;
    while !writer.is_finished() || walks == 0 {
        let report = log.verify(&config, &mut |_| {}).await.unwrap();
        assert!(report.intact(), "walk {walks}: {report:?}");
        assert!(report.count >= last, "walk {walks}: {report:?}");
        last = report.count;
        walks += 1;
    }
    writer.await.unwrap();
    let report = log.verify(&config, &mut |_| {}).await.unwrap();
    assert!(report.intact());
    assert_eq!(report.count, 20 + 60 * 7);
}

async fn verify_reports_a_deleted_row(t: TestLog) {
    let log = t.open().await;
    append_n(&log, 8).await;
    t.tamper("DELETE FROM {events} WHERE position = 5").await;
    assert_eq!(fault(&verify(&log, None).await), (5, Fault::Missing));

    // Deleted, and the rows after it renumbered to hide the gap.
    let t2 = TestLog::new(t.backend).await;
    let log2 = t2.open().await;
    append_n(&log2, 8).await;
    t2.tamper(
        "DELETE FROM {events} WHERE position = 5; \
         UPDATE {events} SET position = position + 1000000 WHERE position > 5; \
         UPDATE {events} SET position = position - 1000001 WHERE position > 1000000",
    )
    .await;
    let report = verify(&log2, None).await;
    assert_eq!(fault(&report), (5, Fault::Missing));
    assert!(report.violation.unwrap().detail.contains("not in the log"));
}

async fn verify_reports_an_inserted_row(t: TestLog) {
    let log = t.open().await;
    append_n(&log, 8).await;
    let all = read_all(&log).await;
    // A forged event that chains correctly from position 4 and carries a
    // correct hash of its own, slipped in at position 5.
    let mut forged = all[3].clone();
    forged.position = 5;
    forged.event_id = uuid::Uuid::now_v7();
    forged.stream = stream("forged");
    forged.payload = json!({"forged": true}).into();
    forged.prev_hash = all[3].hash;
    forged.hash = forged.compute_hash();
    t.tamper(
        "UPDATE {events} SET position = position + 1000000 WHERE position >= 5; \
         UPDATE {events} SET position = position - 999999 WHERE position > 1000000",
    )
    .await;
    t.insert_raw(&forged).await;
    let report = verify(&log, None).await;
    assert_eq!(fault(&report), (5, Fault::Inserted), "{report:?}");
}

async fn verify_reports_an_inserted_row_with_a_bad_hash(t: TestLog) {
    let log = t.open().await;
    append_n(&log, 6).await;
    let all = read_all(&log).await;
    let mut forged = all[2].clone();
    forged.position = 3;
    forged.event_id = uuid::Uuid::now_v7();
    forged.stream = stream("forged");
    forged.hash = EventHash([7; 32]);
    t.tamper(
        "UPDATE {events} SET position = position + 1000000 WHERE position >= 3; \
         UPDATE {events} SET position = position - 999999 WHERE position > 1000000",
    )
    .await;
    t.insert_raw(&forged).await;
    assert_eq!(fault(&verify(&log, None).await), (3, Fault::Inserted));
}

async fn verify_reports_reordered_rows(t: TestLog) {
    let log = t.open().await;
    append_n(&log, 8).await;
    t.tamper(
        "UPDATE {events} SET position = 1000000 WHERE position = 5; \
         UPDATE {events} SET position = 5 WHERE position = 6; \
         UPDATE {events} SET position = 6 WHERE position = 1000000",
    )
    .await;
    assert_eq!(fault(&verify(&log, None).await), (5, Fault::Reordered));
}

async fn verify_catches_a_truncated_tail_only_with_a_pinned_head(t: TestLog) {
    let log = t.open().await;
    append_n(&log, 10).await;
    let pinned = log.head().await.unwrap();
    let earlier = read_all(&log).await[6].clone();
    let earlier_pin = Head {
        position: earlier.position,
        hash: earlier.hash,
    };
    assert!(verify(&log, Some(pinned)).await.intact());
    t.tamper("DELETE FROM {events} WHERE position > 7").await;
    // Without a pin, a shorter chain is still a valid chain.
    assert!(verify(&log, None).await.intact());
    assert!(verify(&log, Some(earlier_pin)).await.intact());
    let report = verify(&log, Some(pinned)).await;
    assert_eq!(fault(&report), (10, Fault::PinnedHeadGone));
    assert!(
        report
            .violation
            .unwrap()
            .detail
            .contains("ends at position 7")
    );
    // A pin whose hash is not the one at that position.
    let wrong = Head {
        position: 3,
        hash: EventHash([1; 32]),
    };
    assert_eq!(
        fault(&verify(&log, Some(wrong)).await),
        (3, Fault::PinnedHeadGone)
    );
}

async fn concurrent_writers_never_make_a_tailing_reader_skip(t: TestLog) {
    const WRITERS: usize = 4;
    const BATCHES: usize = 25;
    let reader_log = t.open().await;
    let mut tail = reader_log.tail(0).await.unwrap();

    let mut writers = Vec::new();
    let mut expected_total = 0usize;
    for w in 0..WRITERS {
        // Each writer has a connection pool of its own.
        let log = t.open().await;
        let sizes: Vec<usize> = (0..BATCHES).map(|b| 1 + (w * 7 + b * 13) % 9).collect();
        expected_total += sizes.iter().sum::<usize>();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for (b, size) in sizes.into_iter().enumerate() {
                let batch: Vec<NewEvent> = (0..size)
                    .map(|i| event(&format!("writer-{w}"), "K", json!({"w": w, "b": b, "i": i})))
                    .collect();
                ids.extend(batch.iter().map(|e| e.event_id));
                log.append(AppendBatch::new(batch)).await.unwrap();
            }
            ids
        }));
    }
    let reader = tokio::spawn(async move {
        let mut seen = Vec::with_capacity(expected_total);
        while seen.len() < expected_total {
            let e = tail.next().await.unwrap();
            seen.push((e.position, e.event_id));
        }
        seen
    });
    let mut written = HashSet::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    let seen = tokio::time::timeout(DEADLINE, reader)
        .await
        .expect("the tailing reader did not see every event in time")
        .unwrap();
    let positions: Vec<u64> = seen.iter().map(|(p, _)| *p).collect();
    assert_eq!(positions, (1..=expected_total as u64).collect::<Vec<_>>());
    let seen_ids: HashSet<_> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(seen_ids.len(), expected_total, "an event was seen twice");
    assert_eq!(seen_ids, written, "the reader missed an event");
    let report = verify(&reader_log, None).await;
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.count, expected_total as u64);
}

/// An event with the given world, session, plugin (each optional) and kind.
fn tagged(
    world: Option<&str>,
    session: Option<&str>,
    plugin: Option<&str>,
    kind: &str,
) -> NewEvent {
    let mut e = event("tagged", kind, json!({}));
    e.world_id = world.map(|w| WorldId::new(w).unwrap());
    e.session_id = session.map(|s| SessionId::new(s).unwrap());
    e.plugin_id = plugin.map(|p| PluginId::new(p).unwrap());
    e
}

/// Positions 1 to 9: world, session, plugin and kind vary independently,
/// session `s1` is in both worlds, and some events have no world, session or
/// plugin.
async fn append_tagged(log: &EventLog) {
    let events = vec![
        tagged(Some("w1"), Some("s1"), Some("stealth"), "K1"),
        tagged(Some("w1"), Some("s2"), Some("stealth"), "K2"),
        tagged(Some("w2"), Some("s1"), Some("combat"), "K1"),
        tagged(Some("w2"), None, None, "K2"),
        tagged(None, None, None, "K1"),
        tagged(Some("w1"), Some("s1"), Some("combat"), "K2"),
        tagged(Some("w1"), Some("s1"), Some("stealth"), "K1"),
        tagged(Some("w2"), Some("s1"), Some("stealth"), "K2"),
        tagged(None, None, None, "O'Brien"),
    ];
    let out = log.append(AppendBatch::new(events)).await.unwrap();
    assert_eq!(out.positions, (1..=9).collect::<Vec<_>>());
}

fn filter(
    world: Option<&str>,
    session: Option<&str>,
    plugin: Option<&str>,
    kind: Option<&str>,
) -> EventFilter {
    EventFilter {
        world: world.map(|w| WorldId::new(w).unwrap()),
        session: session.map(|s| SessionId::new(s).unwrap()),
        plugin: plugin.map(|p| PluginId::new(p).unwrap()),
        kind: kind.map(|k| EventKind::new(k).unwrap()),
        kinds: Vec::new(),
    }
}

/// The positions `read_filtered` returns, after checking that each event is
/// the one `read_forward` returns at that position.
async fn filtered(log: &EventLog, after: u64, limit: usize, f: &EventFilter) -> Vec<u64> {
    let got = log.read_filtered(after, limit, f).await.unwrap();
    let all = read_all(log).await;
    for e in &got {
        assert_eq!(*e, all[e.position as usize - 1], "{f:?}");
    }
    got.iter().map(|e| e.position).collect()
}

async fn read_filtered_matches_every_given_field(t: TestLog) {
    let log = t.open().await;
    append_tagged(&log).await;
    let cases: Vec<(EventFilter, Vec<u64>)> = vec![
        (EventFilter::default(), (1..=9).collect()),
        // Each field alone.
        (filter(Some("w1"), None, None, None), vec![1, 2, 6, 7]),
        (filter(None, Some("s1"), None, None), vec![1, 3, 6, 7, 8]),
        (filter(None, None, Some("stealth"), None), vec![1, 2, 7, 8]),
        (filter(None, None, None, Some("K1")), vec![1, 3, 5, 7]),
        // Combined: every given field must match.
        (filter(Some("w1"), Some("s1"), None, None), vec![1, 6, 7]),
        (filter(Some("w2"), Some("s1"), None, None), vec![3, 8]),
        (filter(Some("w1"), None, None, Some("K2")), vec![2, 6]),
        (filter(None, Some("s1"), Some("combat"), None), vec![3, 6]),
        (
            filter(Some("w1"), Some("s1"), Some("stealth"), None),
            vec![1, 7],
        ),
        (
            filter(Some("w2"), Some("s1"), Some("stealth"), Some("K2")),
            vec![8],
        ),
        // Values are bound, never spliced into the SQL.
        (filter(None, None, None, Some("O'Brien")), vec![9]),
        // No match.
        (filter(Some("w3"), None, None, None), vec![]),
        (filter(Some("w1"), None, Some("combat"), Some("K1")), vec![]),
        (filter(None, None, None, Some("x'OR'a'='a")), vec![]),
    ];
    for (f, expected) in cases {
        assert_eq!(filtered(&log, 0, 100, &f).await, expected, "{f:?}");
    }
}

async fn read_filtered_respects_after_and_limit(t: TestLog) {
    let log = t.open().await;
    append_tagged(&log).await;
    let w1 = filter(Some("w1"), None, None, None);
    assert_eq!(filtered(&log, 2, 100, &w1).await, vec![6, 7]);
    assert_eq!(filtered(&log, 6, 100, &w1).await, vec![7]);
    assert_eq!(filtered(&log, 7, 100, &w1).await, Vec::<u64>::new());
    assert_eq!(filtered(&log, 0, 2, &w1).await, vec![1, 2]);
    // The limit counts matching events, not rows walked past.
    assert_eq!(filtered(&log, 1, 2, &w1).await, vec![2, 6]);
    assert_eq!(filtered(&log, 2, 1, &w1).await, vec![6]);
    assert_eq!(filtered(&log, 0, 0, &w1).await, Vec::<u64>::new());
    // Paging with the last position returned gives every match once.
    let s1 = filter(None, Some("s1"), None, None);
    let mut pages = Vec::new();
    let mut after = 0;
    loop {
        let page = filtered(&log, after, 2, &s1).await;
        let Some(&last) = page.last() else { break };
        after = last;
        pages.push(page);
    }
    assert_eq!(pages, vec![vec![1, 3], vec![6, 7], vec![8]]);
    assert_eq!(
        filtered(&log, 4, usize::MAX, &EventFilter::default()).await,
        vec![5, 6, 7, 8, 9]
    );
    assert_eq!(
        filtered(&log, 9, 100, &EventFilter::default()).await,
        Vec::<u64>::new()
    );
}

async fn read_filtered_reports_an_unreadable_row(t: TestLog) {
    let log = t.open().await;
    append_tagged(&log).await;
    t.tamper("UPDATE {events} SET stream = 'has a space' WHERE position = 6")
        .await;
    let w1 = filter(Some("w1"), None, None, None);
    match log.read_filtered(0, 100, &w1).await.unwrap_err() {
        LogError::Corrupt { position, .. } => assert_eq!(position, 6),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A filter that leaves the row out reads as before.
    let k1 = filter(Some("w1"), None, None, Some("K1"));
    assert_eq!(
        log.read_filtered(0, 100, &k1)
            .await
            .unwrap()
            .iter()
            .map(|e| e.position)
            .collect::<Vec<_>>(),
        vec![1, 7]
    );
}

async fn positions_of_maps_the_ids_in_the_log(t: TestLog) {
    let log = t.open().await;
    let first = append_n(&log, 3).await;
    let second: Vec<NewEvent> = (4..=5).map(plugin_event).collect();
    log.append(AppendBatch::new(second.clone())).await.unwrap();
    let ids: Vec<uuid::Uuid> = first.iter().chain(&second).map(|e| e.event_id).collect();

    let present = log.positions_of(&[ids[4], ids[0], ids[2]]).await.unwrap();
    assert_eq!(
        present,
        HashMap::from([(ids[4], 5), (ids[0], 1), (ids[2], 3)])
    );

    let absent = [uuid::Uuid::now_v7(), uuid::Uuid::now_v7()];
    assert!(log.positions_of(&absent).await.unwrap().is_empty());

    let mixed = log
        .positions_of(&[absent[0], ids[1], absent[1], ids[3], ids[1]])
        .await
        .unwrap();
    assert_eq!(mixed, HashMap::from([(ids[1], 2), (ids[3], 4)]));

    assert!(log.positions_of(&[]).await.unwrap().is_empty());
    let all = log.positions_of(&ids).await.unwrap();
    assert_eq!(all.len(), 5);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(all[id], i as u64 + 1);
    }
}

async fn checkpoints_start_absent_and_never_move_backwards(t: TestLog) {
    let log = t.open().await;
    assert_eq!(log.checkpoint("relay").await.unwrap(), None);
    log.save_checkpoint("relay", 5).await.unwrap();
    assert_eq!(log.checkpoint("relay").await.unwrap(), Some(5));
    log.save_checkpoint("relay", 9).await.unwrap();
    assert_eq!(log.checkpoint("relay").await.unwrap(), Some(9));
    // Lower: kept where it was.
    log.save_checkpoint("relay", 3).await.unwrap();
    assert_eq!(log.checkpoint("relay").await.unwrap(), Some(9));
    log.save_checkpoint("relay", 0).await.unwrap();
    assert_eq!(log.checkpoint("relay").await.unwrap(), Some(9));
    log.save_checkpoint("relay", 9).await.unwrap();
    assert_eq!(log.checkpoint("relay").await.unwrap(), Some(9));
    log.save_checkpoint("relay", 10).await.unwrap();
    assert_eq!(log.checkpoint("relay").await.unwrap(), Some(10));
    // Zero is a position like any other, not the absence of one.
    log.save_checkpoint("start", 0).await.unwrap();
    assert_eq!(log.checkpoint("start").await.unwrap(), Some(0));
    // A position the log could never store is refused, and changes nothing.
    let err = log.save_checkpoint("relay", u64::MAX).await.unwrap_err();
    assert!(matches!(err, LogError::Invalid(_)), "{err:?}");
    assert_eq!(log.checkpoint("relay").await.unwrap(), Some(10));
    // Checkpoints are not events.
    assert_eq!(log.head().await.unwrap(), Head::EMPTY);
    assert!(read_all(&log).await.is_empty());
}

async fn checkpoints_are_independent_by_name(t: TestLog) {
    let log = t.open().await;
    log.save_checkpoint("relay", 10).await.unwrap();
    assert_eq!(log.checkpoint("projection:sessions").await.unwrap(), None);
    log.save_checkpoint("projection:sessions", 2).await.unwrap();
    assert_eq!(log.checkpoint("relay").await.unwrap(), Some(10));
    assert_eq!(
        log.checkpoint("projection:sessions").await.unwrap(),
        Some(2)
    );
    // One name's higher position does not hold another's back or forward.
    log.save_checkpoint("projection:sessions", 7).await.unwrap();
    log.save_checkpoint("relay", 4).await.unwrap();
    assert_eq!(log.checkpoint("relay").await.unwrap(), Some(10));
    assert_eq!(
        log.checkpoint("projection:sessions").await.unwrap(),
        Some(7)
    );
    // Names are compared exactly, quotes and all.
    log.save_checkpoint("it's", 3).await.unwrap();
    assert_eq!(log.checkpoint("it's").await.unwrap(), Some(3));
    assert_eq!(log.checkpoint("Relay").await.unwrap(), None);
    assert_eq!(log.checkpoint("relay ").await.unwrap(), None);
}

async fn checkpoints_survive_reopening_the_log(t: TestLog) {
    let log = t.open().await;
    append_n(&log, 4).await;
    log.save_checkpoint("relay", 4).await.unwrap();
    log.save_checkpoint("projection:sessions", 2).await.unwrap();
    log.close().await;
    drop(log);

    let reopened = t.open().await;
    assert_eq!(reopened.checkpoint("relay").await.unwrap(), Some(4));
    assert_eq!(
        reopened.checkpoint("projection:sessions").await.unwrap(),
        Some(2)
    );
    // Still never backwards after the reopen.
    reopened.save_checkpoint("relay", 1).await.unwrap();
    assert_eq!(reopened.checkpoint("relay").await.unwrap(), Some(4));
    // The events are untouched and still verify.
    assert_eq!(read_all(&reopened).await.len(), 4);
    assert!(verify(&reopened, None).await.intact());
}

async fn json_reads_give_the_bytes_of_to_json(t: TestLog) {
    let log = t.open().await;
    append_tagged(&log).await;
    let mut odd = event(
        "world:w1",
        "TeleportedAcrossDimensions",
        json!({"quote": "a \"b\" \u{1} é", "n": 1.5, "big": u64::MAX, "list": [null, true]}),
    );
    odd.schema_version = 7;
    odd.provenance
        .extra
        .insert("signature".into(), json!({"alg": "ed25519", "sig": "abc"}));
    log.append(AppendBatch::new(vec![odd, plugin_event(3)]))
        .await
        .unwrap();

    let events = read_all(&log).await;
    let json = log.read_forward_json(0, 1000).await.unwrap();
    assert_eq!(json.len(), events.len());
    for (j, e) in json.iter().zip(&events) {
        assert_eq!(j.position, e.position);
        assert_eq!(j.event_id, e.event_id);
        assert_eq!(j.kind, e.kind);
        assert_eq!(j.plugin_id, e.plugin_id);
        assert_eq!(j.world_id, e.world_id);
        assert_eq!(
            String::from_utf8(j.json.clone()).unwrap(),
            String::from_utf8(e.to_json()).unwrap(),
            "event at {}",
            e.position
        );
        let back: Event = serde_json::from_slice(&j.json).unwrap();
        assert_eq!(&back, e);
    }
    // Paged like read_forward.
    let page = log.read_forward_json(3, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|j| j.position).collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert!(
        log.read_forward_json(events.len() as u64, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A tail gives the same, batch by batch.
    let mut tail = log.tail(0).await.unwrap();
    let mut tailed = Vec::new();
    while tailed.len() < json.len() {
        tailed.extend(tail.next_json_batch().await.unwrap());
    }
    assert_eq!(tailed, json);
}

async fn json_reads_report_an_unreadable_row(t: TestLog) {
    let log = t.open().await;
    append_n(&log, 4).await;
    t.tamper(
        "UPDATE {events} SET stream = 'has a space' WHERE position = 2; \
         UPDATE {events} SET provenance = '[1, 2]' WHERE position = 3",
    )
    .await;
    // A bad stream name at 2, a provenance that is not an object at 3: each
    // refused by the JSON path as read_forward refuses it.
    for position in [2, 3] {
        match log.read_forward_json(position - 1, 10).await.unwrap_err() {
            LogError::Corrupt { position: p, .. } => assert_eq!(p, position),
            other => panic!("expected Corrupt at {position}, got {other:?}"),
        }
        assert!(matches!(
            log.read_forward(position - 1, 10).await.unwrap_err(),
            LogError::Corrupt { position: p, .. } if p == position
        ));
    }
    assert_eq!(log.read_forward_json(0, 1).await.unwrap().len(), 1);
    assert_eq!(log.read_forward_json(3, 10).await.unwrap().len(), 1);
}

fn changes(rows: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    rows.iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
        .collect()
}

async fn commit(
    log: &EventLog,
    name: &str,
    from: u64,
    to: u64,
    rows: &[(&str, Option<&str>)],
) -> Result<(), LogError> {
    log.commit_projection(&ProjectionCommit {
        name,
        version: 1,
        from,
        to,
        changes: &changes(rows),
        fence: None,
    })
    .await
}

async fn projections_commit_rows_with_their_checkpoint(t: TestLog) {
    let log = t.open().await;
    assert_eq!(log.load_projection("metrics").await.unwrap(), None);
    commit(
        &log,
        "metrics",
        0,
        3,
        &[("a", Some(r#"{"n":1}"#)), ("b", Some("[1,2]"))],
    )
    .await
    .unwrap();
    // Written, updated, deleted and kept, each with the checkpoint.
    commit(
        &log,
        "metrics",
        3,
        7,
        &[("a", Some(r#"{"n":2}"#)), ("b", None), ("c", Some("\"x\""))],
    )
    .await
    .unwrap();
    let stored = log.load_projection("metrics").await.unwrap().unwrap();
    assert_eq!(
        stored,
        StoredProjection {
            position: 7,
            version: 1,
            rows: vec![
                ("a".into(), r#"{"n":2}"#.into()),
                ("c".into(), "\"x\"".into()),
            ],
        }
    );
    // A commit with no changed rows still moves the checkpoint.
    commit(&log, "metrics", 7, 9, &[]).await.unwrap();
    assert_eq!(
        log.load_projection("metrics")
            .await
            .unwrap()
            .unwrap()
            .position,
        9
    );
    // Projections are independent, and not events.
    assert_eq!(log.load_projection("sessions").await.unwrap(), None);
    assert_eq!(log.head().await.unwrap(), Head::EMPTY);
    // The text is kept as written (PostgreSQL json, not jsonb).
    commit(
        &log,
        "metrics",
        9,
        10,
        &[("spaced", Some(r#"{"b": 1, "a": 2}"#))],
    )
    .await
    .unwrap();
    let stored = log
        .projection_rows("metrics", &["spaced".into()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.rows,
        vec![("spaced".into(), r#"{"b": 1, "a": 2}"#.into())]
    );
    let statuses = log.projection_statuses().await.unwrap();
    assert_eq!(statuses.len(), 1);
    assert_eq!(
        (
            statuses[0].name.as_str(),
            statuses[0].position,
            statuses[0].version
        ),
        ("metrics", 10, 1)
    );
    assert!(
        statuses[0].updated_at.ends_with('Z'),
        "{}",
        statuses[0].updated_at
    );
    // Survives reopening.
    drop(log);
    let log = t.open().await;
    assert_eq!(
        log.load_projection("metrics")
            .await
            .unwrap()
            .unwrap()
            .rows
            .len(),
        3
    );
}

async fn projection_commits_are_refused_when_the_checkpoint_moved(t: TestLog) {
    let log = t.open().await;
    commit(&log, "p", 0, 5, &[("k", Some("1"))]).await.unwrap();
    // A second runner that loaded the projection at 0 (or a stale start).
    for from in [0, 3, 6] {
        let err = commit(
            &log,
            "p",
            from,
            8,
            &[("k", Some("2")), ("other", Some("3"))],
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, LogError::ProjectionMoved { expected, .. } if expected == from),
            "{err:?}"
        );
    }
    // Another version of the projection's rows.
    let err = log
        .commit_projection(&ProjectionCommit {
            name: "p",
            version: 2,
            from: 5,
            to: 8,
            changes: &[],
            fence: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::ProjectionMoved { .. }), "{err:?}");
    // Nothing of the refused commits was written.
    let stored = log.load_projection("p").await.unwrap().unwrap();
    assert_eq!(
        (stored.position, stored.rows),
        (5, vec![("k".into(), "1".into())])
    );
    // Never backwards, and rows must be JSON.
    let err = commit(&log, "p", 5, 4, &[]).await.unwrap_err();
    assert!(matches!(err, LogError::Invalid(_)), "{err:?}");
    let err = commit(&log, "p", 5, 6, &[("k", Some("{not json"))])
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::Invalid(_)), "{err:?}");
    assert_eq!(log.load_projection("p").await.unwrap().unwrap().position, 5);
    // Two runners racing from the same start: exactly one wins.
    let (a, b) = tokio::join!(
        commit(&log, "p", 5, 9, &[("k", Some("\"a\""))]),
        commit(&log, "p", 5, 9, &[("k", Some("\"b\""))]),
    );
    assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
    let stored = log.load_projection("p").await.unwrap().unwrap();
    let winner = if a.is_ok() { "\"a\"" } else { "\"b\"" };
    assert_eq!(
        (stored.position, stored.rows),
        (9, vec![("k".into(), winner.into())])
    );
    // The same for two first commits of a new projection.
    let (a, b) = tokio::join!(
        commit(&log, "fresh", 0, 3, &[("k", Some("\"a\""))]),
        commit(&log, "fresh", 0, 3, &[("k", Some("\"b\""))]),
    );
    assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
    let stored = log.load_projection("fresh").await.unwrap().unwrap();
    let winner = if a.is_ok() { "\"a\"" } else { "\"b\"" };
    assert_eq!(stored.rows, vec![("k".into(), winner.into())]);
}

async fn projections_reset_and_read_by_key(t: TestLog) {
    let log = t.open().await;
    commit(
        &log,
        "p",
        0,
        4,
        &[
            ("w1/s1", Some("1")),
            ("w1/s2", Some("2")),
            ("it's", Some("3")),
        ],
    )
    .await
    .unwrap();
    commit(&log, "q", 0, 2, &[("w1/s1", Some("9"))])
        .await
        .unwrap();
    let some = log
        .projection_rows("p", &["w1/s2".into(), "it's".into(), "missing".into()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(some.position, 4);
    assert_eq!(
        some.rows,
        vec![("it's".into(), "3".into()), ("w1/s2".into(), "2".into())]
    );
    assert_eq!(
        log.projection_rows("none", &["a".into()]).await.unwrap(),
        None
    );
    log.reset_projection("p").await.unwrap();
    assert_eq!(log.load_projection("p").await.unwrap(), None);
    // The other projection is untouched.
    assert_eq!(
        log.load_projection("q").await.unwrap().unwrap().rows.len(),
        1
    );
    // A runner that had it loaded finds it moved; a fresh start works.
    let err = commit(&log, "p", 4, 6, &[]).await.unwrap_err();
    assert!(matches!(err, LogError::ProjectionMoved { .. }), "{err:?}");
    commit(&log, "p", 0, 6, &[("w1/s1", Some("5"))])
        .await
        .unwrap();
    let stored = log.load_projection("p").await.unwrap().unwrap();
    assert_eq!(
        (stored.position, stored.rows),
        (6, vec![("w1/s1".into(), "5".into())])
    );
}

async fn waiting_for_projections_wakes_on_their_commits(t: TestLog) {
    let log = t.open().await;
    commit(&log, "a", 0, 3, &[]).await.unwrap();
    // Already there; one of two not yet (and never, within the timeout).
    assert!(log.wait_for_projections(&["a"], 3, DEADLINE).await.unwrap());
    assert!(
        !log.wait_for_projections(&["a", "b"], 3, Duration::from_millis(50))
            .await
            .unwrap()
    );
    // Committed while waiting: the wait sees it.
    let writer = log.clone();
    let (waited, _) = tokio::join!(
        log.wait_for_projections(&["a", "b"], 5, DEADLINE),
        async move {
            tokio::task::yield_now().await;
            commit(&writer, "b", 0, 5, &[]).await.unwrap();
            commit(&writer, "a", 3, 5, &[]).await.unwrap();
        }
    );
    assert!(waited.unwrap());
}

/// On SQLite, where payload and provenance are plain text, bytes moved from
/// one field to the next (here: the plugin id put in the payload's place)
/// leave the concatenated fields the same; each field must still be JSON of
/// its own, so the row is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_bytes_moved_between_fields() {
    let t = TestLog::new(Backend::Sqlite).await;
    let log = t.open().await;
    let mut e = plugin_event(1);
    e.plugin_id = Some(PluginId::new("game-romance").unwrap());
    e.provenance.plugin_id = e.plugin_id.clone();
    e.payload = json!({"note": 1, "plugin_id": "evil", "provenance": {"k": 2}}).into();
    log.append(AppendBatch::new(vec![e])).await.unwrap();
    append_n(&log, 3).await;
    let stored = read_all(&log).await.remove(0);
    let provenance = stored.provenance.canonical();
    // "payload":{"note":1,"plugin_id":"evil","provenance":{"k":2}},"plugin_id":"game-romance","provenance":{…}
    // read as
    // "payload":{"note":1 ,"plugin_id":"evil" ,"provenance":{"k":2}},"plugin_id":"game-romance","provenance":{…}
    let moved = format!("{{\"k\":2}}}},\"plugin_id\":\"game-romance\",\"provenance\":{provenance}");
    t.tamper(&format!(
        "UPDATE {{events}} SET payload = '{{\"note\":1', plugin_id = 'evil', provenance = '{moved}' WHERE position = 1"
    ))
    .await;
    let report = verify(&log, None).await;
    assert_eq!(fault(&report), (1, Fault::Edited));
    let detail = report.violation.unwrap().detail;
    assert!(
        detail.starts_with("the row cannot be read as an event"),
        "{detail}"
    );
}

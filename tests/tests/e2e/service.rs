//! `provenant serve`, the real binary, against PostgreSQL, SQLite and NATS
//! JetStream: ticks in, events durable once, the events stream exactly once,
//! through bad input, redelivery, SIGKILL and NATS restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use provenant_events::{Event, kinds};
use provenant_tests::{Backend, TestLog, all_events};
use serde_json::{Value, json};

use provenant_tests::{EngineOptions, EngineProcess, PrivateNats, TestNats, tavern, tick};

/// tick_id → how many `TickProcessed` events the log holds for it.
pub(crate) fn processed(events: &[Event]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.kind.as_str() == kinds::TICK_PROCESSED)
    {
        *out.entry(e.payload["tick_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    out
}

async fn http_ticks(backend: Backend) {
    let db = TestLog::new(backend).await;
    let engine = EngineProcess::start(&EngineOptions {
        database_url: db.url.clone(),
        ..Default::default()
    });
    let (status, body) = engine.get("/readyz").await;
    assert_eq!(
        (status, body["ready"].clone()),
        (200, json!(true)),
        "{body}"
    );

    let (status, body) = engine.put("/v1/worlds/tavern", &tavern()).await;
    assert_eq!(status, 200, "{body}");
    let (status, world) = engine.get("/v1/worlds/tavern").await;
    assert_eq!(status, 200);
    assert_eq!(world["config"]["name"], "The Tavern");
    assert_eq!(
        world["effective_simulation_config"]["stealth"]["detection_radius"], 5,
        "{world}"
    );
    assert_eq!(engine.get("/v1/worlds/nowhere").await.0, 404);
    assert_eq!(engine.get("/v1/worlds/bad%20id").await.0, 400);

    // Good ticks, with bad ones between them.
    let mut sent = Vec::new();
    for n in 1..=6 {
        let t = tick("tavern", "s1", n, &["n1", "n2"]);
        let (status, body) = engine.post("/v1/ticks", t.to_string().as_bytes()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["duplicate"], false);
        assert!(body["events"].as_u64().unwrap() > 1, "{body}");
        sent.push((t, body));
        let (status, body) = engine.post("/v1/ticks", b"{not json").await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("not JSON"),
            "{body}"
        );
    }
    let mut wrong = tick("tavern", "s1", 7, &[]);
    wrong["tick"] = json!("seven");
    let (status, body) = engine.post("/v1/ticks", wrong.to_string().as_bytes()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["rejected_event_position"].as_u64().is_some(), "{body}");
    let mut bad_id = tick("tavern", "s1", 8, &[]);
    bad_id["world_id"] = json!("no spaces allowed");
    assert_eq!(
        engine
            .post("/v1/ticks", bad_id.to_string().as_bytes())
            .await
            .0,
        422
    );
    let huge = json!({"tick_id": uuid::Uuid::now_v7(), "pad": "x".repeat(1_100_000)});
    let (status, body) = engine.post("/v1/ticks", huge.to_string().as_bytes()).await;
    assert_eq!(status, 413, "{body}");

    // A tick sent again adds nothing.
    let (first, first_answer) = &sent[2];
    let (status, again) = engine.post("/v1/ticks", first.to_string().as_bytes()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["position"], first_answer["position"]);

    // A world never configured: every plugin, no activities.
    let (status, body) = engine
        .post(
            "/v1/ticks",
            tick("elsewhere", "s9", 1, &["n1"]).to_string().as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"], 2, "config change and TickProcessed: {body}");

    // Reads.
    let (status, page) = engine.get("/v1/events?kind=TickRejected&limit=100").await;
    assert_eq!(status, 200);
    let rejected = page["events"].as_array().unwrap();
    assert_eq!(
        rejected.len(),
        9,
        "6 not JSON, wrong type, bad id, too large"
    );
    assert!(rejected.iter().all(|e| e["payload"]["source"] == "http"));
    let (_, page) = engine
        .get("/v1/events?world=tavern&kind=TickProcessed&limit=2")
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    let next = page["next_after"].as_u64().unwrap();
    let (_, rest) = engine
        .get(&format!(
            "/v1/events?world=tavern&kind=TickProcessed&after={next}"
        ))
        .await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 4);
    let (_, by_plugin) = engine
        .get("/v1/events?plugin=game-stealth&limit=1000")
        .await;
    assert!(
        by_plugin["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["plugin_id"] == "game-stealth")
    );
    assert_eq!(engine.get("/v1/events?after=-1").await.0, 400);
    assert_eq!(engine.get("/v1/events?world=a.b").await.0, 400);
    assert_eq!(engine.get("/v1/events?colour=red").await.0, 400);

    // Stop: SIGTERM is a clean exit.
    let mut engine = engine;
    let status = engine.terminate();
    assert!(status.success(), "{status}: {}", engine.stderr());

    let log = db.open().await;
    let events = all_events(&log).await;
    let counts = processed(&events);
    assert_eq!(counts.len(), 7, "6 tavern ticks and 1 elsewhere");
    assert!(counts.values().all(|&c| c == 1), "{counts:?}");
    for (t, _) in &sent {
        assert_eq!(counts[t["tick_id"].as_str().unwrap()], 1);
    }
    let report = log
        .verify(&Default::default(), &mut |_| {})
        .await
        .expect("verify");
    assert!(report.intact(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_ticks_on_postgres() {
    http_ticks(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_ticks_on_sqlite() {
    http_ticks(Backend::Sqlite).await;
}

/// Publishes a tick to JetStream and waits for the stream to store it.
pub(crate) async fn publish(js: &jetstream::Context, subject: String, body: Vec<u8>) {
    js.publish(subject, body.into())
        .await
        .expect("publish")
        .await
        .expect("stored");
}

/// Every message of `stream`, from its first, in order.
async fn ordered_messages(js: &jetstream::Context, stream: &str) -> consumer::pull::Ordered {
    let consumer: consumer::OrderedPullConsumer = js
        .get_stream(stream)
        .await
        .unwrap_or_else(|e| panic!("stream {stream}: {e}"))
        .create_consumer(consumer::pull::OrderedConfig::default())
        .await
        .expect("ordered consumer");
    consumer.messages().await.expect("messages")
}

/// Reads the events stream from the start until `done` says so (60 s at
/// most); returns every message as (Nats-Msg-Id, position, subject, event).
pub(crate) async fn read_events_until(
    js: &jetstream::Context,
    stream: &str,
    // Called with the messages read so far: once before the first, then once
    // after each.
    mut done: impl FnMut(&[(String, u64, String, Value)]) -> bool,
) -> Vec<(String, u64, String, Value)> {
    let mut messages = ordered_messages(js, stream).await;
    let mut seen = Vec::new();
    let read = async {
        while !done(&seen) {
            let m = messages
                .next()
                .await
                .expect("the stream ended")
                .expect("a message");
            let id = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.to_string())
                .unwrap_or_default();
            let position = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Provenant-Position"))
                .and_then(|v| v.as_str().parse().ok())
                .unwrap_or(0);
            let body: Value = serde_json::from_slice(&m.payload).expect("event JSON");
            seen.push((id, position, m.subject.to_string(), body));
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .unwrap_or_else(|_| panic!("timed out reading the events stream"));
    seen
}

fn count_kind(seen: &[(String, u64, String, Value)], kind: &str) -> usize {
    seen.iter().filter(|m| m.3["kind"] == kind).count()
}

/// Waits until the events stream holds `n` `TickProcessed` events.
pub(crate) async fn wait_processed(js: &jetstream::Context, nats: &TestNats, n: usize) {
    // Called once per message read: count as they come (counting the whole
    // slice each time made long streams quadratic).
    let mut processed = 0;
    read_events_until(js, &nats.events_stream(), |s| {
        if s.last().is_some_and(|m| m.3["kind"] == "TickProcessed") {
            processed += 1;
        }
        processed >= n
    })
    .await;
}

/// The log holds each tick sent exactly once (and no other), and the events
/// stream holds the log; the log's events.
pub(crate) async fn assert_each_tick_once(
    db: &TestLog,
    js: &jetstream::Context,
    nats: &TestNats,
    ticks: &[Value],
) -> Vec<Event> {
    let log = db.open().await;
    let events = all_events(&log).await;
    let counts = processed(&events);
    for t in ticks {
        assert_eq!(counts.get(t["tick_id"].as_str().unwrap()), Some(&1), "{t}");
    }
    assert_eq!(counts.len(), ticks.len());
    assert_stream_matches_log(js, nats, &events).await;
    events
}

/// The log and the events stream agree: each event once, in position order,
/// with its id and subject.
pub(crate) async fn assert_stream_matches_log(
    js: &jetstream::Context,
    nats: &TestNats,
    events: &[Event],
) {
    let total = events.len();
    let seen = read_events_until(js, &nats.events_stream(), |s| s.len() >= total).await;
    let mut stream = js.get_stream(nats.events_stream()).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.state.messages as usize, total,
        "messages in the stream"
    );
    let ids: BTreeSet<&str> = seen.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(ids.len(), total, "every message id once");
    for (e, m) in events.iter().zip(&seen) {
        assert_eq!(m.0, e.event_id.to_string());
        assert_eq!(m.1, e.position);
        assert_eq!(m.3["hash"], e.hash.to_string());
        let world = e.world_id.as_ref().map_or("_", |w| w.as_str());
        let plugin = e.plugin_id.as_ref().map_or("engine", |p| p.as_str());
        assert_eq!(
            m.2,
            format!(
                "{}.events.{world}.{plugin}.{}",
                nats.prefix,
                e.kind.as_str()
            )
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_ticks_reach_the_log_and_the_events_stream_exactly_once() {
    let db = TestLog::postgres().await;
    let nats = TestNats::new();
    let options = EngineOptions::with_nats(&db.url, &nats);
    let mut engine = EngineProcess::start(&options);
    assert_eq!(engine.put("/v1/worlds/w1", &tavern()).await.0, 200);
    let js = nats.jetstream().await;

    let mut ticks = Vec::new();
    for n in 1..=40 {
        for world in ["w1", "w2"] {
            let t = tick(world, "s1", n, &["a", "b"]);
            publish(&js, nats.ticks_subject(world), t.to_string().into_bytes()).await;
            ticks.push(t);
        }
        if n == 20 {
            // Bad input between good ticks: not JSON, and a tick published
            // on another world's subject.
            publish(&js, nats.ticks_subject("w1"), b"\xff\xfe not json".to_vec()).await;
            let stray = tick("w2", "s1", 99, &[]);
            publish(
                &js,
                nats.ticks_subject("w1"),
                stray.to_string().into_bytes(),
            )
            .await;
        }
    }
    // Sent again (a game retrying), then a last tick per world behind it.
    for t in &ticks[..10] {
        let world = t["world_id"].as_str().unwrap().to_owned();
        publish(&js, nats.ticks_subject(&world), t.to_string().into_bytes()).await;
    }
    for world in ["w1", "w2"] {
        let t = tick(world, "s1", 41, &["a", "b"]);
        publish(&js, nats.ticks_subject(world), t.to_string().into_bytes()).await;
        ticks.push(t);
    }
    let expected = ticks.len();
    let seen = read_events_until(&js, &nats.events_stream(), |s| {
        count_kind(s, "TickProcessed") >= expected && count_kind(s, "TickRejected") >= 2
    })
    .await;
    assert_eq!(count_kind(&seen, "TickRejected"), 2);

    // Stop gracefully: every tick taken is acknowledged first.
    let status = engine.terminate();
    assert!(status.success(), "{status}: {}", engine.stderr());

    assert_eq!(ticks.len(), expected);
    let events = assert_each_tick_once(&db, &js, &nats, &ticks).await;
    // Rejections are recorded concurrently: in either order.
    let mut reasons: Vec<&str> = events
        .iter()
        .filter(|e| e.kind.as_str() == "TickRejected")
        .map(|e| e.payload["reason"].as_str().unwrap())
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].starts_with("not JSON"), "{reasons:?}");
    assert!(
        reasons[1].starts_with("the tick is for world w2 but was published on"),
        "{reasons:?}"
    );
    // Per world, ticks were processed in the order they were published.
    for world in ["w1", "w2"] {
        let order: Vec<u64> = events
            .iter()
            .filter(|e| {
                e.kind.as_str() == "TickProcessed" && e.world_id.as_ref().unwrap().as_str() == world
            })
            .map(|e| e.payload["tick"].as_u64().unwrap())
            .collect();
        assert_eq!(order, (1..=41).collect::<Vec<_>>(), "{world}");
    }

    // Every tick acknowledged or terminated; nothing waits for redelivery.
    nats.assert_all_ticks_answered(&js).await;
}

/// Publishes `per_world` ticks to each of `worlds`, returning them.
pub(crate) async fn publish_ticks(
    js: &jetstream::Context,
    nats: &TestNats,
    worlds: &[&str],
    from: u64,
    per_world: u64,
) -> Vec<Value> {
    let mut out = Vec::new();
    for n in from..from + per_world {
        for world in worlds {
            let t = tick(world, "s1", n, &["a", "b", "c"]);
            publish(js, nats.ticks_subject(world), t.to_string().into_bytes()).await;
            out.push(t);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_in_the_middle_of_a_stream_loses_and_duplicates_nothing() {
    sigkill_in_the_middle_of_a_stream(None).await;
}

/// With a feed of one chunk, the relay and the projections fall behind it
/// at every other append and go back to reading the log: the hand-over is
/// forced at every boundary, across the kill and the restart.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_stream_with_a_one_chunk_feed_loses_and_duplicates_nothing() {
    sigkill_in_the_middle_of_a_stream(Some(1)).await;
}

/// The engine's arguments for a feed of `events` (None: the default): one
/// chunk of the feed per 512 events or fewer.
pub(crate) fn feed_args(events: Option<usize>) -> Vec<String> {
    events
        .map(|e| vec!["--log-feed-events".to_owned(), e.to_string()])
        .unwrap_or_default()
}

async fn sigkill_in_the_middle_of_a_stream(feed: Option<usize>) {
    let db = TestLog::postgres().await;
    let nats = TestNats::new();
    let options = EngineOptions {
        args: feed_args(feed),
        ..EngineOptions::with_nats(&db.url, &nats)
    };
    let mut engine = EngineProcess::start(&options);
    for w in ["k1", "k2", "k3"] {
        assert_eq!(
            engine.put(&format!("/v1/worlds/{w}"), &tavern()).await.0,
            200
        );
    }
    let js = nats.jetstream().await;
    let mut ticks = publish_ticks(&js, &nats, &["k1", "k2", "k3"], 1, 100).await;
    // Kill once some, not all, ticks are through.
    wait_processed(&js, &nats, 30).await;
    engine.kill();
    ticks.extend(publish_ticks(&js, &nats, &["k1", "k2", "k3"], 101, 50).await);
    let mut engine = EngineProcess::start(&options);
    let expected = ticks.len();
    wait_processed(&js, &nats, expected).await;
    let status = engine.terminate();
    assert!(status.success(), "{status}: {}", engine.stderr());

    assert_each_tick_once(&db, &js, &nats, &ticks).await;
    let report = db
        .open()
        .await
        .verify(&Default::default(), &mut |_| {})
        .await
        .unwrap();
    assert!(report.intact(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_stopped_and_started_during_a_run_loses_nothing() {
    nats_stopped_and_started(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_stopped_and_started_with_a_one_chunk_feed_loses_nothing() {
    nats_stopped_and_started(Some(1)).await;
}

async fn nats_stopped_and_started(feed: Option<usize>) {
    let db = TestLog::postgres().await;
    let mut server = PrivateNats::start();
    let nats = TestNats::on(server.url());
    let options = EngineOptions {
        args: feed_args(feed),
        ..EngineOptions::with_nats(&db.url, &nats)
    };
    let mut engine = EngineProcess::start(&options);
    assert_eq!(engine.put("/v1/worlds/r1", &tavern()).await.0, 200);
    let js = nats.jetstream().await;
    let mut ticks = publish_ticks(&js, &nats, &["r1", "r2"], 1, 60).await;
    wait_processed(&js, &nats, 20).await;
    server.stop();
    // While NATS is away the HTTP side goes on, and its events wait for the relay.
    let during = tick("r1", "s2", 1, &["a"]);
    let (status, body) = engine
        .post("/v1/ticks", during.to_string().as_bytes())
        .await;
    assert_eq!(status, 200, "{body}");
    ticks.push(during);
    server.restart();
    let js = nats.jetstream().await;
    ticks.extend(publish_ticks(&js, &nats, &["r1", "r2"], 61, 20).await);
    let expected = ticks.len();
    wait_processed(&js, &nats, expected).await;
    let status = engine.terminate();
    assert!(status.success(), "{status}: {}", engine.stderr());

    assert_each_tick_once(&db, &js, &nats, &ticks).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_events_stream_of_another_log_is_refused_not_skipped_over() {
    let nats = TestNats::new();
    let first_db = TestLog::postgres().await;
    let mut first = EngineProcess::start(&EngineOptions::with_nats(&first_db.url, &nats));
    for n in 1..=5 {
        let t = tick("w", "s", n, &["a"]);
        assert_eq!(
            first.post("/v1/ticks", t.to_string().as_bytes()).await.0,
            200
        );
    }
    let js = nats.jetstream().await;
    let head = all_events(&first_db.open().await).await.len();
    read_events_until(&js, &nats.events_stream(), |s| s.len() >= head).await;
    assert!(first.terminate().success());

    // A new, empty log on the same streams: resuming after the stream's
    // last message would skip this log's first events.
    let second_db = TestLog::postgres().await;
    let mut second = EngineProcess::start(&EngineOptions::with_nats(&second_db.url, &nats));
    let t = tick("w", "s", 1, &["a"]);
    assert_eq!(
        second.post("/v1/ticks", t.to_string().as_bytes()).await.0,
        200
    );
    // The relay says so in its log, then /readyz gives the reason.
    assert!(
        second.wait_for_stderr("holds events of another log", Duration::from_secs(30)),
        "{}",
        second.stderr()
    );
    let ready = second.get("/readyz").await;
    assert_eq!(ready.0, 503, "{}", ready.1);
    let reasons = ready.1["reasons"].to_string();
    assert!(reasons.contains("holds events of another log"), "{reasons}");
    let mut stream = js.get_stream(nats.events_stream()).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages as usize, head);
    let status = second.terminate();
    assert!(status.success(), "{status}: {}", second.stderr());
}

/// Runs SQL on the PostgreSQL server (not in the test's database).
async fn on_server(sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&provenant_tests::postgres_server_url())
        .await
        .expect("connect to the server");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_going_away_leaves_ticks_unacknowledged_and_the_engine_recovers() {
    let db = TestLog::postgres().await;
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let nats = TestNats::new();
    let mut engine = EngineProcess::start(&EngineOptions::with_nats(&db.url, &nats));
    let js = nats.jetstream().await;
    let mut ticks = publish_ticks(&js, &nats, &["p1"], 1, 10).await;
    wait_processed(&js, &nats, 10).await;

    // The database goes away: its connections are cut and new ones refused.
    on_server(&format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;
    ticks.extend(publish_ticks(&js, &nats, &["p1"], 11, 10).await);
    assert!(
        engine.wait_for_stderr("log unreachable", Duration::from_secs(30)),
        "{}",
        engine.stderr()
    );
    let (status, ready) = engine.get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["reasons"].to_string().contains("log unreachable"),
        "{ready}"
    );
    // None of the ticks sent meanwhile is acknowledged.
    let (pending, ack_pending) = nats.ticks_unanswered(&js).await;
    assert_eq!(pending + ack_pending, 10);

    // It comes back: the engine carries on by itself.
    on_server(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    wait_processed(&js, &nats, 20).await;
    let (status, ready) = engine.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    let status = engine.terminate();
    assert!(status.success(), "{status}: {}", engine.stderr());

    assert_eq!(ticks.len(), 20);
    assert_each_tick_once(&db, &js, &nats, &ticks).await;
    nats.assert_all_ticks_answered(&js).await;
}

/// Every anchor of the stream, oldest first, until `done` says so (30 s at
/// most).
pub(crate) async fn read_anchors_until(
    js: &jetstream::Context,
    stream: &str,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let mut messages = ordered_messages(js, stream).await;
    let mut seen = Vec::new();
    let read = async {
        while !done(&seen) {
            let m = messages
                .next()
                .await
                .expect("the stream ended")
                .expect("a message");
            seen.push(serde_json::from_slice(&m.payload).expect("anchor JSON"));
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .unwrap_or_else(|_| panic!("timed out reading the anchors: {seen:?}"));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchors_publish_the_head_that_audit_verify_pins() {
    let db = TestLog::new(Backend::Postgres).await;
    let nats = TestNats::new();
    let mut options = EngineOptions::with_nats(&db.url, &nats);
    options.args = vec!["--anchor-interval-seconds".into(), "1".into()];
    let mut engine = EngineProcess::start(&options);
    let (status, answer) = engine.put("/v1/worlds/tavern", &tavern()).await;
    assert_eq!(status, 200, "{answer}");
    for n in 1..=3 {
        let body = serde_json::to_vec(&tick("tavern", "s1", n, &["npc-1"])).unwrap();
        let (status, answer) = engine.post("/v1/ticks", &body).await;
        assert_eq!(status, 200, "{answer}");
    }
    let log = db.open().await;
    let head = log.head().await.unwrap();
    let js = nats.jetstream().await;
    // Within an interval or two, an anchor at (or past) that head.
    let anchors = read_anchors_until(&js, &nats.anchors_stream(), |seen| {
        seen.iter()
            .any(|a| a["position"].as_u64() >= Some(head.position))
    })
    .await;
    let anchor = anchors.last().unwrap();
    assert_eq!(anchor["head"], head.to_string(), "{anchors:?}");
    assert_eq!(anchor["hash"], head.hash.to_string());
    assert!(
        anchor["at"].is_string() && anchor["engine_instance"].is_string(),
        "{anchor}"
    );
    // Positions only move forward, and an unmoved head is not published again.
    let positions: Vec<u64> = anchors
        .iter()
        .map(|a| a["position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    // The anchor pins the log: verify passes against it.
    let verify = |pin: &str| {
        std::process::Command::new(provenant_tests::binary())
            .args(["audit", "verify", "--expect-head", pin])
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap()
    };
    let out = verify(anchor["head"].as_str().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A graceful stop publishes the head the engine leaves.
    let (status, _) = engine
        .post(
            "/v1/ticks",
            &serde_json::to_vec(&tick("tavern", "s1", 4, &["npc-1"])).unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    assert!(engine.terminate().success());
    let last = log.head().await.unwrap();
    let anchors = read_anchors_until(&js, &nats.anchors_stream(), |seen| {
        seen.iter()
            .any(|a| a["position"].as_u64() >= Some(last.position))
    })
    .await;
    assert_eq!(
        anchors.last().unwrap()["head"],
        last.to_string(),
        "{anchors:?}"
    );
    // A pinned head with a wrong hash is caught.
    let wrong = format!("{}:{}", last.position, "0".repeat(64));
    assert_eq!(verify(&wrong).status.code(), Some(1));
}

/// SIGTERM right after the engine says it listens (a supervisor stopping
/// an engine it just started) stops it: the signal is listened for from
/// before the start, not only once the engine waits for it (a SIGTERM in
/// between was lost, and the engine ran on).
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_right_after_the_start_stops_the_engine() {
    for _ in 0..5 {
        let db = TestLog::sqlite();
        let mut engine = EngineProcess::start(&EngineOptions {
            database_url: db.url.clone(),
            ..Default::default()
        });
        let status = engine.terminate();
        assert!(status.success(), "{status}: {}", engine.stderr());
    }
}

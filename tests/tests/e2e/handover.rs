//! The engine's followers (the relay, the projections) take committed
//! events from memory and read the log only to catch up: through the real
//! binary, PostgreSQL and NATS, while they keep up and when a frozen NATS
//! server makes the relay fall behind the feed.

use std::collections::BTreeMap;
use std::time::Duration;

use provenant_tests::{
    EngineOptions, EngineProcess, PrivateNats, TestLog, TestNats, all_events, http_text, tavern,
    tick,
};

use super::service::{assert_each_tick_once, feed_args, publish_ticks, wait_processed};

/// The engine's metrics now: `name{labels}` (labels as written) → value.
async fn metrics(engine: &EngineProcess) -> BTreeMap<String, f64> {
    let (status, text) = http_text(engine.addr, "GET", "/metrics", None, None).await;
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

fn followed(m: &BTreeMap<String, f64>, follower: &str, source: &str) -> f64 {
    m.get(&format!(
        "provenant_log_followed_events_total{{follower=\"{follower}\",source=\"{source}\"}}"
    ))
    .copied()
    .unwrap_or_else(|| panic!("no {follower}/{source} count in {m:?}"))
}

/// Polls the metrics until `done` holds (the engine's own report of its
/// progress; no fixed wait).
async fn metrics_until(
    engine: &EngineProcess,
    what: &str,
    done: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let m = metrics(engine).await;
        if done(&m) {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn caught_up(m: &BTreeMap<String, f64>) -> bool {
    let head = m["provenant_log_head_position"];
    m["provenant_relay_position"] >= head
        && ["plugin_metrics", "sessions", "totals"].iter().all(|p| {
            m.get(&format!(
                "provenant_projection_position{{projection=\"{p}\"}}"
            ))
            .is_some_and(|&at| at >= head)
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_relay_and_the_projections_read_nothing_back_while_they_keep_up() {
    let db = TestLog::postgres().await;
    let nats = TestNats::new();
    let engine = EngineProcess::start(&EngineOptions::with_nats(&db.url, &nats));
    assert_eq!(engine.put("/v1/worlds/f1", &tavern()).await.0, 200);
    // Started, and caught up with what start-up wrote: from here on every
    // event comes from the feed.
    let start = metrics_until(&engine, "the followers to catch up", caught_up).await;
    let head_at_start = start["provenant_log_head_position"];
    assert_eq!(
        followed(&start, "relay", "log") + followed(&start, "relay", "feed"),
        head_at_start
    );

    let js = nats.jetstream().await;
    let ticks = publish_ticks(&js, &nats, &["f1", "f2"], 1, 40).await;
    wait_processed(&js, &nats, ticks.len()).await;
    let end = metrics_until(&engine, "the followers to catch up", caught_up).await;
    let head = end["provenant_log_head_position"];
    assert!(head > head_at_start + 80.0, "{end:?}");
    assert_eq!(
        followed(&end, "relay", "log"),
        followed(&start, "relay", "log"),
        "the relay read back events it was handed: {end:?}"
    );
    assert_eq!(
        followed(&end, "relay", "feed") - followed(&start, "relay", "feed"),
        head - head_at_start
    );
    // Three projections, each handed every event once.
    assert_eq!(
        followed(&end, "projections", "log"),
        followed(&start, "projections", "log"),
        "a projection read back events it was handed: {end:?}"
    );
    assert_eq!(
        followed(&end, "projections", "feed") - followed(&start, "projections", "feed"),
        3.0 * (head - head_at_start)
    );
    // Every event since went through the committer, in fewer appends than
    // ticks, and its time appending is counted.
    let delta = |name: &str| end[name] - start[name];
    assert_eq!(
        delta("provenant_log_appended_events_total"),
        head - head_at_start,
        "{end:?}"
    );
    let appends = delta("provenant_log_appends_total");
    assert!(
        appends >= 1.0 && appends <= ticks.len() as f64,
        "{appends} appends for {} ticks",
        ticks.len()
    );
    assert_eq!(end["provenant_log_append_failures_total"], 0.0);
    assert_eq!(
        delta("provenant_log_append_duration_seconds_count"),
        appends,
        "{end:?}"
    );
    assert!(delta("provenant_log_append_duration_seconds_sum") > 0.0);
    drop(engine);
    assert_each_tick_once(&db, &js, &nats, &ticks).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_nats_server_sends_the_relay_back_to_the_log_and_the_stream_still_equals_the_log()
{
    let db = TestLog::postgres().await;
    let server = PrivateNats::start();
    let nats = TestNats::on(server.url());
    let options = EngineOptions {
        args: feed_args(Some(1024)),
        ..EngineOptions::with_nats(&db.url, &nats)
    };
    let mut engine = EngineProcess::start(&options);
    assert_eq!(engine.put("/v1/worlds/z1", &tavern()).await.0, 200);
    let js = nats.jetstream().await;
    let mut ticks = publish_ticks(&js, &nats, &["z1"], 1, 10).await;
    wait_processed(&js, &nats, ticks.len()).await;
    let before = metrics_until(&engine, "the followers to catch up", caught_up).await;

    // NATS frozen: ticks still come over HTTP and are made durable, while
    // the relay's publishes wait for acknowledgments that do not come.
    server.pause();
    let mut post = async |from: u64, to: u64| {
        for n in from..=to {
            let t = tick("z1", "s2", n, &["a", "b"]);
            let (status, body) = engine.post("/v1/ticks", t.to_string().as_bytes()).await;
            assert_eq!(status, 200, "{body}");
            ticks.push(t);
        }
    };
    post(11, 20).await;
    // The relay gives up on the publishes in flight and drops what it was
    // handed; it cannot resume while the server is frozen.
    assert!(
        engine.wait_for_stderr("relay interrupted", Duration::from_secs(60)),
        "the relay never gave up on the frozen server: {}",
        engine.stderr()
    );
    // These are in the log only: no relay pass follows the feed now.
    post(21, 30).await;
    server.resume();
    let after = metrics_until(
        &engine,
        "the relay to catch up after NATS came back",
        caught_up,
    )
    .await;
    assert!(
        followed(&after, "relay", "log") > followed(&before, "relay", "log"),
        "the relay never went back to the log: {after:?}"
    );
    let status = engine.terminate();
    assert!(status.success(), "{status}: {}", engine.stderr());
    let events = assert_each_tick_once(&db, &js, &nats, &ticks).await;
    assert_eq!(events, all_events(&db.open().await).await);
}

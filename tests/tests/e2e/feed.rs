//! The feed: what a log appends reaches its tails in memory, and a tail
//! hands over between reading the log and following the feed without
//! skipping or repeating a position. Run against PostgreSQL and SQLite.

use std::time::Duration;

use provenant_events::{EventKind, NewEvent};
use provenant_log::{AppendBatch, EventLog, Tail, TailStats};
use provenant_tests::{TestLog, stream};
use serde_json::json;

conformance!(
    a_tail_that_keeps_up_reads_nothing_back,
    events_from_the_feed_are_the_events_the_log_holds,
    a_tail_that_falls_behind_the_feed_reads_the_log_then_follows_the_feed_again,
    a_tail_started_mid_log_catches_up_while_appends_go_on,
    appends_of_another_log_interleaved_with_this_one_are_all_followed,
);

const DEADLINE: Duration = Duration::from_secs(30);

fn batch(tag: &str, size: usize) -> AppendBatch {
    AppendBatch::new(
        (0..size)
            .map(|i| {
                NewEvent::new(
                    stream(&format!("feed-{tag}")),
                    EventKind::new("Fed").unwrap(),
                    json!({"tag": tag, "i": i}),
                )
            })
            .collect(),
    )
}

/// Takes events from `tail` until it has returned position `until`; their
/// positions, in the order returned.
async fn positions_until(tail: &mut Tail, until: u64) -> Vec<u64> {
    let mut seen = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        while seen.last().copied().unwrap_or(tail.position()) < until {
            seen.extend(tail.next_batch().await.unwrap().iter().map(|e| e.position));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the tail stopped at {:?} before {until}", seen.last()));
    seen
}

async fn a_tail_that_keeps_up_reads_nothing_back(t: TestLog) {
    let log = t.open().await;
    log.append(batch("before", 700)).await.unwrap();
    let mut tail = log.tail(0).await.unwrap();
    // Catching up: two reads (a full page of 512, then the rest).
    assert_eq!(
        positions_until(&mut tail, 700).await,
        (1..=700).collect::<Vec<_>>()
    );
    let caught_up = tail.stats();
    assert_eq!(caught_up.from_log, 700);
    assert_eq!(caught_up.from_feed, 0);
    let mut head = 700;
    for size in [1, 5, 300, 2, 1200, 7] {
        log.append(batch("live", size)).await.unwrap();
        head += size as u64;
        let seen = positions_until(&mut tail, head).await;
        assert_eq!(seen, (head - size as u64 + 1..=head).collect::<Vec<_>>());
    }
    assert_eq!(
        tail.stats(),
        TailStats {
            from_feed: head - 700,
            ..caught_up
        },
        "following its own log's appends, the tail read the database"
    );
}

async fn events_from_the_feed_are_the_events_the_log_holds(t: TestLog) {
    let log = t.open().await;
    let mut events = log.tail(0).await.unwrap();
    let mut json = log.tail(0).await.unwrap();
    // The tails have read the empty log: what follows comes from the feed.
    log.append(batch("warm", 1)).await.unwrap();
    positions_until(&mut events, 1).await;
    assert_eq!(json.next_json_batch().await.unwrap().len(), 1);
    let mut big = batch("fed", 600);
    big.events[3].plugin_id = Some(provenant_events::PluginId::new("game-stealth").unwrap());
    big.events[3].provenance.plugin_id = big.events[3].plugin_id.clone();
    big.events[4].world_id = Some(provenant_events::WorldId::new("w1").unwrap());
    log.append(big).await.unwrap();
    log.append(batch("fed", 3)).await.unwrap();
    let mut fed = Vec::new();
    while fed.len() < 603 {
        fed.extend(events.next_batch().await.unwrap());
    }
    let mut fed_json = Vec::new();
    while fed_json.len() < 603 {
        fed_json.extend(json.next_json_batch().await.unwrap());
    }
    // The first event of each came from its first read of the log.
    for tail in [&events, &json] {
        assert_eq!(tail.stats().from_feed, 603);
        assert_eq!(tail.stats().from_log, 1);
    }
    let stored = log.read_forward(1, 1000).await.unwrap();
    assert_eq!(stored.len(), 603);
    for (fed, stored) in fed.iter().zip(&stored) {
        assert_eq!(**fed, *stored);
        assert_eq!(fed.to_json(), stored.to_json());
    }
    assert_eq!(fed_json, log.read_forward_json(1, 1000).await.unwrap());
}

async fn a_tail_that_falls_behind_the_feed_reads_the_log_then_follows_the_feed_again(t: TestLog) {
    // A feed of two chunks: the third append while the tail waits is more
    // than it holds.
    let log = t.open_with_feed(2).await;
    let mut tail = log.tail(0).await.unwrap();
    log.append(batch("a", 3)).await.unwrap();
    assert_eq!(positions_until(&mut tail, 3).await, vec![1, 2, 3]);
    let start = tail.stats();
    for size in [4, 1, 6, 2, 9] {
        log.append(batch("b", size)).await.unwrap();
    }
    assert_eq!(
        positions_until(&mut tail, 25).await,
        (4..=25).collect::<Vec<_>>()
    );
    let lagged = tail.stats();
    assert!(
        lagged.from_log > start.from_log,
        "the tail did not read what the feed no longer held: {lagged:?}"
    );
    assert_eq!(
        lagged.from_log + lagged.from_feed,
        25,
        "each position is taken once: {lagged:?}"
    );
    // Caught up, it follows the feed again.
    log.append(batch("c", 5)).await.unwrap();
    assert_eq!(
        positions_until(&mut tail, 30).await,
        (26..=30).collect::<Vec<_>>()
    );
    assert_eq!(tail.stats().from_log, lagged.from_log);
    assert_eq!(tail.stats().from_feed, lagged.from_feed + 5);
}

async fn a_tail_started_mid_log_catches_up_while_appends_go_on(t: TestLog) {
    let log = t.open_with_feed(4).await;
    for _ in 0..6 {
        log.append(batch("old", 500)).await.unwrap();
    }
    let mut tail = log.tail(1234).await.unwrap();
    // Appends go on, through the same log, while the tail catches up: some
    // batches arrive in the feed before the tail has read up to them.
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                log.append(batch("new", 1 + i % 7)).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let total = 3000 + (0..40).map(|i| 1 + i % 7).sum::<u64>();
    let seen = positions_until(&mut tail, total).await;
    writer.await.unwrap();
    assert_eq!(seen, (1235..=total).collect::<Vec<_>>());
    let stats = tail.stats();
    assert_eq!(stats.from_log + stats.from_feed, total - 1234, "{stats:?}");
}

async fn appends_of_another_log_interleaved_with_this_one_are_all_followed(t: TestLog) {
    let ours = t.open().await;
    let theirs: EventLog = t.open().await;
    let mut tail = ours.tail(0).await.unwrap();
    let mut head = 0;
    for round in 0..10 {
        let (log, size) = if round % 3 == 1 {
            (&theirs, 4)
        } else {
            (&ours, 2 + round)
        };
        log.append(batch("mixed", size)).await.unwrap();
        head += size as u64;
        // Their appends arrive as a gap before our next batch, or by
        // notification (PostgreSQL), or by the fallback read (SQLite).
        assert_eq!(
            positions_until(&mut tail, head).await,
            (head - size as u64 + 1..=head).collect::<Vec<_>>()
        );
    }
    let stats = tail.stats();
    assert_eq!(stats.from_log + stats.from_feed, head, "{stats:?}");
    assert!(stats.from_feed > 0, "{stats:?}");
}

//! `provenant demo`, the real binary, on PostgreSQL and NATS JetStream: the
//! whole story through the engine service, the ticks published to NATS, and
//! the log and the events stream agreeing afterwards. (The embedded default
//! is tested in `cli.rs`.)

use std::collections::BTreeMap;
use std::process::Command;

use provenant_events::{Event, Head};
use provenant_tests::TestLog;

use provenant_tests::TestNats;

#[tokio::test(flavor = "multi_thread")]
async fn demo_runs_through_postgres_and_nats_and_the_stream_holds_the_log() {
    let db = TestLog::postgres().await;
    let nats = TestNats::new();
    let out = Command::new(provenant_tests::binary())
        .args(["demo", "--ticks", "40"])
        .env("DATABASE_URL", &db.url)
        .env("NATS_URL", &nats.url)
        .env("PROVENANT_NATS_PREFIX", &nats.prefix)
        .output()
        .expect("run provenant demo");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let errors = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}{errors}");
    assert!(text.contains("log: PostgreSQL at postgres://"), "{text}");
    assert!(
        text.contains(&format!(
            "ticks: published to NATS JetStream at {} on {}.ticks.<world>",
            nats.url, nats.prefix
        )),
        "{text}"
    );
    // 40 ticks for each of the tavern's two sessions; the cellar's come
    // every 100th.
    let sent = 80;
    assert!(text.contains(&format!("{sent} ticks sent")), "{text}");
    assert!(text.contains("answered duplicate: true"), "{text}");

    // The per-plugin table: a header and a row for each plugin.
    let header = text
        .lines()
        .find(|l| l.trim_start().starts_with("plugin "))
        .unwrap_or_else(|| panic!("no table header:\n{text}"));
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "plugin",
            "evaluations",
            "effects",
            "handled",
            "failures",
            "panics",
            "timeouts",
            "denials",
            "sandboxed"
        ]
    );
    let rows: BTreeMap<&str, Vec<u64>> = text
        .lines()
        .filter_map(|l| {
            let mut cells = l.split_whitespace();
            let plugin = cells.next()?;
            let counts: Vec<u64> = cells.map(|c| c.parse().ok()).collect::<Option<_>>()?;
            (counts.len() == 8).then_some((plugin, counts))
        })
        .collect();
    for plugin in [
        "example-flaky",
        "example-nosy",
        "game-romance",
        "game-stealth",
        "wasm-gossip",
        "wasm-innkeeper",
        "wasm-runaway",
    ] {
        assert!(rows.contains_key(plugin), "{plugin} missing:\n{text}");
    }
    // Every call is recorded once: as what it did, or, when the machine is
    // so loaded that it overran the demo's 50 ms deadline, as a timeout.
    let timeouts = |plugin: &str| rows[plugin][5];
    let each_call_recorded = |plugin: &str, column: usize, calls: u64| {
        let done = rows[plugin][column];
        assert!(
            done <= calls && done + timeouts(plugin) >= calls,
            "{plugin}: {done} of {calls} calls, {} timeouts:\n{text}",
            timeouts(plugin)
        );
    };
    // The example WebAssembly plugins: the innkeeper's condition for each
    // NPC of each tick, and every drink it serves spreads a rumor.
    each_call_recorded("wasm-innkeeper", 0, 3 * sent);
    assert!(rows["wasm-innkeeper"][1] > 0, "{text}");
    each_call_recorded("wasm-gossip", 1, rows["wasm-innkeeper"][1]);
    // Stealth and romance evaluate a condition for each of 3 NPCs per tick.
    each_call_recorded("game-stealth", 0, 3 * sent);
    each_call_recorded("game-romance", 0, 3 * sent);

    // The log verifies, up to the head the demo printed.
    let printed: Head = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("provenant audit verify --expect-head ")
        })
        .unwrap_or_else(|| panic!("no head printed:\n{text}"))
        .parse()
        .expect("a POSITION:HASH head");
    let log = db.open().await;
    assert_eq!(log.head().await.unwrap(), printed);
    let report = log
        .verify(
            &provenant_log::VerifyConfig {
                expect_head: Some(printed),
                chunk: None,
            },
            &mut |_| {},
        )
        .await
        .expect("verify");
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.count, printed.position);

    // Exactly one TickProcessed per tick sent, the tick sent twice included
    // once; the malformed tick recorded once, from NATS.
    let mut events: Vec<Event> = Vec::new();
    loop {
        let after = events.last().map_or(0, |e| e.position);
        let page = log.read_forward(after, 5000).await.expect("read the log");
        if page.is_empty() {
            break;
        }
        events.extend(page);
    }
    assert_eq!(events.len() as u64, printed.position);
    let mut processed: BTreeMap<String, usize> = BTreeMap::new();
    for e in events.iter().filter(|e| e.kind.as_str() == "TickProcessed") {
        *processed
            .entry(e.payload["tick_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(processed.len() as u64, sent, "distinct ticks processed");
    assert!(processed.values().all(|&n| n == 1), "{processed:?}");
    let rejected: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind.as_str() == "TickRejected")
        .collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        rejected[0].payload["source"],
        format!("nats:{}.ticks.tavern", nats.prefix)
    );

    // The events stream holds the whole log, once.
    let js = nats.jetstream().await;
    let mut stream = js
        .get_stream(nats.events_stream())
        .await
        .expect("the events stream");
    let info = stream.info().await.expect("stream info");
    assert_eq!(
        info.state.messages, printed.position,
        "messages in the stream"
    );
    assert!(
        text.contains(&format!(
            "stream {}: {} messages",
            nats.events_stream(),
            printed.position
        )),
        "{text}"
    );

    // Every tick acknowledged or terminated; nothing waits for redelivery.
    nats.assert_all_ticks_answered(&js).await;

    // Every plugin call the engine recorded replays the same with this
    // build (overruns aside: nothing of them was recorded).
    let out = Command::new(provenant_tests::binary())
        .args(["audit", "replay", "--json"])
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("run provenant audit replay");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    provenant_tests::replay::assert_all_replayed_and_matched(&report, &events);
}

//! Three `provenant serve` processes on one PostgreSQL and one NATS (a
//! single current nats-server, then a cluster of three with replicated
//! streams, one of which is killed), under steady load from `provenant
//! sim`: one engine is killed with SIGKILL, another stopped with SIGSTOP
//! past its lease and let go on, the third has its PostgreSQL connections
//! terminated. Afterwards the log is dense and verifies, every tick sent is
//! in it exactly once and in publish order per world, the stream equals the
//! log, the projections equal a rebuild, and the engine that was stopped
//! appended nothing for its partitions once their new holders had.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use provenant_events::{Event, Partitions, WorldId};
use provenant_tests::{EngineOptions, EngineProcess, PrivateNats, TestLog, TestNats, all_events};
use serde_json::Value;
use tokio::time::Instant;

use provenant_tests::cli::{provenant_on, provenant_on_env, stderr, stdout};

use super::projections::{PROJECTIONS, all_rows};
use super::service::assert_stream_matches_log;

const PARTITIONS: u32 = 6;
const LEASE_SECONDS: f64 = 2.0;
const NAMES: [&str; 3] = ["eng-a", "eng-b", "eng-c"];

#[tokio::test(flavor = "multi_thread")]
async fn three_engines_on_one_nats_server_keep_every_tick_once_and_in_order_through_failures() {
    let server = PrivateNats::start_current();
    run(&server.url(), None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_engines_on_a_nats_cluster_losing_a_server_keep_every_tick_once_and_in_order() {
    let mut servers = PrivateNats::start_cluster();
    let url = servers[0].url();
    PrivateNats::wait_for_jetstream_cluster(&url).await;
    run(&url, Some(&mut servers)).await;
}

/// Polls `GET /admin/cluster` on `engine` until `done` holds (up to two
/// minutes: with a nats-server killed, JetStream's requests time out and are
/// retried while its cluster recovers, and a takeover waits for them).
async fn cluster_until(engine: &EngineProcess, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = engine.get("/admin/cluster").await;
        if status == 200 && done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The live holder of each partition (None: free).
fn holders(status: &Value) -> Vec<Option<String>> {
    status["partition_leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let lease = &p["lease"];
            (!lease.is_null() && lease["expired"] == false)
                .then(|| lease["owner"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn held_by(status: &Value, owner: &str) -> BTreeSet<u32> {
    holders(status)
        .iter()
        .enumerate()
        .filter(|(_, h)| h.as_deref() == Some(owner))
        .map(|(k, _)| k as u32)
        .collect()
}

/// The PostgreSQL application name of engine `name` on `db`'s log: its own
/// (tests run in parallel, each terminating only its engine's connections).
fn application_name(db: &TestLog, name: &str) -> String {
    let database = db.url.rsplit('/').next().unwrap_or_default();
    format!("{name}-{database}")
}

fn options(db: &TestLog, nats: &TestNats, name: &str, replicas: bool) -> EngineOptions {
    let mut args: Vec<String> = [
        "--partitions",
        &PARTITIONS.to_string(),
        "--lease-seconds",
        &LEASE_SECONDS.to_string(),
    ]
    .map(String::from)
    .to_vec();
    if replicas {
        args.extend(["--nats-replicas".into(), "3".into()]);
    }
    EngineOptions {
        // Its PostgreSQL connections can be told apart.
        database_url: format!("{}?application_name={}", db.url, application_name(db, name)),
        instance: Some(name.into()),
        args,
        ..EngineOptions::with_nats(&db.url, nats)
    }
}

async fn run(url: &str, cluster: Option<&mut [PrivateNats; 3]>) {
    let db = TestLog::postgres().await;
    let nats = TestNats::on(url.to_owned());
    let replicas = cluster.is_some();
    let mut engines: Vec<EngineProcess> = Vec::new();
    for name in NAMES {
        engines.push(EngineProcess::start(&options(&db, &nats, name, replicas)));
    }
    // The partitions spread: two each.
    cluster_until(&engines[2], "the partitions to spread", |s| {
        NAMES.iter().all(|n| held_by(s, n).len() == 2)
    })
    .await;
    // `provenant cluster status` says the same as the engines.
    let prefix = [("PROVENANT_NATS_PREFIX".to_owned(), nats.prefix.clone())];
    let out = provenant_on_env(&db.url, &["cluster", "status", "--json"], &prefix);
    succeeded(&out);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["partitions"], PARTITIONS, "{status}");
    assert!(
        NAMES.iter().all(|n| held_by(&status, n).len() == 2),
        "{status}"
    );
    let live: BTreeSet<&str> = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["expired"] == false)
        .map(|i| i["owner"].as_str().unwrap())
        .collect();
    assert_eq!(live, NAMES.into_iter().collect());
    let text = provenant_on_env(&db.url, &["cluster", "status"], &prefix);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("partitions: 6") && text.contains("instances: 3 live"),
        "{text}"
    );

    let sim = tokio::process::Command::new(provenant_tests::binary())
        .args([
            "sim",
            "--worlds",
            "12",
            "--sessions",
            "1",
            "--npcs",
            "3",
            "--rate",
            "60",
            "--duration",
            "12",
            "--drain",
            "90",
            "--json",
        ])
        .env(
            "PROVENANT_ENGINE_URL",
            format!("http://{}", engines[2].addr),
        )
        .env("NATS_URL", url)
        .env("PROVENANT_NATS_PREFIX", &nats.prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start provenant sim");
    let log = db.open().await;
    let head_above = |n: u64| {
        let log = &log;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while log.head().await.unwrap().position < n {
                assert!(Instant::now() < deadline, "the log does not grow");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let start = log.head().await.unwrap().position;
    head_above(start + 300).await;

    // 1. SIGKILL eng-a: its partitions go to the others once its leases
    //    expire.
    let before = cluster_until(&engines[1], "a status", |_| true).await;
    let a_partitions = held_by(&before, "eng-a");
    engines[0].kill();
    let after_kill = cluster_until(&engines[1], "eng-a's partitions taken over", |s| {
        a_partitions.iter().all(|k| {
            holders(s)[*k as usize]
                .as_deref()
                .is_some_and(|h| h != "eng-a")
        })
    })
    .await;
    println!(
        "eng-a held {a_partitions:?}; after it was killed: {:?}",
        holders(&after_kill)
    );

    // In the cluster run, a nats-server that leads neither the ticks nor
    // the clients' connection dies.
    if let Some(servers) = cluster {
        let js = nats.jetstream().await;
        let mut ticks = js.get_stream(nats.ticks_stream()).await.unwrap();
        let leader = ticks
            .info()
            .await
            .unwrap()
            .cluster
            .as_ref()
            .and_then(|c| c.leader.clone());
        let victim = if leader.as_deref() == Some("n1") {
            2
        } else {
            1
        };
        servers[victim].kill();
        println!("killed nats-server n{victim} (ticks leader {leader:?})");
    }

    // 2. SIGSTOP eng-b past its lease: its partitions are taken over; then
    //    SIGCONT, and it must find itself fenced out.
    let before = cluster_until(&engines[2], "a status", |_| true).await;
    let b_partitions = held_by(&before, "eng-b");
    assert!(!b_partitions.is_empty(), "{before}");
    let paused_at = log.head().await.unwrap().position;
    engines[1].pause();
    cluster_until(&engines[2], "eng-b's partitions taken over", |s| {
        b_partitions.iter().all(|k| {
            holders(s)[*k as usize]
                .as_deref()
                .is_some_and(|h| h == "eng-c")
        })
    })
    .await;
    // Its successor works them for a while before it wakes up.
    let taken_at = log.head().await.unwrap().position;
    head_above(taken_at + 100).await;
    engines[1].resume();
    assert!(
        engines[1].wait_for_stderr("taken over", Duration::from_secs(30)),
        "{}",
        engines[1].stderr()
    );
    let learned_at = log.head().await.unwrap().position;
    println!("eng-b held {b_partitions:?}; paused at {paused_at}, learned at {learned_at}");

    // 3. eng-c's PostgreSQL connections are terminated.
    let terminated = provenant_tests::log::on_postgres_server(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{}'",
        application_name(&db, "eng-c")
    ))
    .await;
    println!("terminated eng-c's connections: {terminated}");

    let output = sim.wait_with_output().await.expect("sim ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}: {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("sim's JSON report");
    let sent = report["sent"].as_u64().unwrap();
    assert!(sent > 300, "{report}");
    // Every tick stored is processed, by some engine.
    let deadline = Instant::now() + Duration::from_secs(90);
    let events = loop {
        let events = all_events(&log).await;
        let processed = events
            .iter()
            .filter(|e| e.kind.as_str() == "TickProcessed")
            .count();
        if processed as u64 >= sent {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "{processed} of {sent} ticks processed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for e in &mut engines[1..] {
        let status = e.terminate();
        assert!(status.success(), "{status}: {}", e.stderr());
    }

    // Positions dense from 1; the chain verifies.
    let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=events.len() as u64).collect::<Vec<_>>());
    succeeded(&provenant_on(&db.url, &["audit", "verify"]));

    // Each tick once, and per world in publish order (sim numbers each
    // world's ticks from 1).
    let mut per_world: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.kind.as_str() == "TickProcessed") {
        per_world
            .entry(e.world_id.as_ref().unwrap().to_string())
            .or_default()
            .push(e.payload["tick"].as_u64().unwrap());
    }
    let mut total = 0;
    for (world, ticks) in &per_world {
        total += ticks.len() as u64;
        assert_eq!(
            *ticks,
            (1..=ticks.len() as u64).collect::<Vec<_>>(),
            "{world}"
        );
    }
    assert_eq!(total, sent, "{report}");

    // The events stream holds the log; the projections equal a rebuild.
    let js = nats.jetstream().await;
    assert_stream_matches_log(&js, &nats, &events).await;
    wait_projections(&log, events.len() as u64).await;
    let live = all_rows(&log).await;
    succeeded(&provenant_on(&db.url, &["projections", "rebuild"]));
    assert_eq!(all_rows(&log).await, live, "rebuild equals live");
    assert_eq!(live.len(), PROJECTIONS.len());

    // Fenced: once eng-b's partitions had a new holder appending, nothing
    // of eng-b landed for them until it learned it had lost them.
    let partitions = Partitions::new(PARTITIONS).unwrap();
    let partition = |e: &Event| e.world_id.as_ref().map(|w: &WorldId| partitions.of(w));
    let by = |e: &Event, name: &str| e.provenance.engine_instance.as_deref() == Some(name);
    for k in &b_partitions {
        let Some(first_new) = events
            .iter()
            .find(|e| e.position > paused_at && partition(e) == Some(*k) && !by(e, "eng-b"))
        else {
            continue;
        };
        let stale: Vec<u64> = events
            .iter()
            .filter(|e| {
                e.position > first_new.position
                    && e.position <= learned_at
                    && partition(e) == Some(*k)
                    && by(e, "eng-b")
            })
            .map(|e| e.position)
            .collect();
        assert!(
            stale.is_empty(),
            "partition {k}: eng-b appended at {stale:?} after {}",
            first_new.position
        );
    }

    // Failover: the last event of the engine that died (or stopped) to the
    // first of its successor, per partition.
    // Who worked each partition, in turn.
    for k in 0..PARTITIONS {
        let mut runs: Vec<(String, u64, u64)> = Vec::new();
        for e in events.iter().filter(|e| partition(e) == Some(k)) {
            let who = e
                .provenance
                .engine_instance
                .as_deref()
                .unwrap_or("?")
                .to_owned();
            match runs.last_mut() {
                Some((w, _, last)) if *w == who => *last = e.position,
                _ => runs.push((who, e.position, e.position)),
            }
        }
        println!("partition {k} worked by (engine, first, last position): {runs:?}");
    }
    let mut gaps: Vec<f64> = Vec::new();
    let end = events.len() as u64;
    for (who, owned, from, to) in [
        ("eng-a", &a_partitions, start, end),
        ("eng-b", &b_partitions, start, learned_at),
    ] {
        for k in owned {
            let in_k: Vec<&Event> = events
                .iter()
                .filter(|e| e.position > from && e.position <= to && partition(e) == Some(*k))
                .collect();
            let Some(last) = in_k.iter().rposition(|e| by(e, who)) else {
                continue;
            };
            let Some(next) = in_k[last..].iter().find(|e| !by(e, who)) else {
                continue;
            };
            let gap = next.recorded_at - in_k[last].recorded_at;
            println!(
                "partition {k}: {who} last at {}, {} first at {}: {} ms",
                in_k[last].position,
                next.provenance.engine_instance.as_deref().unwrap_or("?"),
                next.position,
                gap.num_milliseconds()
            );
            gaps.push(gap.num_milliseconds() as f64 / 1e3);
        }
    }
    assert!(!gaps.is_empty(), "no partition changed hands");
    gaps.sort_by(f64::total_cmp);
    let at = |q: f64| gaps[((gaps.len() - 1) as f64 * q).round() as usize];
    println!(
        "failover (lease {LEASE_SECONDS} s): {} partitions, p50 {:.2} s, p99 {:.2} s, max {:.2} s; {} ticks",
        gaps.len(),
        at(0.5),
        at(0.99),
        at(1.0),
        sent
    );
}

fn succeeded(out: &std::process::Output) {
    assert!(out.status.success(), "{}{}", stdout(out), stderr(out));
}

/// Waits until every projection has committed up to `head`.
async fn wait_projections(log: &provenant_log::EventLog, head: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let statuses = log.projection_statuses().await.unwrap();
        if statuses.len() == PROJECTIONS.len() && statuses.iter().all(|s| s.position >= head) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "projections behind: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

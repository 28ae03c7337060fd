//! Worlds in memory follow the worlds in play: a world's state is loaded
//! from its snapshot and its events after it, equal to the state folded
//! from position 0 wherever the snapshot was cut, and an idle world leaves
//! memory and comes back with the same state. Through the real binary.

use std::collections::BTreeMap;
use std::time::Duration;

use provenant_engine::service::world_state;
use provenant_events::{Event, WorldId};
use provenant_host::state::GameState;
use provenant_tests::{
    Backend, EngineOptions, EngineProcess, TestLog, all_events, http_text, tavern, tick,
};
use serde_json::Value;

/// Generous deadlines: a plugin call never times out here, so two engines
/// given the same ticks write the same state.
fn options(db: &TestLog, args: &[&str]) -> EngineOptions {
    EngineOptions {
        database_url: db.url.clone(),
        args: ["--plugin-deadline-ms", "5000"]
            .iter()
            .chain(args)
            .map(|a| a.to_string())
            .collect(),
        ..Default::default()
    }
}

/// Configures `worlds` and sends `n` ticks over HTTP, round-robin over the
/// worlds and two sessions, with the same tick ids for every engine given
/// the same `seed` list.
async fn play(engine: &EngineProcess, worlds: &[&str], ticks: &[Value]) {
    for w in worlds {
        assert_eq!(
            engine.put(&format!("/v1/worlds/{w}"), &tavern()).await.0,
            200
        );
    }
    for t in ticks {
        let (status, body) = engine.post("/v1/ticks", t.to_string().as_bytes()).await;
        assert_eq!(status, 200, "{body}");
    }
}

fn ticks(worlds: &[&str], n: u64) -> Vec<Value> {
    (1..=n)
        .map(|i| {
            let world = worlds[(i as usize) % worlds.len()];
            let session = if i % 3 == 0 { "s2" } else { "s1" };
            tick(world, session, i, &["npc-1", "npc-2"])
        })
        .collect()
}

/// The world's state folded from position 0, up to `until`.
fn fold(events: &[Event], world: &WorldId, until: u64) -> GameState {
    let mut state = GameState::default();
    for e in events
        .iter()
        .filter(|e| e.position <= until && e.world_id.as_ref() == Some(world))
    {
        state.apply(e);
    }
    state
}

async fn clear_snapshots(db: &TestLog) {
    let table = match db.backend {
        Backend::Postgres => "provenant.snapshots",
        Backend::Sqlite => "snapshots",
    };
    db.sql(&format!("DELETE FROM {table}")).await.unwrap();
}

async fn loaded_at_every_cut_point_equals_the_fold(backend: Backend) {
    let db = TestLog::new(backend).await;
    let worlds = ["cut-a", "cut-b"];
    let mut engine = EngineProcess::start(&options(&db, &[]));
    play(&engine, &worlds, &ticks(&worlds, 24)).await;
    assert!(engine.terminate().success(), "{}", engine.stderr());

    let log = db.open().await;
    let events = all_events(&log).await;
    let head = events.len() as u64;
    // The snapshots the engine saved as it stopped (the cut points below
    // replace them).
    let mut saved = Vec::new();
    for world in worlds {
        let world = WorldId::new(world).unwrap();
        saved.push(
            log.load_snapshot(&world_state::snapshot_name(&world))
                .await
                .unwrap()
                .expect("the engine saved the world as it stopped"),
        );
    }
    for (world, saved) in worlds.into_iter().zip(saved) {
        let world = WorldId::new(world).unwrap();
        let last = events
            .iter()
            .rfind(|e| e.world_id.as_ref() == Some(&world))
            .unwrap()
            .position;
        let full = fold(&events, &world, head);
        assert!(
            !full.sessions.is_empty(),
            "the plugins wrote no session state"
        );
        assert_eq!(saved.position, last);
        clear_snapshots(&db).await;
        log.save_snapshot(
            &world_state::snapshot_name(&world),
            saved.position,
            &saved.state,
        )
        .await
        .unwrap();
        assert_eq!(
            world_state::load(&log, &world).await.unwrap(),
            (full.clone(), last)
        );

        for cut in [0, 1, head / 3, head / 2, last - 1, last, head] {
            clear_snapshots(&db).await;
            if cut > 0 {
                world_state::save(&log, &world, cut, &fold(&events, &world, cut))
                    .await
                    .unwrap();
            }
            let (state, covered) = world_state::load(&log, &world).await.unwrap();
            assert_eq!(state, full, "loaded from a snapshot cut at {cut}");
            assert_eq!(covered, last.max(cut), "cut at {cut}");
        }
        // A snapshot that does not read, or of another format: ignored.
        for bad in ["not json", r#"{"format": 999, "state": {}}"#] {
            clear_snapshots(&db).await;
            log.save_snapshot(&world_state::snapshot_name(&world), head, bad)
                .await
                .unwrap();
            let (state, _) = world_state::load(&log, &world).await.unwrap();
            assert_eq!(state, full, "with the snapshot {bad:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_world_loaded_from_a_snapshot_cut_anywhere_equals_the_fold_from_zero_on_postgres() {
    loaded_at_every_cut_point_equals_the_fold(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_world_loaded_from_a_snapshot_cut_anywhere_equals_the_fold_from_zero_on_sqlite() {
    loaded_at_every_cut_point_equals_the_fold(Backend::Sqlite).await;
}

async fn worlds_loaded(engine: &EngineProcess) -> f64 {
    let (status, text) = http_text(engine.addr, "GET", "/metrics", None, None).await;
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("provenant_worlds_loaded "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no provenant_worlds_loaded in {text}"))
}

/// What each world's state-changing events said, in order: the kind and the
/// payload.
fn state_changes(events: &[Event]) -> BTreeMap<String, Vec<(String, Value)>> {
    let mut out: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    for e in events.iter().filter(|e| {
        matches!(
            e.kind.as_str(),
            "SessionFlagSet" | "RelationshipUpdated" | "PluginStorageSet" | "NpcStateSet"
        )
    }) {
        let world = e.world_id.as_ref().map_or("", |w| w.as_str()).to_owned();
        out.entry(world)
            .or_default()
            .push((e.kind.to_string(), e.payload.value().clone()));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_world_leaves_memory_and_comes_back_with_the_same_state() {
    let worlds = ["idle-a", "idle-b"];
    let sent = ticks(&worlds, 16);

    // The same ticks to an engine that keeps every world, ...
    let kept_db = TestLog::postgres().await;
    let mut kept = EngineProcess::start(&options(&kept_db, &[]));
    play(&kept, &worlds, &sent).await;
    assert_eq!(worlds_loaded(&kept).await, 2.0);
    assert!(kept.terminate().success(), "{}", kept.stderr());

    // ... and to one that unloads a world after 50 ms without ticks, and is
    // made to, before every tick.
    let db = TestLog::postgres().await;
    let mut engine = EngineProcess::start(&options(&db, &["--world-idle-seconds", "0.05"]));
    for w in worlds {
        assert_eq!(
            engine.put(&format!("/v1/worlds/{w}"), &tavern()).await.0,
            200
        );
    }
    let mut unloaded = 0;
    for t in &sent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while worlds_loaded(&engine).await > 0.0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the idle worlds stayed in memory"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        unloaded += 1;
        let (status, body) = engine.post("/v1/ticks", t.to_string().as_bytes()).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(unloaded, sent.len());
    assert!(engine.terminate().success(), "{}", engine.stderr());

    let kept_events = all_events(&kept_db.open().await).await;
    let events = all_events(&db.open().await).await;
    let changes = state_changes(&events);
    assert!(changes.values().all(|c| !c.is_empty()), "{changes:?}");
    assert_eq!(changes, state_changes(&kept_events));
    let log = db.open().await;
    let kept_log = kept_db.open().await;
    for w in worlds {
        let world = WorldId::new(w).unwrap();
        assert_eq!(
            world_state::load(&log, &world).await.unwrap().0,
            world_state::load(&kept_log, &world).await.unwrap().0,
            "{w}"
        );
    }
}

/// A configuration written behind the running engine's back (`provenant
/// world set`, as another engine's `PUT` would) is what the engine answers
/// and uses from the next tick: the append expecting the world's old
/// version is refused, the world is read again, the tick is done again.
#[tokio::test(flavor = "multi_thread")]
async fn a_configuration_written_behind_the_engine_is_seen_and_used_from_the_next_tick() {
    let db = TestLog::postgres().await;
    let engine = EngineProcess::start(&options(&db, &[]));
    assert_eq!(engine.put("/v1/worlds/w1", &tavern()).await.0, 200);
    let first = tick("w1", "s1", 1, &["a", "b"]);
    let (status, answer) = engine.post("/v1/ticks", first.to_string().as_bytes()).await;
    assert_eq!(status, 200, "{answer}");

    let mut night = tavern();
    night["name"] = "The Tavern at night".into();
    night["meta"]["behavior"]["enabledPlugins"] = serde_json::json!(["game-romance"]);
    let dir = tempfile::tempdir().unwrap();
    let world_set = |config: &Value| {
        let file = dir.path().join("world.json");
        std::fs::write(&file, config.to_string()).unwrap();
        let out = provenant_tests::cli::provenant_on(
            &db.url,
            &["world", "set", "w1", file.to_str().unwrap()],
        );
        assert!(
            out.status.success(),
            "{}",
            provenant_tests::cli::stderr(&out)
        );
    };
    world_set(&night);

    // The next tick: its append expected the old version, is refused, and
    // is done again on the world read again (the answer is still 200).
    let second = tick("w1", "s1", 2, &["a", "b"]);
    let (status, answer) = engine
        .post("/v1/ticks", second.to_string().as_bytes())
        .await;
    assert_eq!(status, 200, "{answer}");

    // Another one behind its back, then a question: it reads the world again.
    night["name"] = "The Tavern at dawn".into();
    world_set(&night);
    let (status, described) = engine.get("/v1/worlds/w1").await;
    assert_eq!(status, 200, "{described}");
    assert_eq!(
        described["config"]["name"], "The Tavern at dawn",
        "{described}"
    );
    let log = db.open().await;
    let events = all_events(&log).await;
    let of_tick = |t: &Value| -> Vec<&Event> {
        let id = t["tick_id"].as_str().unwrap();
        events
            .iter()
            .filter(|e| e.provenance.tick_id.is_some_and(|x| x.to_string() == id))
            .collect()
    };
    let stealth = |es: &[&Event]| {
        es.iter()
            .filter(|e| {
                e.plugin_id
                    .as_ref()
                    .is_some_and(|p| p.as_str() == "game-stealth")
            })
            .count()
    };
    assert!(
        stealth(&of_tick(&first)) > 0,
        "the first tick ran game-stealth"
    );
    assert_eq!(stealth(&of_tick(&second)), 0, "the second tick did not");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind.as_str() == "TickProcessed")
            .count(),
        2
    );
}

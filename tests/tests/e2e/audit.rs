//! `provenant audit replay` and `provenant audit trail` on logs written by
//! the real engine (the demo), through the real binary, and replay with a
//! changed plugin through the library.

use std::collections::BTreeSet;
use std::sync::Arc;

use provenant_engine::commands::audit::replay::{ReplayConfig, ReplayReport, replay};
use provenant_events::kinds;
use provenant_host::registry::{PluginError, RegisterError, Registrar};
use provenant_host::{Plugin, manifest::Manifest};
use provenant_log::EventLog;
use provenant_plugins as plugins;
use provenant_tests::{Backend, all_events};
use serde_json::{Value, json};

use provenant_tests::cli::{demo_log, demo_log_of, json, provenant_on, stderr, stdout};
use provenant_tests::replay::{assert_all_replayed_and_matched, replay_json};

#[tokio::test]
async fn replay_matches_every_call_of_a_demo_run_and_appends_nothing() {
    let t = demo_log_of(Backend::Sqlite, 120).await;
    let log = t.open().await;
    let before = log.head().await.unwrap();
    let events = all_events(&log).await;

    let report = replay_json(&t.url, &[], 0);
    assert_all_replayed_and_matched(&report, &events);
    assert_eq!(report["from"], 1);
    assert_eq!(report["to"], before.position);
    // Conditions, effects, handlers, failures (example-flaky; its rarer
    // panics and overruns are replayed or skipped alike when they occur),
    // and denials within a call (example-nosy).
    for kind in [
        "ConditionEvaluated",
        "EffectApplied",
        "EventHandled",
        "PluginCallFailed",
        "PermissionDenied",
    ] {
        assert!(
            events.iter().any(|e| e.kind.as_str() == kind),
            "the demo recorded no {kind}"
        );
    }

    let out = provenant_on(&t.url, &["audit", "replay"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "all {} replayed calls matched what was recorded",
            report["calls"]["replayed"]
        )),
        "{text}"
    );
    assert_eq!(log.head().await.unwrap(), before, "replay appended");
}

/// game-romance as it ships, but with `affinity_boost` adding half a point
/// more than its `amount`: a build whose effect changed.
struct ChangedRomance;

impl Plugin for ChangedRomance {
    fn manifest(&self) -> Manifest {
        plugins::GameRomance.manifest()
    }

    fn register(&self, r: &mut Registrar<'_>) -> Result<(), RegisterError> {
        fn affinity(ctx: &mut provenant_host::context::Ctx, npc: &str) -> Result<f64, PluginError> {
            Ok(ctx
                .get_relationship(npc)?
                .and_then(|r| r.get("affinity").and_then(Value::as_f64))
                .unwrap_or(0.0))
        }
        fn npc(ctx: &provenant_host::context::Ctx) -> Result<String, PluginError> {
            ctx.npc()
                .map(|n| n.npc_id.clone())
                .ok_or_else(|| PluginError::Failed("no NPC in context".into()))
        }
        r.condition(
            "is_attracted",
            "the relationship's affinity is at or above `threshold`",
            &["npc_id"],
            |ctx, params| {
                let npc = npc(ctx)?;
                let affinity = affinity(ctx, &npc)?;
                Ok(affinity
                    >= params
                        .get("threshold")
                        .and_then(Value::as_f64)
                        .unwrap_or(50.0))
            },
        )?;
        r.effect(
            "affinity_boost",
            "adds `amount` (and half a point more) to the shared relationship's affinity",
            json!({"amount": 5}),
            |ctx, params| {
                let npc = npc(ctx)?;
                let amount = params.get("amount").and_then(Value::as_f64).unwrap_or(5.0);
                let next = affinity(ctx, &npc)? + amount + 0.5;
                ctx.update_relationship(&npc, json!({"affinity": next}))?;
                Ok(json!({"npc_id": npc, "affinity": next}))
            },
        )?;
        r.simulation_config("romance_pacing", "pacing of romance", 200, |_ctx| {
            Ok(json!({"stealth": {"detection_radius": 8}, "romance": {"pace": "slow"}}))
        })?;
        r.subscribe(&["plugin:game-stealth:suspicion_raised"], |ctx, _event| {
            let seen = ctx
                .storage_get("alarms_seen")?
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            ctx.storage_set("alarms_seen", json!(seen + 1))?;
            Ok(())
        })?;
        Ok(())
    }
}

fn changed_build() -> Vec<Arc<dyn Plugin>> {
    plugins::builtin()
        .into_iter()
        .map(|p| {
            if p.manifest().id == "game-romance" {
                Arc::new(ChangedRomance) as Arc<dyn Plugin>
            } else {
                p
            }
        })
        .collect()
}

async fn replay_with(log: &EventLog, build: Vec<Arc<dyn Plugin>>) -> ReplayReport {
    let config = ReplayConfig {
        keep: usize::MAX,
        ..ReplayConfig::default()
    };
    replay(log, &config, build, &|_, _| {})
        .await
        .expect("replay runs")
}

#[tokio::test]
async fn a_changed_effect_diverges_at_exactly_the_calls_of_that_effect() {
    let t = demo_log(Backend::Postgres).await;
    let log = t.open().await;
    let events = all_events(&log).await;
    let boosts: BTreeSet<u64> = events
        .iter()
        .filter(|e| {
            e.kind.as_str() == "EffectApplied"
                && e.payload["effect_id"] == "effect:plugin:game-romance:affinity_boost"
        })
        .map(|e| e.position)
        .collect();
    assert!(boosts.len() >= 40, "{} boosts", boosts.len());

    let same = replay_with(&log, plugins::builtin()).await;
    assert_eq!(same.diverged(), 0, "{same:#?}");

    let changed = replay_with(&log, changed_build()).await;
    let diverged: BTreeSet<u64> = changed.divergences().iter().map(|d| d.position).collect();
    assert_eq!(diverged, boosts);
    assert_eq!(changed.diverged(), boosts.len() as u64);
    assert_eq!(changed.replayed(), same.replayed());
    for d in changed.divergences() {
        assert_eq!(d.what, "result", "{d:?}");
        assert_eq!(d.id, "effect:plugin:game-romance:affinity_boost");
        let (recorded, replayed) = (
            d.recorded["affinity"].as_f64().unwrap(),
            d.replayed["affinity"].as_f64().unwrap(),
        );
        assert_eq!(replayed, recorded + 0.5, "{d:?}");
    }
    for p in &changed.plugins {
        if p.plugin_id != "game-romance" {
            assert_eq!(p.diverged, 0, "{p:?}");
        }
    }
}

#[tokio::test]
async fn an_edited_result_is_reported_at_its_position_with_exit_1() {
    let t = demo_log(Backend::Sqlite).await;
    let log = t.open().await;
    let events = all_events(&log).await;
    let edited = events
        .iter()
        .find(|e| e.payload["effect_id"] == "effect:plugin:game-stealth:raise_suspicion")
        .expect("a raise_suspicion effect");
    let mut payload = edited.payload.value().clone();
    let recorded = payload["result"]["suspicion"].as_f64().unwrap();
    payload["result"]["suspicion"] = json!(recorded + 100.0);
    let text = provenant_events::canonical::to_canonical_string(&payload);
    t.tamper(&format!(
        "UPDATE {{events}} SET payload = '{text}' WHERE position = {}",
        edited.position
    ))
    .await;

    let report = replay_json(&t.url, &[], 1);
    assert_eq!(report["status"], "diverged");
    assert_eq!(report["calls"]["diverged"], 1, "{report}");
    let stealth = report["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plugin_id"] == "game-stealth")
        .unwrap();
    let d = &stealth["divergences"][0];
    assert_eq!(d["position"], edited.position);
    assert_eq!(d["what"], "result");
    assert_eq!(d["recorded"]["suspicion"], recorded + 100.0);
    assert_eq!(d["replayed"]["suspicion"], recorded);

    let out = provenant_on(&t.url, &["audit", "replay"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("DIVERGED: game-stealth 1.0.0: 1 of"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "position {}: effect effect:plugin:game-stealth:raise_suspicion",
            edited.position
        )),
        "{text}"
    );
    // The chain says the same row was edited.
    let out = provenant_on(&t.url, &["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["violation"]["position"], edited.position);
}

#[tokio::test]
async fn replay_takes_a_range_and_filters() {
    // Tick 100 is the cellar's first.
    let t = demo_log_of(Backend::Sqlite, 100).await;
    let log = t.open().await;
    let events = all_events(&log).await;
    // An effect whose write comes right before it: replaying from the
    // effect alone still sees that write, and matches.
    let effect = events
        .iter()
        .find(|e| {
            e.payload["effect_id"] == "effect:plugin:game-romance:affinity_boost"
                && events[e.position as usize - 2].kind.as_str() == "RelationshipUpdated"
        })
        .expect("an affinity boost");
    let p = effect.position.to_string();
    let report = replay_json(&t.url, &["--from", &p, "--to", &p], 0);
    assert_eq!(report["calls"]["replayed"], 1, "{report}");
    assert_eq!(report["calls"]["matched"], 1, "{report}");
    assert_eq!(report["events"], 1);

    // Filters: only the plugin, world or session asked for.
    for (args, plugins) in [
        (vec!["--plugin", "game-stealth"], vec!["game-stealth"]),
        (
            vec!["--world", "cellar"],
            vec!["example-nosy", "wasm-runaway"],
        ),
        (
            vec!["--world", "tavern", "--session", "s2"],
            vec![
                "example-flaky",
                "game-romance",
                "game-stealth",
                "wasm-gossip",
                "wasm-innkeeper",
            ],
        ),
    ] {
        let report = replay_json(&t.url, &args, 0);
        let got: Vec<&str> = report["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["plugin_id"].as_str().unwrap())
            .collect();
        assert_eq!(got, plugins, "{args:?}");
    }
    let s2_calls = events
        .iter()
        .filter(|e| {
            kinds::records_a_call(e.kind.as_str())
                && e.session_id.as_ref().is_some_and(|s| s.as_str() == "s2")
                && e.world_id.as_ref().is_some_and(|w| w.as_str() == "tavern")
        })
        .count() as u64;
    let report = replay_json(&t.url, &["--world", "tavern", "--session", "s2"], 0);
    assert_eq!(
        report["calls"]["replayed"].as_u64().unwrap()
            + report["calls"]["skipped"].as_u64().unwrap(),
        s2_calls
    );

    // An empty range replays nothing and says so.
    let out = provenant_on(&t.url, &["audit", "replay", "--from", "10", "--to", "9"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).starts_with("nothing to replay"),
        "{}",
        stdout(&out)
    );
}

/// A call event without its reads (as panicked calls were recorded before
/// they kept them) cannot be fed what it read: skipped, not diverged.
#[tokio::test]
async fn a_call_recorded_without_its_reads_is_skipped() {
    let t = demo_log(Backend::Sqlite).await;
    let log = t.open().await;
    let events = all_events(&log).await;
    let call = events
        .iter()
        .find(|e| e.payload["condition_id"] == "plugin:game-stealth:has_disguise")
        .expect("a has_disguise call");
    t.tamper(&format!(
        "UPDATE {{events}} SET payload = json_remove(payload, '$.inputs') WHERE position = {}",
        call.position
    ))
    .await;
    let report = replay_json(&t.url, &["--plugin", "game-stealth"], 0);
    assert_eq!(report["calls"]["diverged"], 0, "{report}");
    assert_eq!(report["calls"]["skipped"], 1, "{report}");
    assert_eq!(
        report["plugins"][0]["skipped"]["incomplete_record"], 1,
        "{report}"
    );
}

#[tokio::test]
async fn replay_and_trail_exit_2_or_fail_when_they_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("none.db").display());
    let out = provenant_on(&url, &["audit", "replay"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("error: cannot open the log"),
        "{}",
        stderr(&out)
    );
    let out = provenant_on(&url, &["audit", "replay", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json(&out)["status"], "error");
    let out = provenant_on(&url, &["audit", "trail"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        !dir.path().join("none.db").exists(),
        "auditing created a log"
    );
    let out = provenant_on(&url, &["audit", "replay", "--world", "no.dots"]);
    assert_eq!(out.status.code(), Some(2), "a bad id is a usage error");
}

/// `audit trail --json` lines.
fn trail(url: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "trail", "--json"];
    all.extend(args);
    let out = provenant_on(url, &all);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A scoped trail reads only its ticks, found through the world, session
/// and plugin indexes: it shows exactly what the whole log's trail shows
/// for that scope.
async fn scoped_trails_equal_the_whole_trail_filtered(backend: Backend) {
    let t = demo_log_of(backend, 103).await;
    let whole = trail(&t.url, &["--limit", "0"]);
    assert!(whole.len() > 100, "{}", whole.len());
    for scope in [
        vec![("world", "tavern")],
        vec![("world", "cellar")],
        vec![("session", "s2")],
        vec![("world", "tavern"), ("session", "s1")],
        vec![("plugin", "game-stealth")],
        vec![("plugin", "example-nosy")],
        vec![("plugin", "game-romance"), ("session", "s2")],
        vec![("world", "tavern"), ("plugin", "game-stealth")],
        vec![("world", "nowhere")],
        vec![("plugin", "not-a-plugin")],
    ] {
        let mut args = vec!["--limit", "0"];
        for (flag, value) in &scope {
            args.push(match *flag {
                "world" => "--world",
                "session" => "--session",
                _ => "--plugin",
            });
            args.push(value);
        }
        let expected: Vec<&Value> = whole
            .iter()
            .filter(|a| {
                scope
                    .iter()
                    .all(|(flag, value)| a[format!("{flag}_id")] == *value)
            })
            .collect();
        let scoped = trail(&t.url, &args);
        assert_eq!(scoped.iter().collect::<Vec<_>>(), expected, "{scope:?}");
        // From a position inside the log, too.
        let since = whole[whole.len() / 2]["position"]
            .as_u64()
            .unwrap()
            .to_string();
        args.extend(["--since", since.as_str()]);
        let expected_since: Vec<&Value> = expected
            .iter()
            .copied()
            .filter(|a| a["position"].as_u64().unwrap() >= since.parse().unwrap())
            .collect();
        assert_eq!(
            trail(&t.url, &args).iter().collect::<Vec<_>>(),
            expected_since,
            "{scope:?} since {since}"
        );
    }
}

#[tokio::test]
async fn scoped_trails_equal_the_whole_trail_filtered_on_postgres() {
    scoped_trails_equal_the_whole_trail_filtered(Backend::Postgres).await;
}

#[tokio::test]
async fn scoped_trails_equal_the_whole_trail_filtered_on_sqlite() {
    scoped_trails_equal_the_whole_trail_filtered(Backend::Sqlite).await;
}

#[tokio::test]
async fn trail_shows_matching_actions_with_their_causes() {
    // Past tick 100, npc-0's affinity (1 a tick) reaches the flirt threshold.
    let t = demo_log_of(Backend::Sqlite, 103).await;
    let log = t.open().await;
    let events = all_events(&log).await;

    // Relationship updates of one NPC in one session: each caused by an
    // affinity boost right after it, for `chat`, or for `flirt` after
    // is_attracted held.
    let updates = trail(
        &t.url,
        &[
            "--kind",
            "RelationshipUpdated",
            "--npc",
            "npc-0",
            "--session",
            "s1",
            "--limit",
            "0",
        ],
    );
    let expected = events
        .iter()
        .filter(|e| {
            e.kind.as_str() == "RelationshipUpdated"
                && e.plugin_id.is_some()
                && e.session_id.as_ref().is_some_and(|s| s.as_str() == "s1")
                && e.world_id.as_ref().is_some_and(|w| w.as_str() == "tavern")
                && e.payload["npc_key"] == "npc-0"
        })
        .count();
    assert_eq!(updates.len(), expected);
    let mut flirts = 0;
    for a in &updates {
        assert_eq!(a["kind"], "RelationshipUpdated");
        assert_eq!(
            (a["session_id"].as_str(), a["npc_id"].as_str()),
            (Some("s1"), Some("npc-0"))
        );
        assert_eq!(a["plugin_id"], "game-romance");
        assert_eq!(a["provenance"]["permission"], "session:write");
        assert_eq!(
            a["provenance"]["capability"],
            "session_write.update_relationship"
        );
        let call = &a["cause"]["call"];
        assert_eq!(call["kind"], "EffectApplied");
        assert_eq!(call["id"], "effect:plugin:game-romance:affinity_boost");
        assert_eq!(call["position"], a["position"].as_u64().unwrap() + 1);
        let conditions = a["cause"]["conditions"].as_array().unwrap();
        match a["cause"]["activity"].as_str() {
            Some("chat") => assert!(conditions.is_empty(), "{a}"),
            Some("flirt") => {
                flirts += 1;
                assert_eq!(conditions.len(), 1, "{a}");
                assert_eq!(
                    conditions[0]["condition_id"],
                    "plugin:game-romance:is_attracted"
                );
                assert_eq!(conditions[0]["result"], true);
                assert!(conditions[0]["position"].as_u64() < call["position"].as_u64());
            }
            other => panic!("activity {other:?}: {a}"),
        }
        assert!(a["cause"]["tick"]["processed_at"].as_u64() > a["position"].as_u64());
    }
    assert!(flirts >= 2, "{flirts} flirts");

    // A handler's call, with the event it handled and the effect that
    // emitted that event.
    let handled = trail(&t.url, &["--kind", "EventHandled", "--limit", "1"]);
    assert_eq!(handled.len(), 1);
    let h = &handled[0]["cause"]["handled"];
    assert_eq!(h["kind"], "plugin:game-stealth:suspicion_raised");
    assert_eq!(
        h["emitted_by"]["id"],
        "effect:plugin:game-stealth:raise_suspicion"
    );
    assert!(h["position"].as_u64() < handled[0]["position"].as_u64());

    // Denials, with the permission refused.
    let denials = trail(
        &t.url,
        &["--plugin", "example-nosy", "--kind", "PermissionDenied"],
    );
    assert_eq!(denials.len(), 6, "one cellar tick, three modes, two probes");
    assert!(denials.iter().all(|d| d["plugin_id"] == "example-nosy"
        && d["world_id"] == "cellar"
        && d["cause"]["call"]["id"] == "effect:plugin:example-nosy:peek"));

    // One tick's actions; paging with --since and --limit.
    let tick = trail(&t.url, &["--tick", "5", "--session", "s2", "--limit", "0"]);
    assert!(!tick.is_empty());
    assert!(
        tick.iter()
            .all(|a| a["cause"]["tick"]["tick"] == 5 && a["session_id"] == "s2")
    );
    let first = trail(&t.url, &["--limit", "5"]);
    let since = first[3]["position"].as_u64().unwrap().to_string();
    let page = trail(&t.url, &["--since", &since, "--limit", "2"]);
    assert_eq!(page, first[3..5].to_vec());

    // The table, as a terminal shows it.
    let out = provenant_on(
        &t.url,
        &["audit", "trail", "--kind", "EffectApplied", "--limit", "2"],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.starts_with(" POSITION   TICK WORLD/SESSION"), "{text}");
    assert_eq!(text.matches("because: ").count(), 2, "{text}");
    assert!(
        text.contains("(the first 2 shown; the next is at position"),
        "{text}"
    );
}

#[test]
fn replay_and_trail_document_their_flags_and_exit_codes() {
    for (command, needles) in [
        (
            "replay",
            &[
                "--world",
                "--session",
                "--plugin",
                "--from",
                "--to",
                "--json",
                "--isolation",
                "--deadline-ms",
                "DATABASE_URL",
                "0 every replayed call matched, 1 a call diverged, 2 could not run",
            ][..],
        ),
        (
            "trail",
            &[
                "--world",
                "--session",
                "--npc",
                "--plugin",
                "--kind",
                "--tick",
                "--since",
                "--limit",
                "--json",
            ][..],
        ),
    ] {
        let out = std::process::Command::new(provenant_tests::binary())
            .args(["audit", command, "--help"])
            .output()
            .expect("run provenant");
        assert!(out.status.success());
        let help = stdout(&out)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for needle in needles {
            assert!(
                help.contains(needle),
                "{needle} missing from audit {command} --help:\n{help}"
            );
        }
    }
}

//! What the fold records of calls, denials and loads: counters, outcomes,
//! recent errors, latency percentiles, histograms and the manifest.

use std::collections::BTreeMap;

use provenant_events::{CallKind, Event, kinds};
use serde_json::{Value, json};

use crate::Projection;
use crate::plugin_metrics::health::HealthState;
use crate::plugin_metrics::lifetime::DURATION_BUCKETS;
use crate::plugin_metrics::outcome::{ErrorType, Outcome};

use super::fixtures::*;

#[test]
fn a_denial_right_before_a_failure_makes_it_denied() {
    let mut p = projection();
    let plugin = "example-nosy";
    let mut s = Seq::new();
    let denial = |s: &mut Seq, permission: Value| {
        s.next(
            kinds::PERMISSION_DENIED,
            plugin,
            json!({"call": "effect:plugin:example-nosy:peek", "capability": "session.get_session_flag",
                   "mode": "RAISE", "permission": permission, "reason": "no"}),
        )
    };
    let failed = json!({"call": "effect", "effect_id": "effect:plugin:example-nosy:peek",
                        "error": "permission denied: session:read", "duration_us": 30,
                        "fallback": null});
    let mut e1 = in_call(denial(&mut s, Value::Null), 77, 2);
    e1.provenance.permission = Some("session:read".into());
    let e2 = in_call(
        s.next(kinds::PLUGIN_CALL_FAILED, plugin, failed.clone()),
        77,
        2,
    );
    let mut e3 = in_call(denial(&mut s, json!("world:write")), 77, 3);
    e3.provenance.permission = Some("session:read".into());
    // Another call index: an ordinary error.
    let e4 = in_call(
        s.next(kinds::PLUGIN_CALL_FAILED, plugin, failed.clone()),
        77,
        4,
    );
    let e5 = in_call(denial(&mut s, Value::Null), 77, 5);
    // The call survived its (warned) denial.
    let e6 = in_call(
        s.next(
            kinds::EFFECT_APPLIED,
            plugin,
            json!({"call": "effect", "effect_id": "e", "duration_us": 9}),
        ),
        77,
        5,
    );
    // The denial was consumed by the call above.
    let e7 = in_call(s.next(kinds::PLUGIN_CALL_FAILED, plugin, failed), 77, 5);
    run(&mut p, &[e1, e2, e3, e4, e5, e6, e7]);

    let m = p.get(plugin).unwrap();
    let c = m.counters();
    assert_eq!(
        c.permission_denials,
        BTreeMap::from([
            ("session:read".to_owned(), 1),
            ("unknown".to_owned(), 1),
            ("world:write".to_owned(), 1),
        ])
    );
    assert_eq!(c.effect_applications, 4);
    assert_eq!(c.effect_failures, 3);
    assert_eq!(c.errors, 3);
    let calls: Vec<_> = m.lifetime_calls().collect();
    assert_eq!(
        calls,
        vec![
            (CallKind::Effect, Outcome::Ok, 1),
            (CallKind::Effect, Outcome::Error, 2),
            (CallKind::Effect, Outcome::Denied, 1),
        ]
    );
    let denials: Vec<_> = m.lifetime_denials().collect();
    assert_eq!(
        denials,
        vec![("session:read", 1), ("unknown", 1), ("world:write", 1)]
    );
    let recent: Vec<_> = m.recent_errors().collect();
    let types: Vec<_> = recent.iter().map(|e| e.error_type).collect();
    assert_eq!(
        types,
        vec![ErrorType::Denied, ErrorType::Error, ErrorType::Error]
    );
    assert_eq!(recent[0].position, 2);
    assert_eq!(recent[0].error_message, "permission denied: session:read");
    assert_eq!(recent[0].context["call"], "effect");
    assert_eq!(recent[0].context["id"], "effect:plugin:example-nosy:peek");
    assert_eq!(recent[0].context["call_index"], 2);
    assert_eq!(
        recent[0].context["denied_permissions"],
        json!(["session:read"])
    );
    let a = m.admin_metrics();
    assert_eq!(a["health"]["recent_errors"][0]["error_type"], "denied");
    assert_eq!(a["permission_denials"]["world:write"], 1);
}

#[test]
fn timeouts_and_panics() {
    let mut p = projection();
    let mut s = Seq::new();
    let events = [
        s.next(
            kinds::PLUGIN_DEADLINE_EXCEEDED,
            "example-flaky",
            json!({"call": "condition", "condition_id": "c", "deadline_ms": 50,
                   "fallback": false, "waited_us": 50093}),
        ),
        s.next(
            kinds::PLUGIN_CALL_PANICKED,
            "example-flaky",
            json!({"call": "condition", "condition_id": "c", "duration_us": 145,
                   "fallback": false, "panic": "example-flaky panicked on purpose (0.026)"}),
        ),
    ];
    run(&mut p, &events);
    let m = p.get("example-flaky").unwrap();
    let c = m.counters();
    assert_eq!((c.timeouts, c.panics, c.errors, c.requests), (1, 1, 2, 2));
    assert_eq!((c.condition_evaluations, c.condition_failures), (2, 2));
    assert_eq!(c.total_time_us, 50_238);
    let recent: Vec<_> = m.recent_errors().collect();
    assert_eq!(recent[0].error_type, ErrorType::Timeout);
    assert_eq!(recent[0].error_message, "deadline of 50 ms exceeded");
    assert_eq!(recent[0].context["deadline_ms"], 50);
    assert_eq!(recent[0].context["duration_us"], 50093);
    assert_eq!(recent[1].error_type, ErrorType::Panic);
    assert_eq!(
        recent[1].error_message,
        "example-flaky panicked on purpose (0.026)"
    );
    let calls: Vec<_> = m.lifetime_calls().collect();
    assert_eq!(
        calls,
        vec![
            (CallKind::Condition, Outcome::Error, 1),
            (CallKind::Condition, Outcome::Timeout, 1),
        ]
    );
    let h = m.histogram(CallKind::Condition).unwrap();
    let mut expected = [0u64; 17];
    expected[4] = 1; // 145 µs: (100, 250]
    expected[12] = 1; // 50093 µs: (50 ms, 100 ms]
    assert_eq!(h.counts(), &expected);
    assert_eq!(h.count(), 2);
    assert_eq!(h.sum_us(), 50_238);
    let a = m.admin_metrics();
    assert_eq!(a["timeouts"], 1);
    assert_eq!(a["panics"], 1);
}

#[test]
fn recent_errors_keep_the_last_ten_in_order() {
    let mut p = projection();
    let mut s = Seq::new();
    let events: Vec<Event> = (0..13)
        .map(|i| {
            s.next(
                kinds::PLUGIN_CALL_FAILED,
                "p",
                cond_failed(&format!("e{i}"), 1),
            )
        })
        .collect();
    run(&mut p, &events);
    let m = p.get("p").unwrap();
    let got: Vec<(String, u64, String)> = m
        .recent_errors()
        .map(|e| (e.error_message.clone(), e.position, e.timestamp.clone()))
        .collect();
    let want: Vec<(String, u64, String)> = (3..13)
        .map(|i| (format!("e{i}"), i + 1, ts(i + 1)))
        .collect();
    assert_eq!(got, want);
    assert_eq!(m.counters().errors, 13);
}

#[test]
fn latency_percentiles_are_nearest_rank() {
    let mut p = projection();
    let mut s = Seq::new();
    // 100, 200, ..., 2000 µs in a scrambled order.
    let events: Vec<Event> = (0..20u64)
        .map(|i| {
            s.next(
                kinds::CONDITION_EVALUATED,
                "p",
                cond_ok(((i * 7) % 20 + 1) * 100),
            )
        })
        .collect();
    run(&mut p, &events);
    let l = p.get("p").unwrap().latency();
    // n = 20: p50 -> rank 10, p95 -> rank 19, p99 -> rank 20.
    assert_eq!(l.samples, 20);
    assert_eq!(l.p50_ms, Some(1.0));
    assert_eq!(l.p95_ms, Some(1.9));
    assert_eq!(l.p99_ms, Some(2.0));

    let mut q = projection();
    let mut s = Seq::new();
    let events: Vec<Event> = [5000, 1000, 3000]
        .into_iter()
        .map(|us| s.next(kinds::CONDITION_EVALUATED, "q", cond_ok(us)))
        .collect();
    run(&mut q, &events);
    let m = q.get("q").unwrap();
    // n = 3, sorted [1, 3, 5] ms: ranks 2, 3, 3.
    let l = m.latency();
    assert_eq!(
        (l.p50_ms, l.p95_ms, l.p99_ms),
        (Some(3.0), Some(5.0), Some(5.0))
    );
    assert_eq!(
        m.admin_metrics()["latency_ms"],
        json!({"p50": 3.0, "p95": 5.0, "p99": 5.0, "samples": 3})
    );

    let mut empty = projection();
    empty.apply(&ev(1, kinds::PERMISSION_DENIED, Some("e"), json!({}), 0));
    let a = empty.get("e").unwrap().admin_metrics();
    assert_eq!(
        a["latency_ms"],
        json!({"p50": null, "p95": null, "p99": null, "samples": 0})
    );
}

#[test]
fn histogram_buckets_are_upper_inclusive() {
    let mut p = projection();
    let mut s = Seq::new();
    let events: Vec<Event> = [0u64, 10, 11, 2_500, 1_000_000, 1_000_001]
        .into_iter()
        .map(|us| {
            s.next(
                kinds::EVENT_HANDLED,
                "p",
                json!({"call": "event_handler", "handler": "p on X", "duration_us": us}),
            )
        })
        .collect();
    run(&mut p, &events);
    let m = p.get("p").unwrap();
    let hs: Vec<_> = m.histograms().collect();
    assert_eq!(hs.len(), 1);
    let (kind, h) = hs[0];
    assert_eq!(kind, CallKind::EventHandler);
    let mut expected = [0u64; 17];
    expected[0] = 2; // 0 and 10 µs: <= 0.00001 s
    expected[1] = 1; // 11 µs: <= 0.000025 s
    expected[7] = 1; // 2500 µs: <= 0.0025 s
    expected[15] = 1; // 1 s: <= 1.0
    expected[16] = 1; // above 1 s: +Inf
    assert_eq!(h.counts(), &expected);
    assert_eq!(h.cumulative()[16], 6);
    assert_eq!(h.cumulative()[0], 2);
    assert_eq!(h.cumulative()[15], 5);
    assert_eq!(h.count(), 6);
    assert_eq!(h.sum_us(), 2_002_522);
    assert!(close(h.sum_seconds(), 2.002522));
    assert_eq!(h.bounds(), &DURATION_BUCKETS);
    assert_eq!(CallKind::EventHandler.as_str(), "event_handler");
}

#[test]
fn plugin_loaded_keeps_the_manifest() {
    let mut p = projection();
    let payload = json!({
        "granted": ["session:read"],
        "manifest": {"author": "me", "dependencies": ["core"], "description": "sneaky",
                     "enabled": true, "id": "game-stealth", "kind": "feature",
                     "name": "Stealth", "permissions": ["session:read", "session:write"],
                     "version": "1.2.0"},
        "registered": {"conditions": ["plugin:game-stealth:has_disguise"],
                       "effects": ["effect:plugin:game-stealth:hide"],
                       "event_subscriptions": [], "simulation_configs": []}
    });
    p.apply(&ev(
        7,
        kinds::PLUGIN_LOADED,
        Some("game-stealth"),
        payload,
        0,
    ));
    let m = p.get("game-stealth").unwrap();
    assert_eq!(m.loaded_position(), Some(7));
    assert_eq!(m.manifest_str("name"), Some("Stealth"));
    assert_eq!(m.manifest_str("version"), Some("1.2.0"));
    assert_eq!(m.manifest_str("missing"), None);
    assert!(m.enabled());
    assert_eq!(
        m.manifest_list("permissions"),
        vec!["session:read", "session:write"]
    );
    assert_eq!(m.manifest_list("dependencies"), vec!["core"]);
    assert_eq!(
        m.registered_list("conditions"),
        vec!["plugin:game-stealth:has_disguise"]
    );
    assert_eq!(
        m.registered_list("effects"),
        vec!["effect:plugin:game-stealth:hide"]
    );
    assert_eq!(m.granted(), Some(&json!(["session:read"])));
    assert_eq!(m.health_state(), HealthState::Unknown);
    assert_eq!(m.admin_metrics()["requests"]["total"], 0);
}

#[test]
fn a_remote_plugins_circuit_and_failures_by_reason_are_folded_and_restored() {
    let mut p = projection();
    let mut s = Seq::new();
    let failed = |reason: &str| {
        let mut f = cond_failed("down", 100);
        f["reason"] = json!(reason);
        f
    };
    let events = vec![
        s.next(
            kinds::PLUGIN_LOADED,
            "oracle",
            json!({"manifest": {"id": "oracle", "kind": "remote_feature"}, "runtime": "remote"}),
        ),
        s.next(kinds::PLUGIN_CALL_FAILED, "oracle", failed("status")),
        s.next(kinds::PLUGIN_CALL_FAILED, "oracle", failed("status")),
        s.next(
            kinds::PLUGIN_CIRCUIT_OPENED,
            "oracle",
            json!({"endpoint": "http://x", "failures": 2, "cool_down_ms": 100, "error": "503"}),
        ),
        s.next(kinds::PLUGIN_CALL_FAILED, "oracle", failed("circuit_open")),
        // A failure without a reason (a native plugin's) counts nowhere here.
        s.next(kinds::PLUGIN_CALL_FAILED, "native", cond_failed("x", 1)),
    ];
    run(&mut p, &events);
    let m = p.get("oracle").unwrap();
    assert!(m.is_remote() && m.circuit_open());
    let reasons: Vec<(&str, u64)> = m.failures_by_reason().collect();
    assert_eq!(reasons, [("circuit_open", 1), ("status", 2)]);
    let health = m.admin_health();
    assert_eq!(health["circuit"]["state"], "open");
    assert_eq!(health["circuit"]["times_opened"], 1);
    assert_eq!(health["circuit"]["not_sent"]["circuit_open"], 1);
    assert_eq!(health["circuit"]["since"], json!(ts(4)));
    let native = p.get("native").unwrap();
    assert!(!native.is_remote());
    assert!(native.admin_health().get("circuit").is_none());
    assert_eq!(native.failures_by_reason().count(), 0);

    // Restored from its rows, then closed: the same as folding everything.
    let rows: Vec<(String, String)> = p
        .take_changes()
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    let mut restored = projection();
    restored.restore(rows).unwrap();
    let closed = s.next(
        kinds::PLUGIN_CIRCUIT_CLOSED,
        "oracle",
        json!({"endpoint": "http://x", "open_ms": 100, "skipped": 1}),
    );
    restored.apply(&closed);
    p.apply(&closed);
    assert_eq!(restored.get("oracle"), p.get("oracle"));
    let m = restored.get("oracle").unwrap();
    assert!(!m.circuit_open());
    assert_eq!(m.admin_health()["circuit"]["state"], "closed");
}

//! The rows: resets, which rows change, restoring from rows (and refusing
//! rows that do not decode), malformed payloads, and a row read back.

use provenant_events::{CallKind, Event, PluginId, kinds};
use serde_json::{Value, json};

use crate::Projection;
use crate::plugin_metrics::config::{HealthConfig, MAX_TEXT_CHARS};
use crate::plugin_metrics::health::HealthState;
use crate::plugin_metrics::model::{Counters, PluginMetrics};
use crate::plugin_metrics::outcome::Outcome;
use crate::plugin_metrics::projection::PluginMetricsProjection;

use super::fixtures::*;

#[test]
fn metrics_reset_one_plugin_and_all() {
    let mut p = projection();
    let mut s = Seq::new();
    let mut events = Vec::new();
    for i in 0..12 {
        for plugin in ["a", "b"] {
            events.push(if i % 3 == 0 {
                s.next(kinds::PLUGIN_CALL_FAILED, plugin, cond_failed("x", 10))
            } else {
                s.next(kinds::CONDITION_EVALUATED, plugin, cond_ok(10))
            });
        }
    }
    run(&mut p, &events);
    p.take_changes();
    let a_lifetime: Vec<_> = p.get("a").unwrap().lifetime_calls().collect();
    let a_hist = p.get("a").unwrap().histogram(CallKind::Condition).cloned();
    let b_before = p.get("b").unwrap().clone();
    assert_eq!(b_before.health_state(), HealthState::Unhealthy);

    let mut reset = ev(
        100,
        kinds::METRICS_RESET,
        None,
        json!({"plugin_id": "a", "requested_by": {"user": "ops"}}),
        0,
    );
    reset.world_id = None;
    p.apply(&reset);
    let changes = p.take_changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].0, "a");
    let a = p.get("a").unwrap();
    assert_eq!(a.counters(), &Counters::default());
    assert_eq!(a.recent_errors().count(), 0);
    assert_eq!(a.latency().samples, 0);
    assert_eq!(a.health_state(), HealthState::Unknown);
    assert_eq!(a.health().since, Some(ts(100)));
    assert_eq!(a.health().since_position, Some(100));
    assert_eq!(a.lifetime_calls().collect::<Vec<_>>(), a_lifetime);
    assert_eq!(a.histogram(CallKind::Condition).cloned(), a_hist);
    assert_eq!(a.last_reset().unwrap().requested_by, json!({"user": "ops"}));
    let am = a.admin_metrics();
    assert_eq!(am["reset"], json!({"at": ts(100), "position": 100}));
    assert_eq!(am["requests"]["total"], 0);
    assert_eq!(am["requests"]["last_request"], Value::Null);
    assert_eq!(am["health"]["is_healthy"], true);
    assert_eq!(p.get("b").unwrap(), &b_before);

    // A plugin never seen, and a reset without `plugin_id`: nothing.
    p.apply(&ev(
        101,
        kinds::METRICS_RESET,
        None,
        json!({"plugin_id": "zzz"}),
        0,
    ));
    p.apply(&ev(
        102,
        kinds::METRICS_RESET,
        None,
        json!({"requested_by": "x"}),
        0,
    ));
    assert!(p.take_changes().is_empty());
    assert!(p.get("zzz").is_none());

    // a calls again, then every plugin is reset.
    p.apply(&ev(
        103,
        kinds::CONDITION_EVALUATED,
        Some("a"),
        cond_ok(10),
        0,
    ));
    assert_eq!(p.get("a").unwrap().counters().requests, 1);
    p.apply(&ev(
        104,
        kinds::METRICS_RESET,
        None,
        json!({"plugin_id": null, "requested_by": null}),
        0,
    ));
    let keys: Vec<String> = p.take_changes().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec!["a".to_owned(), "b".to_owned()]);
    for m in p.plugins() {
        assert_eq!(m.counters(), &Counters::default());
        assert_eq!(m.health_state(), HealthState::Unknown);
        assert_eq!(m.health().since_position, Some(104));
        assert_eq!(m.last_reset().unwrap().position, 104);
    }
    let b = p.get("b").unwrap();
    assert_eq!(
        b.lifetime_calls().collect::<Vec<_>>(),
        b_before.lifetime_calls().collect::<Vec<_>>()
    );
    assert_eq!(b.admin_health()["error_count"], 0);
    assert_eq!(b.admin_health()["request_error_rate"], 0.0);
}

#[test]
fn changes_are_the_touched_rows() {
    let mut p = projection();
    assert_eq!(p.name(), "plugin_metrics");
    assert_eq!(p.version(), 1);
    p.apply(&ev(1, kinds::CONDITION_EVALUATED, Some("a"), cond_ok(1), 0));
    p.apply(&ev(2, kinds::CONDITION_EVALUATED, Some("b"), cond_ok(1), 0));
    let changes = p.take_changes();
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|(_, v)| v.is_some()));
    assert!(p.take_changes().is_empty());
    // Events without a plugin, and kinds this projection does not read.
    p.apply(&ev(3, kinds::CONDITION_EVALUATED, None, cond_ok(1), 0));
    p.apply(&ev(
        4,
        kinds::SESSION_FLAG_SET,
        Some("a"),
        json!({"key": "k"}),
        0,
    ));
    assert!(p.take_changes().is_empty());
    // The provenance's plugin stands in for a missing one.
    let mut e = ev(5, kinds::CONDITION_EVALUATED, None, cond_ok(1), 0);
    e.provenance.plugin_id = Some(PluginId::new("b").unwrap());
    p.apply(&e);
    let changes = p.take_changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].0, "b");
    assert_eq!(p.get("b").unwrap().counters().requests, 2);
}

/// A log touching every path, for the restore test.
fn mixed_log() -> Vec<Event> {
    let mut s = Seq::new();
    let mut out = Vec::new();
    out.push(s.next(
        kinds::PLUGIN_LOADED,
        "a",
        json!({"granted": [], "manifest": {"name": "A"}, "registered": {"conditions": ["c"]}}),
    ));
    for i in 0..30i64 {
        let plugin = if i % 3 == 0 { "b" } else { "a" };
        let t = i * 20;
        let e = match i % 7 {
            0 => s.at(kinds::PLUGIN_CALL_FAILED, plugin, cond_failed("x", 40), t),
            1 => s.at(
                kinds::EFFECT_APPLIED,
                plugin,
                json!({"call": "effect", "effect_id": "e", "duration_us": 900}),
                t,
            ),
            2 => {
                let mut d = in_call(
                    s.at(kinds::PERMISSION_DENIED, plugin, json!({"permission": null}), t),
                    i as u128,
                    1,
                );
                d.provenance.permission = Some("session:read".into());
                out.push(d);
                in_call(
                    s.at(
                        kinds::PLUGIN_CALL_FAILED,
                        plugin,
                        json!({"call": "effect", "effect_id": "e", "error": "denied", "duration_us": 3}),
                        t,
                    ),
                    i as u128,
                    1,
                )
            }
            3 => s.at(
                kinds::PLUGIN_DEADLINE_EXCEEDED,
                plugin,
                json!({"call": "condition", "condition_id": "c", "deadline_ms": 50, "waited_us": 50_100}),
                t,
            ),
            4 => in_world(s.at(kinds::CONDITION_EVALUATED, plugin, cond_ok(70), t - 5_000), "w2"),
            5 => s.at(
                kinds::PLUGIN_CALL_PANICKED,
                plugin,
                json!({"call": "event_handler", "handler": "h", "panic": "p", "duration_us": 12}),
                t,
            ),
            _ => s.at(kinds::CONDITION_EVALUATED, plugin, cond_ok(30), t),
        };
        out.push(e);
        if i == 14 {
            out.push(s.at(
                kinds::METRICS_RESET,
                "a",
                json!({"plugin_id": "a", "requested_by": "ops"}),
                t,
            ));
        }
        if i == 22 {
            out.push(s.at(kinds::METRICS_RESET, "a", json!({"plugin_id": null}), t));
        }
    }
    out
}

#[test]
fn restoring_from_rows_and_going_on_equals_applying_everything() {
    let config = HealthConfig {
        window: chrono::Duration::seconds(200),
        window_calls: 8,
        min_samples: 3,
    };
    let events = mixed_log();
    let mut full = PluginMetricsProjection::new(config);
    run(&mut full, &events);
    let want = dump(&full);
    let a = full.get("a").unwrap();
    assert!(a.lifetime_calls().any(|(_, o, _)| o == Outcome::Denied));
    // Some cut falls between a denial and its failure.
    let between = events
        .windows(2)
        .position(|w| w[0].kind.as_str() == kinds::PERMISSION_DENIED)
        .unwrap()
        + 1;
    assert_eq!(events[between].kind.as_str(), kinds::PLUGIN_CALL_FAILED);

    for cut in 0..=events.len() {
        let mut first = PluginMetricsProjection::new(config);
        run(&mut first, &events[..cut]);
        let rows: Vec<(String, String)> = first
            .take_changes()
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        let mut second = PluginMetricsProjection::new(config);
        second.restore(rows).unwrap();
        assert!(second.take_changes().is_empty());
        run(&mut second, &events[cut..]);
        assert_eq!(dump(&second), want, "cut at {cut}");
    }
}

#[test]
fn restore_refuses_rows_that_do_not_decode() {
    let mut p = projection();
    assert!(p.restore(vec![("a".into(), "{".into())]).is_err());
    assert!(p.restore(vec![("a".into(), "{}".into())]).is_err());
    let mut q = projection();
    q.apply(&ev(1, kinds::CONDITION_EVALUATED, Some("b"), cond_ok(1), 0));
    let (_, row) = q.take_changes().pop().unwrap();
    assert!(p.restore(vec![("a".into(), row.clone().unwrap())]).is_err());
    assert!(p.restore(vec![("b".into(), row.unwrap())]).is_ok());
    assert_eq!(p.get("b").unwrap().counters().requests, 1);
}

#[test]
fn malformed_payloads_never_panic() {
    let payloads = [
        Value::Null,
        json!(42),
        json!("text"),
        json!([1, 2]),
        json!({}),
        json!({"call": 5, "duration_us": "x", "waited_us": -3, "error": {"a": 1},
               "deadline_ms": "z", "panic": [1], "permission": 7, "plugin_id": 7,
               "manifest": 3, "registered": "r", "condition_id": 9, "requested_by": [1]}),
        json!({"call": "condition", "duration_us": 1e300, "waited_us": 1e300}),
        json!({"call": "effect", "duration_us": -1.5, "error": null, "panic": null}),
        json!({"call": "unheard_of", "id": "x".repeat(5000), "error": "e".repeat(5000)}),
        json!({"plugin_id": "p"}),
        json!({"plugin_id": null}),
    ];
    let event_kinds = [
        kinds::CONDITION_EVALUATED,
        kinds::EFFECT_APPLIED,
        kinds::EVENT_HANDLED,
        kinds::PLUGIN_CALL_FAILED,
        kinds::PLUGIN_CALL_PANICKED,
        kinds::PLUGIN_DEADLINE_EXCEEDED,
        kinds::PERMISSION_DENIED,
        kinds::PLUGIN_LOADED,
        kinds::METRICS_RESET,
        "SomethingNew",
    ];
    let mut p = projection();
    let mut position = 0;
    for kind in event_kinds {
        for payload in &payloads {
            for plugin in [Some("p"), None] {
                position += 1;
                let mut e = ev(position, kind, plugin, payload.clone(), position as i64);
                if position % 3 == 0 {
                    e.world_id = None;
                }
                p.apply(&e);
            }
        }
    }
    let m = p.get("p").unwrap();
    let _ = m.admin_metrics();
    let _ = m.admin_health();
    let _ = m.latency();
    for r in m.recent_errors() {
        assert!(r.error_message.chars().count() <= MAX_TEXT_CHARS + 1);
    }
    let rows: Vec<(String, String)> = p
        .take_changes()
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    let mut q = projection();
    q.restore(rows).unwrap();
    assert_eq!(dump(&q), dump(&p));

    // An empty object is still a call, of 0 µs, of the kind its event
    // implies.
    let mut r = projection();
    r.apply(&ev(1, kinds::CONDITION_EVALUATED, Some("p"), json!({}), 0));
    r.apply(&ev(2, kinds::PLUGIN_CALL_FAILED, Some("p"), json!([]), 0));
    let m = r.get("p").unwrap();
    assert_eq!(m.counters().condition_evaluations, 1);
    assert_eq!(m.counters().requests, 2);
    assert_eq!(m.counters().total_time_us, 0);
    let calls: Vec<_> = m.lifetime_calls().collect();
    assert_eq!(
        calls,
        vec![
            (CallKind::Condition, Outcome::Ok, 1),
            (CallKind::Other, Outcome::Error, 1)
        ]
    );
    assert_eq!(
        m.recent_errors().next().unwrap().error_message,
        "unknown error"
    );
}

#[test]
fn a_row_read_back_reads_as_the_row_it_was() {
    let mut p = projection();
    run(&mut p, &twelve(&[0, 3, 6, 9]));
    let m = p.get("p").unwrap();
    let text = serde_json::to_string(m).unwrap();
    let back: PluginMetrics = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, m);
    assert_eq!(back.health(), m.health());
    assert_eq!(serde_json::to_string(&back).unwrap(), text);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["health"]["reason"], m.health().reason.as_str());
    assert_eq!(
        v["health"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["last_check", "reason", "since", "since_position", "state"]
    );
}

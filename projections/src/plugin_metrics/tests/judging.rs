//! Health and the window: judged rates, states and their changes, the
//! game-time window per world and its bound on calls.

use std::collections::BTreeMap;

use provenant_events::{CallKind, Event, kinds};
use serde_json::{Value, json};

use crate::Projection;
use crate::plugin_metrics::config::{HealthConfig, MAX_WORLD_CLOCKS};
use crate::plugin_metrics::health::HealthState;
use crate::plugin_metrics::projection::PluginMetricsProjection;
use crate::plugin_metrics::rates::Rate;

use super::fixtures::*;

#[test]
fn four_condition_failures_of_twelve_is_unhealthy() {
    let mut p = projection();
    run(&mut p, &twelve(&[0, 3, 6, 9]));
    let m = p.get("p").unwrap();
    let a = m.admin_metrics();
    assert_eq!(a["plugin_id"], "p");
    assert_eq!(a["requests"]["total"], 12);
    assert_eq!(a["requests"]["errors"], 4);
    assert!(close(
        a["requests"]["error_rate"].as_f64().unwrap(),
        4.0 / 12.0
    ));
    assert!(close(
        a["requests"]["average_time_ms"].as_f64().unwrap(),
        0.1
    ));
    assert_eq!(a["requests"]["last_request"], ts(12));
    let b = &a["behavior_extensions"];
    assert_eq!(b["condition_evaluations"], 12);
    assert_eq!(b["condition_failures"], 4);
    assert!(close(
        b["condition_failure_rate"].as_f64().unwrap(),
        1.0 / 3.0
    ));
    assert_eq!(b["effect_applications"], 0);
    assert_eq!(b["effect_failure_rate"], 0.0);
    assert_eq!(
        a["event_handlers"],
        json!({"calls": 0, "failures": 0, "failure_rate": 0.0})
    );
    let h = &a["health"];
    assert_eq!(h["is_healthy"], false);
    assert_eq!(h["state"], "unhealthy");
    assert_eq!(
        h["reason"],
        "condition failure rate 0.33 > 0.30 over the last 12 condition calls"
    );
    // Judged from the 11th call on: 4 of 11.
    assert_eq!(h["since"], ts(11));
    assert_eq!(h["since_position"], 11);
    assert_eq!(h["last_check"], ts(12));
    assert_eq!(h["recent_errors"].as_array().unwrap().len(), 4);
    assert_eq!(a["reset"], Value::Null);
    assert_eq!(m.health_state(), HealthState::Unhealthy);
    assert_eq!(m.health_state().as_gauge(), 3.0);

    let health = m.admin_health();
    assert_eq!(health["is_healthy"], false);
    assert_eq!(health["error_count"], 4);
    assert!(close(
        health["condition_failure_rate"].as_f64().unwrap(),
        1.0 / 3.0
    ));
    assert!(close(
        health["request_error_rate"].as_f64().unwrap(),
        1.0 / 3.0
    ));
    assert_eq!(health["effect_failure_rate"], 0.0);
    assert_eq!(health["event_handler_failure_rate"], 0.0);
    assert_eq!(health["state"], "unhealthy");
    assert_eq!(health["since"], ts(11));
}

#[test]
fn two_condition_failures_of_twelve_is_degraded() {
    let mut p = projection();
    run(&mut p, &twelve(&[0, 6]));
    let m = p.get("p").unwrap();
    assert_eq!(m.health_state(), HealthState::Degraded);
    assert!(m.health_state().is_healthy());
    assert_eq!(
        m.health().reason,
        "condition failure rate 0.17 > 0.15 (half of 0.30) over the last 12 condition calls"
    );
    assert_eq!(m.health().since_position, Some(11));
    assert_eq!(m.admin_metrics()["health"]["is_healthy"], true);
}

#[test]
fn ten_samples_are_not_judged_eleven_are() {
    let mut p = projection();
    let mut s = Seq::new();
    let events: Vec<Event> = (0..10)
        .map(|i| {
            if i % 2 == 0 {
                s.next(kinds::PLUGIN_CALL_FAILED, "p", cond_failed("x", 1))
            } else {
                s.next(kinds::CONDITION_EVALUATED, "p", cond_ok(1))
            }
        })
        .collect();
    run(&mut p, &events);
    let m = p.get("p").unwrap();
    assert_eq!(m.health_state(), HealthState::Unknown);
    assert_eq!(m.health().since, None);
    assert_eq!(m.health().last_check, Some(ts(10)));
    assert_eq!(m.admin_metrics()["health"]["is_healthy"], true);
    assert!(
        m.health().reason.starts_with("not enough calls"),
        "{}",
        m.health().reason
    );

    p.apply(&s.next(kinds::CONDITION_EVALUATED, "p", cond_ok(1)));
    let m = p.get("p").unwrap();
    // 5 of 11 = 0.45.
    assert_eq!(m.health_state(), HealthState::Unhealthy);
    assert_eq!(m.health().since_position, Some(11));

    let mut q = projection();
    let mut s = Seq::new();
    let ok: Vec<Event> = (0..11)
        .map(|_| {
            s.next(
                kinds::EVENT_HANDLED,
                "h",
                json!({"call": "event_handler", "handler": "h on X", "duration_us": 5}),
            )
        })
        .collect();
    run(&mut q, &ok);
    let m = q.get("h").unwrap();
    assert_eq!(m.health_state(), HealthState::Healthy);
    assert_eq!(m.counters().event_handler_calls, 11);
    assert_eq!(m.health_state().as_gauge(), 1.0);
}

#[test]
fn the_window_is_game_time_per_world() {
    let mut p = projection();
    let mut s = Seq::new();
    // Eleven failures in w1 at game time 0..10 s.
    let events: Vec<Event> = (0..11)
        .map(|i| s.at(kinds::PLUGIN_CALL_FAILED, "p", cond_failed("x", 1), i))
        .collect();
    run(&mut p, &events);
    assert_eq!(p.get("p").unwrap().health_state(), HealthState::Unhealthy);
    // A world whose clock is far behind does not push w1's calls out.
    let events: Vec<Event> = (0..5)
        .map(|i| {
            in_world(
                s.at(kinds::CONDITION_EVALUATED, "p", cond_ok(1), -10_000 + i),
                "w2",
            )
        })
        .collect();
    run(&mut p, &events);
    let m = p.get("p").unwrap();
    assert_eq!(m.latency().samples, 16);
    assert_eq!(
        m.window_rates().condition_failures,
        Rate {
            failures: 11,
            total: 16
        }
    );
    assert_eq!(m.health_state(), HealthState::Unhealthy);
    // w1 moves on 6 minutes: its old calls leave the window, w2's stay.
    let e = s.at(kinds::CONDITION_EVALUATED, "p", cond_ok(1), 400);
    let moved_at = e.position;
    p.apply(&e);
    let m = p.get("p").unwrap();
    assert_eq!(m.latency().samples, 6);
    assert_eq!(
        m.window_rates().condition_failures,
        Rate {
            failures: 0,
            total: 6
        }
    );
    assert_eq!(m.health_state(), HealthState::Unknown);
    assert_eq!(m.health().since_position, Some(moved_at));
    // Since-reset counters are not windowed.
    assert_eq!(m.counters().requests, 17);
    assert_eq!(m.counters().condition_failures, 11);

    // The window's edge: exactly `window` old stays, older leaves.
    let mut q = projection();
    let mut s = Seq::new();
    q.apply(&s.at(kinds::CONDITION_EVALUATED, "q", cond_ok(1), 0));
    q.apply(&s.at(kinds::CONDITION_EVALUATED, "q", cond_ok(1), 300));
    assert_eq!(q.get("q").unwrap().latency().samples, 2);
    q.apply(&s.at(kinds::CONDITION_EVALUATED, "q", cond_ok(1), 301));
    assert_eq!(q.get("q").unwrap().latency().samples, 2);
    // A late event older than the window does not count at all.
    q.apply(&s.at(kinds::PLUGIN_CALL_FAILED, "q", cond_failed("late", 1), 0));
    assert_eq!(
        q.get("q").unwrap().window_rates().request_errors,
        Rate {
            failures: 0,
            total: 2
        }
    );
}

#[test]
fn the_window_keeps_the_newest_window_calls() {
    let mut p = PluginMetricsProjection::new(HealthConfig {
        window_calls: 15,
        ..HealthConfig::default()
    });
    let mut s = Seq::new();
    let events: Vec<Event> = (0..20)
        .map(|i| {
            if i < 10 {
                s.next(kinds::PLUGIN_CALL_FAILED, "p", cond_failed("x", 1))
            } else {
                s.next(kinds::CONDITION_EVALUATED, "p", cond_ok(1))
            }
        })
        .collect();
    run(&mut p, &events);
    let m = p.get("p").unwrap();
    assert_eq!(m.latency().samples, 15);
    // The newest 15: 5 failures and 10 ok.
    assert_eq!(
        m.window_rates().condition_failures,
        Rate {
            failures: 5,
            total: 15
        }
    );
    assert_eq!(m.health_state(), HealthState::Unhealthy);
    assert_eq!(m.counters().requests, 20);
    assert_eq!(m.histogram(CallKind::Condition).unwrap().count(), 20);
}

#[test]
fn a_plugin_recovers() {
    let mut p = projection();
    let mut s = Seq::new();
    let events: Vec<Event> = (0..12)
        .map(|i| {
            if i % 2 == 0 {
                s.next(kinds::PLUGIN_CALL_FAILED, "p", cond_failed("x", 1))
            } else {
                s.next(kinds::CONDITION_EVALUATED, "p", cond_ok(1))
            }
        })
        .collect();
    run(&mut p, &events);
    assert_eq!(p.get("p").unwrap().health_state(), HealthState::Unhealthy);
    // 6 failures of n calls: unhealthy while n < 20, degraded while
    // n < 40, healthy from n = 40.
    let mut states = BTreeMap::new();
    for _ in 0..40 {
        let e = s.next(kinds::CONDITION_EVALUATED, "p", cond_ok(1));
        p.apply(&e);
        states.insert(e.position, p.get("p").unwrap().health_state());
    }
    assert_eq!(states[&19], HealthState::Unhealthy);
    assert_eq!(states[&20], HealthState::Degraded);
    assert_eq!(states[&39], HealthState::Degraded);
    assert_eq!(states[&40], HealthState::Healthy);
    assert_eq!(states[&52], HealthState::Healthy);
    let m = p.get("p").unwrap();
    assert_eq!(m.health().since, Some(ts(40)));
    assert_eq!(m.health().since_position, Some(40));
    assert_eq!(m.health().last_check, Some(ts(52)));
    assert!(
        m.health().reason.starts_with("every judged rate"),
        "{}",
        m.health().reason
    );
    // The since-reset error rate still remembers.
    assert_eq!(m.counters().condition_failures, 6);
}

#[test]
fn many_worlds_keep_a_bounded_set_of_clocks() {
    let mut p = PluginMetricsProjection::new(HealthConfig {
        window_calls: 10,
        ..HealthConfig::default()
    });
    for i in 0..200u64 {
        let e = in_world(
            ev(
                i + 1,
                kinds::CONDITION_EVALUATED,
                Some("p"),
                cond_ok(1),
                i as i64,
            ),
            &format!("w{i}"),
        );
        p.apply(&e);
    }
    let m = p.get("p").unwrap();
    assert!(m.window.worlds.len() <= MAX_WORLD_CLOCKS + 1);
    assert_eq!(m.latency().samples, 10);
    assert!(m.window.samples.iter().all(|s| s.w < m.window.worlds.len()));
    // The newest samples still point at their own worlds.
    let newest = m.window.samples.back().unwrap();
    assert_eq!(m.window.worlds[newest.w].world, "w199");
}

//! The admin API's answers for one plugin: its metrics and its health, in
//! the original plugin system's shape.

use serde_json::{Value, json};

use super::model::{PluginMetrics, RecentError};
use super::rates::ratio;

impl PluginMetrics {
    // --- admin API --------------------------------------------------------

    /// One plugin's metrics, in the original's shape plus `state`, `reason`,
    /// `since`, `since_position` in `health`, and `timeouts`, `panics`,
    /// `permission_denials`, `latency_ms` and `reset` at the top level.
    pub fn admin_metrics(&self) -> Value {
        let c = &self.counters;
        let average_time_ms = if c.requests == 0 {
            0.0
        } else {
            c.total_time_us as f64 / c.requests as f64 / 1000.0
        };
        let latency = self.latency();
        let recent: Vec<Value> = self.recent_errors.iter().map(recent_error_json).collect();
        json!({
            "plugin_id": self.plugin_id,
            "requests": {
                "total": c.requests,
                "errors": c.errors,
                "error_rate": ratio(c.errors, c.requests),
                "average_time_ms": average_time_ms,
                "total_time_ms": c.total_time_us as f64 / 1000.0,
                "last_request": c.last_request,
            },
            "behavior_extensions": {
                "condition_evaluations": c.condition_evaluations,
                "condition_failures": c.condition_failures,
                "condition_failure_rate": ratio(c.condition_failures, c.condition_evaluations),
                "effect_applications": c.effect_applications,
                "effect_failures": c.effect_failures,
                "effect_failure_rate": ratio(c.effect_failures, c.effect_applications),
            },
            "event_handlers": {
                "calls": c.event_handler_calls,
                "failures": c.event_handler_failures,
                "failure_rate": ratio(c.event_handler_failures, c.event_handler_calls),
            },
            "health": {
                "is_healthy": self.health.state.is_healthy(),
                "last_check": self.health.last_check,
                "recent_errors": recent,
                "state": self.health.state.as_str(),
                "reason": self.health.reason(),
                "since": self.health.since,
                "since_position": self.health.since_position,
            },
            "timeouts": c.timeouts,
            "panics": c.panics,
            "permission_denials": c.permission_denials,
            "latency_ms": {
                "p50": latency.p50_ms,
                "p95": latency.p95_ms,
                "p99": latency.p99_ms,
                "samples": latency.samples,
            },
            "reset": self.reset.as_ref().map(|r| json!({"at": r.at, "position": r.position})),
        })
    }

    /// One plugin's entry of `GET /health`: the original's shape plus
    /// `event_handler_failure_rate`, `state`, `reason` and `since`. Rates are
    /// over the window; `error_count` counts errors since the last reset. A
    /// remote plugin's has `circuit` too (`state`, `since`, `times_opened`,
    /// the calls `not_sent`).
    pub fn admin_health(&self) -> Value {
        let r = self.window_rates();
        let mut health = json!({
            "is_healthy": self.health.state.is_healthy(),
            "last_check": self.health.last_check,
            "error_count": self.counters.errors,
            "request_error_rate": r.request_errors.value(),
            "condition_failure_rate": r.condition_failures.value(),
            "effect_failure_rate": r.effect_failures.value(),
            "event_handler_failure_rate": r.event_handler_failures.value(),
            "state": self.health.state.as_str(),
            "reason": self.health.reason(),
            "since": self.health.since,
        });
        if self.is_remote()
            && let Some(h) = health.as_object_mut()
        {
            h.insert("circuit".into(), self.circuit_json());
        }
        health
    }
}

fn recent_error_json(e: &RecentError) -> Value {
    json!({
        "timestamp": e.timestamp,
        "position": e.position,
        "error_type": e.error_type.as_str(),
        "error_message": e.error_message,
        "context": e.context,
    })
}

//! What the projection's tests share: events, a dense position counter and
//! helpers to run and compare projections.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use provenant_events::event::format_timestamp;
use provenant_events::{
    Event, EventHash, EventKind, PluginId, Provenance, StreamName, WorldId, kinds,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Projection;
use crate::plugin_metrics::config::HealthConfig;
use crate::plugin_metrics::projection::PluginMetricsProjection;

pub(super) fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()
}

/// The text of `recorded_at` of the event at `position`.
pub(super) fn ts(position: u64) -> String {
    format_timestamp(&(base() + chrono::Duration::seconds(position as i64)))
}

/// An event at `position` in world `w1`, at game time `base +
/// occurred_s` seconds, recorded at `base + position` seconds.
pub(super) fn ev(
    position: u64,
    kind: &str,
    plugin: Option<&str>,
    payload: Value,
    occurred_s: i64,
) -> Event {
    Event {
        position,
        event_id: Uuid::from_u128(u128::from(position)),
        stream: StreamName::new("plugin:test").unwrap(),
        stream_version: position,
        kind: EventKind::new(kind).unwrap(),
        plugin_id: plugin.map(|p| PluginId::new(p).unwrap()),
        world_id: Some(WorldId::new("w1").unwrap()),
        session_id: None,
        occurred_at: base() + chrono::Duration::seconds(occurred_s),
        recorded_at: base() + chrono::Duration::seconds(position as i64),
        provenance: Provenance::default(),
        payload: payload.into(),
        schema_version: 1,
        prev_hash: EventHash::ZERO,
        hash: EventHash::ZERO,
    }
}

pub(super) fn in_world(mut e: Event, world: &str) -> Event {
    e.world_id = Some(WorldId::new(world).unwrap());
    e
}

pub(super) fn in_call(mut e: Event, tick: u128, call_index: u64) -> Event {
    e.provenance.tick_id = Some(Uuid::from_u128(tick));
    e.provenance.tick = Some(tick as u64);
    e.provenance.call_index = Some(call_index);
    e
}

/// Hands out dense positions; game time = position unless told.
pub(super) struct Seq(u64);

impl Seq {
    pub(super) fn new() -> Self {
        Seq(0)
    }
    pub(super) fn at(
        &mut self,
        kind: &str,
        plugin: &str,
        payload: Value,
        occurred_s: i64,
    ) -> Event {
        self.0 += 1;
        ev(self.0, kind, Some(plugin), payload, occurred_s)
    }
    pub(super) fn next(&mut self, kind: &str, plugin: &str, payload: Value) -> Event {
        let t = self.0 as i64 + 1;
        self.at(kind, plugin, payload, t)
    }
}

pub(super) fn cond_ok(us: u64) -> Value {
    json!({"call": "condition", "condition_id": "plugin:p:c", "duration_us": us, "result": true})
}

pub(super) fn cond_failed(msg: &str, us: u64) -> Value {
    json!({"call": "condition", "condition_id": "plugin:p:c", "duration_us": us,
           "error": msg, "fallback": false, "inputs": []})
}

pub(super) fn run(p: &mut PluginMetricsProjection, events: &[Event]) {
    for e in events {
        p.apply(e);
    }
}

pub(super) fn projection() -> PluginMetricsProjection {
    PluginMetricsProjection::new(HealthConfig::default())
}

/// Twelve condition calls of 100 µs in plugin `p`; the ones whose index
/// is in `failing` fail.
pub(super) fn twelve(failing: &[usize]) -> Vec<Event> {
    let mut s = Seq::new();
    (0..12)
        .map(|i| {
            if failing.contains(&i) {
                s.next(kinds::PLUGIN_CALL_FAILED, "p", cond_failed("boom", 100))
            } else {
                s.next(kinds::CONDITION_EVALUATED, "p", cond_ok(100))
            }
        })
        .collect()
}

pub(super) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

pub(super) fn dump(p: &PluginMetricsProjection) -> BTreeMap<String, String> {
    p.plugins()
        .map(|m| (m.plugin_id().to_owned(), serde_json::to_string(m).unwrap()))
        .collect()
}

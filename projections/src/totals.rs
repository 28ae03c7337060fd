//! [`TotalsProjection`]: engine-wide counters for Prometheus and the status
//! answer, in one row keyed `"engine"` that holds a [`Totals`] as JSON:
//!
//! ```json
//! {"ticks_processed": 12, "ticks_rejected": 2,
//!  "ticks_by_source": {"demo": 10, "nats:ticks": 2},
//!  "metrics_resets": 1, "events": 140, "last_position": 140}
//! ```
//!
//! - `events` counts every event applied, of any kind and shape, and
//!   `last_position` is the position of the last one (0 before any).
//! - `ticks_processed` counts `TickProcessed` events and `ticks_by_source`
//!   counts them by their payload's `source`, so the sources sum to
//!   `ticks_processed`. Ticks are counted once: the engine writes one
//!   `TickProcessed` per tick, whose id is derived from the tick id, so a
//!   tick delivered twice does not write a second one.
//! - `ticks_rejected` counts `TickRejected` events; `metrics_resets` counts
//!   `MetricsReset` events.
//!
//! A counted kind whose payload the counter cannot read (not a JSON object;
//! for `TickProcessed`, no string `source`) is counted in `events` only.
//! Counters saturate rather than overflow.

use std::collections::BTreeMap;

use provenant_events::Event;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::projection::Projection;
use provenant_events::{keys, kinds};

/// The key of the one row.
pub const TOTALS_KEY: &str = "engine";

/// The engine-wide counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub ticks_processed: u64,
    pub ticks_rejected: u64,
    /// Processed ticks by `source` (`demo`, `http`, `nats:<subject>`, ...).
    pub ticks_by_source: BTreeMap<String, u64>,
    pub metrics_resets: u64,
    /// Every event applied.
    pub events: u64,
    /// The position of the last event applied; 0 before any (positions
    /// start at 1).
    pub last_position: u64,
}

/// Engine-wide counters folded from the log (name `totals`, version 1).
#[derive(Debug, Default)]
pub struct TotalsProjection {
    totals: Totals,
    dirty: bool,
}

impl TotalsProjection {
    pub const NAME: &'static str = crate::names::TOTALS;
    pub const VERSION: u32 = 1;

    pub fn new() -> Self {
        Self::default()
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }
}

impl Projection for TotalsProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        Self::VERSION
    }

    fn restore(&mut self, rows: Vec<(String, String)>) -> Result<(), String> {
        let mut totals = Totals::default();
        for (key, json) in rows {
            if key != TOTALS_KEY {
                return Err(format!("unexpected totals row {key:?}"));
            }
            totals = serde_json::from_str(&json)
                .map_err(|e| format!("totals row {key:?} does not decode: {e}"))?;
        }
        self.totals = totals;
        self.dirty = false;
        Ok(())
    }

    fn apply(&mut self, event: &Event) {
        let t = &mut self.totals;
        t.events = t.events.saturating_add(1);
        t.last_position = event.position;
        self.dirty = true;
        let kind = event.kind.as_str();
        if !matches!(
            kind,
            kinds::TICK_PROCESSED | kinds::TICK_REJECTED | kinds::METRICS_RESET
        ) {
            return;
        }
        let Some(payload) = event.payload.value().as_object() else {
            return;
        };
        match kind {
            kinds::TICK_PROCESSED => {
                if let Some(source) = payload.get(keys::SOURCE).and_then(Value::as_str) {
                    t.ticks_processed = t.ticks_processed.saturating_add(1);
                    let n = t.ticks_by_source.entry(source.to_owned()).or_default();
                    *n = n.saturating_add(1);
                }
            }
            kinds::TICK_REJECTED => t.ticks_rejected = t.ticks_rejected.saturating_add(1),
            kinds::METRICS_RESET => t.metrics_resets = t.metrics_resets.saturating_add(1),
            _ => {}
        }
    }

    fn take_changes(&mut self) -> Vec<(String, Option<String>)> {
        if !std::mem::take(&mut self.dirty) {
            return Vec::new();
        }
        match serde_json::to_string(&self.totals) {
            Ok(json) => vec![(TOTALS_KEY.to_owned(), Some(json))],
            // Numbers and strings always serialize; never reached.
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize the totals row");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use provenant_events::{EventHash, EventKind, Provenance, SessionId, StreamName, WorldId};
    use serde_json::json;
    use uuid::Uuid;

    fn event(position: u64, kind: &str, payload: Value) -> Event {
        let t = DateTime::parse_from_rfc3339("2026-11-25T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        Event {
            position,
            event_id: Uuid::now_v7(),
            stream: StreamName::new("engine").unwrap(),
            stream_version: position,
            kind: EventKind::new(kind).unwrap(),
            plugin_id: None,
            world_id: Some(WorldId::new("tavern").unwrap()),
            session_id: Some(SessionId::new("s1").unwrap()),
            occurred_at: t,
            recorded_at: t,
            provenance: Provenance::default(),
            payload: payload.into(),
            schema_version: 1,
            prev_hash: EventHash::ZERO,
            hash: EventHash::ZERO,
        }
    }

    fn processed(position: u64, source: &str) -> Event {
        event(
            position,
            kinds::TICK_PROCESSED,
            json!({"events": 3, "source": source, "tick": position, "tick_id": Uuid::nil()}),
        )
    }

    fn sample() -> Vec<Event> {
        vec![
            event(
                1,
                kinds::SESSION_FLAG_SET,
                json!({"key": "plugin:game-stealth:suspicion:npc-1", "value": 0.5}),
            ),
            processed(2, "demo"),
            event(
                3,
                kinds::TICK_REJECTED,
                json!({"bytes": 142, "excerpt": "{", "reason": "not JSON", "source": "demo"}),
            ),
            processed(4, "demo"),
            event(
                5,
                kinds::METRICS_RESET,
                json!({"plugin_id": null, "requested_by": "ops"}),
            ),
            processed(6, "nats:ticks"),
            event(
                7,
                kinds::METRICS_RESET,
                json!({"plugin_id": "game-stealth", "requested_by": "ops"}),
            ),
            event(8, "SomethingNew", json!([1, 2, 3])),
            processed(9, "demo"),
        ]
    }

    fn applied(events: &[Event]) -> TotalsProjection {
        let mut p = TotalsProjection::new();
        for e in events {
            p.apply(e);
        }
        p
    }

    fn row(changes: Vec<(String, Option<String>)>) -> Option<Value> {
        let mut changes = changes.into_iter();
        let (key, json) = changes.next()?;
        assert_eq!(key, TOTALS_KEY);
        assert!(changes.next().is_none());
        Some(serde_json::from_str(&json.unwrap()).unwrap())
    }

    #[test]
    fn counts_a_known_sequence() {
        let mut p = applied(&sample());
        assert_eq!(
            row(p.take_changes()).unwrap(),
            json!({
                "ticks_processed": 4,
                "ticks_rejected": 1,
                "ticks_by_source": {"demo": 3, "nats:ticks": 1},
                "metrics_resets": 2,
                "events": 9,
                "last_position": 9,
            })
        );
        assert_eq!(p.totals().ticks_by_source["demo"], 3);
        assert_eq!(p.name(), "totals");
        assert_eq!(p.version(), 1);
    }

    #[test]
    fn restoring_at_any_point_gives_the_same_row() {
        let events = sample();
        let full = row(applied(&events).take_changes());
        for k in 0..=events.len() {
            let mut first = applied(&events[..k]);
            let stored: Vec<(String, String)> = first
                .take_changes()
                .into_iter()
                .map(|(k, v)| (k, v.unwrap()))
                .collect();
            let stored_row = stored
                .first()
                .map(|(_, json)| serde_json::from_str::<Value>(json).unwrap());
            let mut restored = TotalsProjection::new();
            restored.restore(stored).unwrap();
            assert!(restored.take_changes().is_empty());
            for e in &events[k..] {
                restored.apply(e);
            }
            let got = row(restored.take_changes()).or(stored_row);
            assert_eq!(got, full, "restored after {k} events");
            assert_eq!(restored.totals(), applied(&events).totals());
        }
    }

    #[test]
    fn restore_refuses_rows_that_do_not_decode() {
        let mut p = TotalsProjection::new();
        assert!(p.restore(vec![("engine".into(), "[".into())]).is_err());
        assert!(
            p.restore(vec![("engine".into(), r#"{"events": -1}"#.into())])
                .is_err()
        );
        assert!(p.restore(vec![("other".into(), "{}".into())]).is_err());
        p.restore(Vec::new()).unwrap();
        assert_eq!(p.totals(), &Totals::default());
    }

    #[test]
    fn malformed_payloads_count_as_events_only() {
        let mut p = applied(&sample());
        p.take_changes();
        let before = p.totals().clone();
        let payloads = [
            json!(null),
            json!(1),
            json!("source"),
            json!(["demo"]),
            json!({}),
            json!({"source": 5}),
            json!({"source": null}),
            json!({"source": ["demo"]}),
        ];
        let mut position = before.last_position;
        for payload in &payloads {
            position += 1;
            p.apply(&event(position, kinds::TICK_PROCESSED, payload.clone()));
        }
        for kind in [kinds::TICK_REJECTED, kinds::METRICS_RESET] {
            for payload in &payloads[..4] {
                position += 1;
                p.apply(&event(position, kind, payload.clone()));
            }
        }
        let applied_count = (payloads.len() + 8) as u64;
        let expected = Totals {
            events: before.events + applied_count,
            last_position: position,
            ..before
        };
        assert_eq!(p.totals(), &expected);
    }

    #[test]
    fn take_changes_is_empty_until_an_event_is_applied() {
        let events = sample();
        let mut p = TotalsProjection::new();
        assert!(p.take_changes().is_empty());
        p.apply(&events[0]);
        assert_eq!(row(p.take_changes()).unwrap()["events"], json!(1));
        assert!(p.take_changes().is_empty());
        p.apply(&events[1]);
        p.apply(&events[2]);
        let r = row(p.take_changes()).unwrap();
        assert_eq!(r["ticks_processed"], json!(1));
        assert_eq!(r["ticks_rejected"], json!(1));
        assert_eq!(r["last_position"], json!(3));
        assert!(p.take_changes().is_empty());
    }

    #[test]
    fn counters_saturate() {
        let mut p = TotalsProjection::new();
        let max = serde_json::to_string(&Totals {
            ticks_processed: u64::MAX,
            ticks_by_source: BTreeMap::from([("demo".to_owned(), u64::MAX)]),
            events: u64::MAX,
            ..Totals::default()
        })
        .unwrap();
        p.restore(vec![(TOTALS_KEY.into(), max)]).unwrap();
        p.apply(&processed(u64::MAX, "demo"));
        assert_eq!(p.totals().ticks_processed, u64::MAX);
        assert_eq!(p.totals().ticks_by_source["demo"], u64::MAX);
        assert_eq!(p.totals().events, u64::MAX);
    }
}

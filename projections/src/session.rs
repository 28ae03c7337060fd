//! [`SessionProjection`]: the state of every game session (flags,
//! relationships, NPCs, last tick), one row per session, for the HTTP API.
//!
//! Rows are keyed `"{world_id}/{session_id}"` ([`session_key`]; ids never
//! hold a `/`) and hold a [`SessionState`] as JSON:
//!
//! ```json
//! {"world_id": "tavern", "session_id": "s1",
//!  "flags": {"plugin:game-stealth:suspicion:npc-1": 0.5},
//!  "relationships": {"npc-0": {"affinity": 1.0, "meta": {"last_modified_by": "game-romance"}}},
//!  "npcs": {"npc-1": {"location_id": "bar", "state": {"mood": "calm"}}},
//!  "last_tick": 100,
//!  "updated_position": 42,
//!  "updated_at": "2026-11-25T10:00:00.123456Z"}
//! ```
//!
//! The fold matches the engine's in-memory one (`engine/host/src/state.rs`, `provenant_host::state`):
//!
//! - `SessionFlagSet {key, value}` sets `flags[key] = value`.
//! - `RelationshipUpdated {npc_key, relationship, ..}` sets
//!   `relationships[npc_key] = relationship` (the event carries the full new
//!   value, already merged).
//! - `NpcStateSet {npc_id, location_id?, state?}` creates the NPC if needed;
//!   `location_id` replaces when it is a string, `state` when present.
//! - `TickProcessed {tick, ..}` sets `last_tick = tick` (the last processed
//!   tick in log order).
//!
//! Differences, all on events the engine does not write: an event without
//! both `world_id` and `session_id` touches no session (the engine keeps NPCs
//! per world; an `NpcStateSet` without a session is ignored here). An event
//! whose payload lacks a field the fold needs (`key` and `value`, `npc_key`
//! and `relationship`, `npc_id` as a string, `tick` as an unsigned integer)
//! or is not an object changes nothing, where the engine would store `null`
//! for a missing `value` or `relationship`.
//!
//! Every event a session reads sets its `updated_position` and `updated_at`
//! (the event's `recorded_at`, as [`format_timestamp`] writes it) and marks
//! its row changed, even when a value is set to what it already was.

use std::collections::{BTreeMap, BTreeSet};

use provenant_events::Event;
use provenant_events::event::format_timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::projection::Projection;
use provenant_events::{keys, kinds};

/// The key of a session's row: `"{world}/{session}"`.
pub fn session_key(world: &str, session: &str) -> String {
    let mut key = String::with_capacity(world.len() + session.len() + 1);
    key.push_str(world);
    key.push('/');
    key.push_str(session);
    key
}

/// An NPC as the session's events set it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NpcState {
    /// `null` until an `NpcStateSet` carries a string `location_id`.
    pub location_id: Option<String>,
    /// `null` until an `NpcStateSet` carries a `state`.
    pub state: Value,
}

/// One session's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    pub world_id: String,
    pub session_id: String,
    /// Flag key to value (plugin flags are `plugin:<id>:<key>`).
    pub flags: BTreeMap<String, Value>,
    /// NPC key to the relationship's full value.
    pub relationships: BTreeMap<String, Value>,
    pub npcs: BTreeMap<String, NpcState>,
    /// The `tick` of the session's last `TickProcessed`, if any.
    pub last_tick: Option<u64>,
    /// The position of the last event that changed the session.
    pub updated_position: u64,
    /// The `recorded_at` of that event, RFC 3339 (`...T10:00:00.123456Z`).
    pub updated_at: String,
}

impl SessionState {
    fn new(world_id: &str, session_id: &str) -> Self {
        SessionState {
            world_id: world_id.to_owned(),
            session_id: session_id.to_owned(),
            flags: BTreeMap::new(),
            relationships: BTreeMap::new(),
            npcs: BTreeMap::new(),
            last_tick: None,
            updated_position: 0,
            updated_at: String::new(),
        }
    }

    /// This session's row key.
    pub fn key(&self) -> String {
        session_key(&self.world_id, &self.session_id)
    }
}

/// What one event does to its session, read from the payload before the
/// state is touched, so an unreadable event changes nothing.
enum Change {
    Flag(String, Value),
    Relationship(String, Value),
    Npc {
        npc_id: String,
        location_id: Option<String>,
        state: Option<Value>,
    },
    Tick(u64),
}

impl Change {
    fn read(kind: &str, payload: &Value) -> Option<Change> {
        let p = payload.as_object()?;
        match kind {
            kinds::SESSION_FLAG_SET => Some(Change::Flag(
                p.get(keys::KEY)?.as_str()?.to_owned(),
                p.get(keys::VALUE)?.clone(),
            )),
            kinds::RELATIONSHIP_UPDATED => Some(Change::Relationship(
                p.get(keys::NPC_KEY)?.as_str()?.to_owned(),
                p.get(keys::RELATIONSHIP)?.clone(),
            )),
            kinds::NPC_STATE_SET => Some(Change::Npc {
                npc_id: p.get(keys::NPC_ID)?.as_str()?.to_owned(),
                location_id: p
                    .get(keys::LOCATION_ID)
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                state: p.get(keys::STATE).cloned(),
            }),
            kinds::TICK_PROCESSED => Some(Change::Tick(p.get(keys::TICK)?.as_u64()?)),
            _ => None,
        }
    }
}

/// Session state folded from the log (name `sessions`, version 1).
#[derive(Debug, Default)]
pub struct SessionProjection {
    sessions: BTreeMap<String, SessionState>,
    dirty: BTreeSet<String>,
}

impl SessionProjection {
    pub const NAME: &'static str = crate::names::SESSIONS;
    pub const VERSION: u32 = 1;

    pub fn new() -> Self {
        Self::default()
    }

    /// A session's state, if any event touched it.
    pub fn get(&self, world: &str, session: &str) -> Option<&SessionState> {
        self.sessions.get(&session_key(world, session))
    }

    /// Every session, by key.
    pub fn sessions(&self) -> &BTreeMap<String, SessionState> {
        &self.sessions
    }
}

impl Projection for SessionProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        Self::VERSION
    }

    fn restore(&mut self, rows: Vec<(String, String)>) -> Result<(), String> {
        let mut sessions = BTreeMap::new();
        for (key, json) in rows {
            let state: SessionState = serde_json::from_str(&json)
                .map_err(|e| format!("session row {key:?} does not decode: {e}"))?;
            let expected = state.key();
            if key != expected {
                return Err(format!("session row {key:?} holds session {expected:?}"));
            }
            sessions.insert(key, state);
        }
        self.sessions = sessions;
        self.dirty.clear();
        Ok(())
    }

    fn apply(&mut self, event: &Event) {
        let (Some(world), Some(session)) = (&event.world_id, &event.session_id) else {
            return;
        };
        // The payload is parsed only for the kinds the fold reads.
        if !matches!(
            event.kind.as_str(),
            kinds::SESSION_FLAG_SET
                | kinds::RELATIONSHIP_UPDATED
                | kinds::NPC_STATE_SET
                | kinds::TICK_PROCESSED
        ) {
            return;
        }
        let Some(change) = Change::read(event.kind.as_str(), event.payload.value()) else {
            return;
        };
        let key = session_key(world.as_str(), session.as_str());
        let s = self
            .sessions
            .entry(key.clone())
            .or_insert_with(|| SessionState::new(world.as_str(), session.as_str()));
        match change {
            Change::Flag(k, v) => {
                s.flags.insert(k, v);
            }
            Change::Relationship(k, v) => {
                s.relationships.insert(k, v);
            }
            Change::Npc {
                npc_id,
                location_id,
                state,
            } => {
                let n = s.npcs.entry(npc_id).or_default();
                if let Some(loc) = location_id {
                    n.location_id = Some(loc);
                }
                if let Some(state) = state {
                    n.state = state;
                }
            }
            Change::Tick(tick) => s.last_tick = Some(tick),
        }
        s.updated_position = event.position;
        s.updated_at = format_timestamp(&event.recorded_at);
        self.dirty.insert(key);
    }

    fn take_changes(&mut self) -> Vec<(String, Option<String>)> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut out = Vec::with_capacity(dirty.len());
        for key in dirty {
            let Some(state) = self.sessions.get(&key) else {
                continue;
            };
            match serde_json::to_string(state) {
                Ok(json) => out.push((key, Some(json))),
                // Strings and JSON values always serialize; never reached.
                Err(e) => tracing::error!(key, error = %e, "cannot serialize a session row"),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration, Utc};
    use provenant_events::{EventHash, EventKind, Provenance, SessionId, StreamName, WorldId};
    use serde_json::json;
    use uuid::Uuid;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-25T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn event(
        position: u64,
        kind: &str,
        world: Option<&str>,
        session: Option<&str>,
        payload: Value,
    ) -> Event {
        let t = t0() + Duration::seconds(position as i64);
        Event {
            position,
            event_id: Uuid::now_v7(),
            stream: StreamName::new("engine").unwrap(),
            stream_version: position,
            kind: EventKind::new(kind).unwrap(),
            plugin_id: None,
            world_id: world.map(|w| WorldId::new(w).unwrap()),
            session_id: session.map(|s| SessionId::new(s).unwrap()),
            occurred_at: t,
            recorded_at: t,
            provenance: Provenance::default(),
            payload: payload.into(),
            schema_version: 1,
            prev_hash: EventHash::ZERO,
            hash: EventHash::ZERO,
        }
    }

    fn in_session(position: u64, kind: &str, session: &str, payload: Value) -> Event {
        event(position, kind, Some("tavern"), Some(session), payload)
    }

    /// A small log touching two sessions, plus events that touch none.
    fn sample() -> Vec<Event> {
        vec![
            in_session(
                1,
                kinds::SESSION_FLAG_SET,
                "s1",
                json!({"key": "plugin:game-stealth:suspicion:npc-1", "value": 0.5}),
            ),
            in_session(
                2,
                kinds::RELATIONSHIP_UPDATED,
                "s1",
                json!({"npc_key": "npc-0",
                       "relationship": {"affinity": 1.0, "meta": {"last_modified_by": "game-romance"}},
                       "updates": {"affinity": 1.0}}),
            ),
            in_session(
                3,
                kinds::NPC_STATE_SET,
                "s1",
                json!({"npc_id": "npc-1", "location_id": "bar", "state": {"mood": "calm"}}),
            ),
            event(
                4,
                kinds::NPC_STATE_SET,
                Some("tavern"),
                None,
                json!({"npc_id": "npc-9", "state": {}}),
            ),
            in_session(
                5,
                kinds::SESSION_FLAG_SET,
                "s2",
                json!({"key": "door", "value": "open", "set_by": "game"}),
            ),
            in_session(
                6,
                kinds::NPC_STATE_SET,
                "s1",
                json!({"npc_id": "npc-1", "state": {"mood": "alert"}}),
            ),
            in_session(
                7,
                kinds::TICK_PROCESSED,
                "s1",
                json!({"events": 6, "source": "demo", "tick": 100, "tick_id": Uuid::nil()}),
            ),
            event(
                8,
                "TickRejected",
                None,
                None,
                json!({"bytes": 3, "excerpt": "{{{", "reason": "not JSON", "source": "http"}),
            ),
            in_session(
                9,
                kinds::SESSION_FLAG_SET,
                "s1",
                json!({"key": "plugin:game-stealth:suspicion:npc-1", "value": 0.75}),
            ),
            in_session(
                10,
                kinds::RELATIONSHIP_UPDATED,
                "s1",
                json!({"npc_key": "npc-0",
                       "relationship": {"affinity": 2.0, "meta": {"last_modified_by": "game"}},
                       "updates": {"affinity": 2.0}}),
            ),
            in_session(
                11,
                kinds::NPC_STATE_SET,
                "s1",
                json!({"npc_id": "npc-1", "location_id": "cellar"}),
            ),
            in_session(
                12,
                kinds::TICK_PROCESSED,
                "s2",
                json!({"events": 2, "source": "nats:ticks", "tick": 7, "tick_id": Uuid::nil()}),
            ),
            in_session(
                13,
                kinds::PLUGIN_LOADED,
                "s1",
                json!({"manifest": {}, "granted": [], "registered": []}),
            ),
        ]
    }

    fn rows(changes: Vec<(String, Option<String>)>) -> BTreeMap<String, Value> {
        changes
            .into_iter()
            .map(|(k, v)| (k, serde_json::from_str(&v.unwrap()).unwrap()))
            .collect()
    }

    fn applied(events: &[Event]) -> SessionProjection {
        let mut p = SessionProjection::new();
        for e in events {
            p.apply(e);
        }
        p
    }

    #[test]
    fn folds_a_known_sequence() {
        let mut p = applied(&sample());
        let got = rows(p.take_changes());
        let expected = BTreeMap::from([
            (
                "tavern/s1".to_owned(),
                json!({
                    "world_id": "tavern",
                    "session_id": "s1",
                    "flags": {"plugin:game-stealth:suspicion:npc-1": 0.75},
                    "relationships": {
                        "npc-0": {"affinity": 2.0, "meta": {"last_modified_by": "game"}}
                    },
                    "npcs": {"npc-1": {"location_id": "cellar", "state": {"mood": "alert"}}},
                    "last_tick": 100,
                    "updated_position": 11,
                    "updated_at": "2026-11-25T10:00:11.123456Z",
                }),
            ),
            (
                "tavern/s2".to_owned(),
                json!({
                    "world_id": "tavern",
                    "session_id": "s2",
                    "flags": {"door": "open"},
                    "relationships": {},
                    "npcs": {},
                    "last_tick": 7,
                    "updated_position": 12,
                    "updated_at": "2026-11-25T10:00:12.123456Z",
                }),
            ),
        ]);
        assert_eq!(got, expected);
        let s1 = p.get("tavern", "s1").unwrap();
        assert_eq!(s1.npcs["npc-1"].location_id.as_deref(), Some("cellar"));
        assert!(p.get("tavern", "s3").is_none());
        assert_eq!(session_key("w", "s"), "w/s");
    }

    #[test]
    fn a_new_npc_without_location_has_null_location() {
        let mut p = applied(&[in_session(
            1,
            kinds::NPC_STATE_SET,
            "s1",
            json!({"npc_id": "n", "state": 3}),
        )]);
        let got = rows(p.take_changes());
        assert_eq!(
            got["tavern/s1"]["npcs"],
            json!({"n": {"location_id": null, "state": 3}})
        );
        // A flag can be set to null explicitly.
        p.apply(&in_session(
            2,
            kinds::SESSION_FLAG_SET,
            "s1",
            json!({"key": "k", "value": null}),
        ));
        let got = rows(p.take_changes());
        assert_eq!(got["tavern/s1"]["flags"], json!({"k": null}));
    }

    #[test]
    fn restoring_at_any_point_gives_the_same_rows() {
        let events = sample();
        let full = rows(applied(&events).take_changes());
        for k in 0..=events.len() {
            let mut first = applied(&events[..k]);
            let stored = first.take_changes();
            let mut restored = SessionProjection::new();
            restored
                .restore(
                    stored
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone().unwrap()))
                        .collect(),
                )
                .unwrap();
            assert!(restored.take_changes().is_empty());
            for e in &events[k..] {
                restored.apply(e);
            }
            // The stored rows, overwritten by the rows changed since.
            let mut table = rows(stored);
            table.extend(rows(restored.take_changes()));
            assert_eq!(table, full, "restored after {k} events");
            assert_eq!(restored.sessions(), applied(&events).sessions());
        }
    }

    #[test]
    fn restore_refuses_rows_that_do_not_decode() {
        let mut p = SessionProjection::new();
        assert!(p.restore(vec![("w/s".into(), "{".into())]).is_err());
        assert!(p.restore(vec![("w/s".into(), "{}".into())]).is_err());
        let mut good = applied(&sample()[..1]);
        let (_, json) = good.take_changes().pop().unwrap();
        let json = json.unwrap();
        assert!(p.restore(vec![("w/other".into(), json.clone())]).is_err());
        assert!(p.restore(vec![("tavern/s1".into(), json)]).is_ok());
        assert!(p.get("tavern", "s1").is_some());
    }

    #[test]
    fn malformed_payloads_change_nothing() {
        let base = sample();
        let mut p = applied(&base);
        p.take_changes();
        let before = p.sessions().clone();
        let payloads = [
            json!(null),
            json!(3),
            json!("text"),
            json!([1, 2]),
            json!({}),
            json!({"key": 1, "value": 2}),
            json!({"key": "k"}),
            json!({"value": 2}),
            json!({"npc_key": ["a"], "relationship": {}}),
            json!({"npc_key": "npc-0"}),
            json!({"relationship": {}}),
            json!({"npc_id": 5, "state": {}}),
            json!({"npc_id": null, "location_id": "x"}),
            json!({"location_id": "x", "state": 1}),
            json!({"tick": -1}),
            json!({"tick": 1.5}),
            json!({"tick": "100"}),
            json!({"tick": null}),
            json!({"source": "demo"}),
        ];
        let kinds_read = [
            kinds::SESSION_FLAG_SET,
            kinds::RELATIONSHIP_UPDATED,
            kinds::NPC_STATE_SET,
            kinds::TICK_PROCESSED,
        ];
        let mut position = 100;
        for kind in kinds_read {
            for payload in &payloads {
                // Payloads another kind reads are valid for that kind only.
                let valid = Change::read(kind, payload).is_some();
                if valid {
                    continue;
                }
                position += 1;
                p.apply(&in_session(position, kind, "s1", payload.clone()));
                p.apply(&in_session(position, kind, "s-new", payload.clone()));
            }
        }
        // Well-formed payloads on events without a world or a session.
        for (world, session) in [(None, None), (Some("tavern"), None), (None, Some("s1"))] {
            position += 1;
            p.apply(&event(
                position,
                kinds::SESSION_FLAG_SET,
                world,
                session,
                json!({"key": "k", "value": 1}),
            ));
            p.apply(&event(
                position,
                kinds::TICK_PROCESSED,
                world,
                session,
                json!({"tick": 1}),
            ));
        }
        assert!(p.take_changes().is_empty());
        assert_eq!(p.sessions(), &before);
    }

    #[test]
    fn the_payload_shapes_checked_as_malformed_are_refused() {
        // Guards the test above: each kind refuses these.
        for kind in [
            kinds::SESSION_FLAG_SET,
            kinds::RELATIONSHIP_UPDATED,
            kinds::NPC_STATE_SET,
            kinds::TICK_PROCESSED,
        ] {
            for payload in [json!(null), json!([]), json!({}), json!("x")] {
                assert!(Change::read(kind, &payload).is_none(), "{kind} {payload}");
            }
        }
    }

    #[test]
    fn take_changes_returns_only_touched_rows_once() {
        let events = sample();
        let mut p = applied(&events[..5]);
        let first: Vec<String> = p.take_changes().into_iter().map(|(k, _)| k).collect();
        assert_eq!(first, ["tavern/s1", "tavern/s2"]);
        assert!(p.take_changes().is_empty());
        p.apply(&events[5]);
        p.apply(&events[7]);
        let second = p.take_changes();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].0, "tavern/s1");
        assert!(second[0].1.is_some());
        assert!(p.take_changes().is_empty());
        // Events read by no session mark nothing.
        p.apply(&events[3]);
        p.apply(&events[12]);
        assert!(p.take_changes().is_empty());
    }

    #[test]
    fn name_and_version() {
        let p = SessionProjection::new();
        assert_eq!(p.name(), "sessions");
        assert_eq!(p.version(), 1);
    }
}

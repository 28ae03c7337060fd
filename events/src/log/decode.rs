//! Turning a stored row into an [`Event`], the same way for every backend.
//!
//! A row that fails here is reported with its position rather than failing
//! a whole read: the auditor must be able to say *which* row is damaged.

use chrono::{DateTime, Utc};

use crate::event::{Event, EventHash, Position};
use crate::ids::{EventKind, PluginId, SessionId, StreamName, WorldId};
use crate::payload::Payload;

pub(crate) enum Time {
    Parsed(DateTime<Utc>),
    Text(String),
}

impl Time {
    fn get(self, field: &str) -> Result<DateTime<Utc>, String> {
        match self {
            Time::Parsed(t) => Ok(t),
            Time::Text(s) => DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("{field} {s:?} is not an RFC 3339 timestamp: {e}")),
        }
    }
}

pub(crate) struct Parts {
    pub position: Position,
    pub event_id: String,
    pub stream: String,
    pub stream_version: i64,
    pub kind: String,
    pub plugin_id: Option<String>,
    pub world_id: Option<String>,
    pub session_id: Option<String>,
    pub occurred_at: Time,
    pub recorded_at: Time,
    pub provenance: String,
    pub payload: String,
    pub schema_version: i64,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl Parts {
    pub fn into_event(self) -> Result<Event, String> {
        fn id<T>(
            v: Option<String>,
            f: impl FnOnce(String) -> Result<T, crate::ids::IdError>,
        ) -> Result<Option<T>, String> {
            v.map(f).transpose().map_err(|e| e.to_string())
        }
        let hash = |bytes: &[u8], field: &str| {
            EventHash::from_slice(bytes)
                .ok_or_else(|| format!("{field} is {} bytes, not 32", bytes.len()))
        };
        Ok(Event {
            position: self.position,
            event_id: uuid::Uuid::parse_str(&self.event_id)
                .map_err(|e| format!("event_id {:?} is not a UUID: {e}", self.event_id))?,
            stream: StreamName::new(self.stream).map_err(|e| e.to_string())?,
            stream_version: u64::try_from(self.stream_version)
                .map_err(|_| format!("stream_version {} is negative", self.stream_version))?,
            kind: EventKind::new(self.kind).map_err(|e| e.to_string())?,
            plugin_id: id(self.plugin_id, PluginId::new)?,
            world_id: id(self.world_id, WorldId::new)?,
            session_id: id(self.session_id, SessionId::new)?,
            occurred_at: self.occurred_at.get("occurred_at")?,
            recorded_at: self.recorded_at.get("recorded_at")?,
            provenance: serde_json::from_str(&self.provenance)
                .map_err(|e| format!("provenance is not valid: {e}"))?,
            payload: Payload::from_stored(self.payload)
                .map_err(|e| format!("payload is not valid JSON: {e}"))?,
            schema_version: u32::try_from(self.schema_version)
                .map_err(|_| format!("schema_version {} is out of range", self.schema_version))?,
            prev_hash: hash(&self.prev_hash, "prev_hash")?,
            hash: hash(&self.hash, "hash")?,
        })
    }
}

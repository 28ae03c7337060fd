//! Turning a stored row into an [`Event`], the same way for every backend.
//!
//! A row that fails here is reported with its position rather than failing
//! a whole read: the auditor must be able to say *which* row is damaged.

use chrono::{DateTime, Utc};

use provenant_events::event::{CanonicalFields, Event, EventHash, JsonParts, Position, chain_hash};
use provenant_events::ids::{EventKind, PluginId, SessionId, StreamName, WorldId};
use provenant_events::payload::Payload;

use crate::rows::EventJson;

/// A stored row: its position, and the event or why it could not be read.
pub type RawRow = (Position, Result<Event, String>);
/// A stored row in its JSON form, or why it could not be read.
pub type RawJson = (Position, Result<EventJson, String>);
/// A row as the verifier walks it, or why it could not be read.
pub type RawLink = (Position, Result<Link, String>);

/// An event id as the backend gives it.
pub(crate) enum Id {
    Parsed(uuid::Uuid),
    Text(String),
}

impl Id {
    fn get(self) -> Result<uuid::Uuid, String> {
        match self {
            Id::Parsed(id) => Ok(id),
            Id::Text(s) => {
                uuid::Uuid::parse_str(&s).map_err(|e| format!("event_id {s:?} is not a UUID: {e}"))
            }
        }
    }
}

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
    pub event_id: Id,
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

/// A row's fields, checked and typed; payload and provenance still text.
struct Checked {
    position: Position,
    event_id: uuid::Uuid,
    stream: StreamName,
    stream_version: u64,
    kind: EventKind,
    plugin_id: Option<PluginId>,
    world_id: Option<WorldId>,
    session_id: Option<SessionId>,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    provenance: String,
    payload: String,
    schema_version: u32,
    prev_hash: EventHash,
    hash: EventHash,
}

/// A row as the verifier walks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Link {
    pub position: Position,
    pub prev_hash: EventHash,
    /// The stored hash.
    pub hash: EventHash,
    /// The hash of the row's fields.
    pub computed: EventHash,
}

impl Checked {
    /// The provenance is a JSON object and the payload JSON (checked, not
    /// parsed into values).
    fn check_json(&self) -> Result<(), String> {
        if !self.provenance.trim_start().starts_with('{') {
            return Err("provenance is not valid: not a JSON object".into());
        }
        serde_json::from_str::<serde::de::IgnoredAny>(&self.provenance)
            .map_err(|e| format!("provenance is not valid: {e}"))?;
        serde_json::from_str::<serde::de::IgnoredAny>(&self.payload)
            .map_err(|e| format!("payload is not valid JSON: {e}"))?;
        Ok(())
    }
}

impl Parts {
    /// Everything but the payload and provenance, checked.
    fn check(self) -> Result<Checked, String> {
        fn id<T>(
            v: Option<String>,
            f: impl FnOnce(String) -> Result<T, provenant_events::ids::IdError>,
        ) -> Result<Option<T>, String> {
            v.map(f).transpose().map_err(|e| e.to_string())
        }
        let hash = |bytes: &[u8], field: &str| {
            EventHash::from_slice(bytes)
                .ok_or_else(|| format!("{field} is {} bytes, not 32", bytes.len()))
        };
        Ok(Checked {
            position: self.position,
            event_id: self.event_id.get()?,
            stream: StreamName::new(self.stream).map_err(|e| e.to_string())?,
            stream_version: u64::try_from(self.stream_version)
                .map_err(|_| format!("stream_version {} is negative", self.stream_version))?,
            kind: EventKind::new(self.kind).map_err(|e| e.to_string())?,
            plugin_id: id(self.plugin_id, PluginId::new)?,
            world_id: id(self.world_id, WorldId::new)?,
            session_id: id(self.session_id, SessionId::new)?,
            occurred_at: self.occurred_at.get("occurred_at")?,
            recorded_at: self.recorded_at.get("recorded_at")?,
            schema_version: u32::try_from(self.schema_version)
                .map_err(|_| format!("schema_version {} is out of range", self.schema_version))?,
            prev_hash: hash(&self.prev_hash, "prev_hash")?,
            hash: hash(&self.hash, "hash")?,
            provenance: self.provenance,
            payload: self.payload,
        })
    }

    pub fn into_event(self) -> Result<Event, String> {
        let c = self.check()?;
        Ok(Event {
            position: c.position,
            event_id: c.event_id,
            stream: c.stream,
            stream_version: c.stream_version,
            kind: c.kind,
            plugin_id: c.plugin_id,
            world_id: c.world_id,
            session_id: c.session_id,
            occurred_at: c.occurred_at,
            recorded_at: c.recorded_at,
            provenance: serde_json::from_str(&c.provenance)
                .map_err(|e| format!("provenance is not valid: {e}"))?,
            payload: Payload::from_stored(c.payload)
                .map_err(|e| format!("payload is not valid JSON: {e}"))?,
            schema_version: c.schema_version,
            prev_hash: c.prev_hash,
            hash: c.hash,
        })
    }

    /// What the verifier needs of a row: its place in the chain and the
    /// hash of its fields, computed over the payload and provenance text as
    /// stored (which the log writes in canonical form; any edit of the
    /// stored bytes changes the hash). Both are checked for being JSON, not
    /// parsed: each field being one JSON value is what makes the hashed
    /// concatenation of the fields say which bytes belong to which field.
    pub fn into_link(self) -> Result<Link, String> {
        let c = self.check()?;
        c.check_json()?;
        let canonical = CanonicalFields {
            event_id: &c.event_id,
            stream: &c.stream,
            stream_version: c.stream_version,
            kind: &c.kind,
            plugin_id: c.plugin_id.as_ref(),
            world_id: c.world_id.as_ref(),
            session_id: c.session_id.as_ref(),
            occurred_at: c.occurred_at,
            recorded_at: c.recorded_at,
            provenance: &c.provenance,
            payload: &c.payload,
            schema_version: c.schema_version,
        }
        .encode();
        Ok(Link {
            position: c.position,
            computed: chain_hash(&c.prev_hash, canonical.as_bytes()),
            prev_hash: c.prev_hash,
            hash: c.hash,
        })
    }

    /// The event's JSON form (the bytes [`Event::to_json`] gives) and the
    /// fields a publisher routes by, without building the event: the ids,
    /// times, version and hashes are checked as [`into_event`](Self::into_event)
    /// checks them, the payload and provenance only for being JSON (the
    /// provenance an object), and both are written as stored.
    pub fn into_json(self) -> Result<EventJson, String> {
        let c = self.check()?;
        c.check_json()?;
        let json = JsonParts {
            position: c.position,
            event_id: &c.event_id,
            stream: c.stream.as_str(),
            stream_version: c.stream_version,
            kind: c.kind.as_str(),
            plugin_id: c.plugin_id.as_ref().map(|v| v.as_str()),
            world_id: c.world_id.as_ref().map(|v| v.as_str()),
            session_id: c.session_id.as_ref().map(|v| v.as_str()),
            occurred_at: &c.occurred_at,
            recorded_at: &c.recorded_at,
            provenance: &c.provenance,
            payload: &c.payload,
            schema_version: c.schema_version,
            prev_hash: &c.prev_hash,
            hash: &c.hash,
        }
        .write();
        Ok(EventJson {
            position: c.position,
            event_id: c.event_id,
            kind: c.kind,
            plugin_id: c.plugin_id,
            world_id: c.world_id,
            json,
        })
    }
}

//! The event: what a writer asks to append ([`NewEvent`]) and what the log
//! holds ([`Event`]).
//!
//! The JSON form of [`Event`] uses the field names below and is the same on
//! every surface (log rows, HTTP, NATS). `kind` is an open string: events of
//! kinds this build does not know read, verify and pass through unchanged.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::canonical;
use crate::ids::{EventKind, PluginId, SessionId, StreamName, WorldId};
use crate::payload::Payload;
use crate::text::Text;

/// A global log position. The first event is at 1; positions are dense.
pub type Position = u64;

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EventHash(pub [u8; 32]);

impl EventHash {
    /// The `prev_hash` of the first event.
    pub const ZERO: EventHash = EventHash([0; 32]);

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(EventHash)
    }

    /// Appends the 64 lowercase hex digits to `out`.
    pub fn write_hex(&self, out: &mut String) {
        let mut hex = [0u8; 64];
        // 64 bytes hold 32 bytes as hex, so this cannot fail; hex digits are
        // ASCII.
        if hex::encode_to_slice(self.0, &mut hex).is_ok()
            && let Ok(text) = std::str::from_utf8(&hex)
        {
            out.push_str(text);
        } else {
            out.push_str(&hex::encode(self.0));
        }
    }

    pub fn to_hex(&self) -> String {
        let mut out = [0u8; 64];
        // 64 bytes hold 32 bytes as hex, so this cannot fail.
        if hex::encode_to_slice(self.0, &mut out).is_err() {
            return hex::encode(self.0);
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl fmt::Display for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventHash({})", self.to_hex())
    }
}

/// Why a text is not a hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hash {0:?}: must be 64 hex digits")]
pub struct HashParseError(pub String);

impl FromStr for EventHash {
    type Err = HashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| HashParseError(s.to_owned()))?;
        Ok(EventHash(out))
    }
}

impl Serialize for EventHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for EventHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Timestamps are kept to the microsecond, the precision PostgreSQL stores,
/// so that what is hashed is what reads back.
pub fn truncate_timestamp(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// The current wall time, truncated to the microsecond.
pub fn now() -> DateTime<Utc> {
    truncate_timestamp(Utc::now())
}

/// The one text form of a timestamp: RFC 3339, UTC, six fractional digits,
/// e.g. `2026-11-25T10:00:00.123456Z`. Years are 0000 to 9999 (the log
/// refuses others).
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    let mut out = String::with_capacity(27);
    write_timestamp(&mut out, t);
    out
}

/// Appends [`format_timestamp`]'s text to `out`.
pub fn write_timestamp(out: &mut String, t: &DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        // A leap second is carried in the nanoseconds; keep it in range.
        (t.nanosecond() % 1_000_000_000) / 1_000
    );
}

mod timestamp_serde {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_timestamp(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("invalid timestamp {s:?}: {e}")))
    }
}

/// Who did what, on whose authority, and why: carried by every event.
///
/// Fields are optional because the engine's own events have no plugin or
/// capability. Fields written by a newer version are kept in `extra` so that
/// such events still verify and pass through unchanged.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Provenance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_id: Option<PluginId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_version: Option<Text>,
    /// The `sha256:<hex>` digest of the module a sandboxed (WebAssembly)
    /// plugin ran: exactly which code acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_digest: Option<Text>,
    /// Where a remote plugin was called (`http://…`, `https://…` or
    /// `nats:<subject>`): which service acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_endpoint: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<Text>,
    /// The permission string that allowed the action, e.g. `session:write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick_id: Option<Uuid>,
    /// The tick number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick: Option<u64>,
    /// The index of the plugin call within its tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_instance: Option<Text>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Read field by field: every event read decodes its provenance, and
/// serde's `flatten` (how `extra` would be derived) buffers the whole object
/// first. Same result as the derived form: a known field may be `null` or
/// absent, a key given twice is refused, anything else goes to `extra`.
impl<'de> Deserialize<'de> for Provenance {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;

        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Provenance;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a provenance object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Provenance, A::Error> {
                fn set<'de, A: serde::de::MapAccess<'de>, T: Deserialize<'de>>(
                    map: &mut A,
                    slot: &mut Option<T>,
                    seen: &mut u16,
                    bit: u16,
                    name: &'static str,
                ) -> Result<(), A::Error> {
                    if *seen & bit != 0 {
                        return Err(serde::de::Error::duplicate_field(name));
                    }
                    *seen |= bit;
                    *slot = map.next_value()?;
                    Ok(())
                }
                let mut p = Provenance::default();
                let mut seen = 0u16;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let m = &mut map;
                    let s = &mut seen;
                    match key.as_ref() {
                        "plugin_id" => set(m, &mut p.plugin_id, s, 1, "plugin_id")?,
                        "plugin_version" => set(m, &mut p.plugin_version, s, 2, "plugin_version")?,
                        "plugin_digest" => set(m, &mut p.plugin_digest, s, 2048, "plugin_digest")?,
                        "plugin_endpoint" => {
                            set(m, &mut p.plugin_endpoint, s, 4096, "plugin_endpoint")?
                        }
                        "capability" => set(m, &mut p.capability, s, 4, "capability")?,
                        "permission" => set(m, &mut p.permission, s, 8, "permission")?,
                        "tick_id" => set(m, &mut p.tick_id, s, 16, "tick_id")?,
                        "tick" => set(m, &mut p.tick, s, 32, "tick")?,
                        "call_index" => set(m, &mut p.call_index, s, 64, "call_index")?,
                        "causation_id" => set(m, &mut p.causation_id, s, 128, "causation_id")?,
                        "correlation_id" => {
                            set(m, &mut p.correlation_id, s, 256, "correlation_id")?
                        }
                        "engine_version" => {
                            set(m, &mut p.engine_version, s, 512, "engine_version")?
                        }
                        "engine_instance" => {
                            set(m, &mut p.engine_instance, s, 1024, "engine_instance")?
                        }
                        _ => {
                            let key = key.into_owned();
                            let value: Value = map.next_value()?;
                            if p.extra.insert(key.clone(), value).is_some() {
                                return Err(serde::de::Error::custom(format_args!(
                                    "duplicate field `{key}`"
                                )));
                            }
                        }
                    }
                }
                Ok(p)
            }
        }

        deserializer.deserialize_map(Fields)
    }
}

impl Provenance {
    /// The names of the fields this build knows, sorted.
    pub const FIELDS: [&'static str; 13] = [
        "call_index",
        "capability",
        "causation_id",
        "correlation_id",
        "engine_instance",
        "engine_version",
        "permission",
        "plugin_digest",
        "plugin_endpoint",
        "plugin_id",
        "plugin_version",
        "tick",
        "tick_id",
    ];

    /// The canonical JSON text of this provenance, as stored and hashed: the
    /// canonical encoding of its JSON form, written without building a
    /// `Value` first (this runs for every appended event).
    pub fn canonical(&self) -> String {
        fn s(v: &Option<impl AsRef<str>>) -> Option<String> {
            v.as_ref().map(|v| {
                let v = v.as_ref();
                let mut out = String::with_capacity(v.len() + 2);
                canonical::write_str(&mut out, v);
                out
            })
        }
        fn id(v: &Option<Uuid>) -> Option<String> {
            v.map(|v| format!("\"{}\"", v.hyphenated()))
        }
        let known: [(&str, Option<String>); 13] = [
            ("call_index", self.call_index.map(|t| t.to_string())),
            ("capability", s(&self.capability)),
            ("causation_id", id(&self.causation_id)),
            ("correlation_id", id(&self.correlation_id)),
            ("engine_instance", s(&self.engine_instance)),
            ("engine_version", s(&self.engine_version)),
            ("permission", s(&self.permission)),
            ("plugin_digest", s(&self.plugin_digest)),
            ("plugin_endpoint", s(&self.plugin_endpoint)),
            ("plugin_id", s(&self.plugin_id.as_ref().map(|p| p.as_str()))),
            ("plugin_version", s(&self.plugin_version)),
            ("tick", self.tick.map(|t| t.to_string())),
            ("tick_id", id(&self.tick_id)),
        ];
        let mut fields: Vec<(&str, String)> = known
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .chain(
                self.extra
                    .iter()
                    .map(|(k, v)| (k.as_str(), canonical::to_canonical_string(v))),
            )
            .collect();
        fields.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut out = String::with_capacity(
            fields
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>()
                + 2,
        );
        out.push('{');
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            canonical::write_str(&mut out, k);
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
        out
    }
}

/// What a writer asks the log to append. The log assigns `position`,
/// `stream_version`, `recorded_at`, `prev_hash` and `hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Chosen by the writer (UUIDv7); the idempotency key of the append.
    pub event_id: Uuid,
    pub stream: StreamName,
    pub kind: EventKind,
    pub plugin_id: Option<PluginId>,
    pub world_id: Option<WorldId>,
    pub session_id: Option<SessionId>,
    /// Game time.
    #[serde(with = "timestamp_serde")]
    pub occurred_at: DateTime<Utc>,
    pub provenance: Provenance,
    pub payload: Payload,
    pub schema_version: u32,
}

impl NewEvent {
    /// A new event with a fresh UUIDv7, `occurred_at` = now, schema version 1,
    /// and empty provenance.
    pub fn new(stream: StreamName, kind: EventKind, payload: impl Into<Payload>) -> Self {
        Self::at(stream, kind, payload, now())
    }

    /// As [`NewEvent::new`], for an event that happened at game time
    /// `occurred_at`.
    pub fn at(
        stream: StreamName,
        kind: EventKind,
        payload: impl Into<Payload>,
        occurred_at: DateTime<Utc>,
    ) -> Self {
        NewEvent {
            event_id: Uuid::now_v7(),
            stream,
            kind,
            plugin_id: None,
            world_id: None,
            session_id: None,
            occurred_at,
            provenance: Provenance::default(),
            payload: payload.into(),
            schema_version: 1,
        }
    }
}

/// An event in the log. Immutable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub position: Position,
    pub event_id: Uuid,
    pub stream: StreamName,
    pub stream_version: u64,
    pub kind: EventKind,
    pub plugin_id: Option<PluginId>,
    pub world_id: Option<WorldId>,
    pub session_id: Option<SessionId>,
    /// Game time.
    #[serde(with = "timestamp_serde")]
    pub occurred_at: DateTime<Utc>,
    /// Wall time of the append.
    #[serde(with = "timestamp_serde")]
    pub recorded_at: DateTime<Utc>,
    pub provenance: Provenance,
    pub payload: Payload,
    pub schema_version: u32,
    pub prev_hash: EventHash,
    pub hash: EventHash,
}

impl Event {
    /// The event as JSON, the same value its `Serialize` gives, written
    /// without a detour: payload and provenance go in as their canonical
    /// text. The log's relay path (`provenant_log::EventJson`) writes the same
    /// bytes straight from a stored row.
    pub fn to_json(&self) -> Vec<u8> {
        JsonParts {
            position: self.position,
            event_id: &self.event_id,
            stream: self.stream.as_str(),
            stream_version: self.stream_version,
            kind: self.kind.as_str(),
            plugin_id: self.plugin_id.as_ref().map(|v| v.as_str()),
            world_id: self.world_id.as_ref().map(|v| v.as_str()),
            session_id: self.session_id.as_ref().map(|v| v.as_str()),
            occurred_at: &self.occurred_at,
            recorded_at: &self.recorded_at,
            provenance: &self.provenance.canonical(),
            payload: self.payload.text(),
            schema_version: self.schema_version,
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
        .write()
    }

    /// The canonical bytes of the immutable fields, the input of the hash
    /// after `prev_hash`. `position` is not among them: the chain itself
    /// fixes the order, and the verifier checks that positions are dense.
    pub fn canonical_bytes(&self) -> String {
        CanonicalFields {
            event_id: &self.event_id,
            stream: &self.stream,
            stream_version: self.stream_version,
            kind: &self.kind,
            plugin_id: self.plugin_id.as_ref(),
            world_id: self.world_id.as_ref(),
            session_id: self.session_id.as_ref(),
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            provenance: &self.provenance.canonical(),
            payload: self.payload.text(),
            schema_version: self.schema_version,
        }
        .encode()
    }

    /// `SHA-256(prev_hash || canonical bytes)`, from the fields as they are.
    pub fn compute_hash(&self) -> EventHash {
        chain_hash(&self.prev_hash, self.canonical_bytes().as_bytes())
    }

    /// The writer-chosen part of this event, to compare with a retried append.
    pub fn as_new_event(&self) -> NewEvent {
        NewEvent {
            event_id: self.event_id,
            stream: self.stream.clone(),
            kind: self.kind.clone(),
            plugin_id: self.plugin_id.clone(),
            world_id: self.world_id.clone(),
            session_id: self.session_id.clone(),
            occurred_at: self.occurred_at,
            provenance: self.provenance.clone(),
            payload: self.payload.clone(),
            schema_version: self.schema_version,
        }
    }
}

/// `SHA-256(prev_hash || canonical)`.
pub fn chain_hash(prev_hash: &EventHash, canonical: &[u8]) -> EventHash {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.0);
    hasher.update(canonical);
    EventHash(hasher.finalize().into())
}

/// The hashed fields, borrowed, with payload and provenance already in
/// canonical text. Keys are written in sorted order.
pub struct CanonicalFields<'a> {
    pub event_id: &'a Uuid,
    pub stream: &'a StreamName,
    pub stream_version: u64,
    pub kind: &'a EventKind,
    pub plugin_id: Option<&'a PluginId>,
    pub world_id: Option<&'a WorldId>,
    pub session_id: Option<&'a SessionId>,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub provenance: &'a str,
    pub payload: &'a str,
    pub schema_version: u32,
}

impl CanonicalFields<'_> {
    pub fn encode(&self) -> String {
        use std::fmt::Write;
        fn opt(out: &mut String, v: Option<&str>) {
            match v {
                Some(s) => canonical::write_str(out, s),
                None => out.push_str("null"),
            }
        }
        let mut out = String::with_capacity(self.payload.len() + self.provenance.len() + 320);
        out.push_str("{\"event_id\":\"");
        let _ = write!(out, "{}", self.event_id.hyphenated());
        out.push_str("\",\"kind\":");
        canonical::write_str(&mut out, self.kind.as_str());
        out.push_str(",\"occurred_at\":\"");
        write_timestamp(&mut out, &self.occurred_at);
        out.push_str("\",\"payload\":");
        out.push_str(self.payload);
        out.push_str(",\"plugin_id\":");
        opt(&mut out, self.plugin_id.map(|p| p.as_str()));
        out.push_str(",\"provenance\":");
        out.push_str(self.provenance);
        out.push_str(",\"recorded_at\":\"");
        write_timestamp(&mut out, &self.recorded_at);
        let _ = write!(out, "\",\"schema_version\":{}", self.schema_version);
        out.push_str(",\"session_id\":");
        opt(&mut out, self.session_id.map(|s| s.as_str()));
        out.push_str(",\"stream\":");
        canonical::write_str(&mut out, self.stream.as_str());
        let _ = write!(out, ",\"stream_version\":{}", self.stream_version);
        out.push_str(",\"world_id\":");
        opt(&mut out, self.world_id.map(|w| w.as_str()));
        out.push('}');
        out
    }
}

/// An event's fields, borrowed, as its JSON form writes them: one writer
/// for [`Event::to_json`] and for the log's row-to-JSON path, so the two
/// give the same bytes.
pub struct JsonParts<'a> {
    pub position: Position,
    pub event_id: &'a Uuid,
    pub stream: &'a str,
    pub stream_version: u64,
    pub kind: &'a str,
    pub plugin_id: Option<&'a str>,
    pub world_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub occurred_at: &'a DateTime<Utc>,
    pub recorded_at: &'a DateTime<Utc>,
    /// JSON text, written as is.
    pub provenance: &'a str,
    /// JSON text, written as is.
    pub payload: &'a str,
    pub schema_version: u32,
    pub prev_hash: &'a EventHash,
    pub hash: &'a EventHash,
}

impl JsonParts<'_> {
    pub fn write(&self) -> Vec<u8> {
        use std::fmt::Write as _;
        fn key(out: &mut String, key: &str) {
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
        }
        fn str_field(out: &mut String, name: &str, value: &str) {
            key(out, name);
            canonical::write_str(out, value);
            out.push(',');
        }
        fn opt_field(out: &mut String, name: &str, value: Option<&str>) {
            match value {
                Some(v) => str_field(out, name, v),
                None => {
                    key(out, name);
                    out.push_str("null,");
                }
            }
        }
        // Writing to a String cannot fail.
        let mut out = String::with_capacity(self.payload.len() + self.provenance.len() + 512);
        let _ = write!(out, "{{\"position\":{},", self.position);
        let mut id = Uuid::encode_buffer();
        key(&mut out, "event_id");
        out.push('"');
        out.push_str(self.event_id.hyphenated().encode_lower(&mut id));
        out.push_str("\",");
        str_field(&mut out, "stream", self.stream);
        let _ = write!(out, "\"stream_version\":{},", self.stream_version);
        str_field(&mut out, "kind", self.kind);
        opt_field(&mut out, "plugin_id", self.plugin_id);
        opt_field(&mut out, "world_id", self.world_id);
        opt_field(&mut out, "session_id", self.session_id);
        for (name, t) in [
            ("occurred_at", self.occurred_at),
            ("recorded_at", self.recorded_at),
        ] {
            key(&mut out, name);
            out.push('"');
            write_timestamp(&mut out, t);
            out.push_str("\",");
        }
        out.push_str("\"provenance\":");
        out.push_str(self.provenance);
        out.push_str(",\"payload\":");
        out.push_str(self.payload);
        let _ = write!(out, ",\"schema_version\":{},", self.schema_version);
        for (name, hash, end) in [("prev_hash", self.prev_hash, ","), ("hash", self.hash, "}")] {
            key(&mut out, name);
            out.push('"');
            hash.write_hex(&mut out);
            out.push('"');
            out.push_str(end);
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Event {
        let t = DateTime::parse_from_rfc3339("2026-11-25T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut e = Event {
            position: 1,
            event_id: Uuid::parse_str("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").unwrap(),
            stream: StreamName::new("world:w1").unwrap(),
            stream_version: 1,
            kind: EventKind::new("WorldConfigured").unwrap(),
            plugin_id: None,
            world_id: Some(WorldId::new("w1").unwrap()),
            session_id: None,
            occurred_at: t,
            recorded_at: t,
            provenance: Provenance {
                engine_version: Some("0.1.0".into()),
                ..Provenance::default()
            },
            payload: json!({"name": "W", "meta": {"b": 2, "a": 1}}).into(),
            schema_version: 1,
            prev_hash: EventHash::ZERO,
            hash: EventHash::ZERO,
        };
        e.hash = e.compute_hash();
        e
    }

    #[test]
    fn canonical_fields_are_sorted_canonical_json() {
        let e = sample();
        let text = e.canonical_bytes();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(canonical::to_canonical_string(&value), text);
        assert!(text.starts_with("{\"event_id\":\"0193a1b2-"), "{text}");
        assert!(text.contains("\"payload\":{\"meta\":{\"a\":1,\"b\":2},\"name\":\"W\"}"));
    }

    #[test]
    fn to_json_is_the_serde_json_form() {
        let mut e = sample();
        e.plugin_id = Some(PluginId::new("game-stealth").unwrap());
        e.provenance.plugin_id = e.plugin_id.clone();
        e.payload = json!({"quote": "a \"b\" \u{1}", "n": 1.5}).into();
        let fast: Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(fast, serde_json::to_value(&e).unwrap());
        let back: Event = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn json_form_round_trips_and_verifies() {
        let e = sample();
        let text = serde_json::to_string(&e).unwrap();
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.compute_hash(), e.hash);
        assert!(text.contains("\"occurred_at\":\"2026-11-25T10:00:00.123456Z\""));
    }

    #[test]
    fn any_change_to_a_hashed_field_changes_the_hash() {
        let e = sample();
        let mut edits: Vec<Event> = Vec::new();
        let mut x = e.clone();
        x.payload = json!({"name": "W2", "meta": {"b": 2, "a": 1}}).into();
        edits.push(x);
        let mut x = e.clone();
        x.provenance.permission = Some("world:read".into());
        edits.push(x);
        let mut x = e.clone();
        x.stream_version = 2;
        edits.push(x);
        let mut x = e.clone();
        x.kind = EventKind::new("Other").unwrap();
        edits.push(x);
        let mut x = e.clone();
        x.prev_hash = EventHash([1; 32]);
        edits.push(x);
        let mut x = e.clone();
        x.recorded_at += chrono::Duration::microseconds(1);
        edits.push(x);
        for edited in edits {
            assert_ne!(edited.compute_hash(), e.hash, "{edited:?}");
        }
    }

    #[test]
    fn unknown_provenance_fields_pass_through_and_stay_hashed() {
        let e = sample();
        let mut value = serde_json::to_value(&e).unwrap();
        value["provenance"]["signed_by"] = json!("future-engine");
        let mut newer: Event = serde_json::from_value(value).unwrap();
        assert_eq!(newer.provenance.extra["signed_by"], json!("future-engine"));
        newer.hash = newer.compute_hash();
        let again: Event = serde_json::from_str(&serde_json::to_string(&newer).unwrap()).unwrap();
        assert_eq!(again.compute_hash(), newer.hash);
        assert_ne!(newer.hash, e.hash);
    }

    #[test]
    fn provenance_canonical_is_the_canonical_encoding_of_its_json() {
        let mut full = Provenance {
            plugin_id: Some(PluginId::new("game-stealth").unwrap()),
            plugin_version: Some("1.0.0 \"beta\"".into()),
            plugin_digest: Some("sha256:00ff".into()),
            plugin_endpoint: Some("nats:behaviour.tavern".into()),
            capability: Some("session.write".into()),
            permission: Some("session:write".into()),
            tick_id: Some(Uuid::now_v7()),
            tick: Some(u64::MAX),
            call_index: Some(7),
            causation_id: Some(Uuid::now_v7()),
            correlation_id: Some(Uuid::now_v7()),
            engine_version: Some("0.1.0".into()),
            engine_instance: Some("é-1".into()),
            extra: BTreeMap::new(),
        };
        full.extra
            .insert("a_first".into(), json!({"z": 1, "a": [1.5]}));
        full.extra.insert("zz".into(), json!(null));
        for p in [full, Provenance::default()] {
            let generic = canonical::to_canonical_string(&serde_json::to_value(&p).unwrap());
            assert_eq!(p.canonical(), generic);
        }
    }

    #[test]
    fn a_field_this_build_names_hashes_as_it_did_when_it_was_extra() {
        let named = Provenance {
            call_index: Some(3),
            ..Provenance::default()
        };
        let mut extra = Provenance::default();
        extra.extra.insert("call_index".into(), json!(3));
        assert_eq!(named.canonical(), extra.canonical());
        let read: Provenance = serde_json::from_str(&extra.canonical()).unwrap();
        assert_eq!(read, named);
    }

    #[test]
    fn provenance_reads_field_by_field_like_its_derived_form() {
        let read = |text: &str| serde_json::from_str::<Provenance>(text);
        let p = read(
            r#"{"tick":7,"plugin_id":"game-stealth","permission":null,"zz":{"a":[1]},"a\u0062":true}"#,
        )
        .unwrap();
        assert_eq!(p.tick, Some(7));
        assert_eq!(
            p.plugin_id.as_ref().map(|p| p.as_str()),
            Some("game-stealth")
        );
        assert_eq!(p.permission, None);
        assert_eq!(p.extra.get("zz"), Some(&json!({"a": [1]})));
        // An escaped key is the key it spells.
        assert_eq!(p.extra.get("ab"), Some(&json!(true)));
        assert_eq!(read("{}").unwrap(), Provenance::default());
        // Wrong types, a key twice, not an object: refused.
        for bad in [
            r#"{"tick":"seven"}"#,
            r#"{"tick_id":"not-a-uuid"}"#,
            r#"{"plugin_id":"bad id!"}"#,
            r#"{"tick":1,"tick":2}"#,
            r#"{"x":1,"x":2}"#,
            "[1,2]",
            "null",
        ] {
            assert!(read(bad).is_err(), "{bad} should be refused");
        }
        // The same value through serde_json::Value as through text.
        let value = json!({"call_index": 3, "engine_instance": "e1", "extra_field": [1, 2]});
        let from_value: Provenance = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(from_value, read(&value.to_string()).unwrap());
        assert_eq!(serde_json::to_value(&from_value).unwrap(), value);
    }

    #[test]
    fn timestamps_have_one_text_form() {
        let t = DateTime::parse_from_rfc3339("0999-01-02T03:04:05.000007+02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_timestamp(&t), "0999-01-02T01:04:05.000007Z");
        assert_eq!(
            format_timestamp(&t),
            t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
        );
    }

    #[test]
    fn hashes_parse_and_print_as_hex() {
        let h = EventHash([0xab; 32]);
        assert_eq!(h.to_hex().parse::<EventHash>().unwrap(), h);
        assert!("xyz".parse::<EventHash>().is_err());
    }
}

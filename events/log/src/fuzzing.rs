//! Not part of the API: the row decoder ([`crate::decode`]) reachable from
//! outside the crate, for the fuzz targets (`tests/fuzz`). Nothing here
//! changes what the backends do; each function runs the same code a read
//! runs on a row.

use provenant_events::event::{Event, EventHash, Position};

use crate::decode::{Id, Parts, Time};
use crate::rows::EventJson;

/// A stored row as SQLite gives it: the event id and the timestamps as
/// text, the rest as the columns hold them. (PostgreSQL gives the id and
/// the timestamps already parsed, and is otherwise decoded the same way.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRow {
    pub position: Position,
    pub event_id: String,
    pub stream: String,
    pub stream_version: i64,
    pub kind: String,
    pub plugin_id: Option<String>,
    pub world_id: Option<String>,
    pub session_id: Option<String>,
    pub occurred_at: String,
    pub recorded_at: String,
    pub provenance: String,
    pub payload: String,
    pub schema_version: i64,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// What the verifier reads of a row: its `prev_hash`, its stored hash and
/// the hash of its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkHashes {
    pub prev_hash: EventHash,
    pub hash: EventHash,
    pub computed: EventHash,
}

impl TextRow {
    fn parts(&self) -> Parts {
        Parts {
            position: self.position,
            event_id: Id::Text(self.event_id.clone()),
            stream: self.stream.clone(),
            stream_version: self.stream_version,
            kind: self.kind.clone(),
            plugin_id: self.plugin_id.clone(),
            world_id: self.world_id.clone(),
            session_id: self.session_id.clone(),
            occurred_at: Time::Text(self.occurred_at.clone()),
            recorded_at: Time::Text(self.recorded_at.clone()),
            provenance: self.provenance.clone(),
            payload: self.payload.clone(),
            schema_version: self.schema_version,
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
        }
    }

    /// The event a read gives for this row (`EventLog::read` and the like).
    pub fn decode_event(&self) -> Result<Event, String> {
        self.parts().into_event()
    }

    /// The JSON form the relay reads straight from this row.
    pub fn decode_json(&self) -> Result<EventJson, String> {
        self.parts().into_json()
    }

    /// What `audit verify` reads of this row.
    pub fn decode_link(&self) -> Result<LinkHashes, String> {
        self.parts().into_link().map(|l| LinkHashes {
            prev_hash: l.prev_hash,
            hash: l.hash,
            computed: l.computed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row as the log writes it (a seed of the `log_row` fuzz target).
    fn row() -> TextRow {
        let hash = |s: &str| hex::decode(s).unwrap();
        TextRow {
            position: 2,
            event_id: "0190b3a0-0000-7000-8000-00000000000b".into(),
            stream: "session:tavern/s1".into(),
            stream_version: 1,
            kind: "SessionFlagSet".into(),
            plugin_id: Some("game-stealth".into()),
            world_id: Some("tavern".into()),
            session_id: Some("s1".into()),
            occurred_at: "2026-11-25T10:00:00.000000Z".into(),
            recorded_at: "2026-11-25T10:00:00.223456Z".into(),
            provenance: r#"{"call_index":2,"capability":"session","engine_version":"0.1.0","permission":"session:write","plugin_id":"game-stealth","plugin_version":"1.0.0","tick":3,"tick_id":"0190b3a0-0000-7000-8000-000000000001"}"#.into(),
            payload: r#"{"key":"suspicion","set_by":"game-stealth","value":0.25}"#.into(),
            schema_version: 1,
            prev_hash: hash("1057d534368bcd4fe6606fbd6be96097a1d04d37d5f0f4d3146309793d2533e0"),
            hash: hash("fa62bc499d4e5bdeba2b72b7825cf907544276d7751ade7809137694fd43e535"),
        }
    }

    #[test]
    fn a_stored_row_decodes_the_same_way_on_every_path() {
        let row = row();
        let event = row.decode_event().unwrap();
        assert_eq!(event.position, 2);
        assert_eq!(event.payload["value"], 0.25);
        let json = row.decode_json().unwrap();
        assert_eq!(json.json, event.to_json());
        let link = row.decode_link().unwrap();
        assert_eq!(link.computed, link.hash);
        assert_eq!(link.hash, event.hash);
    }

    #[test]
    fn a_damaged_row_is_an_error_not_a_panic() {
        let mut bad = row();
        bad.hash.pop();
        assert!(bad.decode_event().unwrap_err().contains("31 bytes"));
        let mut bad = row();
        bad.provenance = "[]".into();
        assert!(bad.decode_link().unwrap_err().contains("provenance"));
        let mut bad = row();
        bad.payload.push('x');
        assert!(bad.decode_json().unwrap_err().contains("payload"));
    }
}

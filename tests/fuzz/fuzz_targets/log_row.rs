//! A stored row of the log, decoded as a read, the relay and the verifier
//! decode it (`provenant_log::fuzzing::TextRow`, the SQLite form: the id
//! and the timestamps as text).
//!
//! Input: the row's columns, one per line, in the order of the log's
//! `SELECT`: position, event_id, stream, stream_version, kind, plugin_id,
//! world_id, session_id, occurred_at, recorded_at, provenance, payload,
//! schema_version, prev_hash, hash. Numbers are decimal; `null` is SQL NULL
//! for the three optional ids; hashes are hex (other text is taken as the
//! raw bytes). Input that does not split so is skipped.
//!
//! Checks: no decoder panics; a row that reads as an event also reads for
//! the relay and the verifier, with the same fields; the JSON the relay
//! sends and `Event::to_json` are JSON, and the same bytes when the row's
//! payload and provenance are stored canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provenant_events::canonical;
use provenant_log::fuzzing::TextRow;

fn hex_or_raw(line: &str) -> Vec<u8> {
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = line.as_bytes();
    if bytes.len() % 2 == 0 {
        let decoded: Option<Vec<u8>> = bytes
            .chunks(2)
            .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
            .collect();
        if let Some(d) = decoded {
            return d;
        }
    }
    bytes.to_vec()
}

fn row(text: &str) -> Option<TextRow> {
    let lines: Vec<&str> = text.split('\n').collect();
    let [
        position,
        event_id,
        stream,
        stream_version,
        kind,
        plugin_id,
        world_id,
        session_id,
        occurred_at,
        recorded_at,
        provenance,
        payload,
        schema_version,
        prev_hash,
        hash,
    ] = lines.as_slice()
    else {
        return None;
    };
    let opt = |s: &str| (s != "null").then(|| s.to_owned());
    Some(TextRow {
        position: position.parse().ok()?,
        event_id: event_id.to_string(),
        stream: stream.to_string(),
        stream_version: stream_version.parse().ok()?,
        kind: kind.to_string(),
        plugin_id: opt(plugin_id),
        world_id: opt(world_id),
        session_id: opt(session_id),
        occurred_at: occurred_at.to_string(),
        recorded_at: recorded_at.to_string(),
        provenance: provenance.to_string(),
        payload: payload.to_string(),
        schema_version: schema_version.parse().ok()?,
        prev_hash: hex_or_raw(prev_hash),
        hash: hex_or_raw(hash),
    })
}

fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(row) = row(text) else {
        return;
    };
    let event = row.decode_event();
    let json = row.decode_json();
    let link = row.decode_link();
    if let Ok(json) = &json {
        assert!(
            is_json(&json.json),
            "{}",
            String::from_utf8_lossy(&json.json)
        );
    }
    let Ok(event) = event else {
        return;
    };
    let json =
        json.unwrap_or_else(|e| panic!("a row read as an event is refused by the relay: {e}"));
    let link =
        link.unwrap_or_else(|e| panic!("a row read as an event is refused by the verifier: {e}"));
    assert_eq!(event.position, row.position);
    assert_eq!(json.position, row.position);
    assert_eq!(json.event_id, event.event_id);
    assert_eq!(json.kind, event.kind);
    assert_eq!(json.plugin_id, event.plugin_id);
    assert_eq!(json.world_id, event.world_id);
    assert_eq!(link.prev_hash, event.prev_hash);
    assert_eq!(link.hash, event.hash);
    let event_json = event.to_json();
    assert!(
        is_json(&event_json),
        "{}",
        String::from_utf8_lossy(&event_json)
    );
    let stored_canonical = event.provenance.canonical() == row.provenance
        && serde_json::from_str(&row.payload)
            .is_ok_and(|v| canonical::to_canonical_string(&v) == row.payload);
    if stored_canonical {
        assert_eq!(
            String::from_utf8_lossy(&event_json),
            String::from_utf8_lossy(&json.json)
        );
    }
});

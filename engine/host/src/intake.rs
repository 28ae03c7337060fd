//! Ticks as they arrive, over NATS or HTTP: bytes in, a [`Tick`] or a
//! [`Rejection`] out. Pure: a bad tick never panics the engine; it becomes
//! a `TickRejected` event with the reason and a bounded excerpt.

use chrono::Datelike;
use provenant_events::{EventKind, NewEvent, StreamName, keys, kinds};

use crate::json_object::ObjectOnly;
use serde_json::json;

use crate::tick::Tick;

/// The largest tick the engine reads.
pub const MAX_TICK_BYTES: usize = 1024 * 1024;

/// How much of a rejected tick its event keeps.
pub const EXCERPT_BYTES: usize = 256;

/// Why a tick was refused, with what is kept of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    /// The first [`EXCERPT_BYTES`] of the body (invalid UTF-8 replaced).
    pub excerpt: String,
    /// The size of the whole body.
    pub bytes: usize,
}

/// Reads one tick.
pub fn parse_tick(body: &[u8]) -> Result<Tick, Rejection> {
    let reject = |reason: String| Rejection {
        reason,
        excerpt: excerpt(body),
        bytes: body.len(),
    };
    if body.len() > MAX_TICK_BYTES {
        return Err(reject(format!(
            "the tick is {} bytes, larger than the limit of {MAX_TICK_BYTES} (1 MiB)",
            body.len()
        )));
    }
    let tick: Tick = serde_json::from_slice::<ObjectOnly<Tick>>(body)
        .map(|o| o.0)
        .map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Data => "not a valid tick",
                _ => "not JSON",
            };
            reject(format!("{what}: {e}"))
        })?;
    // The log stores years 0000 to 9999 (UTC) and refuses an event outside
    // them, with the whole append it is in; chrono reads more (`-026`, an
    // offset that moves 0000 or 9999 across the boundary).
    if !(0..=9999).contains(&tick.at.year()) {
        return Err(reject(format!(
            "not a valid tick: at is {}, outside the years 0000 to 9999 (UTC)",
            tick.at
        )));
    }
    if let Some(context) = tick.context.as_ref().and_then(|c| c.as_object())
        && let Some(key) = NPC_KEYS.iter().find(|k| context.contains_key(**k))
    {
        return Err(reject(format!(
            "not a valid tick: the context key {key:?} is reserved: npc_id, location_id and npc_state are what a plugin call records of the NPC it is about"
        )));
    }
    Ok(tick)
}

/// Keys a call's recorded context gives the NPC it is about, which the
/// tick's own context therefore may not use (or a replay could not tell
/// the two apart).
const NPC_KEYS: [&str; 3] = [keys::NPC_ID, keys::LOCATION_ID, keys::NPC_STATE];

/// The `TickRejected` event for a refused tick; `source` says where it came
/// from (`nats:<subject>` or `http`).
pub fn rejected_event(rejection: &Rejection, source: &str) -> NewEvent {
    let payload = json!({
        keys::REASON: rejection.reason,
        "excerpt": rejection.excerpt,
        "bytes": rejection.bytes,
        keys::SOURCE: source,
    });
    NewEvent::new(
        StreamName::engine(),
        const { EventKind::known(kinds::TICK_REJECTED) },
        payload,
    )
}

pub fn excerpt(body: &[u8]) -> String {
    let mut end = body.len().min(EXCERPT_BYTES);
    // Cut at a character boundary when the body is UTF-8 there.
    while end > 0 && end < body.len() && (body[end] & 0xc0) == 0x80 {
        end -= 1;
    }
    String::from_utf8_lossy(&body[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found in review: serde reads a struct from an array of its fields,
    /// so a tick, an NPC or the session updates written as arrays passed.
    #[test]
    fn a_tick_and_its_parts_given_as_arrays_are_refused() {
        let good = r#"{"tick_id": "0190b3a0-0000-7000-8000-000000000001", "world_id": "w", "session_id": "s", "tick": 1, "at": "2026-01-01T00:00:00Z", "npcs": [{"npc_id": "n"}], "session_updates": {"flags": {}}}"#;
        assert!(parse_tick(good.as_bytes()).is_ok());
        for bad in [
            r#"["0190b3a0-0000-7000-8000-000000000001", "w", "s", 1, "2026-01-01T00:00:00Z"]"#,
            r#"{"tick_id": "0190b3a0-0000-7000-8000-000000000001", "world_id": "w", "session_id": "s", "tick": 1, "at": "2026-01-01T00:00:00Z", "npcs": [["n"]]}"#,
            r#"{"tick_id": "0190b3a0-0000-7000-8000-000000000001", "world_id": "w", "session_id": "s", "tick": 1, "at": "2026-01-01T00:00:00Z", "session_updates": [{}, {}]}"#,
        ] {
            let r = parse_tick(bad.as_bytes()).unwrap_err();
            assert!(r.reason.contains("a JSON object"), "{bad}: {}", r.reason);
        }
    }

    /// Found by Schemathesis: JSON Schema counts `23.0` as an integer, and
    /// the document says `tick` is one; it was refused as a float.
    #[test]
    fn a_tick_number_written_with_a_zero_fraction_is_that_integer() {
        let body = |n: &str| {
            format!(
                r#"{{"tick_id": "0190b3a0-0000-7000-8000-000000000001", "world_id": "w", "session_id": "s", "tick": {n}, "at": "2026-01-01T00:00:00Z"}}"#
            )
        };
        assert_eq!(parse_tick(body("23.0").as_bytes()).unwrap().tick, 23);
        assert_eq!(parse_tick(body("2.3e1").as_bytes()).unwrap().tick, 23);
        assert_eq!(parse_tick(body("23").as_bytes()).unwrap().tick, 23);
        for bad in [
            "23.5",
            "-1",
            "-1.0",
            "1e300",
            "9007199254740993.0",
            "\"23\"",
        ] {
            let r = parse_tick(body(bad).as_bytes()).unwrap_err();
            assert!(
                r.reason.starts_with("not a valid tick"),
                "{bad}: {}",
                r.reason
            );
        }
    }

    const GOOD: &str = r#"{"tick_id": "0190b3a0-0000-7000-8000-000000000001", "world_id": "tavern",
        "session_id": "s1", "tick": 3, "at": "2026-11-25T10:00:00Z",
        "npcs": [{"npc_id": "guard", "location_id": "hall", "state": {"disguise": true}}]}"#;

    #[test]
    fn a_good_tick_reads() {
        let t = parse_tick(GOOD.as_bytes()).unwrap();
        assert_eq!(t.world_id.as_str(), "tavern");
        assert_eq!(t.npcs[0].npc_id, "guard");
    }

    #[test]
    fn bad_ticks_are_refused_with_a_reason_and_a_bounded_excerpt() {
        let cases: [(&[u8], &str); 7] = [
            (b"not json", "not JSON"),
            (b"{\"tick_id\": 1}", "not a valid tick"),
            (
                br#"{"tick_id": "0190b3a0-0000-7000-8000-000000000001", "world_id": "a.b", "session_id": "s", "tick": 1, "at": "2026-11-25T10:00:00Z"}"#,
                "invalid world id",
            ),
            (
                br#"{"tick_id": "0190b3a0-0000-7000-8000-000000000001", "world_id": "w", "session_id": "s", "tick": -1, "at": "2026-11-25T10:00:00Z"}"#,
                "not a valid tick",
            ),
            (
                br#"{"tick_id": "0190b3a0-0000-7000-8000-000000000001", "world_id": "w", "session_id": "s", "tick": 1, "at": "2026-11-25T10:00:00Z", "surprise": 1}"#,
                "unknown field",
            ),
            (&[0xff, 0xfe, b'{'], "not JSON"),
            (
                br#"{"tick_id": "0190b3a0-0000-7000-8000-000000000001", "world_id": "w", "session_id": "s", "tick": 1, "at": "2026-11-25T10:00:00Z", "context": {"weather": "rain", "location_id": "bar"}}"#,
                "the context key \"location_id\" is reserved",
            ),
        ];
        for (body, expect) in cases {
            let r = parse_tick(body).unwrap_err();
            assert!(r.reason.contains(expect), "{:?}: {}", body, r.reason);
            assert_eq!(r.bytes, body.len());
            let e = rejected_event(&r, "http");
            assert_eq!(e.kind.as_str(), kinds::TICK_REJECTED);
            assert_eq!(e.payload["reason"], r.reason.as_str());
        }
    }

    /// Found by the `tick_intake` fuzz target (tests/fuzz): chrono reads
    /// signed years (`-026`), and an offset moves year 0000 or 9999 out of
    /// range in UTC. The log refuses an event outside the years 0000 to 9999,
    /// and with it every other tick of the same group commit.
    #[test]
    fn a_tick_at_a_time_the_log_cannot_store_is_refused() {
        let at = |at: &str| {
            format!(
                r#"{{"tick_id": "0190b3a0-0000-7000-8000-000000000001", "world_id": "w", "session_id": "s", "tick": 0, "at": "{at}"}}"#
            )
        };
        let fuzzed = br#"{"tick_id": "0190b3a0-0000-7000-8000-000000000001", "world_id": "w", "session_id": "sooooooooooooo", "tick": 0, "at": "-026-11-25T10:00:00Z", "context": {"npc_idweather": "ra&in", "lontionid_": "b"}}"#;
        let bad = [
            fuzzed.to_vec(),
            at("-026-11-25T10:00:00Z").into_bytes(),
            at("0000-01-01T00:00:00+01:00").into_bytes(),
            at("9999-12-31T23:30:00-01:00").into_bytes(),
            at("+10000-01-01T00:00:00Z").into_bytes(),
        ];
        for body in bad {
            let r = parse_tick(&body).unwrap_err();
            assert!(r.reason.starts_with("not a valid tick"), "{}", r.reason);
            assert!(r.reason.contains("0000 to 9999"), "{}", r.reason);
        }
        for good in ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"] {
            let t = parse_tick(at(good).as_bytes()).unwrap();
            assert_eq!(
                provenant_events::event::format_timestamp(&t.at)[..4],
                good[..4]
            );
        }
    }

    #[test]
    fn a_tick_over_one_mebibyte_is_refused_without_reading_it() {
        let mut body = GOOD.as_bytes().to_vec();
        body.resize(MAX_TICK_BYTES + 1, b' ');
        let r = parse_tick(&body).unwrap_err();
        assert!(r.reason.contains("larger than the limit"), "{}", r.reason);
        assert_eq!(r.excerpt.len(), EXCERPT_BYTES);
    }

    #[test]
    fn the_excerpt_never_splits_a_character() {
        let body = "é".repeat(EXCERPT_BYTES);
        let r = parse_tick(body.as_bytes()).unwrap_err();
        assert!(r.excerpt.len() <= EXCERPT_BYTES);
        assert!(r.excerpt.chars().all(|c| c == 'é'), "{}", r.excerpt);
    }
}

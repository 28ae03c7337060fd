//! Tick intake: the bytes of a tick as `POST /v1/ticks` and the NATS
//! consumer receive them, through `provenant_host::intake::parse_tick`.
//!
//! Checks: it never panics; a refusal keeps the body's size and a bounded
//! excerpt, and its `TickRejected` event can be built; an accepted tick's
//! time is one the log stores (years 0000 to 9999 in UTC: the log refuses
//! an event outside them, and with it the whole group commit the tick's
//! events are in); an accepted tick written back as JSON reads again as the
//! same tick.
#![no_main]

use chrono::Datelike;
use libfuzzer_sys::fuzz_target;
use provenant_host::intake::{EXCERPT_BYTES, parse_tick, rejected_event};

fuzz_target!(|body: &[u8]| {
    match parse_tick(body) {
        Ok(tick) => {
            assert!(
                (0..=9999).contains(&tick.at.year()),
                "an accepted tick is at {}, outside the years the log stores",
                tick.at
            );
            let text = serde_json::to_vec(&tick).expect("an accepted tick serializes");
            let again = parse_tick(&text).unwrap_or_else(|r| {
                panic!(
                    "an accepted tick, written back, is refused: {}\n{}",
                    r.reason,
                    String::from_utf8_lossy(&text)
                )
            });
            assert_eq!(again, tick, "{}", String::from_utf8_lossy(&text));
        }
        Err(rejection) => {
            assert_eq!(rejection.bytes, body.len());
            assert!(!rejection.reason.is_empty());
            // Each byte of the excerpt's source is at most one U+FFFD (3 bytes).
            assert!(rejection.excerpt.len() <= 3 * EXCERPT_BYTES);
            let event = rejected_event(&rejection, "http");
            assert_eq!(event.payload["bytes"], body.len());
        }
    }
});

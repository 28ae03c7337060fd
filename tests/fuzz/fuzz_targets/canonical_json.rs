//! The canonical JSON encoding (`provenant_events::canonical`) and the
//! payload read from stored text (`Payload::from_stored`).
//!
//! Checks, for any bytes that `serde_json` reads as a value: it never
//! panics; encoding is a fixed point (the canonical text reads back as the
//! same value, and encoding that gives the same text); an object written
//! member by member (`canonical::object`) gives the same text as the whole
//! value; a payload stored as that text reads as the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provenant_events::canonical::{self, Canonical, Member};
use provenant_events::payload::Payload;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // The stored-payload path takes any text: JSON or a clear error.
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(payload) = Payload::from_stored(text.to_owned())
    {
        assert_eq!(payload.text(), text);
        let _ = payload.value();
    }

    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let once = canonical::to_canonical_string(&value);
    let back: Value = serde_json::from_str(&once)
        .unwrap_or_else(|e| panic!("canonical text does not read back: {e}\n{once}"));
    assert_eq!(
        back, value,
        "canonical text reads back as another value: {once}"
    );
    let twice = canonical::to_canonical_string(&back);
    assert_eq!(once, twice, "the encoding is not a fixed point");
    assert_eq!(Canonical::of(&value).as_str(), once);

    if let Value::Object(map) = &value {
        let members: Vec<(&str, Member<'_>)> = map
            .iter()
            .map(|(k, v)| (k.as_str(), Member::Value(v)))
            .collect();
        assert_eq!(canonical::object(&members).as_str(), once);
    }

    let stored = Payload::from_stored(once.clone()).expect("canonical text is JSON");
    assert_eq!(stored.value(), &value);
    assert_eq!(Payload::from_value(value.clone()).text(), once);
});

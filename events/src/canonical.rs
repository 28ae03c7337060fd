//! The canonical JSON encoding that hashes are computed over.
//!
//! Objects have their keys sorted by their UTF-8 bytes, there is no
//! whitespace, strings are escaped minimally (`"`, `\` and control
//! characters; everything else is written as UTF-8), integers that fit in
//! 64 bits are written exactly and every other number is written as the
//! shortest text that reads back as the same `f64`.
//!
//! Floats are parsed with `serde_json`'s `float_roundtrip` feature (set in
//! the workspace): without it a float can read back one ULP off, and the
//! hash of an event read from the database would no longer match.
//!
//! The encoding is a fixed point: parsing canonical text with `serde_json`
//! and encoding it again gives the same bytes. That is why the log stores the
//! canonical text itself (PostgreSQL `json`, SQLite `TEXT`) and never a form
//! the database rewrites (`jsonb` reorders keys and rewrites numbers).

use serde_json::Value;

/// Text that is canonical JSON by construction: made only by this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical(String);

impl Canonical {
    pub fn of(value: &Value) -> Self {
        Canonical(to_canonical_string(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_boxed_str(self) -> Box<str> {
        self.0.into_boxed_str()
    }
}

/// One member of an object written by [`object`].
#[derive(Clone, Copy)]
pub enum Member<'a> {
    Value(&'a Value),
    Str(&'a str),
    U64(u64),
    Bool(bool),
    Canonical(&'a Canonical),
    /// A JSON array of canonical items, written in order.
    Array(&'a [Canonical]),
    /// A nested object (its keys are sorted as they are written).
    Object(&'a [(&'a str, Member<'a>)]),
}

/// The canonical text of the object with these members (keys are sorted
/// here; each key must appear once), without building a `Value`.
pub fn object(members: &[(&str, Member<'_>)]) -> Canonical {
    let mut out = String::with_capacity(guess_len(members) + 2);
    write_object(&mut out, members);
    Canonical(out)
}

fn guess_len(members: &[(&str, Member<'_>)]) -> usize {
    members
        .iter()
        .map(|(k, m)| {
            k.len()
                + 4
                + match m {
                    Member::Str(s) => s.len() + 2,
                    Member::Canonical(c) => c.as_str().len(),
                    Member::Array(items) => items.iter().map(|c| c.as_str().len() + 1).sum(),
                    Member::Object(inner) => guess_len(inner) + 2,
                    _ => 24,
                }
        })
        .sum()
}

fn write_object(out: &mut String, members: &[(&str, Member<'_>)]) {
    if members.is_sorted_by(|a, b| a.0.as_bytes() <= b.0.as_bytes()) {
        write_members(out, members.iter());
    } else {
        let mut sorted: Vec<&(&str, Member<'_>)> = members.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        write_members(out, sorted.into_iter());
    }
}

fn write_members<'m, 'a: 'm>(
    out: &mut String,
    members: impl Iterator<Item = &'m (&'a str, Member<'a>)>,
) {
    out.push('{');
    for (i, (key, member)) in members.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, key);
        out.push(':');
        match member {
            Member::Value(v) => write_value(out, v),
            Member::Str(s) => write_str(out, s),
            Member::U64(n) => {
                use std::fmt::Write;
                let _ = write!(out, "{n}");
            }
            Member::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Member::Canonical(c) => out.push_str(c.as_str()),
            Member::Array(items) => {
                out.push('[');
                for (j, item) in items.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    out.push_str(item.as_str());
                }
                out.push(']');
            }
            Member::Object(inner) => write_object(out, inner),
        }
    }
    out.push('}');
}

/// The canonical text of a JSON value.
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write_value(&mut out, value);
    out
}

/// Appends the canonical text of `value` to `out`.
pub fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        // `Number`'s Display writes integers exactly and floats as the
        // shortest round-trip text (ryu); it never writes NaN or infinity.
        Value::Number(n) => {
            use std::fmt::Write;
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sort explicitly: serde_json's map is ordered only while no crate
            // in the build turns on its `preserve_order` feature.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Whether any byte is `"`, `\\` or a control character: eight bytes at a
/// time (most strings need no escape at all).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // A byte below 0x20, or equal to '"' or '\\'.
        let below = x.wrapping_sub(ONES * 0x20) & !x & HIGH != 0;
        if below || has_zero(x ^ (ONES * b'"' as u64)) || has_zero(x ^ (ONES * b'\\' as u64)) {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Appends `s` as a canonical JSON string literal.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    if !needs_escape(s.as_bytes()) {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match escape {
            Some(e) => out.push_str(e),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xf) as usize] as char);
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_written_member_by_member_are_canonical() {
        let nested = json!({"y": [1, {"b": 2, "a": 1}], "x": "é\u{1}"});
        let item = Canonical::of(&json!({"k": 1}));
        let text = object(&[
            ("result", Member::Bool(true)),
            (
                "obj",
                Member::Object(&[("z", Member::U64(1)), ("a", Member::Str("b"))]),
            ),
            ("nested", Member::Value(&nested)),
            ("call", Member::Str("condition \"q\"")),
            ("duration_us", Member::U64(u64::MAX)),
            ("context", Member::Canonical(&item)),
            ("inputs", Member::Array(&[item.clone(), item.clone()])),
            ("empty", Member::Array(&[])),
        ]);
        let value = json!({
            "result": true, "nested": nested, "call": "condition \"q\"",
            "duration_us": u64::MAX, "context": {"k": 1}, "inputs": [{"k": 1}, {"k": 1}],
            "empty": [], "obj": {"z": 1, "a": "b"},
        });
        assert_eq!(text.as_str(), to_canonical_string(&value));
    }

    #[test]
    fn the_escape_scan_finds_every_byte_that_needs_one_wherever_it_is() {
        for len in 0..20 {
            for at in 0..len {
                for b in (0u8..0x20).chain([b'"', b'\\']) {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    assert!(needs_escape(&bytes), "{b:#x} at {at} of {len}");
                }
            }
            let clean: Vec<u8> = (0..len)
                .map(|i| [b'a', 0x7f, 0x20, b'/', 0xc3][i % 5])
                .collect();
            assert!(!needs_escape(&clean), "{clean:?}");
        }
        // Against the plain definition, on words of arbitrary bytes.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let bytes = seed.to_le_bytes();
            let slow = bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
            assert_eq!(needs_escape(&bytes), slow, "{bytes:?}");
        }
    }

    fn canon(text: &str) -> String {
        to_canonical_string(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn keys_are_sorted_at_every_depth_and_whitespace_is_dropped() {
        assert_eq!(
            canon(r#"{ "b": 1, "a": { "z": [3, 2, {"y": 1, "x": 2}], "m": null } }"#),
            r#"{"a":{"m":null,"z":[3,2,{"x":2,"y":1}]},"b":1}"#
        );
    }

    #[test]
    fn keys_sort_by_utf8_bytes() {
        assert_eq!(canon(r#"{"é":1,"z":2,"Z":3}"#), r#"{"Z":3,"z":2,"é":1}"#);
    }

    #[test]
    fn strings_escape_only_what_json_requires() {
        let v = json!("quote\" backslash\\ nl\n tab\t nul\u{0} bell\u{7} é 😀 \u{7f}");
        assert_eq!(
            to_canonical_string(&v),
            "\"quote\\\" backslash\\\\ nl\\n tab\\t nul\\u0000 bell\\u0007 é 😀 \u{7f}\""
        );
    }

    #[test]
    fn numbers_are_exact_for_64_bit_integers_and_shortest_for_floats() {
        assert_eq!(canon("9007199254740993"), "9007199254740993");
        assert_eq!(canon("18446744073709551615"), "18446744073709551615");
        assert_eq!(canon("-9223372036854775808"), "-9223372036854775808");
        assert_eq!(canon("0.1"), "0.1");
        assert_eq!(canon("1.0"), "1.0");
        assert_eq!(canon("1e2"), "100.0");
        assert_eq!(canon("-0.0"), "-0.0");
        assert_eq!(canon("1E+300"), "1e+300");
    }

    #[test]
    fn floats_survive_a_text_round_trip_exactly() {
        // serde_json parses floats approximately unless `float_roundtrip` is
        // on; a value one ULP off would change the hash after a read-back.
        let mut x: u64 = 0x1234_5678_9abc_def0;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = (x >> 11) as f64 / (1u64 << 53) as f64 * 1000.0;
            let text = to_canonical_string(&serde_json::json!(f));
            let back: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back.as_f64(), Some(f), "{text} read back as {back}");
        }
    }

    #[test]
    fn encoding_is_a_fixed_point() {
        let inputs = [
            r#"{"big": 123456789012345678901234567890, "f": 3.141592653589793, "tiny": 5e-324}"#,
            r#"{"u": "\u00e9\ud83d\ude00", "ctl": "\u0001\u001f", "n": [1, 1.5, -2, 1e21]}"#,
            r#"[{"b":{"d":1,"c":2},"a":[]},{}]"#,
        ];
        for input in inputs {
            let once = canon(input);
            let twice = canon(&once);
            assert_eq!(once, twice, "canonical text of {input} is not stable");
        }
    }
}

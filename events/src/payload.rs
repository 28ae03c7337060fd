//! [`Payload`]: an event's payload, held as its canonical JSON text.
//!
//! The text is what the log stores and hashes, so it is made once, when the
//! event is built, and never again. The JSON value is there for readers:
//! kept when the payload was built from one, parsed on first use otherwise.
//! Invariant: `text` is the canonical encoding ([`crate::canonical`]) of
//! `value`.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::canonical::{self, Canonical};

pub struct Payload {
    text: Box<str>,
    value: OnceLock<Value>,
}

impl Payload {
    /// The payload of a JSON value.
    pub fn from_value(value: Value) -> Self {
        let text = canonical::to_canonical_string(&value).into_boxed_str();
        Payload {
            text,
            value: OnceLock::from(value),
        }
    }

    /// The payload whose canonical text is already made; its value is parsed
    /// only when someone reads it.
    pub fn from_canonical(text: Canonical) -> Self {
        Payload {
            text: text.into_boxed_str(),
            value: OnceLock::new(),
        }
    }

    /// A payload as the log stored it: the text is kept byte for byte (it is
    /// what the hash covers) and must be JSON.
    /// Checked for JSON without building its value, which is parsed only
    /// when someone reads it (the relay and the verifier never do).
    pub fn from_stored(text: String) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<serde::de::IgnoredAny>(&text)?;
        Ok(Payload {
            text: text.into_boxed_str(),
            value: OnceLock::new(),
        })
    }

    /// The canonical text: what the log stores and hashes.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn value(&self) -> &Value {
        // Text made by this crate's canonical encoder always parses; `Null`
        // is never reached, but a reader must not panic.
        self.value
            .get_or_init(|| serde_json::from_str(&self.text).unwrap_or(Value::Null))
    }
}

impl Deref for Payload {
    type Target = Value;
    fn deref(&self) -> &Value {
        self.value()
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Payload::from_value(value)
    }
}

impl From<Canonical> for Payload {
    fn from(text: Canonical) -> Self {
        Payload::from_canonical(text)
    }
}

impl Default for Payload {
    fn default() -> Self {
        Payload::from_value(Value::Null)
    }
}

impl Clone for Payload {
    fn clone(&self) -> Self {
        Payload {
            text: self.text.clone(),
            value: self.value.clone(),
        }
    }
}

/// Equal payloads have equal canonical texts.
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl PartialEq<Value> for Payload {
    fn eq(&self, other: &Value) -> bool {
        self.value() == other
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The canonical text.
impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Written as its text, as is (it is JSON): no value is built or
/// re-encoded. (`serde_json::to_value` still gets the value.)
impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match serde_json::value::RawValue::from_string(self.text.to_string()) {
            Ok(raw) => raw.serialize(serializer),
            Err(_) => self.value().serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Payload::from_value(Value::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_payload_built_from_text_reads_as_the_value_it_encodes() {
        let value = json!({"b": [1, 2.5, "x\n"], "a": {"z": null, "c": true}});
        let from_value = Payload::from_value(value.clone());
        let from_text = Payload::from_canonical(Canonical::of(&value));
        assert_eq!(from_value, from_text);
        assert_eq!(from_text.value(), &value);
        assert_eq!(
            from_text.text(),
            r#"{"a":{"c":true,"z":null},"b":[1,2.5,"x\n"]}"#
        );
        assert_eq!(from_text["b"][1], json!(2.5));
    }

    #[test]
    fn a_stored_payload_keeps_its_bytes_and_refuses_what_is_not_json() {
        let stored = Payload::from_stored("{\"a\": 1}".into()).unwrap();
        assert_eq!(stored.text(), "{\"a\": 1}");
        assert_eq!(stored.value(), &json!({"a": 1}));
        assert!(Payload::from_stored("{\"a\":".into()).is_err());
    }
}

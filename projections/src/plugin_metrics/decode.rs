//! Hand-written serde decoders that read only the payload fields a call
//! needs ([`CallFields`]) from the payload's text, skipping the rest.

use std::borrow::Cow;
use std::fmt;

use provenant_events::{CallKind, Event, keys};
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::config::MAX_TEXT_CHARS;
use super::text::{clip, text_of};

/// A payload field as the fold reads it. Reading one never fails, whatever
/// its JSON type; it reads as [`Value`]'s `as_str`, `as_u64` and
/// [`micros`] would.
#[derive(Debug, Default, PartialEq)]
pub(super) enum Field<'a> {
    /// Absent, `null`, a boolean, an array or an object.
    #[default]
    Absent,
    Str(Cow<'a, str>),
    /// A non-negative integer.
    U64(u64),
    /// A negative integer.
    I64(i64),
    F64(f64),
}

impl<'a> Field<'a> {
    fn of(v: Option<&'a Value>) -> Self {
        match v {
            Some(Value::String(s)) => Field::Str(Cow::Borrowed(s)),
            Some(Value::Number(n)) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), ..) => Field::U64(u),
                (None, Some(i), _) => Field::I64(i),
                (None, None, Some(f)) => Field::F64(f),
                (None, None, None) => Field::Absent,
            },
            _ => Field::Absent,
        }
    }

    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn as_u64(&self) -> Option<u64> {
        match self {
            Field::U64(u) => Some(*u),
            _ => None,
        }
    }

    /// A number of microseconds; anything else is 0 (as [`micros`]).
    pub(super) fn micros(&self) -> u64 {
        match self {
            Field::U64(u) => *u,
            // Negative.
            Field::I64(_) => 0,
            Field::F64(f) if f.is_finite() && *f >= 0.0 => *f as u64,
            _ => 0,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;

        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Field::Absent)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(match u64::try_from(v) {
                    Ok(u) => Field::U64(u),
                    Err(_) => Field::I64(v),
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Field::U64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                // As `Value`: a number that is not finite is `null`.
                Ok(if v.is_finite() {
                    Field::F64(v)
                } else {
                    Field::Absent
                })
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field::Absent)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field::Absent)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(FieldVisitor)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Absent)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Absent)
            }
        }

        deserializer.deserialize_any(FieldVisitor)
    }
}

/// The payload fields the fold reads, read from the payload's text without
/// building its value (the rest, often large `context`, `inputs` and
/// `result` objects, is skipped). Reads as [`Value::get`] on the payload's
/// value would: a payload that is not an object has none of them, a field
/// of another type reads as such, and of repeated keys the last one counts.
#[derive(Debug, Default, PartialEq)]
pub(super) struct CallFields<'a> {
    pub(super) call: Field<'a>,
    pub(super) condition_id: Field<'a>,
    pub(super) effect_id: Field<'a>,
    pub(super) handler: Field<'a>,
    pub(super) provider_id: Field<'a>,
    pub(super) id: Field<'a>,
    pub(super) duration_us: Field<'a>,
    pub(super) waited_us: Field<'a>,
    pub(super) deadline_ms: Field<'a>,
    pub(super) permission: Field<'a>,
    /// `error` as [`text_of`] reads it.
    pub(super) error: Option<Cow<'a, str>>,
    /// `panic` as [`text_of`] reads it.
    pub(super) panic: Option<Cow<'a, str>>,
}

impl<'a> CallFields<'a> {
    /// The fields of `event`'s payload: from its text, or from its value
    /// when the text does not read (it always does: the text is JSON).
    pub(super) fn of(event: &'a Event) -> Self {
        serde_json::from_str(event.payload.text())
            .unwrap_or_else(|_| CallFields::of_value(event.payload.value()))
    }

    fn of_value(payload: &'a Value) -> Self {
        let field = |k: &str| Field::of(payload.get(k));
        CallFields {
            call: field(keys::CALL),
            condition_id: field(keys::CONDITION_ID),
            effect_id: field(keys::EFFECT_ID),
            handler: field(keys::HANDLER),
            provider_id: field(keys::PROVIDER_ID),
            id: field(keys::ID),
            duration_us: field(keys::DURATION_US),
            waited_us: field(keys::WAITED_US),
            deadline_ms: field(keys::DEADLINE_MS),
            permission: field(keys::PERMISSION),
            error: text_of(payload.get(keys::ERROR)).map(Cow::Owned),
            panic: text_of(payload.get(keys::PANIC)).map(Cow::Owned),
        }
    }

    /// The called thing's id: the key of its kind, else any id key.
    pub(super) fn call_id(&self, kind: CallKind) -> Value {
        let by_key = |k: &str| match k {
            keys::CONDITION_ID => &self.condition_id,
            keys::EFFECT_ID => &self.effect_id,
            keys::HANDLER => &self.handler,
            keys::PROVIDER_ID => &self.provider_id,
            _ => &self.id,
        };
        let id_keys = [
            keys::CONDITION_ID,
            keys::EFFECT_ID,
            keys::HANDLER,
            keys::PROVIDER_ID,
            keys::ID,
        ];
        kind.id_key()
            .into_iter()
            .chain(id_keys)
            .find_map(|k| by_key(k).as_str())
            .map_or(Value::Null, |id| Value::String(clip(id, MAX_TEXT_CHARS)))
    }
}

/// A message field, read as [`text_of`] reads it.
struct Message<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Message<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Borrowed when it is a string without escapes; otherwise the
        // value, as `text_of` would read it (rare: failures only).
        let value = <&'de serde_json::value::RawValue>::deserialize(deserializer)?;
        if let Ok(s) = serde_json::from_str::<&'de str>(value.get()) {
            return Ok(Message(Some(Cow::Borrowed(s))));
        }
        let value: Value = serde_json::from_str(value.get()).map_err(de::Error::custom)?;
        Ok(Message(text_of(Some(&value)).map(Cow::Owned)))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for CallFields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = CallFields<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(CallFields::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(CallFields::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(CallFields::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(CallFields::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(CallFields::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(CallFields::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(CallFields::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(CallFields::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = CallFields::default();
                while let Some(key) = map.next_key::<Key>()? {
                    let slot = match key {
                        Key::Call => &mut out.call,
                        Key::ConditionId => &mut out.condition_id,
                        Key::EffectId => &mut out.effect_id,
                        Key::Handler => &mut out.handler,
                        Key::ProviderId => &mut out.provider_id,
                        Key::Id => &mut out.id,
                        Key::DurationUs => &mut out.duration_us,
                        Key::WaitedUs => &mut out.waited_us,
                        Key::DeadlineMs => &mut out.deadline_ms,
                        Key::Permission => &mut out.permission,
                        Key::Error => {
                            out.error = map.next_value::<Message<'de>>()?.0;
                            continue;
                        }
                        Key::Panic => {
                            out.panic = map.next_value::<Message<'de>>()?.0;
                            continue;
                        }
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = map.next_value()?;
                }
                Ok(out)
            }
        }

        deserializer.deserialize_any(FieldsVisitor)
    }
}

/// A key of a call payload.
enum Key {
    Call,
    ConditionId,
    EffectId,
    Handler,
    ProviderId,
    Id,
    DurationUs,
    WaitedUs,
    DeadlineMs,
    Permission,
    Error,
    Panic,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    keys::CALL => Key::Call,
                    keys::CONDITION_ID => Key::ConditionId,
                    keys::EFFECT_ID => Key::EffectId,
                    keys::HANDLER => Key::Handler,
                    keys::PROVIDER_ID => Key::ProviderId,
                    keys::ID => Key::Id,
                    keys::DURATION_US => Key::DurationUs,
                    keys::WAITED_US => Key::WaitedUs,
                    keys::DEADLINE_MS => Key::DeadlineMs,
                    keys::PERMISSION => Key::Permission,
                    keys::ERROR => Key::Error,
                    keys::PANIC => Key::Panic,
                    _ => Key::Other,
                })
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use provenant_events::CallKind;
    use serde_json::Value;

    use crate::plugin_metrics::decode::CallFields;

    #[test]
    fn payload_fields_read_from_the_text_as_from_the_value() {
        let texts = [
            r#"{"call":"condition","condition_id":"c1","duration_us":12,"inputs":{"a":[1,{"b":"c"}]}}"#,
            r#"{"c\u0061ll":"effect","effect_id":"e\"1","duration_us":7.9}"#,
            r#"{"call":"condition","call":"effect","duration_us":5,"duration_us":"x"}"#,
            r#"{"call":5,"duration_us":-3,"waited_us":1e300,"error":{"b":1,"a":[1,2.5,"x"]},"deadline_ms":50}"#,
            r#"{"error":"multi\nline \u00e9","panic":[1,{"z":null}],"deadline_ms":-5,"waited_us":123.75}"#,
            r#"{"error":null,"panic":null,"deadline_ms":50.0,"waited_us":"z","handler":"h","id":"i"}"#,
            r#"{"error":12345678901234567890,"panic":true,"deadline_ms":18446744073709551615}"#,
            r#"{"error":-0.0,"panic":"p\\q","handler":7,"id":"x","provider_id":"p","duration_us":-0}"#,
            r#"{"permission":"session:read","permission":7}"#,
            r#"{"permission":"world:\u0077rite","call":"simulation_config","duration_us":1}"#,
            r#"  {"call" : "effect" , "effect_id" : "spaced" , "duration_us" : 40 }  "#,
            r#"[1,2,{"call":"effect"}]"#,
            r#""call""#,
            "null",
            "42",
            "true",
            "{}",
        ];
        for text in texts {
            let value: Value = serde_json::from_str(text).unwrap();
            let from_text: CallFields<'_> = serde_json::from_str(text).unwrap();
            assert_eq!(from_text, CallFields::of_value(&value), "{text}");
            for kind in CallKind::ALL {
                assert_eq!(
                    from_text.call_id(kind),
                    CallFields::of_value(&value).call_id(kind),
                    "{text}"
                );
            }
        }
        let fields: CallFields<'_> =
            serde_json::from_str(r#"{"duration_us":-3,"waited_us":1e300,"deadline_ms":2.5}"#)
                .unwrap();
        assert_eq!(fields.duration_us.micros(), 0);
        assert_eq!(fields.waited_us.micros(), u64::MAX);
        assert_eq!(fields.deadline_ms.as_u64(), None);
        assert_eq!(fields.deadline_ms.micros(), 2);
    }
}

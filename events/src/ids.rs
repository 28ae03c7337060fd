//! Validated identifiers.
//!
//! Ids that end up in NATS subjects or stream names (world, session and plugin
//! ids) are 1 to 64 characters of `[A-Za-z0-9_-]`. Anything else is refused
//! with an [`IdError`] that names the kind of id, the value and the rule.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::text::Text;

/// Why a string is not a valid id, stream name or event kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {rule}")]
pub struct IdError {
    pub what: &'static str,
    pub value: String,
    pub rule: &'static str,
}

const ID_RULE: &str = "must be 1 to 64 characters of [A-Za-z0-9_-]";

/// Checks the id rule shared by world, session and plugin ids.
pub fn validate_id(what: &'static str, value: &str) -> Result<(), IdError> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(IdError {
            what,
            value: truncate_for_error(value),
            rule: ID_RULE,
        })
    }
}

fn truncate_for_error(value: &str) -> String {
    const MAX: usize = 80;
    if value.chars().count() <= MAX {
        value.to_owned()
    } else {
        let mut s: String = value.chars().take(MAX).collect();
        s.push('…');
        s
    }
}

macro_rules! validated_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate_id($what, &value)?;
                Ok(Self(value.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.as_ref().to_owned()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

validated_id!(
    /// A world id, e.g. `tavern`.
    WorldId,
    "world id"
);
validated_id!(
    /// A game session id, unique within its world.
    SessionId,
    "session id"
);
validated_id!(
    /// A plugin id, e.g. `game-stealth`.
    PluginId,
    "plugin id"
);

/// The name of a stream: the unit of per-stream order and optimistic
/// concurrency, e.g. `session:<world>/<session>`, `world:<world>`,
/// `plugin:<id>`, `engine`.
///
/// Stream names are 1 to 256 bytes of printable ASCII without whitespace;
/// use the constructors for the well-known shapes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamName(Arc<str>);

impl StreamName {
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        let ok = (1..=256).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(value.into()))
        } else {
            Err(IdError {
                what: "stream name",
                value: truncate_for_error(&value),
                rule: "must be 1 to 256 bytes of printable ASCII without whitespace",
            })
        }
    }

    /// `session:<world>/<session>`
    pub fn session(world: &WorldId, session: &SessionId) -> Self {
        Self(format!("session:{world}/{session}").into())
    }

    /// `world:<world>`
    pub fn world(world: &WorldId) -> Self {
        Self(format!("world:{world}").into())
    }

    /// `plugin:<id>`
    pub fn plugin(plugin: &PluginId) -> Self {
        Self(format!("plugin:{plugin}").into())
    }

    /// `engine`: the engine's own events (ticks it refused, metrics resets).
    pub fn engine() -> Self {
        Self("engine".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StreamName {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::new(value)
    }
}

impl From<StreamName> for String {
    fn from(s: StreamName) -> String {
        s.0.as_ref().to_owned()
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kind of an event, e.g. `WorldConfigured` or `plugin:game-stealth:noticed`.
///
/// A kind becomes one token of a NATS subject, so it is 1 to 128 bytes of
/// printable ASCII without `.`, `*`, `>` or whitespace. Kinds this build does
/// not know are still valid: they read, verify and pass through unchanged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventKind(Text);

impl EventKind {
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        Self::check(&value)?;
        Ok(Self(value.into()))
    }

    /// A kind from a constant, without copying it.
    pub fn from_static(value: &'static str) -> Result<Self, IdError> {
        Self::check(value)?;
        Ok(Self(value.into()))
    }

    /// A kind known when compiling, such as one of [`crate::kinds`]. Used
    /// in a `const` context (`const { EventKind::known(kinds::TICK_PROCESSED) }`)
    /// an invalid name does not compile, so the kind needs no error path at
    /// run time; anywhere else use [`EventKind::from_static`].
    ///
    /// # Panics
    ///
    /// When `value` is not a valid kind: at compile time in a `const`
    /// context, at run time anywhere else.
    pub const fn known(value: &'static str) -> Self {
        assert!(Self::is_valid(value), "not a valid event kind");
        Self(Text::from_static(value))
    }

    /// 1 to 128 bytes of printable ASCII without `.`, `*`, `>`.
    const fn is_valid(value: &str) -> bool {
        let bytes = value.as_bytes();
        if bytes.is_empty() || bytes.len() > 128 {
            return false;
        }
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if !b.is_ascii_graphic() || b == b'.' || b == b'*' || b == b'>' {
                return false;
            }
            i += 1;
        }
        true
    }

    fn check(value: &str) -> Result<(), IdError> {
        if Self::is_valid(value) {
            Ok(())
        } else {
            Err(IdError {
                what: "event kind",
                value: truncate_for_error(value),
                rule: "must be 1 to 128 bytes of printable ASCII without '.', '*', '>' or whitespace",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventKind {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::new(value)
    }
}

impl From<EventKind> for String {
    fn from(k: EventKind) -> String {
        k.0.as_str().to_owned()
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_documented_alphabet() {
        for ok in ["a", "game-stealth", "World_01", &"x".repeat(64)] {
            assert!(PluginId::new(ok).is_ok(), "{ok:?} should be valid");
        }
    }

    #[test]
    fn ids_refuse_everything_else_with_a_clear_error() {
        for bad in [
            "",
            "a.b",
            "a b",
            "a*",
            "a>",
            "é",
            "a/b",
            "a:b",
            &"x".repeat(65),
        ] {
            let err = WorldId::new(bad).unwrap_err();
            assert_eq!(err.what, "world id");
            assert!(err.to_string().contains("[A-Za-z0-9_-]"), "{err}");
        }
    }

    #[test]
    fn ids_are_validated_when_deserialized() {
        let err = serde_json::from_str::<SessionId>("\"a.b\"").unwrap_err();
        assert!(err.to_string().contains("invalid session id"), "{err}");
        let ok: SessionId = serde_json::from_str("\"s-1\"").unwrap();
        assert_eq!(ok.as_str(), "s-1");
    }

    #[test]
    fn kinds_refuse_subject_metacharacters() {
        assert!(EventKind::new("plugin:game-stealth:noticed").is_ok());
        for bad in ["", "a.b", "a*", "a>", "a b", "a\n"] {
            assert!(EventKind::new(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn known_kinds_are_checked_as_any_kind() {
        const K: EventKind = EventKind::known("TickProcessed");
        assert_eq!(K, EventKind::new("TickProcessed").unwrap());
        for bad in ["", "a.b", "a*", "a>", "a b", "a\n"] {
            assert!(
                std::panic::catch_unwind(|| EventKind::known(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn stream_names_have_well_known_shapes() {
        let w = WorldId::new("w1").unwrap();
        let s = SessionId::new("s1").unwrap();
        assert_eq!(StreamName::session(&w, &s).as_str(), "session:w1/s1");
        assert_eq!(StreamName::world(&w).as_str(), "world:w1");
        assert!(StreamName::new("has space").is_err());
    }
}

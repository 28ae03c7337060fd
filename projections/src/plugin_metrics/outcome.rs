//! How a plugin call ended ([`Outcome`]) and the type of a recent error
//! ([`ErrorType`]).

use serde::{Deserialize, Serialize};

/// How a plugin call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It returned a value (`ConditionEvaluated`, `EffectApplied`,
    /// `EventHandled`).
    Ok,
    /// It returned an error or panicked (`PluginCallFailed`,
    /// `PluginCallPanicked`).
    Error,
    /// It failed because a capability was refused: a `PluginCallFailed`
    /// right after a `PermissionDenied` of the same plugin call.
    Denied,
    /// It overran its deadline (`PluginDeadlineExceeded`).
    Timeout,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Denied,
        Outcome::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Denied => "denied",
            Outcome::Timeout => "timeout",
        }
    }

    pub fn is_ok(self) -> bool {
        self == Outcome::Ok
    }
}

/// The type of a recent error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    Error,
    Panic,
    Timeout,
    Denied,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Error => "error",
            ErrorType::Panic => "panic",
            ErrorType::Timeout => "timeout",
            ErrorType::Denied => "denied",
        }
    }
}

//! Reading a plugin-call event into a [`Call`]: its kind, outcome, error,
//! duration and the context a recent error keeps.

use std::borrow::Cow;

use provenant_events::{CallKind, Event, keys, kinds};
use serde_json::{Value, json};

use super::config::{MAX_KEY_CHARS, MAX_TEXT_CHARS};
use super::decode::CallFields;
use super::outcome::{ErrorType, Outcome};
use super::text::clip;

/// What one call event says.
pub(super) struct Call {
    pub(super) kind: CallKind,
    pub(super) outcome: Outcome,
    /// `None` for ok calls.
    pub(super) error_type: Option<ErrorType>,
    pub(super) message: String,
    pub(super) duration_us: u64,
    pub(super) context: Value,
}

impl Call {
    /// Reads a call event of kind `event_kind`; `denied` holds the
    /// permissions of a matching pending denial.
    pub(super) fn read(
        event: &Event,
        event_kind: &str,
        denied: Option<Vec<String>>,
    ) -> Option<Call> {
        let implied = match event_kind {
            kinds::CONDITION_EVALUATED => Some(CallKind::Condition),
            kinds::EFFECT_APPLIED => Some(CallKind::Effect),
            kinds::EVENT_HANDLED => Some(CallKind::EventHandler),
            kinds::PLUGIN_CALL_FAILED
            | kinds::PLUGIN_CALL_PANICKED
            | kinds::PLUGIN_DEADLINE_EXCEEDED => None,
            _ => return None,
        };
        let mut payload = CallFields::of(event);
        let call_name = payload.call.as_str();
        let kind = match (call_name, implied) {
            (Some(name), _) => CallKind::from_call(name),
            (None, Some(kind)) => kind,
            (None, None) => CallKind::Other,
        };
        let (outcome, error_type, message) = match event_kind {
            kinds::PLUGIN_CALL_FAILED => {
                let message = payload
                    .error
                    .take()
                    .unwrap_or(Cow::Borrowed("unknown error"));
                if denied.is_some() {
                    (Outcome::Denied, Some(ErrorType::Denied), message)
                } else {
                    (Outcome::Error, Some(ErrorType::Error), message)
                }
            }
            kinds::PLUGIN_CALL_PANICKED => (
                Outcome::Error,
                Some(ErrorType::Panic),
                payload
                    .panic
                    .take()
                    .unwrap_or(Cow::Borrowed("unknown panic")),
            ),
            kinds::PLUGIN_DEADLINE_EXCEEDED => {
                let message = match payload.deadline_ms.as_u64() {
                    Some(ms) => Cow::Owned(format!("deadline of {ms} ms exceeded")),
                    None => Cow::Borrowed("deadline exceeded"),
                };
                (Outcome::Timeout, Some(ErrorType::Timeout), message)
            }
            _ => (Outcome::Ok, None, Cow::Borrowed("")),
        };
        let duration_us = if outcome == Outcome::Timeout {
            payload.waited_us.micros()
        } else {
            payload.duration_us.micros()
        };
        let context = if error_type.is_some() {
            let mut ctx = serde_json::Map::new();
            ctx.insert(
                keys::CALL.to_owned(),
                Value::String(clip(call_name.unwrap_or(kind.as_str()), MAX_KEY_CHARS)),
            );
            ctx.insert(keys::ID.to_owned(), payload.call_id(kind));
            ctx.insert(
                "world_id".to_owned(),
                event
                    .world_id
                    .as_ref()
                    .map_or(Value::Null, |w| Value::String(w.to_string())),
            );
            ctx.insert(
                "session_id".to_owned(),
                event
                    .session_id
                    .as_ref()
                    .map_or(Value::Null, |s| Value::String(s.to_string())),
            );
            ctx.insert(keys::TICK.to_owned(), json!(event.provenance.tick));
            ctx.insert(
                keys::CALL_INDEX.to_owned(),
                json!(event.provenance.call_index),
            );
            ctx.insert(keys::DURATION_US.to_owned(), json!(duration_us));
            if outcome == Outcome::Timeout
                && let Some(ms) = payload.deadline_ms.as_u64()
            {
                ctx.insert(keys::DEADLINE_MS.to_owned(), json!(ms));
            }
            if let (Outcome::Denied, Some(permissions)) = (outcome, &denied) {
                ctx.insert("denied_permissions".to_owned(), json!(permissions));
            }
            Value::Object(ctx)
        } else {
            Value::Null
        };
        Some(Call {
            kind,
            outcome,
            error_type,
            message: clip(&message, MAX_TEXT_CHARS),
            duration_us,
            context,
        })
    }
}

//! The wire protocol, as the original designed it. Over HTTP each
//! operation is `POST {endpoint}/<operation>`; over NATS it is a request to
//! the subject with the operation in the `Provenant-Operation` header. The
//! bodies are the same JSON either way.
//!
//! Requests: `{<id key>, "context", "params", "timeout_ms", "call"}` (a
//! handler gets `"event"` too). Replies, checked strictly (an unknown key
//! is refused, so a misspelt `"reslt"` is an error and not a silent
//! `false`):
//! - `evaluate-condition`: `{"result": <bool>, "metadata"?}`;
//! - `apply-effect`: `{"result"?, "writes"?: [...], "metadata"?}`;
//! - `handle-event`: `{"writes"?, "metadata"?}`;
//! - `simulation-config`: `{"result": <object>, "metadata"?}`.
//!
//! `writes` are capability requests as data (`{"capability":
//! "set_session_flag", "key": "mood", "value": "merry"}`): only writes and
//! log lines; each goes through the call's `Ctx`.

use provenant_host::capability::Request;
use serde_json::{Map, Value};

/// The header naming the operation of a NATS request.
pub const OPERATION_HEADER: &str = "Provenant-Operation";

/// What is asked of the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    EvaluateCondition,
    ApplyEffect,
    HandleEvent,
    SimulationConfig,
}

impl Operation {
    /// Its name: the HTTP path's last segment and the NATS header's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::EvaluateCondition => "evaluate-condition",
            Operation::ApplyEffect => "apply-effect",
            Operation::HandleEvent => "handle-event",
            Operation::SimulationConfig => "simulation-config",
        }
    }

    /// The request's key for what is called.
    pub fn id_key(self) -> &'static str {
        match self {
            Operation::EvaluateCondition => "condition_id",
            Operation::ApplyEffect => "effect_id",
            Operation::HandleEvent => "handler_of",
            Operation::SimulationConfig => "provider_id",
        }
    }

    /// The keys its reply may have.
    fn reply_keys(self) -> &'static [&'static str] {
        match self {
            Operation::EvaluateCondition | Operation::SimulationConfig => &["result", "metadata"],
            Operation::ApplyEffect => &["result", "writes", "metadata"],
            Operation::HandleEvent => &["writes", "metadata"],
        }
    }
}

/// A reply that has the shape its operation expects.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The reply as it came (recorded in the call's event).
    pub body: Value,
    /// `result` (JSON null when an effect gives none).
    pub result: Value,
    pub writes: Vec<Request>,
}

/// Checks a reply's bytes against what `op` expects; the error says what
/// is wrong with it.
pub fn parse_reply(op: Operation, bytes: &[u8]) -> Result<Reply, String> {
    let body: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("the reply is not JSON ({e}): {}", excerpt(bytes)))?;
    let Some(fields) = body.as_object() else {
        return Err(format!(
            "the reply is not a JSON object: {}",
            excerpt(bytes)
        ));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !op.reply_keys().contains(&k.as_str()))
    {
        return Err(format!(
            "the reply has an unknown key {unknown:?}: a reply to {} has {}",
            op.as_str(),
            op.reply_keys().join(", ")
        ));
    }
    let result = fields.get("result").cloned().unwrap_or(Value::Null);
    match op {
        Operation::EvaluateCondition if !result.is_boolean() => {
            return Err(format!(
                "the reply's result must be true or false, not {}",
                short(&result)
            ));
        }
        Operation::SimulationConfig if !result.is_object() => {
            return Err(format!(
                "the reply's result must be a JSON object (the suggested config), not {}",
                short(&result)
            ));
        }
        _ => {}
    }
    let writes = match fields.get("writes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, w)| write_request(i, w))
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "the reply's writes must be a list of capability requests, not {}",
                short(other)
            ));
        }
    };
    Ok(Reply {
        body,
        result,
        writes,
    })
}

/// `writes[i]` as a capability request: a write or a log line.
fn write_request(i: usize, w: &Value) -> Result<Request, String> {
    let request: Request = serde_json::from_value(w.clone()).map_err(|e| {
        format!(
            "writes[{i}] is not a capability request ({e}): {}",
            short(w)
        )
    })?;
    if !request.writes() && !matches!(request, Request::Log { .. }) {
        return Err(format!(
            "writes[{i}] is {}, a read: a reply's writes may only change state or log",
            request.capability().name
        ));
    }
    Ok(request)
}

/// A request's body.
pub fn request_body(
    op: Operation,
    id: &str,
    context: Value,
    params: &Value,
    timeout_ms: u64,
    call: Value,
    event: Option<&Value>,
) -> Vec<u8> {
    let mut body = Map::new();
    body.insert(op.id_key().into(), Value::String(id.to_owned()));
    body.insert("context".into(), context);
    body.insert("params".into(), params.clone());
    body.insert("timeout_ms".into(), Value::from(timeout_ms));
    body.insert("call".into(), call);
    if let Some(event) = event {
        body.insert("event".into(), event.clone());
    }
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

/// The start of a body, for an error message.
pub fn excerpt(bytes: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]).into_owned();
    if bytes.len() > MAX {
        format!("{text:?}… ({} bytes)", bytes.len())
    } else {
        format!("{text:?}")
    }
}

fn short(v: &Value) -> String {
    excerpt(v.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies_of_the_expected_shape_are_read() {
        let r = parse_reply(
            Operation::EvaluateCondition,
            br#"{"result": true, "metadata": {"why": "fate"}}"#,
        )
        .unwrap();
        assert_eq!(r.result, json!(true));
        let r = parse_reply(
            Operation::ApplyEffect,
            br#"{"writes": [{"capability": "set_session_flag", "key": "mood", "value": 1},
                            {"capability": "log", "level": "info", "message": "hi"}]}"#,
        )
        .unwrap();
        assert_eq!(r.result, Value::Null);
        assert_eq!(
            r.writes[0],
            Request::SetSessionFlag {
                key: "mood".into(),
                value: json!(1)
            }
        );
        assert!(parse_reply(Operation::SimulationConfig, br#"{"result": {"a": 1}}"#).is_ok());
    }

    #[test]
    fn each_malformed_reply_is_refused_with_what_is_wrong() {
        let err = |op, body: &[u8]| parse_reply(op, body).unwrap_err();
        use Operation::*;
        assert!(err(EvaluateCondition, b"<html>").contains("not JSON"));
        assert!(err(EvaluateCondition, b"[true]").contains("not a JSON object"));
        assert!(err(EvaluateCondition, br#"{"reslt": true}"#).contains("unknown key \"reslt\""));
        assert!(err(EvaluateCondition, br#"{"result": "yes"}"#).contains("true or false"));
        assert!(err(EvaluateCondition, br#"{}"#).contains("true or false"));
        assert!(err(ApplyEffect, br#"{"writes": {"a": 1}}"#).contains("must be a list"));
        assert!(
            err(ApplyEffect, br#"{"writes": [{"capability": "rm_rf"}]}"#).contains("writes[0]")
        );
        assert!(
            err(
                ApplyEffect,
                br#"{"writes": [{"capability": "get_session"}]}"#
            )
            .contains("a read")
        );
        assert!(err(SimulationConfig, br#"{"result": 3}"#).contains("JSON object"));
        assert!(err(HandleEvent, br#"{"result": 3}"#).contains("unknown key"));
        let long = vec![b'x'; 5000];
        assert!(err(EvaluateCondition, &long).contains("5000 bytes"));
    }
}

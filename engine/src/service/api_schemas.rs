//! What the OpenAPI document says of the inputs: the ids' pattern on every
//! path and query parameter that takes one, the bounds of `after` and
//! `limit`, and the schemas of a tick and of a world's configuration,
//! written from the rules the engine applies (`provenant_events::ids`,
//! `provenant_host::intake`, `provenant_host::world`) so that a client
//! generated from the document, or Schemathesis, sends what is accepted.

use serde_json::{Value, json};

/// World, session and plugin ids: they end up in NATS subjects.
pub const ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";
/// An event kind: 1 to 128 bytes of printable ASCII without `.`, `*`, `>`
/// or whitespace.
pub const KIND_PATTERN: &str = r"^[!-)+,\-/-=?-~]{1,128}$";

fn id() -> Value {
    json!({"type": "string", "pattern": ID_PATTERN})
}

/// A tick as `provenant_host::intake::parse_tick` takes it.
fn tick() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["tick_id", "world_id", "session_id", "tick", "at"],
        "properties": {
            "tick_id": {"type": "string", "format": "uuid", "description": "The idempotency key"},
            "world_id": id(),
            "session_id": id(),
            "tick": {"type": "integer", "minimum": 0, "maximum": u64::MAX, "description": "A whole number (175; 175.0 is taken below 2^53)"},
            "at": {"type": "string", "format": "date-time", "pattern": "^[0-9]{4}-", "description": "Game time, RFC 3339, in the years 0000 to 9999 (UTC)"},
            "npcs": {"type": "array", "items": {
                "type": "object",
                "required": ["npc_id"],
                "properties": {
                    "npc_id": {"type": "string"},
                    "location_id": {"type": ["string", "null"]},
                    "state": {}
                }
            }},
            "session_updates": {"type": ["object", "null"], "additionalProperties": false, "properties": {
                "flags": {"type": "object"},
                "relationships": {"type": "object"}
            }},
            "context": {
                "description": "Anything; as an object, without the keys npc_id, location_id and npc_state (a plugin call records those of its NPC)",
                "propertyNames": {"not": {"enum": ["npc_id", "location_id", "npc_state"]}}
            }
        }
    })
}

/// A world's configuration as `provenant_host::world::validate` takes it.
fn world() -> Value {
    let step = json!({"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string"}, "params": {}
    }});
    json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "description": {"type": ["string", "null"]},
            "locations": {"type": ["array", "null"]},
            "meta": {"type": ["object", "null"], "properties": {
                "behavior": {"type": ["object", "null"], "additionalProperties": false, "properties": {
                    "enabledPlugins": {"type": ["array", "null"], "items": {"type": "string"}},
                    "disabledPlugins": {"type": ["array", "null"], "items": {"type": "string"}},
                    "simulationConfig": {"type": ["object", "null"]},
                    "activities": {"type": ["array", "null"], "items": {
                        "type": "object", "required": ["id"], "properties": {
                            "id": {"type": "string"},
                            "conditions": {"type": "array", "items": step},
                            "effects": {"type": "array", "items": step}
                        }
                    }}
                }}
            }}
        }
    })
}

fn body(value: Value) -> Value {
    json!({
        "required": true,
        "content": {"application/json": {"schema": value}}
    })
}

fn answer(description: &str) -> Value {
    json!({"description": description})
}

/// Fills in the inputs' schemas and the answers to bad ones, in the
/// document as JSON (utoipa's types do not hold every JSON Schema keyword
/// these use).
pub fn document_inputs(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        for method in ["get", "put", "post", "delete"] {
            let Some(operation) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            let checked = parameters(operation);
            let mut answers = Vec::new();
            if checked {
                answers.push(("400", "A parameter is malformed (an id not 1 to 64 characters of [A-Za-z0-9_-], a number out of range): {error}"));
            }
            match (path.as_str(), method) {
                ("/v1/ticks", "post") => {
                    operation.insert("requestBody".into(), body(tick()));
                    answers.push(("400", "Not JSON (recorded as TickRejected): {error, bytes, rejected_event_position}"));
                    answers.push(("422", "JSON, but not a valid tick (recorded as TickRejected): {error, bytes, rejected_event_position}"));
                }
                ("/v1/worlds/{world_id}", "put") => {
                    operation.insert("requestBody".into(), body(world()));
                }
                _ => {}
            }
            if let Some(responses) = operation
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
            {
                for (status, description) in answers {
                    responses.insert(status.into(), answer(description));
                }
            }
        }
    }
}

/// Gives each id, `after`, `limit` and `kind` parameter its schema;
/// whether the operation has one the engine checks.
fn parameters(operation: &mut serde_json::Map<String, Value>) -> bool {
    let mut checked = false;
    let Some(list) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    else {
        return false;
    };
    for parameter in list {
        let value = match parameter.get("name").and_then(Value::as_str) {
            Some("world_id" | "session_id" | "plugin_id" | "world" | "session" | "plugin") => id(),
            Some("kind") => json!({"type": "string", "pattern": KIND_PATTERN}),
            Some("after") => json!({"type": "integer", "minimum": 0, "maximum": i64::MAX}),
            Some("limit") => json!({"type": "integer", "minimum": 1, "maximum": 1000}),
            _ => continue,
        };
        parameter["schema"] = value;
        checked = true;
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patterns_say_what_the_ids_take() {
        let id = regex::Regex::new(ID_PATTERN).unwrap();
        let kind = regex::Regex::new(KIND_PATTERN).unwrap();
        let long = "x".repeat(65);
        for s in ["w", "tavern-1_A", "", "a.b", "é", "a b", &long] {
            assert_eq!(
                id.is_match(s),
                provenant_events::WorldId::new(s).is_ok(),
                "{s:?}"
            );
        }
        let long = "x".repeat(129);
        for s in [
            "WorldConfigured",
            "plugin:game-stealth:noticed",
            "!~/,-+?",
            "",
            "a.b",
            "a*",
            "a>",
            "a b",
            "é",
            "a\u{7f}",
            &long,
        ] {
            assert_eq!(
                kind.is_match(s),
                provenant_events::EventKind::new(s).is_ok(),
                "{s:?}"
            );
        }
    }
}

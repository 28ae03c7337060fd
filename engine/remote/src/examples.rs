//! The example remote plugin the binary carries (`examples/tavern-oracle`:
//! a Python service using only its standard library), for `provenant demo
//! --remote-example`.

use serde_json::{Value, json};

/// The service's source, `server.py`.
pub const ORACLE_SERVER: &str = include_str!("../examples/tavern-oracle/server.py");
/// Its manifest; the demo replaces the endpoint with where it runs.
pub const ORACLE_MANIFEST: &str = include_str!("../examples/tavern-oracle/manifest.json");
/// Its plugin id.
pub const ORACLE_ID: &str = "tavern-oracle";

/// The tavern's activity that consults the oracle.
pub fn oracle_activities() -> Value {
    json!([{"id": "consult",
            "conditions": [{"id": "plugin:tavern-oracle:is_fated"}],
            "effects": [{"id": "effect:plugin:tavern-oracle:prophesy"}]}])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::RemoteManifest;

    #[test]
    fn the_example_manifest_is_valid_and_registers_what_the_activity_calls() {
        let m = RemoteManifest::parse(ORACLE_MANIFEST).unwrap();
        assert_eq!(m.plugin.id, ORACLE_ID);
        let r = &m.registrations;
        assert_eq!(r.conditions[0].name, "is_fated");
        assert_eq!(r.effects[0].name, "prophesy");
        assert!(ORACLE_SERVER.contains("plugin:tavern-oracle:is_fated"));
        assert!(ORACLE_SERVER.contains("effect:plugin:tavern-oracle:prophesy"));
    }
}

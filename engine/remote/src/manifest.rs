//! A remote plugin's `manifest.json`: the built-in plugins' manifest fields
//! (`kind` is `remote_feature`), what it registers (as for WebAssembly
//! plugins), where it is served and how it is called. Secrets are never in
//! a manifest: `token_env` names the environment variable that holds one.

use provenant_host::declared::{Registrations, manifest_fields, take_registrations};
use provenant_host::manifest::{Manifest, PluginKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::endpoint::Endpoint;

/// The longest deadline a remote call may have (Kubernetes webhooks' most).
pub const MAX_TIMEOUT_MS: u64 = 30_000;
/// The deadline when the manifest gives none (the original's design).
pub const DEFAULT_TIMEOUT_MS: u64 = 100;
/// The largest reply read when the manifest says nothing.
pub const DEFAULT_MAX_REPLY_BYTES: u64 = 1 << 20;

/// A parsed and checked remote plugin manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteManifest {
    pub plugin: Manifest,
    pub endpoint: Endpoint,
    /// Each call's deadline.
    pub timeout_ms: u64,
    /// Calls per second at most (a token bucket with a burst of as many).
    pub rate_limit_per_s: Option<u32>,
    /// The environment variable holding the bearer token sent to the
    /// plugin.
    pub token_env: Option<String>,
    pub circuit: Circuit,
    /// A reply longer than this fails the call.
    pub max_reply_bytes: u64,
    pub registrations: Registrations,
}

/// When the circuit opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Circuit {
    /// Failures in a row that open it.
    #[serde(default = "default_failures")]
    pub failures: u32,
    /// How long calls are not sent once it opened; then one probe decides.
    #[serde(default = "default_cool_down")]
    pub cool_down_ms: u64,
}

fn default_failures() -> u32 {
    5
}

fn default_cool_down() -> u64 {
    5_000
}

impl Default for Circuit {
    /// Open after 5 failures in a row, for 5 s.
    fn default() -> Self {
        Circuit {
            failures: default_failures(),
            cool_down_ms: default_cool_down(),
        }
    }
}

/// The keys a manifest may have besides every plugin's.
const KEYS: [&str; 6] = [
    "endpoint",
    "timeout_ms",
    "rate_limit_per_s",
    "token_env",
    "circuit",
    "max_reply_bytes",
];

impl RemoteManifest {
    /// Parses and checks the text of a `manifest.json`.
    pub fn parse(text: &str) -> Result<RemoteManifest, String> {
        let mut fields = manifest_fields(text, &KEYS, "a remote plugin")?;
        let endpoint = match fields.remove("endpoint") {
            Some(Value::String(e)) => Endpoint::parse(&e)?,
            Some(_) => return Err("endpoint must be a string".into()),
            None => {
                return Err("endpoint is missing: http://…, https://… or nats:<subject>".into());
            }
        };
        let timeout_ms = match fields.remove("timeout_ms") {
            None => DEFAULT_TIMEOUT_MS,
            Some(v) => v
                .as_u64()
                .filter(|t| (1..=MAX_TIMEOUT_MS).contains(t))
                .ok_or_else(|| {
                    format!("timeout_ms must be a whole number from 1 to {MAX_TIMEOUT_MS}, not {v}")
                })?,
        };
        let rate_limit_per_s = match fields.remove("rate_limit_per_s") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|r| u32::try_from(r).ok())
                    .filter(|r| *r >= 1)
                    .ok_or_else(|| {
                        format!("rate_limit_per_s must be a whole number of at least 1, not {v}")
                    })?,
            ),
        };
        let token_env = match fields.remove("token_env") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) if is_env_name(&name) => Some(name),
            Some(v) => {
                return Err(format!(
                    "token_env must name an environment variable ([A-Za-z_][A-Za-z0-9_]*), not {v}; the token itself never goes in a manifest"
                ));
            }
        };
        let circuit: Circuit = match fields.remove("circuit") {
            None => Circuit::default(),
            Some(v) => serde_json::from_value(v).map_err(|e| format!("circuit: {e}"))?,
        };
        if circuit.failures == 0 || circuit.cool_down_ms == 0 {
            return Err("circuit.failures and circuit.cool_down_ms must be at least 1".into());
        }
        let max_reply_bytes = match fields.remove("max_reply_bytes") {
            None => DEFAULT_MAX_REPLY_BYTES,
            Some(v) => v.as_u64().filter(|b| *b >= 1).ok_or_else(|| {
                format!("max_reply_bytes must be a whole number of at least 1, not {v}")
            })?,
        };
        let registrations = take_registrations(&mut fields)?;
        let plugin: Manifest =
            serde_json::from_value(Value::Object(fields)).map_err(|e| e.to_string())?;
        if plugin.kind != PluginKind::RemoteFeature {
            return Err(format!(
                "kind is {}: a plugin with an endpoint is a remote_feature",
                plugin.kind
            ));
        }
        Ok(RemoteManifest {
            plugin,
            endpoint,
            timeout_ms,
            rate_limit_per_s,
            token_env,
            circuit,
            max_reply_bytes,
            registrations,
        })
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
        "id": "oracle", "name": "Oracle", "version": "1.0.0", "kind": "remote_feature",
        "permissions": ["group:behavior", "session:read"],
        "endpoint": "http://127.0.0.1:8700",
        "registrations": {"conditions": [{"name": "is_fated"}]}
    }"#;

    fn with(key: &str, value: &str) -> Result<RemoteManifest, String> {
        let mut v: Value = serde_json::from_str(GOOD).unwrap();
        if value.is_empty() {
            v.as_object_mut().unwrap().remove(key);
        } else {
            v[key] = serde_json::from_str(value).unwrap();
        }
        RemoteManifest::parse(&v.to_string())
    }

    #[test]
    fn a_manifest_reads_with_its_defaults() {
        let m = RemoteManifest::parse(GOOD).unwrap();
        assert_eq!(m.plugin.id, "oracle");
        assert_eq!(m.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(m.rate_limit_per_s, None);
        assert_eq!(m.circuit, Circuit::default());
        assert_eq!(m.max_reply_bytes, DEFAULT_MAX_REPLY_BYTES);
        let m = with("circuit", r#"{"failures": 2}"#).unwrap();
        assert_eq!((m.circuit.failures, m.circuit.cool_down_ms), (2, 5_000));
        assert_eq!(
            with("token_env", "\"ORACLE_TOKEN\"")
                .unwrap()
                .token_env
                .as_deref(),
            Some("ORACLE_TOKEN")
        );
    }

    #[test]
    fn each_bad_manifest_is_refused_with_what_is_wrong() {
        let err = |key, value| with(key, value).unwrap_err();
        assert!(err("endpont", "\"x\"").contains("unknown field \"endpont\""));
        assert!(err("endpoint", "").contains("endpoint is missing"));
        assert!(err("endpoint", "\"ftp://x\"").contains("nats:<subject>"));
        assert!(err("timeout_ms", "0").contains("timeout_ms"));
        assert!(err("timeout_ms", "60000").contains("30000"));
        assert!(err("rate_limit_per_s", "0").contains("rate_limit_per_s"));
        assert!(err("rate_limit_per_s", "2.5").contains("rate_limit_per_s"));
        assert!(err("token_env", "\"s3cr3t token\"").contains("never goes in a manifest"));
        assert!(err("circuit", r#"{"failures": 0}"#).contains("at least 1"));
        assert!(err("circuit", r#"{"cooldown": 1}"#).contains("circuit"));
        assert!(err("kind", "\"feature\"").contains("remote_feature"));
        assert!(err("registrations", "{}").contains("registrations is empty"));
        assert!(err("max_reply_bytes", "0").contains("max_reply_bytes"));
    }
}

//! A sandboxed plugin's `manifest.json`: the built-in plugins' manifest
//! fields (`id`, `name`, `version`, `description`, `author`, `kind`,
//! `permissions`, `dependencies`, `enabled`), plus where its module is, its
//! digest, its limits and what it registers. Declaring the registrations
//! here means they are checked against the plugin's permissions before any
//! of its code runs.

use provenant_host::manifest::{Manifest, PluginKind};
use serde_json::Value;

use crate::limits::Limits;

/// A parsed and checked `manifest.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginManifest {
    /// The fields every plugin has.
    pub plugin: Manifest,
    /// The component, relative to the plugin's folder.
    pub module: String,
    /// `sha256:<hex>`: when given, the module must have it.
    pub digest: Option<String>,
    pub limits: Limits,
    pub registrations: Registrations,
}

pub use provenant_host::declared::{
    ConditionDecl, EffectDecl, HandlerDecl, ProviderDecl, Registrations,
};
use provenant_host::declared::{manifest_fields, take_registrations};

/// The keys a manifest may have besides every plugin's.
const KEYS: [&str; 3] = ["module", "digest", "limits"];

impl PluginManifest {
    /// Parses and checks the text of a `manifest.json`.
    pub fn parse(text: &str) -> Result<PluginManifest, String> {
        let mut fields = manifest_fields(text, &KEYS, "a WebAssembly plugin")?;
        let module = match fields.remove("module") {
            Some(Value::String(m)) => m,
            Some(_) => return Err("module must be a string: the component's file name".into()),
            None => return Err("module is missing: the component's file name".into()),
        };
        let digest = match fields.remove("digest") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) => Some(d),
            Some(_) => return Err("digest must be a string (sha256:<hex>)".into()),
        };
        let limits: Limits = match fields.remove("limits") {
            None => Limits::default(),
            Some(v) => serde_json::from_value(v).map_err(|e| format!("limits: {e}"))?,
        };
        let registrations = take_registrations(&mut fields)?;
        let plugin: Manifest =
            serde_json::from_value(Value::Object(fields)).map_err(|e| e.to_string())?;
        let manifest = PluginManifest {
            plugin,
            module,
            digest,
            limits,
            registrations,
        };
        manifest.check()?;
        Ok(manifest)
    }

    fn check(&self) -> Result<(), String> {
        if self.plugin.kind != PluginKind::Feature {
            return Err(format!(
                "kind is {}: a WebAssembly plugin is a feature",
                self.plugin.kind
            ));
        }
        let module = std::path::Path::new(&self.module);
        if self.module.is_empty()
            || module.is_absolute()
            || module
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!(
                "module {:?} must be a path inside the plugin's folder",
                self.module
            ));
        }
        if let Some(d) = &self.digest
            && !is_digest(d)
        {
            return Err(format!(
                "digest {d:?} is not sha256:<64 lowercase hex digits>"
            ));
        }
        self.limits.check()?;
        Ok(())
    }
}

/// Whether `d` is `sha256:` and 64 lowercase hex digits.
pub fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The `sha256:<hex>` digest of a module's bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
        "id": "greeter", "name": "Greeter", "version": "1.0.0", "kind": "feature",
        "permissions": ["group:behavior", "session:read"],
        "module": "greeter.wasm",
        "limits": {"fuel_per_call": 1000},
        "registrations": {"conditions": [{"name": "is_friendly", "required_context": ["mood"]}]}
    }"#;

    #[test]
    fn a_manifest_reads_with_its_defaults() {
        let m = PluginManifest::parse(GOOD).unwrap();
        assert_eq!(m.plugin.id, "greeter");
        assert!(m.plugin.enabled);
        assert_eq!(m.limits.fuel_per_call, 1000);
        assert_eq!(m.limits.timeout_ms, Limits::default().timeout_ms);
        assert_eq!(m.registrations.conditions[0].required_context, ["mood"]);
        assert_eq!(m.digest, None);
    }

    #[test]
    fn each_bad_manifest_is_refused_with_what_is_wrong() {
        let with = |key: &str, value: &str| {
            let mut v: Value = serde_json::from_str(GOOD).unwrap();
            if value.is_empty() {
                v.as_object_mut().unwrap().remove(key);
            } else {
                v[key] = serde_json::from_str(value).unwrap();
            }
            PluginManifest::parse(&v.to_string()).unwrap_err()
        };
        assert!(with("modul", "\"x.wasm\"").contains("unknown field \"modul\""));
        assert!(with("module", "").contains("module is missing"));
        assert!(with("module", "\"../other/x.wasm\"").contains("inside the plugin's folder"));
        assert!(with("digest", "\"sha256:XYZ\"").contains("not sha256:"));
        assert!(with("kind", "\"route\"").contains("is a feature"));
        assert!(with("limits", r#"{"timeout_ms": 0}"#).contains("timeout_ms"));
        assert!(with("registrations", "{}").contains("registrations is empty"));
        assert!(
            with("registrations", r#"{"conditions": [{"nam": "x"}]}"#).contains("registrations")
        );
        assert!(with("name", "").contains("name"));
        assert!(
            PluginManifest::parse("[1]")
                .unwrap_err()
                .contains("not a JSON object")
        );
    }

    #[test]
    fn digests_are_sha256_in_lowercase_hex() {
        let d = digest_of(b"abc");
        assert_eq!(
            d,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_digest(&d));
        assert!(!is_digest(&d.to_uppercase()));
    }
}

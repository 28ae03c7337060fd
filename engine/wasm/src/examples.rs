//! The example WebAssembly plugins, built from C by
//! `engine/wasm/examples/build.sh` and committed beside their source; the
//! binary carries them so that `provenant demo` shows sandboxed plugins
//! with no plugins directory.
//!
//! - `wasm-innkeeper`: condition `is_thirsty` (seeded randomness and the
//!   NPC's state), effect `serve_drink` (reads and writes its own session
//!   flag);
//! - `wasm-gossip`: effect `spread_rumor` (its own storage, an emitted
//!   event, a log line);
//! - `wasm-runaway`: condition `stuck`, an endless loop: the hostile one,
//!   stopped by its fuel.

use std::path::Path;

use crate::error::LoadError;
use crate::load::load_parts;
use crate::plugin::WasmPlugin;
use crate::runtime::WasmRuntime;

/// Each example: its folder's name, manifest and module.
pub const EXAMPLES: [(&str, &str, &[u8]); 3] = [
    (
        "innkeeper",
        include_str!("../examples/innkeeper/manifest.json"),
        include_bytes!("../examples/innkeeper/plugin.wasm"),
    ),
    (
        "gossip",
        include_str!("../examples/gossip/manifest.json"),
        include_bytes!("../examples/gossip/plugin.wasm"),
    ),
    (
        "runaway",
        include_str!("../examples/runaway/manifest.json"),
        include_bytes!("../examples/runaway/plugin.wasm"),
    ),
];

/// The example plugins, loaded as a plugins directory's would be (their
/// manifests name their digests, so a module that is not the committed one
/// is refused).
pub fn examples(runtime: &WasmRuntime) -> Result<Vec<WasmPlugin>, LoadError> {
    EXAMPLES
        .iter()
        .map(|(name, manifest, module)| {
            let folder = Path::new("engine/wasm/examples").join(name);
            load_parts(&folder, name, manifest, |_| Ok(module.to_vec()), runtime)
        })
        .collect()
}

/// The tavern's activities that call the well-behaved examples: a thirsty
/// NPC is served a drink, and every drink spreads a rumor.
pub fn tavern_activities() -> serde_json::Value {
    serde_json::json!([
        {"id": "drink",
         "conditions": [{"id": "plugin:wasm-innkeeper:is_thirsty"}],
         "effects": [{"id": "effect:plugin:wasm-innkeeper:serve_drink"},
                     {"id": "effect:plugin:wasm-gossip:spread_rumor", "params": {"topic": "the drinks"}}]}
    ])
}

/// The cellar's activity that calls the hostile example.
pub fn cellar_activities() -> serde_json::Value {
    serde_json::json!([
        {"id": "dig", "conditions": [{"id": "plugin:wasm-runaway:stuck"}], "effects": []}
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{PluginManifest, digest_of};

    /// The committed modules are the ones their manifests name (CI also
    /// rebuilds them from source and compares: `build.sh --check`).
    #[test]
    fn each_committed_module_has_the_digest_its_manifest_names() {
        for (name, manifest, module) in EXAMPLES {
            let m = PluginManifest::parse(manifest).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                m.digest.as_deref(),
                Some(digest_of(module).as_str()),
                "{name}"
            );
            assert!(
                module.starts_with(b"\0asm\x0d\0\x01\0"),
                "{name} is a component"
            );
        }
    }
}

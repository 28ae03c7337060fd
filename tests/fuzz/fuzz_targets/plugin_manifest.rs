//! Plugin manifests: the text of a `manifest.json`, read as a WebAssembly
//! plugin's (`provenant_wasm::PluginManifest::parse`) and as a remote
//! plugin's (`provenant_remote::manifest::RemoteManifest::parse`).
//!
//! Checks: neither parser panics; what they accept keeps their rules (a
//! module path inside the plugin's folder, a well-formed digest, limits in
//! range; a remote deadline from 1 ms to the maximum, a circuit that can
//! close).
#![no_main]

use libfuzzer_sys::fuzz_target;
use provenant_remote::manifest::{MAX_TIMEOUT_MS, RemoteManifest};
use provenant_wasm::manifest::{PluginManifest, is_digest};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = PluginManifest::parse(text) {
        let module = std::path::Path::new(&m.module);
        assert!(
            !m.module.is_empty() && module.is_relative(),
            "{:?}",
            m.module
        );
        assert!(m.digest.as_deref().is_none_or(is_digest), "{:?}", m.digest);
        assert!(m.limits.check().is_ok());
        assert!(m.registrations.check().is_ok());
    }
    if let Ok(m) = RemoteManifest::parse(text) {
        assert!((1..=MAX_TIMEOUT_MS).contains(&m.timeout_ms));
        assert!(m.circuit.failures >= 1 && m.circuit.cool_down_ms >= 1);
        assert!(m.max_reply_bytes >= 1);
        assert!(m.registrations.check().is_ok());
    }
});

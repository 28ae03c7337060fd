//! A sandboxed plugin as the host sees it: a [`Plugin`] whose manifest and
//! registrations come from its `manifest.json`, and whose functions call
//! into its component.

use std::sync::Arc;

use provenant_host::declared;
use provenant_host::manifest::Manifest;
use provenant_host::registry::{RegisterError, Registrar};
use provenant_host::{Plugin, Runtime};

use crate::call::Sandbox;
use crate::manifest::PluginManifest;

/// A loaded WebAssembly plugin.
pub struct WasmPlugin {
    manifest: PluginManifest,
    digest: String,
    sandbox: Arc<Sandbox>,
}

impl WasmPlugin {
    pub fn new(manifest: PluginManifest, digest: String, sandbox: Sandbox) -> Self {
        WasmPlugin {
            manifest,
            digest,
            sandbox: Arc::new(sandbox),
        }
    }
}

impl Plugin for WasmPlugin {
    fn manifest(&self) -> Manifest {
        self.manifest.plugin.clone()
    }

    fn runtime(&self) -> Runtime {
        Runtime::Wasm {
            digest: self.digest.clone().into(),
        }
    }

    /// Registers what the manifest declares; the registrar checks each
    /// against the plugin's permissions. No plugin code runs here.
    fn register(&self, registrar: &mut Registrar<'_>) -> Result<(), RegisterError> {
        declared::register(&self.manifest.registrations, &self.sandbox, registrar)
    }
}

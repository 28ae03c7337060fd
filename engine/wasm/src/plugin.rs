//! A sandboxed plugin as the host sees it: a [`Plugin`] whose manifest and
//! registrations come from its `manifest.json`, and whose functions call
//! into its component.

use std::sync::Arc;

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
        let r = &self.manifest.registrations;
        for c in &r.conditions {
            let (sandbox, name) = (self.sandbox.clone(), c.name.clone());
            let required: Vec<&str> = c.required_context.iter().map(String::as_str).collect();
            registrar.condition(&c.name, &c.description, &required, move |ctx, params| {
                sandbox.condition(ctx, &name, params)
            })?;
        }
        for e in &r.effects {
            let (sandbox, name) = (self.sandbox.clone(), e.name.clone());
            registrar.effect(
                &e.name,
                &e.description,
                e.default_params.clone(),
                move |ctx, params| sandbox.effect(ctx, &name, params),
            )?;
        }
        for h in &r.event_handlers {
            let sandbox = self.sandbox.clone();
            let kinds: Vec<&str> = h.kinds.iter().map(String::as_str).collect();
            registrar.subscribe(&kinds, move |ctx, event| sandbox.handle(ctx, event))?;
        }
        for p in &r.simulation_configs {
            let (sandbox, name) = (self.sandbox.clone(), p.name.clone());
            registrar.simulation_config(&p.name, &p.description, p.priority, move |ctx| {
                sandbox.provide(ctx, &name)
            })?;
        }
        Ok(())
    }
}

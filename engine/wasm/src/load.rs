//! A plugins directory turned into plugins: one folder per plugin, each
//! with a `manifest.json` and its component, checked before any of its code
//! runs.

use std::collections::BTreeSet;
use std::path::Path;

use provenant_host::permissions::{Permission, resolve};
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, ComponentExportIndex, HasSelf, Linker, Type};

use crate::bindings::{PACKAGE, Plugin as PluginWorld, VERSION};
use crate::call::{Exports, Sandbox};
use crate::error::{LoadError, Problem};
use crate::imports;
use crate::manifest::{PluginManifest, digest_of};
use crate::plugin::WasmPlugin;
use crate::runtime::WasmRuntime;
use crate::state::CallState;

/// The file every plugin folder has.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Loads every plugin in `dir` (each folder holding a `manifest.json`;
/// folders whose name starts with `.` are left alone), in name order.
pub fn load_dir(dir: &Path, runtime: &WasmRuntime) -> Result<Vec<WasmPlugin>, LoadError> {
    let dir_error = |source| LoadError::Dir {
        dir: dir.to_owned(),
        source,
    };
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_error)? {
        let entry = entry.map_err(dir_error)?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.path().is_dir() {
            folders.push(entry.path());
        }
    }
    folders.sort();
    folders.iter().map(|f| load_plugin(f, runtime)).collect()
}

/// Loads the plugin in `folder`.
pub fn load_plugin(folder: &Path, runtime: &WasmRuntime) -> Result<WasmPlugin, LoadError> {
    let named = folder.file_name().map_or_else(
        || folder.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let fail = |problem| LoadError::Plugin {
        plugin: named.clone(),
        folder: folder.to_owned(),
        problem,
    };
    let text = std::fs::read_to_string(folder.join(MANIFEST_FILE))
        .map_err(|e| fail(Problem::UnreadableManifest(e)))?;
    let read = |module: &str| std::fs::read(folder.join(module));
    load_parts(folder, &named, &text, read, runtime)
}

/// Loads a plugin from the text of its manifest and a way to read its
/// module (`folder` and `named` say where it is, in errors).
pub fn load_parts(
    folder: &Path,
    named: &str,
    manifest: &str,
    read: impl FnOnce(&str) -> std::io::Result<Vec<u8>>,
    runtime: &WasmRuntime,
) -> Result<WasmPlugin, LoadError> {
    let fail = |plugin: &str, problem| LoadError::Plugin {
        plugin: plugin.to_owned(),
        folder: folder.to_owned(),
        problem,
    };
    let manifest =
        PluginManifest::parse(manifest).map_err(|e| fail(named, Problem::InvalidManifest(e)))?;
    let id = manifest.plugin.id.clone();
    let module = manifest.module.clone();
    let bytes = read(&module).map_err(|source| {
        fail(
            &id,
            if source.kind() == std::io::ErrorKind::NotFound {
                Problem::MissingModule {
                    module: module.clone(),
                }
            } else {
                Problem::UnreadableModule {
                    module: module.clone(),
                    source,
                }
            },
        )
    })?;
    let digest = digest_of(&bytes);
    if let Some(expected) = &manifest.digest
        && *expected != digest
    {
        return Err(fail(
            &id,
            Problem::DigestMismatch {
                module,
                expected: expected.clone(),
                actual: digest,
            },
        ));
    }
    let granted = resolve(&manifest.plugin.permissions)
        .map_err(|e| fail(&id, Problem::InvalidManifest(e.to_string())))?;
    let sandbox = sandbox(runtime, &bytes, &manifest, &granted).map_err(|p| fail(&id, p))?;
    Ok(WasmPlugin::new(manifest, digest, sandbox))
}

/// Compiles the component (or takes it from the cache), checks its imports
/// against the permissions and its exports against the registrations, and
/// pre-instantiates it.
fn sandbox(
    runtime: &WasmRuntime,
    bytes: &[u8],
    manifest: &PluginManifest,
    granted: &BTreeSet<Permission>,
) -> Result<Sandbox, Problem> {
    let engine = runtime.engine();
    let module = &manifest.module;
    if bytes.starts_with(b"\0asm\x01\0\0\0") {
        return Err(Problem::NotAComponent {
            module: module.clone(),
            reason: "it is a core WebAssembly module; make a component of it with \
                     `wasm-tools component new` (docs/plugin-authoring.md)"
                .into(),
        });
    }
    let component = Component::new(engine, bytes).map_err(|e| Problem::NotAComponent {
        module: module.clone(),
        reason: e.to_string(),
    })?;
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        imports::check(name, granted)?;
    }
    let mut linker = Linker::<CallState>::new(engine);
    PluginWorld::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
        .map_err(|e| Problem::Runtime(e.to_string()))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| Problem::DoesNotStart(e.to_string()))?;
    let r = &manifest.registrations;
    let find = |needed: bool, what: &str, interface: &str, func: &str, signature: &'static str| {
        if !needed {
            return Ok(None);
        }
        export(engine, &component, interface, func, signature)
            .ok_or_else(|| Problem::MissingExport {
                what: what.to_owned(),
                export: format!("{PACKAGE}/{interface}@{VERSION}#{func}"),
                signature,
            })
            .map(Some)
    };
    let exports = Exports {
        evaluate: find(
            !r.conditions.is_empty(),
            "conditions",
            "conditions",
            "evaluate",
            "func(string, string) -> result<bool, string>",
        )?,
        apply: find(
            !r.effects.is_empty(),
            "effects",
            "effects",
            "apply",
            "func(string, string) -> result<string, string>",
        )?,
        handle: find(
            !r.event_handlers.is_empty(),
            "event handlers",
            "handlers",
            "handle",
            "func(string) -> result<_, string>",
        )?,
        provide: find(
            !r.simulation_configs.is_empty(),
            "simulation config providers",
            "providers",
            "provide",
            "func(string) -> result<string, string>",
        )?,
    };
    Ok(Sandbox {
        engine: engine.clone(),
        pre,
        limits: crate::limits::Limits {
            timeout_ms: runtime.timeout_ms(manifest.limits.timeout_ms),
            ..manifest.limits
        },
        exports,
    })
}

/// The index of `interface`'s function `func` when the component exports
/// it with `signature`.
fn export(
    engine: &wasmtime::Engine,
    component: &Component,
    interface: &str,
    func: &str,
    signature: &str,
) -> Option<ComponentExportIndex> {
    let name = format!("{PACKAGE}/{interface}@{VERSION}");
    let ComponentItem::ComponentInstance(instance) =
        component.component_type().get_export(engine, &name)?.ty
    else {
        return None;
    };
    let ComponentItem::ComponentFunc(f) = instance.get_export(engine, func)?.ty else {
        return None;
    };
    if render(&f) != signature {
        return None;
    }
    let interface = component.get_export_index(None, &name)?;
    component.get_export_index(Some(&interface), func)
}

/// A function's type as WIT writes it (the types this interface uses).
fn render(f: &ComponentFunc) -> String {
    fn ty(t: &Type) -> String {
        match t {
            Type::Bool => "bool".into(),
            Type::String => "string".into(),
            Type::Result(r) => format!(
                "result<{}, {}>",
                r.ok().map_or("_".into(), |t| ty(&t)),
                r.err().map_or("_".into(), |t| ty(&t))
            ),
            other => format!("{other:?}"),
        }
    }
    let params: Vec<String> = f.params().map(|(_, t)| ty(&t)).collect();
    let results: Vec<String> = f.results().map(|t| ty(&t)).collect();
    format!("func({}) -> {}", params.join(", "), results.join(", "))
}

//! provenant's WebAssembly plugin runtime: plugins a user brings, loaded
//! from a directory without rebuilding the engine, and run as sandboxed
//! components.
//!
//! A plugin is a folder with a `manifest.json` (the built-in plugins'
//! manifest fields, plus `module`, `digest`, `limits` and `registrations`)
//! and a WebAssembly component implementing `wit/plugin.wit`
//! (`provenant:plugin@0.1.0`). [`load::load_dir`] checks each against its
//! manifest (digest, the capability interfaces its permissions grant, the
//! exports its registrations need) and gives back [`plugin::WasmPlugin`]s,
//! which the host runs beside the built-in plugins: same registry, ids,
//! scoping, events and projections.
//!
//! Invariant: plugin code reaches nothing but the capabilities the host
//! lends it through `Ctx` (no WASI: no clock, randomness, filesystem,
//! network or environment), and every call runs in a fresh instance under
//! limits the runtime enforces: fuel (deterministic, so a replay fails the
//! same way), an epoch deadline, a memory cap and a cap on what it returns.

pub mod bindings;
pub mod call;
pub mod capabilities;
pub mod error;
pub mod examples;
pub mod imports;
pub mod limits;
pub mod load;
pub mod manifest;
pub mod plugin;
pub mod runtime;
pub mod state;

pub use error::{LoadError, Problem};
pub use limits::Limits;
pub use load::{load_dir, load_plugin};
pub use manifest::PluginManifest;
pub use plugin::WasmPlugin;
pub use runtime::{WasmConfig, WasmRuntime};

//! The plugin host: manifests and load order, permissions and their failure
//! modes, the capability API, the behavior registry, world scoping and
//! simulation config, and the evaluation of a tick.
//!
//! Invariant: plugin code reaches the game only through [`context::Ctx`],
//! and what it does leaves the host only as events returned to the caller,
//! which appends them to the log. Nothing here does I/O, reads the clock for
//! plugin code, or keeps global state.

pub mod capability;
pub mod context;
pub mod kinds;
pub mod manifest;
pub mod permissions;
pub mod plugin_host;
pub mod plugins;
pub mod registry;
pub mod rng;
pub mod runner;
pub mod scoping;
pub mod simconfig;
pub mod state;
pub mod tick;

pub use plugin_host::{Decision, HostConfig, HostError, Plugin, PluginHost};

#[cfg(test)]
mod tests;

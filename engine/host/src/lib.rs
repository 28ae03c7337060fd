//! provenant's plugin host: manifests and load order, permissions and their
//! failure modes, the capability API, the behavior registry, world scoping
//! and simulation config, ticks as they arrive ([`intake`]) and the
//! evaluation of a tick.
//!
//! Invariant: plugin code reaches the game only through [`context::Ctx`],
//! and what it does leaves the host only as events returned to the caller,
//! which appends them to the log. Nothing here does I/O, reads the clock for
//! plugin code, or keeps global state; this crate depends on no async
//! runtime, database, HTTP or NATS crate, and the architecture test keeps it
//! so.
//!
//! A plugin author needs only this crate's public API: the example plugins
//! (crate `provenant-plugins`) are written against nothing else.

pub mod capability;
pub mod context;
pub mod declared;
pub mod intake;
pub mod json_object;
pub mod manifest;
pub mod permissions;
pub mod plugin_host;
pub mod registry;
pub mod rng;
pub mod runner;
pub mod runtime;
pub mod scoping;
pub mod simconfig;
pub mod state;
pub mod tick;
pub mod world;

pub use context::ENGINE_VERSION;
pub use plugin_host::{Decision, HostConfig, HostError, Plugin, PluginHost};
pub use runtime::Runtime;

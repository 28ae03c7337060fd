//! The plugin host: manifests and load order, permissions and their failure
//! modes, world scoping and simulation config.
//!
//! Invariant: everything here is pure (no I/O, no clock, no global state);
//! what a plugin does reaches the outside world only as events returned to
//! the caller, which appends them to the log.

pub mod manifest;
pub mod permissions;
pub mod scoping;
pub mod simconfig;

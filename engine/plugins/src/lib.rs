//! provenant's example plugins and the demo's worlds.
//!
//! Invariant: this crate uses only the public API of `provenant-host`, as a
//! plugin author outside the engine would; it proves that API is enough to
//! write a plugin. The plugins use only their context: its game time, its
//! seeded RNG and its capabilities.

mod examples;
pub mod worlds;

pub use examples::{ExampleFlaky, ExampleNosy, GameRomance, GameStealth, builtin};

//! Write a provenant plugin in Rust.
//!
//! A plugin implements [`Plugin`] (each method has a default that says the
//! plugin has no such thing) and exports it with [`export_plugin!`]; what it
//! may do is in the capability modules ([`call`], [`world`], [`session`],
//! [`npc`], [`storage`], [`log`], [`events`]), each a function per
//! capability of `wit/plugin.wit` with JSON as [`Value`]s.
//!
//! ```text
//! use provenant_plugin_sdk::{Plugin, Value, export_plugin, session};
//!
//! struct Greeter;
//!
//! impl Plugin for Greeter {
//!     fn condition(name: &str, _params: Value) -> Result<bool, String> {
//!         match name {
//!             "likes_player" => Ok(session::get_flag("mood")?.is_some()),
//!             other => Err(format!("no condition {other}")),
//!         }
//!     }
//! }
//!
//! export_plugin!(Greeter);
//! ```
//!
//! Build it for `wasm32-unknown-unknown` (no WASI: provenant gives a plugin
//! none) and make a component of it with `wasm-tools component new`; see
//! `docs/plugin-authoring.md`.

pub mod adapter;
pub mod bindings;
pub mod capabilities;

pub use adapter::Plugin;
pub use capabilities::{Denied, call, events, log, npc, session, storage, world};
pub use serde_json::{self, Value, json};

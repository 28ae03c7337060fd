//! provenant's engine: the plugin host, tick intake, the engine service and
//! the `provenant` command.
//!
//! `main.rs` is one line; [`cli`] parses arguments and hands each command to
//! its module. Commands get their settings as `Config` structs, never as
//! loose flags, so that they can be called from tests and other commands.

pub mod audit;
pub mod bench;
pub mod bench_audit;
pub mod bench_projections;
pub mod bench_service;
pub mod cli;
pub mod demo;
pub mod host;
pub mod intake;
pub mod plugins_cmd;
pub mod projections_cmd;
pub mod sample;
pub mod service;
pub mod sim;
mod telemetry;
pub mod world_cmd;

/// The version of this build, recorded in every event's provenance.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

//! One module per command, each with its arguments (clap) beside it and a
//! `run` that returns the command's exit code. The binary (crate
//! `provenant-cli`) only parses the command line and calls them; the
//! benchmarks and the load generator are commands of `provenant-bench`.
//!
//! Commands are the top layer of this crate: they use the service, the
//! clients and the leaves; nothing below imports from here.

pub mod args;
pub mod audit;
pub mod cluster;
pub mod demo;
pub mod keys;
pub mod migrate;
pub mod plugins;
pub mod projections;
pub mod serve;
pub mod tokens;
pub mod world;

//! provenant's end-to-end tests: one test binary.
//!
//! - `architecture`: ARCHITECTURE.md's dependency rule, checked against
//!   `cargo metadata` and the sources.
//! - `conformance`: the log's contract, run against PostgreSQL and SQLite.
//! - `audit`: `audit replay` and `audit trail` on logs the engine wrote.
//! - `cli`: the real `provenant` binary.
//! - `service`: `provenant serve` with PostgreSQL, SQLite and NATS JetStream,
//!   including SIGKILL and NATS restarts.
//! - `plans`: PostgreSQL's query plans stay right as the log grows.
//! - `wasm`: sandboxed (WebAssembly) plugins in the host, built at test time
//!   from WAT: loaded, contained, refused; `wasm_cli`: the same through the
//!   binary (`serve`, `plugins list`, `audit replay`).
//! - `remote`: remote plugins in the host, against real HTTP services and a
//!   real NATS responder; `remote_cli`: the same through the binary.

mod architecture;
mod audit;
mod cli;
mod conformance;
mod demo;
mod host;
mod plans;
mod projections;
mod remote;
mod remote_cli;
mod service;
mod sim;
mod wasm;
mod wasm_cli;

//! provenant's end-to-end tests: one test binary.
//!
//! - `access`: the roles' tokens over HTTP: who may do what, 401 and 403,
//!   secrets never shown.
//! - `anchors`: signed head anchors: forged, other keys' and replayed ones
//!   caught by `audit verify` and `audit anchors`.
//! - `architecture`: ARCHITECTURE.md's dependency rule, checked against
//!   `cargo metadata` and the sources.
//! - `conformance`: the log's contract, run against PostgreSQL and SQLite;
//!   `feed`: following the log in memory, and the hand-over to reading it;
//!   `leases`: one holder per lease, epochs, and appends fenced by them.
//! - `audit`: `audit replay` and `audit trail` on logs the engine wrote.
//! - `cli`: the real `provenant` binary.
//! - `service`: `provenant serve` with PostgreSQL, SQLite and NATS JetStream,
//!   including SIGKILL and NATS restarts; `handover`: the relay and the
//!   projections fed in memory, and back to the log when they fall behind.
//! - `nats_auth`: NATS with TLS, client certificates, users and the least
//!   permissions (docs/nats/permissions.conf).
//! - `nats_config`: the streams and the consumer the NATS server holds are
//!   read back; a field otherwise than asked refuses the start.
//! - `postgres_access`: PostgreSQL over TLS with its certificate checked, and
//!   the engine under a role with the least grants (docs/postgres/grants.sql).
//! - `plans`: PostgreSQL's query plans stay right as the log grows.
//! - `wasm`: sandboxed (WebAssembly) plugins in the host, built at test time
//!   from WAT: loaded, contained, refused; `wasm_cli`: the same through the
//!   binary (`serve`, `plugins list`, `audit replay`).
//! - `remote`: remote plugins in the host, against real HTTP services and a
//!   real NATS responder; `remote_cli`: the same through the binary.
//! - `worlds`: worlds loaded from their snapshots equal the fold from
//!   position 0; idle worlds leave memory and come back the same.

mod access;
mod anchors;
mod architecture;
mod audit;
mod cli;
mod cluster;
#[macro_use]
mod conformance;
mod demo;
mod feed;
mod handover;
mod host;
mod leases;
mod monitoring;
mod nats_auth;
mod nats_config;
mod plans;
mod postgres_access;
mod projections;
mod remote;
mod remote_cli;
mod service;
mod sim;
mod wasm;
mod wasm_cli;
mod worlds;

//! provenant's end-to-end tests: one test binary.
//!
//! - `conformance`: the log's contract, run against PostgreSQL and SQLite.
//! - `cli`: the real `provenant` binary.
//! - `service`: `provenant serve` with PostgreSQL, SQLite and NATS JetStream,
//!   including SIGKILL and NATS restarts.
//! - `plans`: PostgreSQL's query plans stay right as the log grows.

mod cli;
mod conformance;
mod demo;
mod host;
mod plans;
mod projections;
mod service;
mod sim;
mod support;

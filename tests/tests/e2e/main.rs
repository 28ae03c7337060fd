//! provenant's end-to-end tests: one test binary.
//!
//! - `conformance`: the log's contract, run against PostgreSQL and SQLite.
//! - `cli`: the real `provenant` binary.
//! - `service`: `provenant serve` with PostgreSQL, SQLite and NATS JetStream,
//!   including SIGKILL and NATS restarts.

mod cli;
mod conformance;
mod demo;
mod host;
mod service;
mod sim;
mod support;

//! provenant's end-to-end tests: one test binary.
//!
//! - `conformance`: the log's contract, run against PostgreSQL and SQLite.
//! - `cli`: the real `provenant` binary.

mod cli;
mod conformance;
mod host;

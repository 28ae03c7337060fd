//! provenant's projections: state derived from the log (per-plugin metrics
//! and health, session state, engine counters), each with a checkpoint that
//! commits in the same transaction as its state, so a crash neither loses
//! nor double-counts an event.
//!
//! A [`Projection`] is pure: it folds events into rows (a key and a JSON
//! text each) and says which rows changed. [`runner`] is the I/O edge: it
//! loads a projection's rows and checkpoint from the log's database, tails
//! the log from there and commits the changed rows with the new checkpoint.
//!
//! Invariants: a projection reads the log and writes only its own rows and
//! checkpoint; it never appends to the log. Its state depends only on the
//! events applied, in order (no clock, no randomness, no I/O), and every
//! piece of state that affects a later `apply` is in its rows, so restoring
//! from rows at a checkpoint and going on gives the same rows as applying
//! every event from position 0 (rebuild equals live).

pub mod config;
pub mod names;
pub mod plugin_metrics;
pub mod projection;
pub mod runner;
pub mod session;
pub mod standard;
pub mod totals;

pub use config::ProjectionsConfig;
pub use projection::{Factory, Projection};
pub use runner::{Runner, RunnerConfig, RunnerError, catch_up_together, spawn_all};
pub use standard::standard;

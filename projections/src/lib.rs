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

pub mod plugin_metrics;
pub mod runner;
pub mod session;
pub mod totals;

use std::sync::Arc;

use provenant_events::Event;

pub use runner::{Factory, Runner, RunnerConfig, RunnerError, catch_up_together, spawn_all};

/// The projections' names: their checkpoints' and rows' names in the store.
pub mod names {
    pub const PLUGIN_METRICS: &str = "plugin_metrics";
    pub const SESSIONS: &str = "sessions";
    pub const TOTALS: &str = "totals";
    /// Every projection the engine runs, in the order they are listed.
    pub const ALL: &[&str] = &[PLUGIN_METRICS, SESSIONS, TOTALS];
}

/// What the projections are configured with.
#[derive(Debug, Clone, Default)]
pub struct ProjectionsConfig {
    pub health: plugin_metrics::HealthConfig,
}

/// The projections the engine runs, by name, each as a [`Factory`].
pub fn standard(config: &ProjectionsConfig) -> Vec<(&'static str, Factory)> {
    let health = config.health;
    vec![
        (
            names::PLUGIN_METRICS,
            Arc::new(move || {
                Box::new(plugin_metrics::PluginMetricsProjection::new(health))
                    as Box<dyn Projection>
            }) as Factory,
        ),
        (
            names::SESSIONS,
            Arc::new(|| Box::new(session::SessionProjection::new()) as Box<dyn Projection>),
        ),
        (
            names::TOTALS,
            Arc::new(|| Box::new(totals::TotalsProjection::new()) as Box<dyn Projection>),
        ),
    ]
}

/// A state folded from the log, stored as rows.
pub trait Projection: Send + 'static {
    /// Unique among projections: the name of its checkpoint and rows.
    fn name(&self) -> &'static str;

    /// The version of the rows' format. Rows stored by another version are
    /// not restored: the projection is rebuilt from position 0.
    fn version(&self) -> u32;

    /// Restores the state from stored rows (key, JSON text). An error means
    /// the rows do not decode; the runner then rebuilds.
    fn restore(&mut self, rows: Vec<(String, String)>) -> Result<(), String>;

    /// Applies the next event of the log. Never fails and never panics:
    /// an event it cannot read is skipped (the log holds events of kinds
    /// and shapes a build may not know).
    fn apply(&mut self, event: &Event);

    /// The rows changed since the last call: `(key, Some(json))` to write,
    /// `(key, None)` to delete.
    fn take_changes(&mut self) -> Vec<(String, Option<String>)>;
}

//! What a projection is: a pure fold of the log into rows.

use std::sync::Arc;

use provenant_events::Event;

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

/// Makes a fresh, empty projection (for a start from position 0, and for a
/// reload).
pub type Factory = Arc<dyn Fn() -> Box<dyn Projection> + Send + Sync>;

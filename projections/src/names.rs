//! The projections' names: their checkpoints' and rows' names in the store.

pub const PLUGIN_METRICS: &str = "plugin_metrics";
pub const SESSIONS: &str = "sessions";
pub const TOTALS: &str = "totals";
/// Every projection the engine runs, in the order they are listed.
pub const ALL: &[&str] = &[PLUGIN_METRICS, SESSIONS, TOTALS];

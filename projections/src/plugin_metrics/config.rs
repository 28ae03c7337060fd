//! How health is judged ([`HealthConfig`], the thresholds) and the bounds
//! that keep a row small whatever a plugin writes.

/// How many failed calls a row keeps in `recent_errors`.
pub const RECENT_ERRORS: usize = 10;

/// Health thresholds, in percent: a rate above one makes the plugin
/// unhealthy, a rate above half of one makes it degraded.
pub const REQUEST_ERROR_THRESHOLD_PCT: u64 = 50;
pub const CONDITION_FAILURE_THRESHOLD_PCT: u64 = 30;
pub const EFFECT_FAILURE_THRESHOLD_PCT: u64 = 30;
pub const EVENT_HANDLER_FAILURE_THRESHOLD_PCT: u64 = 50;

/// Texts taken from payloads (error messages, ids) are cut to this many
/// characters, so that a row stays bounded whatever a plugin writes.
pub(super) const MAX_TEXT_CHARS: usize = 512;
/// Permission names (map keys) are cut to this many characters.
pub(super) const MAX_KEY_CHARS: usize = 128;
/// Above this many world clocks, the clocks of worlds that no longer have a
/// sample in the window are forgotten.
pub(super) const MAX_WORLD_CLOCKS: usize = 64;
/// A pending denial remembers at most this many permissions.
pub(super) const MAX_PENDING_PERMISSIONS: usize = 16;

/// How health is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// The game-time window, per world (default 5 minutes).
    pub window: chrono::Duration,
    /// The most calls the window keeps, newest first (default 200).
    pub window_calls: usize,
    /// A rate is judged only with more than this many samples (default 10).
    pub min_samples: usize,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            window: chrono::Duration::minutes(5),
            window_calls: 200,
            min_samples: 10,
        }
    }
}

//! What the projections are configured with.

use crate::plugin_metrics::HealthConfig;

/// What the projections are configured with.
#[derive(Debug, Clone, Default)]
pub struct ProjectionsConfig {
    pub health: HealthConfig,
}

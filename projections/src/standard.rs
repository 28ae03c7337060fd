//! The projections the engine runs.

use std::sync::Arc;

use crate::config::ProjectionsConfig;
use crate::names;
use crate::plugin_metrics::PluginMetricsProjection;
use crate::projection::{Factory, Projection};
use crate::session::SessionProjection;
use crate::totals::TotalsProjection;

/// The projections the engine runs, by name, each as a [`Factory`].
pub fn standard(config: &ProjectionsConfig) -> Vec<(&'static str, Factory)> {
    let health = config.health;
    vec![
        (
            names::PLUGIN_METRICS,
            Arc::new(move || Box::new(PluginMetricsProjection::new(health)) as Box<dyn Projection>)
                as Factory,
        ),
        (
            names::SESSIONS,
            Arc::new(|| Box::new(SessionProjection::new()) as Box<dyn Projection>),
        ),
        (
            names::TOTALS,
            Arc::new(|| Box::new(TotalsProjection::new()) as Box<dyn Projection>),
        ),
    ]
}

//! Arguments more than one command takes.

use clap::Args;
use provenant_log::DEFAULT_DATABASE_URL;

/// Where the log is.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// The log: postgres://… or sqlite://… (a file, created if missing).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
}

/// The plugin health window. Changing it applies from then on; rebuild
/// `plugin_metrics` to apply it to the whole log.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// A plugin's health is judged over its calls of the last this many
    /// seconds of game time (each world's own clock)…
    #[arg(long, env = "PROVENANT_HEALTH_WINDOW_SECONDS", default_value_t = 300)]
    pub health_window_seconds: u32,
    /// …and at most this many of its latest calls.
    #[arg(long, env = "PROVENANT_HEALTH_WINDOW_CALLS", default_value_t = 200)]
    pub health_window_calls: usize,
}

impl HealthArgs {
    pub fn config(&self) -> provenant_projections::ProjectionsConfig {
        provenant_projections::ProjectionsConfig {
            health: provenant_projections::plugin_metrics::HealthConfig {
                window: chrono::Duration::seconds(i64::from(self.health_window_seconds)),
                window_calls: self.health_window_calls.max(1),
                ..Default::default()
            },
        }
    }
}

/// Where plugin calls run, for `serve` and `audit replay`.
pub fn isolation(name: &str) -> provenant_host::runner::Isolation {
    match name {
        "inline" => provenant_host::runner::Isolation::Inline,
        _ => provenant_host::runner::Isolation::Thread,
    }
}

/// Which part of the log an audit looks at: what matches every one given.
#[derive(Debug, Clone, Args)]
pub struct AuditScope {
    /// Only this world's.
    #[arg(long)]
    pub world: Option<provenant_events::WorldId>,
    /// Only this session's.
    #[arg(long)]
    pub session: Option<provenant_events::SessionId>,
    /// Only this plugin's.
    #[arg(long)]
    pub plugin: Option<String>,
}

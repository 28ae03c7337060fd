//! `provenant demo`'s arguments and settings.

use clap::Args;

use crate::commands::args::{DbArgs, PluginsDirArgs};
use crate::plugin_source::PluginSource;

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// NATS with JetStream, e.g. nats://127.0.0.1:4222: ticks are published
    /// to <prefix>.ticks.<world_id> and the log is relayed to the events
    /// stream. Without it ticks are handed to the engine in-process.
    #[arg(long, env = "NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    /// Prefix of the NATS subjects, streams and consumer, as `provenant
    /// serve`'s: `provenant` gives provenant.ticks.<world>, PROVENANT_TICKS
    /// and PROVENANT_EVENTS.
    #[arg(long, env = "PROVENANT_NATS_PREFIX", default_value = "provenant")]
    pub nats_prefix: String,
    /// Number of game ticks to simulate (each for two sessions of the
    /// tavern, and every 100th for the cellar).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub ticks: u64,
    /// Also start the example remote plugin, the tavern oracle (a Python
    /// service using only its standard library:
    /// engine/remote/examples/tavern-oracle; needs python3), and let the
    /// tavern consult it over HTTP.
    #[arg(long)]
    pub remote_example: bool,
    /// Deadline of one plugin call, in milliseconds (as `serve`'s; the
    /// flaky example overruns 80 ms now and then, to show a timeout).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub plugin_deadline_ms: u64,
    #[command(flatten)]
    pub plugins: PluginsDirArgs,
}

impl DemoArgs {
    pub fn config(self) -> DemoConfig {
        DemoConfig {
            database_url: self.db.database_url,
            nats_url: self.nats_url.filter(|u| !u.is_empty()),
            nats_prefix: self.nats_prefix,
            ticks: self.ticks,
            remote_example: self.remote_example,
            deadline: std::time::Duration::from_millis(self.plugin_deadline_ms),
            plugins: PluginSource {
                examples: true,
                ..self.plugins.source()
            },
        }
    }
}

/// Settings of `provenant demo`.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// The log: `postgres://…` or `sqlite://…`.
    pub database_url: String,
    /// NATS with JetStream; None: ticks are handed to the engine in-process.
    pub nats_url: Option<String>,
    /// The engine's NATS prefix (subjects, streams, consumer).
    pub nats_prefix: String,
    /// Game ticks, each for two sessions of the tavern (and every 100th for
    /// the cellar).
    pub ticks: u64,
    /// Start the example remote plugin and let the tavern consult it.
    pub remote_example: bool,
    /// Deadline of one plugin call.
    pub deadline: std::time::Duration,
    /// The plugins: the built-in ones and a plugins directory's.
    pub plugins: PluginSource,
}

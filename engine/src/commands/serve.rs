//! `provenant serve`: the engine, until SIGTERM or Ctrl-C.

use clap::Args;

use super::args::{DbArgs, HealthArgs, PluginsDirArgs, isolation};
use crate::nats_names::NatsNames;
use crate::service::run::{DEFAULT_HTTP_ADDR, ServiceConfig, serve};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// NATS with JetStream, e.g. nats://127.0.0.1:4222. Without it ticks come
    /// only over HTTP and events go to an in-process bus.
    #[arg(long, env = "NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    /// Where the HTTP API listens. A non-loopback address needs an admin
    /// token.
    #[arg(long, env = "PROVENANT_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    pub http_addr: std::net::SocketAddr,
    /// When set, every POST, PUT and DELETE and every /admin/ request needs
    /// `Authorization: Bearer <token>` (401 otherwise).
    #[arg(long, env = "PROVENANT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Prefix of the NATS subjects, streams and consumer: `provenant` gives
    /// provenant.ticks.<world>, PROVENANT_TICKS, PROVENANT_EVENTS and the
    /// consumer provenant-engine.
    #[arg(long, env = "PROVENANT_NATS_PREFIX", default_value = "provenant")]
    pub nats_prefix: String,
    /// This engine's name in every event's provenance (default: the host
    /// name and process id).
    #[arg(long, env = "PROVENANT_INSTANCE")]
    pub instance: Option<String>,
    /// Deadline of one plugin call, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub plugin_deadline_ms: u64,
    /// Where plugin calls run: `thread` (a pool of worker threads; a call
    /// that overruns its deadline is abandoned and the tick goes on) or
    /// `inline` (on the evaluating thread: about 15x cheaper per call, but
    /// an overrunning call holds its world's ticks until it returns; its
    /// result is discarded all the same).
    #[arg(long, env = "PROVENANT_PLUGIN_ISOLATION", default_value = "thread", value_parser = ["thread", "inline"])]
    pub plugin_isolation: String,
    /// Where the projections (plugin metrics and health, sessions, totals)
    /// run: `engine` (in this process) or `external` (another process runs
    /// `provenant projections run`; the admin API and /metrics read what it
    /// commits).
    #[arg(long, env = "PROVENANT_PROJECTIONS", default_value = "engine", value_parser = ["engine", "external"])]
    pub projections: String,
    #[command(flatten)]
    pub plugins: PluginsDirArgs,
    #[command(flatten)]
    pub health: HealthArgs,
    /// With NATS: publish the log's head to <prefix>.anchors (stream
    /// <PREFIX>_ANCHORS) every this many seconds when it has moved, and at a
    /// graceful stop, as anchors for `audit verify --expect-head`. 0: never.
    #[arg(long, env = "PROVENANT_ANCHOR_INTERVAL_SECONDS", default_value_t = 10)]
    pub anchor_interval_seconds: u64,
}

impl ServeArgs {
    /// The service's settings from the arguments.
    pub fn config(self) -> anyhow::Result<ServiceConfig> {
        let instance = match self.instance {
            Some(i) => i,
            None => format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "engine".into()),
                std::process::id()
            ),
        };
        Ok(ServiceConfig {
            database_url: self.db.database_url,
            nats_url: self.nats_url.filter(|u| !u.is_empty()),
            http_addr: self.http_addr,
            admin_token: self.admin_token.filter(|t| !t.is_empty()),
            nats_names: NatsNames::new(&self.nats_prefix)?,
            instance,
            deadline: std::time::Duration::from_millis(self.plugin_deadline_ms),
            isolation: isolation(&self.plugin_isolation),
            plugins: self.plugins.source(),
            commit: Default::default(),
            projections: self.health.config(),
            run_projections: self.projections == "engine",
            anchor_every: (self.anchor_interval_seconds > 0)
                .then(|| std::time::Duration::from_secs(self.anchor_interval_seconds)),
        })
    }
}

/// `provenant serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    serve(args.config()?).await
}

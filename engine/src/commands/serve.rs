//! `provenant serve`: the engine, until SIGTERM or Ctrl-C.

use anyhow::Context as _;
use clap::Args;

use super::args::{DbArgs, HealthArgs, NatsAuthArgs, PluginsDirArgs, isolation};
use super::tokens::TokenArgs;
use crate::nats_names::NatsNames;
use crate::service::run::{ClusterConfig, DEFAULT_HTTP_ADDR, ServiceConfig, serve};
use crate::service::worlds::WorldsConfig;
use provenant_events::Partitions;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// NATS with JetStream, e.g. nats://127.0.0.1:4222. Without it ticks come
    /// only over HTTP and events go to an in-process bus.
    #[arg(long, env = "NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    #[command(flatten)]
    pub nats_auth: NatsAuthArgs,
    /// Where the HTTP API listens. A non-loopback address needs a token.
    #[arg(long, env = "PROVENANT_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    pub http_addr: std::net::SocketAddr,
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// Prefix of the NATS subjects, streams and consumer: `provenant` gives
    /// provenant.ticks.<world>, PROVENANT_TICKS, PROVENANT_EVENTS and the
    /// consumer provenant-engine.
    #[arg(long, env = "PROVENANT_NATS_PREFIX", default_value = "provenant")]
    pub nats_prefix: String,
    /// Copies the NATS servers keep of each stream (a JetStream cluster of
    /// at least this many servers), when the engine creates the streams.
    #[arg(long, env = "PROVENANT_NATS_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_replicas: u8,
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
    /// Sign every anchor with this Ed25519 private key (PKCS#8 PEM, as
    /// `provenant keys generate` writes), so that `audit anchors` and
    /// `audit verify --expect-head` can tell the engine's anchors from
    /// anyone else's. Without it anchors are unsigned.
    #[arg(long, value_name = "FILE", env = "PROVENANT_ANCHOR_KEY_FILE")]
    pub anchor_key_file: Option<std::path::PathBuf>,
    /// Committed events held in memory for the relay and the projections
    /// (at most; only while one of them is stuck). One that falls further
    /// behind reads the log until it has caught up.
    #[arg(long, env = "PROVENANT_LOG_FEED_EVENTS", default_value_t = provenant_log::DEFAULT_FEED_CAPACITY * provenant_log::FEED_CHUNK, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000_000))]
    pub log_feed_events: usize,
    /// A world without ticks for this many seconds is saved (a snapshot of
    /// its state beside the log) and leaves memory; its next tick loads it
    /// again. Fractions allowed, at least 0.001.
    #[arg(long, env = "PROVENANT_WORLD_IDLE_SECONDS", default_value_t = 300.0, value_parser = idle_seconds)]
    pub world_idle_seconds: f64,
    /// A world's snapshot is saved again after this many of its events, so
    /// that loading it after a crash folds at most about this many.
    #[arg(long, env = "PROVENANT_WORLD_SNAPSHOT_EVENTS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub world_snapshot_events: u64,
    /// How many partitions the worlds are spread over, when this engine is
    /// the first on its log (recorded then; later engines must agree, or
    /// leave it out). Engines on one log share the partitions; more than
    /// one needs nats-server 2.10 or newer. Default: 1.
    #[arg(long, env = "PROVENANT_PARTITIONS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub partitions: Option<u32>,
    /// How long this engine's leases (on its partitions, the relay, the
    /// projections) last unless renewed; they are renewed every third of
    /// it. The work of an engine that dies waits this long for another.
    #[arg(long, env = "PROVENANT_LEASE_SECONDS", default_value_t = 10.0, value_parser = lease_seconds)]
    pub lease_seconds: f64,
}

fn lease_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.3..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("expected seconds from 0.3 to 3600, not {s:?}")),
    }
}

fn idle_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.001..=1e7).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected seconds from 0.001 to 10000000, not {s:?}"
        )),
    }
}

impl ServeArgs {
    /// The service's settings from the arguments.
    pub fn config(self) -> anyhow::Result<ServiceConfig> {
        if self.anchor_key_file.is_some() {
            anyhow::ensure!(
                self.nats_url.as_deref().is_some_and(|u| !u.is_empty()),
                "--anchor-key-file signs the anchors published to NATS: give --nats-url too"
            );
            anyhow::ensure!(
                self.anchor_interval_seconds > 0,
                "--anchor-key-file signs anchors, and --anchor-interval-seconds 0 turns them off"
            );
        }
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
            nats_auth: self.nats_auth.auth(),
            http_addr: self.http_addr,
            tokens: self.tokens.tokens()?,
            nats_names: NatsNames::new(&self.nats_prefix)?,
            nats_replicas: usize::from(self.nats_replicas),
            instance,
            deadline: std::time::Duration::from_millis(self.plugin_deadline_ms),
            isolation: isolation(&self.plugin_isolation),
            plugins: self.plugins.source(),
            commit: Default::default(),
            feed_batches: self.log_feed_events.div_ceil(provenant_log::FEED_CHUNK),
            worlds: WorldsConfig {
                idle: std::time::Duration::from_secs_f64(self.world_idle_seconds),
                snapshot_every: self.world_snapshot_events,
            },
            projections: self.health.config(),
            run_projections: self.projections == "engine",
            anchor_every: (self.anchor_interval_seconds > 0)
                .then(|| std::time::Duration::from_secs(self.anchor_interval_seconds)),
            anchor_key: self
                .anchor_key_file
                .as_deref()
                .map(crate::anchor::read_signing_key)
                .transpose()
                .context("--anchor-key-file")?,
            cluster: ClusterConfig {
                lease: std::time::Duration::from_secs_f64(self.lease_seconds),
                partitions: self
                    .partitions
                    .map(Partitions::new)
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--partitions: {e}"))?,
            },
        })
    }
}

/// `provenant serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    serve(args.config()?).await
}

//! The `provenant` command line.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use provenant_events::Head;
use provenant_events::log::DEFAULT_DATABASE_URL;

use crate::{audit, bench, demo, telemetry};

/// provenant: an event-sourced behavior engine with an auditable plugin log.
#[derive(Debug, Parser)]
#[command(name = "provenant", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what provenant does, through the engine service: on the embedded
    /// log with no server by default, on PostgreSQL and NATS when their URLs
    /// are given.
    Demo(DemoArgs),
    /// Run the engine: ticks in (NATS JetStream and POST /v1/ticks), events
    /// durable in the log and relayed to NATS, the HTTP API. Stops
    /// gracefully on SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// A game simulation: configures worlds on a running engine, sends ticks
    /// at a steady rate (to NATS, or POST /v1/ticks), and reports what was
    /// acknowledged, the throughput and the latency.
    Sim(crate::sim::SimArgs),
    /// Run pending database migrations (they also run when the engine starts).
    Migrate(DbArgs),
    /// Audit the log: verify the hash chain, print the head, replay plugin
    /// calls with this build's plugins, trace plugin actions to their causes.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Measure provenant against its baselines.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The plugins compiled into this build.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// A world's configuration: its plugins, simulation config and activities.
    #[command(subcommand)]
    World(WorldCommand),
    /// State derived from the log (plugin metrics and health, sessions,
    /// engine totals): run, rebuild, or show how far each has got.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Follow the log with every projection until SIGTERM or Ctrl-C (for an
    /// engine started with `--projections external`; running beside an
    /// engine that runs them too is safe, only wasteful).
    Run {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        health: HealthArgs,
    },
    /// Rebuild from position 0 up to the current head: one projection, or
    /// all; prints the events/s.
    Rebuild {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        health: HealthArgs,
        /// plugin_metrics, sessions or totals (default: all).
        name: Option<String>,
    },
    /// Each projection's position and its lag behind the log's head.
    Status {
        #[command(flatten)]
        db: DbArgs,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
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

#[derive(Debug, Subcommand)]
pub enum WorldCommand {
    /// Record a world's configuration (a `WorldConfigured` event) from a JSON
    /// file: `{name, description?, locations?, meta: {behavior:
    /// {enabledPlugins?, disabledPlugins?, simulationConfig?, activities?}}}`.
    Set {
        #[command(flatten)]
        db: DbArgs,
        /// The world id (1 to 64 characters of [A-Za-z0-9_-]).
        world_id: String,
        /// The configuration, as JSON.
        file: std::path::PathBuf,
    },
    /// Print a world's current configuration and its effective simulation
    /// config (plugin providers by priority, the world's own config over all).
    Show {
        #[command(flatten)]
        db: DbArgs,
        world_id: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Each plugin with its version, kind, granted permissions and what it
    /// registered.
    List {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Where the log is.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// The log: postgres://… or sqlite://… (a file, created if missing).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
}

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
    #[arg(long, env = "PROVENANT_HTTP_ADDR", default_value = crate::service::DEFAULT_HTTP_ADDR)]
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
    pub health: HealthArgs,
    /// With NATS: publish the log's head to <prefix>.anchors (stream
    /// <PREFIX>_ANCHORS) every this many seconds when it has moved, and at a
    /// graceful stop, as anchors for `audit verify --expect-head`. 0: never.
    #[arg(long, env = "PROVENANT_ANCHOR_INTERVAL_SECONDS", default_value_t = 10)]
    pub anchor_interval_seconds: u64,
}

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
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain from the first event. Exit status: 0 intact,
    /// 1 tampered (the first bad position and what is wrong: edited, missing,
    /// inserted, reordered, or the pinned head is gone), 2 could not run.
    Verify(VerifyArgs),
    /// Print the current head (POSITION:HASH), to store somewhere else and
    /// pass to `audit verify --expect-head` later.
    Head(HeadArgs),
    /// Re-execute recorded condition evaluations, effect applications and
    /// event handler calls with the plugins of this build, each fed what its
    /// event recorded (game time, NPC and tick context, params, RNG seed,
    /// the results of its reads), and compare the result and the writes with
    /// what was recorded. Reads only. Exit status: 0 every replayed call
    /// matched, 1 a call diverged, 2 could not run.
    Replay(ReplayArgs),
    /// The plugin actions that match, oldest first, each with its
    /// provenance and its causal chain (the tick, the call, the activity,
    /// the condition results that led to an effect, the event a handler
    /// handled): a table, or JSON lines with --json.
    Trail(TrailArgs),
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

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub scope: AuditScope,
    /// Only calls recorded at this position or later.
    #[arg(long, value_name = "POS")]
    pub from: Option<u64>,
    /// Only calls recorded at this position or earlier (default: the head
    /// when the replay starts).
    #[arg(long, value_name = "POS")]
    pub to: Option<u64>,
    /// How long one replayed call may run before it counts as diverged.
    #[arg(long, default_value_t = 10_000)]
    pub deadline_ms: u64,
    /// Where replayed calls run: `thread` (worker threads: a call that
    /// hangs is abandoned at the deadline) or `inline` (about twice as
    /// fast; a call that hangs holds the replay).
    #[arg(long, default_value = "thread", value_parser = ["thread", "inline"])]
    pub isolation: String,
    /// Divergences shown per plugin and version (the first ones).
    #[arg(long, default_value_t = 10)]
    pub show: usize,
    /// Print one JSON object instead of a report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TrailArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub scope: AuditScope,
    /// Only actions of calls about this NPC.
    #[arg(long)]
    pub npc: Option<String>,
    /// Only events of this kind (e.g. EffectApplied, RelationshipUpdated,
    /// PermissionDenied, plugin:game-stealth:suspicion_raised).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only actions of this tick (its number).
    #[arg(long)]
    pub tick: Option<u64>,
    /// Only actions at this position or later.
    #[arg(long, value_name = "POS")]
    pub since: Option<u64>,
    /// At most this many actions; 0: all.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// A head recorded earlier, POSITION:HASH, that must still be in the
    /// chain: this is how a truncated tail is caught.
    #[arg(long, value_name = "POSITION:HASH")]
    pub expect_head: Option<Head>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HeadArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append throughput into PostgreSQL (batches of 1, 100, 1000) beside a
    /// raw COPY of the same rows, and into SQLite.
    Append(bench::AppendBenchArgs),
    /// The relay (log → JetStream) beside a raw async-nats publish loop of
    /// the same messages.
    Relay(crate::bench_service::RelayBenchArgs),
    /// `provenant serve` on PostgreSQL and NATS under `provenant sim` load:
    /// throughput and latency at full and half load, peak memory, and the
    /// relay beside a raw publish loop.
    Service(crate::bench_service::ServiceBenchArgs),
    /// Rebuild throughput of each projection (events/s) from PostgreSQL and
    /// SQLite, beside a bare paged SELECT of the same rows, with where a
    /// rebuild's time goes (read, apply, encode, commit).
    Projections(crate::bench_projections::ProjectionsBenchArgs),
    /// `audit verify` and `audit replay` throughput (events/s) on a log of
    /// real recorded plugin calls in PostgreSQL (1,000,000 events by
    /// default), beside a bare paged SELECT of the same rows.
    Audit(crate::bench_audit::AuditBenchArgs),
}

/// Parses the command line and runs it; the exit code is the command's.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // The demo shows denials and plugin failures as counts, not as a stream
    // of warnings (RUST_LOG=provenant_engine::host=warn brings them back).
    let default_filter = match cli.command {
        // Replayed plugin code panics and is refused as it was when
        // recorded: the report says so, not a stream of warnings.
        Command::Demo(_) | Command::Audit(_) | Command::Bench(_) => {
            "warn,provenant_engine::host=error"
        }
        Command::Serve(_) => "info,provenant_engine::host=warn",
        _ => "warn",
    };
    telemetry::init(default_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(dispatch(cli.command))
}

async fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Audit(AuditCommand::Verify(args)) => {
            audit::verify_command(&audit::VerifyCommandConfig {
                database_url: args.db.database_url,
                expect_head: args.expect_head,
                json: args.json,
            })
            .await
            .exit_code()
        }
        Command::Audit(AuditCommand::Head(args)) => {
            report(audit::head_command(&args.db.database_url, args.json).await)
        }
        Command::Audit(AuditCommand::Replay(args)) => {
            let config = audit::replay::ReplayConfig {
                filter: audit::replay::CallFilter {
                    world: args.scope.world,
                    session: args.scope.session,
                    plugin: args.scope.plugin,
                },
                from: args.from,
                to: args.to,
                deadline: std::time::Duration::from_millis(args.deadline_ms),
                isolation: match args.isolation.as_str() {
                    "inline" => crate::host::runner::Isolation::Inline,
                    _ => crate::host::runner::Isolation::Thread,
                },
                keep: args.show,
            };
            audit::replay::replay_command(&args.db.database_url, &config, args.json)
                .await
                .exit_code()
        }
        Command::Audit(AuditCommand::Trail(args)) => report(
            audit::trail::trail_command(&audit::trail::TrailConfig {
                database_url: args.db.database_url,
                filter: audit::trail::TrailFilter {
                    world: args.scope.world,
                    session: args.scope.session,
                    npc: args.npc,
                    plugin: args.scope.plugin,
                    kind: args.kind,
                    tick: args.tick,
                },
                since: args.since,
                limit: (args.limit > 0).then_some(args.limit),
                json: args.json,
            })
            .await,
        ),
        Command::Migrate(db) => report(audit::migrate_command(&db.database_url).await),
        Command::Demo(args) => report(
            demo::run(&demo::DemoConfig {
                database_url: args.db.database_url,
                nats_url: args.nats_url.filter(|u| !u.is_empty()),
                nats_prefix: args.nats_prefix,
                ticks: args.ticks,
            })
            .await,
        ),
        Command::Serve(args) => report(serve(args).await),
        Command::Sim(args) => report(crate::sim::command(args).await),
        Command::Bench(BenchCommand::Append(args)) => report(bench::append(&args).await),
        Command::Bench(BenchCommand::Relay(args)) => {
            report(crate::bench_service::relay_command(&args).await)
        }
        Command::Bench(BenchCommand::Service(args)) => {
            report(crate::bench_service::service_command(&args).await)
        }
        Command::Bench(BenchCommand::Projections(args)) => {
            report(crate::bench_projections::projections(&args).await)
        }
        Command::Bench(BenchCommand::Audit(args)) => report(crate::bench_audit::audit(&args).await),
        Command::Plugins(PluginsCommand::List { json }) => report(crate::plugins_cmd::list(json)),
        Command::World(WorldCommand::Set { db, world_id, file }) => {
            report(crate::world_cmd::set(&db.database_url, &world_id, &file).await)
        }
        Command::World(WorldCommand::Show { db, world_id, json }) => {
            report(crate::world_cmd::show(&db.database_url, &world_id, json).await)
        }
        Command::Projections(ProjectionsCommand::Run { db, health }) => {
            report(crate::projections_cmd::run(&db.database_url, &health.config()).await)
        }
        Command::Projections(ProjectionsCommand::Rebuild { db, health, name }) => report(
            crate::projections_cmd::rebuild(&db.database_url, name.as_deref(), &health.config())
                .await,
        ),
        Command::Projections(ProjectionsCommand::Status { db, json }) => {
            report(crate::projections_cmd::status(&db.database_url, json).await)
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let instance = match args.instance {
        Some(i) => i,
        None => format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "engine".into()),
            std::process::id()
        ),
    };
    crate::service::serve(crate::service::ServiceConfig {
        database_url: args.db.database_url,
        nats_url: args.nats_url.filter(|u| !u.is_empty()),
        http_addr: args.http_addr,
        admin_token: args.admin_token.filter(|t| !t.is_empty()),
        nats_names: crate::service::nats::NatsNames::new(&args.nats_prefix)?,
        instance,
        deadline: std::time::Duration::from_millis(args.plugin_deadline_ms),
        isolation: match args.plugin_isolation.as_str() {
            "inline" => crate::host::runner::Isolation::Inline,
            _ => crate::host::runner::Isolation::Thread,
        },
        commit: Default::default(),
        projections: args.health.config(),
        run_projections: args.projections == "engine",
        anchor_every: (args.anchor_interval_seconds > 0)
            .then(|| std::time::Duration::from_secs(args.anchor_interval_seconds)),
    })
    .await
}

/// Prints an error with its causes; 0 on success, 1 on error.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, leaving out a cause whose text the
/// line already holds (database errors often repeat their source).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

//! The `provenant` command line: parses the arguments, sets up logging and
//! the async runtime, and runs one command. Each command's arguments and
//! work live beside it (`provenant_engine::commands`, and
//! `provenant_bench` for `bench` and `sim`); nothing here but the wiring.

mod telemetry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use provenant_bench::BenchCommand;
use provenant_bench::sim::SimArgs;
use provenant_engine::commands::args::DbArgs;
use provenant_engine::commands::audit::AuditCommand;
use provenant_engine::commands::cluster::ClusterCommand;
use provenant_engine::commands::demo::DemoArgs;
use provenant_engine::commands::keys::KeysCommand;
use provenant_engine::commands::plugins::PluginsCommand;
use provenant_engine::commands::projections::ProjectionsCommand;
use provenant_engine::commands::serve::ServeArgs;
use provenant_engine::commands::world::WorldCommand;
use provenant_engine::commands::{demo, migrate, serve};
use provenant_engine::error_text::report;

/// The first line of `provenant --help`.
pub const ABOUT: &str = "provenant's plugin host and the `provenant` command";

/// provenant: an event-sourced behavior engine with an auditable plugin log.
#[derive(Debug, Parser)]
#[command(name = "provenant", version, about = ABOUT, long_about = None)]
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
    Serve(Box<ServeArgs>),
    /// A game simulation: configures worlds on a running engine, sends ticks
    /// at a steady rate (to NATS, or POST /v1/ticks), and reports what was
    /// acknowledged, the throughput and the latency.
    Sim(SimArgs),
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
    /// Engines sharing one log: instances, partitions, leases, lag.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Keys that sign the log's head anchors.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// Parses the command line and runs it; the exit code is the command's.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // The demo shows denials and plugin failures as counts, not as a stream
    // of warnings (RUST_LOG=provenant_host=warn brings them back: the plugin
    // host logs under the target provenant_host, the service under
    // provenant_engine::service, the log under provenant_log).
    let default_filter = match cli.command {
        // Replayed plugin code panics and is refused as it was when
        // recorded: the report says so, not a stream of warnings.
        Command::Demo(_) | Command::Audit(_) | Command::Bench(_) => "warn,provenant_host=error",
        Command::Serve(_) => "info,provenant_host=warn",
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
        Command::Demo(args) => report(demo::run(&args.config()).await),
        Command::Serve(args) => report(serve::run(*args).await),
        Command::Sim(args) => report(provenant_bench::sim::command(args).await),
        Command::Migrate(db) => report(migrate::run(&db).await),
        Command::Audit(command) => command.run().await,
        Command::Bench(command) => command.run().await,
        Command::Plugins(command) => command.run(),
        Command::World(command) => command.run().await,
        Command::Projections(command) => command.run().await,
        Command::Cluster(command) => command.run().await,
        Command::Keys(command) => command.run(),
    }
}

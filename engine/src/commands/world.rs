//! `provenant world set` and `provenant world show`: a world's configuration
//! is a `WorldConfigured` event, and what the log says is what the engine
//! uses.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use provenant_events::{StreamName, WorldId};
use provenant_host::state::GameState;
use provenant_host::world::{configured_event, describe};
use provenant_host::{HostConfig, PluginHost};
use provenant_log::{AppendBatch, EventLog, LogConfig};
use serde_json::Value;

use super::args::{DbArgs, PluginsDirArgs};
use crate::error_text::report;
use crate::plugin_source::PluginSource;

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
        file: PathBuf,
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
        #[command(flatten)]
        plugins: PluginsDirArgs,
    },
}

impl WorldCommand {
    /// Runs the command; its exit code.
    pub async fn run(self) -> ExitCode {
        report(match self {
            WorldCommand::Set { db, world_id, file } => {
                set(&db.database_url, &world_id, &file).await
            }
            WorldCommand::Show {
                db,
                world_id,
                json,
                plugins,
            } => show(&db.database_url, &world_id, &plugins.source(), json).await,
        })
    }
}

/// Records the configuration in `file` for `world`; prints the position.
pub async fn set(database_url: &str, world: &str, file: &Path) -> anyhow::Result<()> {
    let world = WorldId::new(world)?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let config: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    let event = configured_event(&world, config)
        .with_context(|| format!("{} is refused", file.display()))?;
    let log = EventLog::open(&LogConfig::new(database_url)).await?;
    let outcome = log.append(AppendBatch::new(vec![event])).await?;
    let position = outcome.positions.first().copied().unwrap_or_default();
    println!("world {world} configured (WorldConfigured at position {position})");
    Ok(())
}

/// Prints the world's current configuration and effective simulation config
/// (the providers of the built-in plugins and of `plugins`' directory).
pub async fn show(
    database_url: &str,
    world: &str,
    plugins: &PluginSource,
    as_json: bool,
) -> anyhow::Result<()> {
    let world = WorldId::new(world)?;
    let log = EventLog::open(&LogConfig {
        migrate: false,
        ..LogConfig::new(database_url)
    })
    .await?;
    let state = world_state(&log, &world).await?;
    let host = PluginHost::start(plugins.load()?, HostConfig::default())?;
    let Some(description) = describe(&host, &Arc::new(state), &world) else {
        bail!("world {world} has never been configured");
    };
    if as_json {
        println!("{description}");
    } else {
        let config = &description["config"];
        let providers: Vec<&str> = description["providers"]
            .as_array()
            .map(|p| p.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!(
            "world {world}: {}",
            config["name"].as_str().unwrap_or_default()
        );
        println!("config: {}", serde_json::to_string_pretty(config)?);
        println!("providers: {}", providers.join(", "));
        println!(
            "effective simulation config: {}",
            serde_json::to_string_pretty(&description["effective_simulation_config"])?
        );
    }
    Ok(())
}

/// The state of one world, folded from its stream.
async fn world_state(log: &EventLog, world: &WorldId) -> anyhow::Result<GameState> {
    let stream = StreamName::world(world);
    let mut state = GameState::default();
    let mut after = 0;
    loop {
        let page = log.read_stream(&stream, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.stream_version;
        for e in &page {
            state.apply(e);
        }
    }
    Ok(state)
}

//! `provenant projections run | rebuild | status`: the projections outside
//! the engine (or beside it: commits are fenced on the checkpoint, so two
//! runners never both apply an event).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::Subcommand;
use provenant_log::{EventLog, LogConfig, redact_url};
use provenant_projections::{ProjectionsConfig, Runner, RunnerConfig, names, standard};
use serde_json::json;
use tokio::sync::watch;

use super::args::{DbArgs, HealthArgs};
use crate::error_text::report;
use crate::progress;
use crate::service::run::spawn_projections;
use crate::service::signals::stop_signal;

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

impl ProjectionsCommand {
    /// Runs the command; its exit code.
    pub async fn run(self) -> ExitCode {
        report(match self {
            ProjectionsCommand::Run { db, health } => run(&db.database_url, &health.config()).await,
            ProjectionsCommand::Rebuild { db, health, name } => {
                rebuild(&db.database_url, name.as_deref(), &health.config()).await
            }
            ProjectionsCommand::Status { db, json } => status(&db.database_url, json).await,
        })
    }
}

/// Opens the log for the projections (migrating it: their tables are part
/// of the schema).
async fn open(database_url: &str) -> anyhow::Result<EventLog> {
    EventLog::open(&LogConfig::new(database_url))
        .await
        .with_context(|| format!("cannot open the log at {}", redact_url(database_url)))
}

/// `provenant projections run`: every projection, following the log until
/// SIGTERM or Ctrl-C.
pub async fn run(database_url: &str, config: &ProjectionsConfig) -> anyhow::Result<()> {
    let signal = stop_signal();
    let log = open(database_url).await?;
    let (stop, stopped) = watch::channel(false);
    let tasks = spawn_projections(&log, config, Default::default(), None, stopped).await?;
    eprintln!(
        "projections {} following the log at {} (stop with Ctrl-C)",
        names::ALL.join(", "),
        redact_url(database_url)
    );
    signal.await;
    let _ = stop.send(true);
    for task in tasks {
        task.await.context("a projection ended abnormally")?;
    }
    log.close().await;
    Ok(())
}

/// `provenant projections rebuild [NAME]`: from position 0 to the head, with
/// a progress bar; prints the events/s of each.
pub async fn rebuild(
    database_url: &str,
    only: Option<&str>,
    config: &ProjectionsConfig,
) -> anyhow::Result<()> {
    let chosen: Vec<_> = standard(config)
        .into_iter()
        .filter(|(name, _)| only.is_none_or(|o| o == *name))
        .collect();
    if chosen.is_empty() {
        anyhow::bail!(
            "no projection {:?}: the projections are {}",
            only.unwrap_or_default(),
            names::ALL.join(", ")
        );
    }
    let log = open(database_url).await?;
    let figure = rebuild_together(&log, chosen).await?;
    for name in &figure.names {
        println!(
            "{name}: rebuilt to position {} ({} events)",
            figure.position, figure.events
        );
    }
    println!(
        "{} event{} read once for {} projection{} in {:.2} s: {:.0} events/s",
        figure.events,
        if figure.events == 1 { "" } else { "s" },
        figure.names.len(),
        if figure.names.len() == 1 { "" } else { "s" },
        figure.seconds,
        figure.events as f64 / figure.seconds.max(1e-9)
    );
    log.close().await;
    Ok(())
}

/// What a rebuild of several projections together did.
pub struct RebuiltTogether {
    pub names: Vec<&'static str>,
    pub position: u64,
    pub events: u64,
    pub seconds: f64,
}

/// Forgets the projections' rows and folds the log from position 0 up to
/// the head as it is now, reading it once for all of them.
pub async fn rebuild_together(
    log: &EventLog,
    chosen: Vec<(&'static str, provenant_projections::Factory)>,
) -> anyhow::Result<RebuiltTogether> {
    let head = log.head().await.context("cannot read the head")?.position;
    let mut runners = Vec::new();
    let mut names = Vec::new();
    for (name, factory) in chosen {
        log.reset_projection(name)
            .await
            .with_context(|| format!("cannot reset the projection {name}"))?;
        runners.push(
            Runner::load(log.clone(), factory, RunnerConfig::default())
                .await
                .with_context(|| format!("cannot load the projection {name}"))?,
        );
        names.push(name);
    }
    let bar = progress::bar(
        Some(head),
        &format!(
            "rebuilding {} {{bar:40}} {{pos}}/{{len}} events ({{per_sec}}, {{eta}})",
            names.join(", ")
        ),
    );
    let started = Instant::now();
    provenant_projections::catch_up_together(&mut runners, head, |p| bar.set_position(p))
        .await
        .context("the rebuild failed; run it again to start over")?;
    bar.finish_and_clear();
    let position = runners.first().map_or(0, |r| r.position());
    Ok(RebuiltTogether {
        names,
        position,
        events: position,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What one rebuild did.
pub struct Rebuilt {
    pub position: u64,
    pub events: u64,
    pub seconds: f64,
}

/// Forgets the projection's rows and folds the log from position 0 up to
/// the head as it is now.
pub async fn rebuild_one(
    log: &EventLog,
    name: &str,
    factory: provenant_projections::Factory,
) -> anyhow::Result<Rebuilt> {
    let head = log.head().await.context("cannot read the head")?.position;
    log.reset_projection(name)
        .await
        .with_context(|| format!("cannot reset the projection {name}"))?;
    let mut runner = Runner::load(log.clone(), factory, RunnerConfig::default())
        .await
        .with_context(|| format!("cannot load the projection {name}"))?;
    let bar = progress::bar(
        Some(head),
        &format!("rebuilding {name} {{bar:40}} {{pos}}/{{len}} events ({{per_sec}}, {{eta}})"),
    );
    let started = Instant::now();
    let from = runner.position();
    runner
        .catch_up(head, |position| bar.set_position(position))
        .await
        .with_context(|| format!("the rebuild of {name} failed; run it again to start over"))?;
    bar.finish_and_clear();
    Ok(Rebuilt {
        position: runner.position(),
        events: runner.position() - from,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `provenant projections status`: each projection's position and its lag
/// behind the head.
pub async fn status(database_url: &str, as_json: bool) -> anyhow::Result<()> {
    let log = open(database_url).await?;
    let head = log.head().await.context("cannot read the head")?.position;
    let statuses = log
        .projection_statuses()
        .await
        .context("cannot read the projections' checkpoints")?;
    let mut rows = Vec::new();
    for name in names::ALL {
        let stored = statuses.iter().find(|s| s.name == *name);
        let position = stored.map_or(0, |s| s.position);
        rows.push(json!({
            "name": name,
            "position": position,
            "head": head,
            "lag": head.saturating_sub(position),
            "version": stored.map(|s| s.version),
            "updated_at": stored.map(|s| s.updated_at.clone()),
        }));
    }
    log.close().await;
    if as_json {
        println!("{}", json!({"head": head, "projections": rows}));
        return Ok(());
    }
    println!("log head: {head}");
    println!(
        "{:<16} {:>12} {:>10}  updated",
        "projection", "position", "lag"
    );
    for r in &rows {
        println!(
            "{:<16} {:>12} {:>10}  {}",
            r["name"].as_str().unwrap_or_default(),
            r["position"],
            r["lag"],
            r["updated_at"].as_str().unwrap_or("never run")
        );
    }
    Ok(())
}

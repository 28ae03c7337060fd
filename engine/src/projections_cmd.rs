//! `provenant projections run | rebuild | status`: the projections outside
//! the engine (or beside it: commits are fenced on the checkpoint, so two
//! runners never both apply an event).

use std::time::Instant;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use provenant_events::EventLog;
use provenant_events::log::{LogConfig, redact_url};
use provenant_projections::{ProjectionsConfig, Runner, RunnerConfig, names, standard};
use serde_json::json;
use tokio::sync::watch;

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
    let log = open(database_url).await?;
    let (stop, stopped) = watch::channel(false);
    let tasks = spawn_all(&log, config, stopped).await?;
    eprintln!(
        "projections {} following the log at {} (stop with Ctrl-C)",
        names::ALL.join(", "),
        redact_url(database_url)
    );
    crate::service::stop_signal().await;
    let _ = stop.send(true);
    for task in tasks {
        task.await.context("a projection ended abnormally")?;
    }
    log.close().await;
    Ok(())
}

/// Loads every projection and starts following the log with it.
pub async fn spawn_all(
    log: &EventLog,
    config: &ProjectionsConfig,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for (name, factory) in standard(config) {
        let runner = Runner::load(log.clone(), factory, RunnerConfig::default())
            .await
            .with_context(|| format!("cannot load the projection {name}"))?;
        tasks.push(tokio::spawn(runner.run(stop.clone())));
    }
    Ok(tasks)
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
    let bar = ProgressBar::with_draw_target(Some(head), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "rebuilding {} {{bar:40}} {{pos}}/{{len}} events ({{per_sec}}, {{eta}})",
            names.join(", ")
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
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
    let bar = ProgressBar::with_draw_target(Some(head), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "rebuilding {name} {{bar:40}} {{pos}}/{{len}} events ({{per_sec}}, {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
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

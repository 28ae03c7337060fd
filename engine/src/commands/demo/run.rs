//! `provenant demo`'s start and end: the log opened, the engine started on
//! it (and NATS), the story told, the engine stopped, the summary.

use std::time::Duration;

use anyhow::Context as _;
use indicatif::ProgressBar;
use provenant_host::runner::Isolation;
use provenant_log::{BackendKind, EventLog, LogConfig, redact_url};
use provenant_plugins::worlds::total_ticks;

use super::args::DemoConfig;
use super::limits::INSTANCE;
use super::nats::NatsSide;
use super::oracle::Oracle;
use super::story::story;
use super::summary::summary;
use crate::nats_names::NatsNames;
use crate::service::run::{self as service, ServiceConfig};

/// `provenant demo`: the whole story, then the summary read from the log.
pub async fn run(config: &DemoConfig) -> anyhow::Result<()> {
    anyhow::ensure!(config.ticks >= 1, "--ticks must be at least 1");
    let names = NatsNames::new(&config.nats_prefix)?;
    let url = redact_url(&config.database_url);
    // Opened here first, so that an unreachable database is an error at once
    // (the engine would wait for it), and kept for what the demo reads and
    // checks itself.
    let log = EventLog::open(&LogConfig::new(&config.database_url))
        .await
        .with_context(|| format!("cannot open the log at {url}"))?;
    let result = demo(config, &log, names, &url).await;
    log.close().await;
    result
}

async fn demo(
    config: &DemoConfig,
    log: &EventLog,
    names: NatsNames,
    url: &str,
) -> anyhow::Result<()> {
    println!(
        "provenant demo: a game sends ticks; plugins act on them through the engine; every action becomes an event in a hash-chained log"
    );
    let sqlite_hint = match log.backend_kind() {
        BackendKind::Sqlite => " (set DATABASE_URL=postgres://… to use PostgreSQL instead)",
        _ => "",
    };
    println!("log: {} at {url}{sqlite_hint}", log.backend_kind());
    let start = log.head().await.context("cannot read the log's head")?;
    if start.position > 0 {
        println!(
            "(the log already holds {} events; this run appends after them)",
            start.position
        );
    }
    let bar = progress_bar(total_ticks(config.ticks));
    let mut nats = match &config.nats_url {
        Some(nats_url) => {
            let side = NatsSide::connect(nats_url, names.clone(), log, bar.clone()).await?;
            println!(
                "ticks: published to NATS JetStream at {} on {}; the log is relayed to the stream {}",
                side.url(),
                names.ticks_subject("<world>"),
                names.events_stream()
            );
            Some(side)
        }
        None => {
            println!(
                "ticks: handed to the engine in this process (set NATS_URL=nats://… to publish them to NATS JetStream instead)"
            );
            None
        }
    };
    // Started before the engine, which loads its plugin folder.
    let oracle = match config.remote_example {
        true => Some(Oracle::start()?),
        false => None,
    };
    let mut plugins = config.plugins.clone();
    if let Some(o) = &oracle {
        plugins.folders.push(o.folder.clone());
        println!(
            "remote plugin: the tavern oracle, a Python service (engine/remote/examples/tavern-oracle), started at {}; the engine calls it over HTTP",
            o.endpoint
        );
    }
    println!();

    let running = service::start(ServiceConfig {
        cluster: Default::default(),
        nats_replicas: 1,
        database_url: config.database_url.clone(),
        nats_url: config.nats_url.clone(),
        nats_auth: Default::default(),
        http_addr: ([127, 0, 0, 1], 0).into(),
        tokens: Default::default(),
        nats_names: names,
        instance: INSTANCE.into(),
        deadline: config.deadline,
        isolation: Isolation::Thread,
        plugins: plugins.clone(),
        commit: Default::default(),
        feed_batches: provenant_log::DEFAULT_FEED_CAPACITY,
        worlds: Default::default(),
        projections: Default::default(),
        run_projections: true,
        anchor_every: Some(Duration::from_secs(10)),
        anchor_key: None,
    })
    .await
    .context("the engine did not start")?;
    let told = story(&running, log, nats.as_mut(), config, oracle.is_some(), &bar).await;
    let stopped = running.stop().await;
    if let Some(side) = nats {
        side.close().await;
    }
    let told = told?;
    stopped.context("the engine did not stop cleanly")?;
    println!("engine stopped gracefully: every tick it had taken was answered first");
    println!();
    let summed = summary(log, start.position, &told, &plugins).await;
    drop(oracle);
    summed
}

/// A progress bar over the ticks, drawn on stderr when it is a terminal
/// (hidden until the ticks are sent).
fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::hidden();
    bar.set_length(len);
    bar.set_style(crate::progress::style(
        "ticks acknowledged {bar:30} {pos}/{len} ({per_sec})",
    ));
    bar
}

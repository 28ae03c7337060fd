//! `provenant bench audit`: how fast `audit verify` and `audit replay` read
//! a long log, measured beside a bare read of the same rows.
//!
//! A scratch PostgreSQL log is filled by the plugin host itself: two worlds
//! configured as the demo's (the tavern's stealth, romance and flaky
//! activities for several sessions of three NPCs; the cellar's nosy plugin
//! every 100th tick), every tick evaluated with [`evaluate_tick`] and ended
//! by its `TickProcessed`, appended in batches of about 1000 events. So the
//! log holds real recorded calls that replay can re-execute: conditions,
//! effects, handlers, failures, panics and denials. (example-flaky's
//! overruns are left out of the fill: they would only make it slower, and
//! replay skips them.) Then, in one run:
//!
//! - the baseline: every row `SELECT`ed in pages of 5000 by position (the
//!   verifier's page), each column fetched and touched, no event built;
//! - `audit verify`: [`EventLog::verify`] over the whole chain;
//! - `audit replay`: [`replay`] of every call with the plugins of this
//!   build, its calls on worker threads (the default) and inline;
//! - the baseline again, so that drift on the machine shows.
//!
//! With `--wasm` the tavern's activities are the example WebAssembly
//! plugins' (the innkeeper's condition and effect, the gossip's effect),
//! so that the log is one of sandboxed calls, and replay re-executes each
//! in a fresh instance.
//!
//! The database is dropped at the end.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use provenant_events::{NewEvent, SessionId, WorldId};
use provenant_log::{AppendBatch, EventLog, VerifyConfig};
use provenant_log::{LogConfig, redact_url};
use serde_json::Value;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use provenant_engine::commands::audit::replay::{ReplayConfig, render, replay};
use provenant_engine::commands::audit::trail::{TrailConfig, TrailFilter, trail};
use provenant_engine::plugin_source::PluginSource;
use provenant_host::context::EngineInfo;
use provenant_host::runner::Isolation;
use provenant_host::state::GameState;
use provenant_host::tick::{Tick, evaluate_tick, marker_event};
use provenant_host::world::configured_event;
use provenant_host::{HostConfig, Plugin, PluginHost};
use provenant_plugins::worlds::{cellar_config, cellar_tick, tavern_tick};

use crate::projections::select_all_pg;
use crate::scratch::{DEFAULT_POSTGRES_URL, Scratch, progress};

/// The goal: verify reads at least half as fast as a bare read.
pub const VERIFY_GOAL: f64 = 0.5;

/// Rows per page of the baseline, as the verifier reads them.
const PAGE: usize = 5_000;

/// Events per append while filling.
const FILL_BATCH: usize = 1_000;

/// Sessions of the tavern.
const SESSIONS: usize = 8;

/// Arguments of `provenant bench audit`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditBenchArgs {
    /// A PostgreSQL server; a scratch database is created on it and dropped.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = DEFAULT_POSTGRES_URL,
        hide_env_values = true
    )]
    pub database_url: String,
    /// Events in the log (at least this many: whole ticks are appended).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Fill the log with calls of the example WebAssembly plugins instead
    /// of the built-in ones (the tavern's activities are theirs).
    #[arg(long)]
    pub wasm: bool,
}

/// The plugins that fill the log and replay it.
fn plugins(wasm: bool) -> anyhow::Result<Vec<Arc<dyn Plugin>>> {
    PluginSource {
        examples: wasm,
        ..PluginSource::builtin()
    }
    .load()
}

/// One measured row.
#[derive(Debug, Clone)]
pub struct AuditFigure {
    pub what: &'static str,
    pub events: u64,
    pub seconds: f64,
}

impl AuditFigure {
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }
}

pub async fn audit(args: &AuditBenchArgs) -> anyhow::Result<()> {
    if !args.database_url.starts_with("postgres") {
        bail!(
            "bench audit needs a PostgreSQL server: pass --database-url postgres://… (DATABASE_URL is {})",
            redact_url(&args.database_url)
        );
    }
    if args.events == 0 {
        bail!("--events must be at least 1");
    }
    let scratch = Scratch::create(&args.database_url).await?;
    let result = run(args, &scratch).await;
    scratch.drop_database().await;
    result
}

async fn run(args: &AuditBenchArgs, scratch: &Scratch) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(&scratch.url).await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await?;
    println!("provenant bench audit");
    println!(
        "PostgreSQL {version} at {}, scratch database {}",
        redact_url(&args.database_url),
        scratch.name
    );
    let log = EventLog::open(&LogConfig::new(&scratch.url)).await?;
    let result = measure(args, &log, &mut conn).await;
    log.close().await;
    result
}

async fn measure(
    args: &AuditBenchArgs,
    log: &EventLog,
    conn: &mut PgConnection,
) -> anyhow::Result<()> {
    fill(log, args.events, args.wasm).await?;
    sqlx::raw_sql("ANALYZE provenant.events")
        .execute(&mut *conn)
        .await?;
    // Untimed: brings the table into the server's cache.
    let _ = select_all_pg(conn, PAGE).await?;

    let mut figures = Vec::new();
    let (rows, seconds) = select_all_pg(conn, PAGE).await?;
    println!("SELECT: {rows} rows in {seconds:.2} s");
    figures.push(AuditFigure {
        what: "bare read (SELECT, baseline)",
        events: rows,
        seconds,
    });

    // Where verify's time goes: the same pages read into events, and the
    // hash of each computed, apart.
    let (mut read, mut hash, mut after, mut events) = (0.0, 0.0, 0, 0u64);
    loop {
        let t = Instant::now();
        let page = log.read_forward(after, PAGE).await?;
        read += t.elapsed().as_secs_f64();
        let Some(last) = page.last() else { break };
        after = last.position;
        events += page.len() as u64;
        let t = Instant::now();
        for e in &page {
            std::hint::black_box(e.compute_hash());
        }
        hash += t.elapsed().as_secs_f64();
    }
    println!(
        "read into events: {events} in {read:.2} s; hashing them: {hash:.2} s ({:.1} us an event)",
        hash * 1e6 / events.max(1) as f64
    );
    figures.push(AuditFigure {
        what: "read into events (no hashing)",
        events,
        seconds: read,
    });

    let bar = progress(rows, "audit verify");
    let started = Instant::now();
    let report = log
        .verify(&VerifyConfig::default(), &mut |p| bar.set_position(p))
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    anyhow::ensure!(report.intact(), "the log does not verify: {report:?}");
    println!("audit verify: {} events in {seconds:.2} s", report.count);
    figures.push(AuditFigure {
        what: "audit verify",
        events: report.count,
        seconds,
    });

    let mut calls_per_s = Vec::new();
    for (what, isolation) in [
        ("audit replay (thread)", Isolation::Thread),
        ("audit replay (inline)", Isolation::Inline),
    ] {
        let bar = progress(rows, what);
        let replayed = replay(
            log,
            &ReplayConfig {
                isolation,
                ..ReplayConfig::default()
            },
            plugins(args.wasm)?,
            &|done, _| bar.set_position(done),
        )
        .await?;
        bar.finish_and_clear();
        anyhow::ensure!(
            replayed.diverged() == 0,
            "replay diverged: {}",
            render(&replayed)
        );
        println!(
            "{what}: {} events, {} calls replayed ({} matched, {} skipped) in {:.2} s",
            replayed.events,
            replayed.replayed(),
            replayed.matched(),
            replayed.skipped(),
            replayed.seconds
        );
        calls_per_s.push(format!(
            "{what}: {:.0} calls/s",
            replayed.replayed() as f64 / replayed.seconds.max(1e-9)
        ));
        figures.push(AuditFigure {
            what,
            events: replayed.events,
            seconds: replayed.seconds,
        });
    }

    let (rows, seconds) = select_all_pg(conn, PAGE).await?;
    figures.push(AuditFigure {
        what: "bare read again",
        events: rows,
        seconds,
    });

    let baseline = (figures[0].events_per_s() + figures[5].events_per_s()) / 2.0;
    println!();
    println!(
        "{:<30} {:>9} {:>8} {:>11} {:>13}",
        "measured", "events", "seconds", "events/s", "vs bare read"
    );
    for f in &figures {
        println!(
            "{:<30} {:>9} {:>8.2} {:>11.0} {:>13.2}",
            f.what,
            f.events,
            f.seconds,
            f.events_per_s(),
            f.events_per_s() / baseline.max(1e-9)
        );
    }
    println!(
        "(ratios against the mean of the two bare reads, {baseline:.0} events/s; {})",
        calls_per_s.join(", ")
    );
    let ratio = figures[2].events_per_s() / baseline.max(1e-9);
    println!(
        "goal: audit verify at least {VERIFY_GOAL} of the bare read: {} ({ratio:.2})",
        if ratio >= VERIFY_GOAL {
            "met"
        } else {
            "not met"
        }
    );
    trails(log).await
}

/// `audit trail` of the whole log beside the trail of one session (the
/// tavern's `s3`, 1 of 8): the session's ticks are found through the
/// indexes, so its trail costs what it returns.
async fn trails(log: &EventLog) -> anyhow::Result<()> {
    println!();
    let mut times = Vec::new();
    for (what, filter) in [
        ("audit trail (whole log)", TrailFilter::default()),
        (
            "audit trail --world tavern --session s3",
            TrailFilter {
                world: Some(WorldId::new("tavern")?),
                session: Some(SessionId::new("s3")?),
                ..TrailFilter::default()
            },
        ),
        (
            "audit trail --session s3",
            TrailFilter {
                session: Some(SessionId::new("s3")?),
                ..TrailFilter::default()
            },
        ),
    ] {
        let config = TrailConfig {
            database_url: String::new(),
            filter,
            since: None,
            limit: None,
            json: true,
        };
        let started = Instant::now();
        let actions = trail(log, &config, &mut std::io::sink()).await?;
        let seconds = started.elapsed().as_secs_f64();
        println!("{what}: {actions} actions in {seconds:.3} s");
        times.push(seconds);
    }
    println!(
        "one session's trail takes {:.4} of the whole log's ({:.1}x faster)",
        times[1] / times[0],
        times[0] / times[1]
    );
    Ok(())
}

/// Fills the log with at least `total` events, as the engine records them.
async fn fill(log: &EventLog, total: usize, wasm: bool) -> anyhow::Result<()> {
    let host = PluginHost::start(
        plugins(wasm)?,
        HostConfig {
            isolation: Isolation::Inline,
            engine: EngineInfo {
                version: provenant_host::ENGINE_VERSION.into(),
                instance: "bench".into(),
            },
            ..HostConfig::default()
        },
    )?;
    let mut state = Arc::new(GameState::default());
    let tavern = WorldId::new("tavern")?;
    let cellar = WorldId::new("cellar")?;
    let mut batch: Vec<NewEvent> = host.startup_events();
    for (world, config) in [(&tavern, tavern_config(wasm)), (&cellar, cellar_config())] {
        let e = configured_event(world, config)?;
        Arc::make_mut(&mut state).apply(&e);
        batch.push(e);
    }
    let sessions: Vec<SessionId> = (0..SESSIONS)
        .map(|i| SessionId::new(format!("s{i}")))
        .collect::<Result<_, _>>()?;
    let bar = progress(total as u64, "filling the log");
    let started = Instant::now();
    let game_start = provenant_events::event::now();
    let (mut appended, mut n) = (0usize, 0u64);
    while appended + batch.len() < total {
        n += 1;
        let at = game_start + chrono::Duration::seconds(n as i64);
        let mut ticks: Vec<Tick> = sessions
            .iter()
            .map(|s| tavern_tick(&tavern, s, n, at))
            .collect();
        if n.is_multiple_of(100) {
            ticks.push(cellar_tick(&cellar, &sessions[0], n, at));
        }
        for t in &ticks {
            let start = batch.len();
            batch.extend(evaluate_tick(&host, &mut state, t));
            let count = batch.len() - start + 1;
            batch.push(marker_event(&host, t, count, "bench"));
        }
        if batch.len() >= FILL_BATCH {
            appended += batch.len();
            bar.inc(batch.len() as u64);
            log.append(AppendBatch::new(std::mem::take(&mut batch)))
                .await
                .context("cannot fill the log")?;
        }
    }
    if !batch.is_empty() {
        appended += batch.len();
        log.append(AppendBatch::new(batch))
            .await
            .context("cannot fill the log")?;
    }
    bar.finish_and_clear();
    println!(
        "filled: {appended} events ({n} game ticks for {SESSIONS} sessions of the tavern, the cellar every 100th) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The demo's tavern, without example-flaky's overruns; with `wasm`, the
/// example WebAssembly plugins' activities in place of its own.
fn tavern_config(wasm: bool) -> Value {
    let mut config = provenant_plugins::worlds::tavern_config();
    if wasm {
        config["meta"]["behavior"]["activities"] = provenant_wasm::examples::tavern_activities();
        return config;
    }
    if let Some(activities) = config
        .pointer_mut("/meta/behavior/activities")
        .and_then(Value::as_array_mut)
    {
        for step in activities
            .iter_mut()
            .filter_map(|a| a.get_mut("conditions")?.as_array_mut())
            .flatten()
        {
            if let Some(params) = step.get_mut("params").and_then(Value::as_object_mut) {
                params.remove("overrun_rate");
            }
        }
    }
    config
}

//! `provenant bench startup`: how long `provenant serve` takes from the
//! process start to `/readyz` 200, on logs of different lengths written by
//! the same simulated worlds, and what the first ticks after it cost. The
//! logs are written by the engine under `provenant sim` load (so they hold
//! what a real engine keeps beside its events), then the engine is
//! restarted `--rounds` times on each.

use std::path::PathBuf;
use std::time::Duration;

use provenant_log::redact_url;
use serde::Serialize;

use crate::engine_process::{EngineLaunch, EngineProcess, print_json};
use crate::relay::median;
use crate::scratch::{DEFAULT_NATS_URL, DEFAULT_POSTGRES_URL, Scratch, delete_streams, log_head};
use crate::sim::{LatencyMs, SimConfig};

/// Arguments of `provenant bench startup`.
#[derive(Debug, Clone, clap::Args)]
pub struct StartupBenchArgs {
    /// A PostgreSQL server; a scratch database is created on it for each
    /// log and dropped.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_POSTGRES_URL, hide_env_values = true)]
    pub database_url: String,
    /// NATS with JetStream; the benchmark's streams are deleted at the end.
    #[arg(long, env = "NATS_URL", default_value = DEFAULT_NATS_URL, hide_env_values = true)]
    pub nats_url: String,
    /// Events of each log, about (whole ticks are sent).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64, 1_000_000])]
    pub events: Vec<u64>,
    /// Worlds, sessions per world and NPCs per tick of the simulation that
    /// writes the logs (the same for every log).
    #[arg(long, default_value_t = 8)]
    pub worlds: u32,
    #[arg(long, default_value_t = 4)]
    pub sessions: u32,
    #[arg(long, default_value_t = 5)]
    pub npcs: u32,
    /// Ticks/s offered while a log is written.
    #[arg(long, default_value_t = 1000.0)]
    pub fill_rate: f64,
    /// Restarts measured on each log; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The `provenant` binary whose `serve` is measured (default: this
    /// one), to measure another build beside this one.
    #[arg(long, value_name = "PATH")]
    pub engine_binary: Option<PathBuf>,
    /// Print the figures as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// One log's figures.
#[derive(Debug, Clone, Serialize)]
pub struct StartupFigure {
    pub events: u64,
    /// From the process start to `/readyz` 200: the median, and each round.
    pub ready_ms: f64,
    pub ready_rounds_ms: Vec<f64>,
    /// Latency of the ticks of one second at 100 ticks/s right after ready
    /// (the first tick of each world loads its state), the last round.
    pub first_second_latency_ms: Option<LatencyMs>,
    /// Peak resident memory of the engine, the last round.
    pub peak_rss_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StartupFigures {
    pub engine_binary: String,
    pub logs: Vec<StartupFigure>,
    /// The longest log's ready time over the shortest's.
    pub startup_ratio: f64,
}

pub async fn startup_command(args: &StartupBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.database_url.starts_with("postgres"),
        "bench startup needs a PostgreSQL server (got {})",
        redact_url(&args.database_url)
    );
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    anyhow::ensure!(!args.events.is_empty(), "--events needs at least one size");
    let say = |line: String| {
        if !args.json {
            println!("{line}");
        }
    };
    say("provenant bench startup".into());
    let binary = EngineLaunch::binary_or_self(args.engine_binary.as_deref())?;
    let mut logs = Vec::new();
    for &events in &args.events {
        let scratch = Scratch::create(&args.database_url).await?;
        let (launch, names) =
            EngineLaunch::on_scratch(&binary, &scratch, &args.nats_url, "bench-start")?;
        let result = one_log(args, &launch, events, &say).await;
        scratch.drop_database().await;
        delete_streams(&args.nats_url, &names).await;
        logs.push(result?);
    }
    let ready = |f: Option<&StartupFigure>| f.map_or(f64::NAN, |f| f.ready_ms);
    let figures = StartupFigures {
        engine_binary: binary.display().to_string(),
        startup_ratio: (ready(logs.last()) / ready(logs.first()) * 1000.0).round() / 1000.0,
        logs,
    };
    if args.json {
        print_json(&figures)?;
    } else {
        println!();
        println!(
            "{:>10} {:>10} {:>22} {:>12}",
            "events", "ready ms", "first second p99/max", "peak RSS MiB"
        );
        for f in &figures.logs {
            let (p99, max) = f
                .first_second_latency_ms
                .map_or((f64::NAN, f64::NAN), |l| (l.p99, l.max));
            println!(
                "{:>10} {:>10.1} {:>14.1} / {:>5.1} {:>12.1}",
                f.events,
                f.ready_ms,
                p99,
                max,
                f.peak_rss_bytes as f64 / (1024.0 * 1024.0)
            );
        }
        println!("startup_ratio {:.3}", figures.startup_ratio);
    }
    Ok(())
}

async fn one_log(
    args: &StartupBenchArgs,
    launch: &EngineLaunch,
    events: u64,
    say: &impl Fn(String),
) -> anyhow::Result<StartupFigure> {
    let sim = |engine: &EngineProcess, rate: f64, seconds: f64| SimConfig {
        worlds: args.worlds,
        sessions: args.sessions,
        npcs: args.npcs,
        rate,
        duration: Duration::from_secs_f64(seconds),
        drain: Duration::from_secs(600),
        ..engine.sim_config(launch)
    };
    // Write the log.
    let engine = EngineProcess::start(launch).await?;
    engine.wait_ready(Duration::from_secs(600)).await?;
    let probe = crate::sim::run(&sim(&engine, 100.0, 1.0)).await?;
    let per_tick = probe.events as f64 / probe.acknowledged.max(1) as f64;
    let head = log_head(&launch.database_url).await?;
    let missing = events.saturating_sub(head) as f64;
    if missing > 0.0 {
        let seconds = missing / per_tick / args.fill_rate;
        say(format!(
            "writing a log of about {events} events: {:.0} ticks at {:.0} ticks/s …",
            missing / per_tick,
            args.fill_rate
        ));
        let fill = crate::sim::run(&sim(&engine, args.fill_rate, seconds)).await?;
        anyhow::ensure!(
            fill.missing == 0 && fill.failed == 0,
            "writing the log lost ticks: {} missing, {} failed",
            fill.missing,
            fill.failed
        );
    }
    engine.stop().await?;
    let events = log_head(&launch.database_url).await?;

    let mut rounds = Vec::new();
    let mut last = None;
    for round in 1..=args.rounds {
        let engine = EngineProcess::start(launch).await?;
        let ready = engine.wait_ready(Duration::from_secs(3600)).await?;
        let first = crate::sim::run(&sim(&engine, 100.0, 1.0)).await?;
        let rss = engine.peak_rss_bytes().unwrap_or(0);
        engine.stop().await?;
        let ms = ready.as_secs_f64() * 1e3;
        say(format!(
            "  {events} events, round {round}: ready after {ms:.1} ms; the next second's p99 {:.1} ms",
            first.latency_ms.map_or(f64::NAN, |l| l.p99)
        ));
        rounds.push((ms * 10.0).round() / 10.0);
        last = Some((first.latency_ms, rss));
    }
    let (first_second_latency_ms, peak_rss_bytes) = last.unwrap_or((None, 0));
    Ok(StartupFigure {
        events,
        ready_ms: median(rounds.clone()),
        ready_rounds_ms: rounds,
        first_second_latency_ms,
        peak_rss_bytes,
    })
}

//! `provenant bench service`: `provenant serve` on a scratch PostgreSQL
//! database and NATS, loaded by `provenant sim` at offered rates that go up
//! until the engine no longer keeps up, and the **knee**: the highest rate
//! whose p99 latency (publish to acknowledgment) is at most `--p99-ms` while
//! it acknowledges at least `--min-achieved` of what is offered. Beside it,
//! in the same run, `bench append` (batches of 1000) on the same server:
//! `knee_ratio` is the knee's events/s over the append's.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use provenant_log::redact_url;
use serde::Serialize;

use provenant_engine::nats_names::NatsNames;
use provenant_engine::service::events_stream::last_message;

use crate::engine_process::{EngineLaunch, EngineProcess, print_json};
use crate::procstat::{CpuCores, CpuSample};
use crate::relay::{RelayFigure, print_relay, relay_figures};
use crate::scratch::{
    DEFAULT_NATS_URL as DEFAULT_NATS, DEFAULT_POSTGRES_URL, Scratch, delete_streams, log_head,
};
use crate::sim::{LatencyMs, SimConfig, SimReport};

/// Arguments of `provenant bench service`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceBenchArgs {
    /// A PostgreSQL server; a scratch database is created on it and dropped.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_POSTGRES_URL, hide_env_values = true)]
    pub database_url: String,
    /// NATS with JetStream; the benchmark's streams are deleted at the end.
    #[arg(long, env = "NATS_URL", default_value = DEFAULT_NATS, hide_env_values = true)]
    pub nats_url: String,
    /// Offered rates (ticks/s, over all worlds), swept in this order; the
    /// sweep stops after two rates in a row miss the knee's bounds.
    #[arg(long, value_delimiter = ',', default_values_t = [50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0, 600.0, 800.0, 1000.0, 1200.0, 1500.0, 2000.0])]
    pub rates: Vec<f64>,
    /// Seconds of sending at each rate.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Worlds, sessions per world and NPCs per tick of the simulation.
    #[arg(long, default_value_t = 8)]
    pub worlds: u32,
    #[arg(long, default_value_t = 4)]
    pub sessions: u32,
    #[arg(long, default_value_t = 5)]
    pub npcs: u32,
    /// The knee's latency bound: p99 at most this many milliseconds.
    #[arg(long, default_value_t = 50.0)]
    pub p99_ms: f64,
    /// The knee's throughput bound: acknowledged ticks/s at least this
    /// fraction of the offered rate.
    #[arg(long, default_value_t = 0.98)]
    pub min_achieved: f64,
    /// Events of the `bench append` measurement (batches of 1000).
    #[arg(long, default_value_t = 100_000)]
    pub append_events: usize,
    /// Events and rounds of the relay measurement (`bench relay`); 0 rounds
    /// skips it.
    #[arg(long, default_value_t = 200_000)]
    pub relay_events: usize,
    #[arg(long, default_value_t = 0)]
    pub relay_rounds: usize,
    /// The `provenant` binary whose `serve` is measured (default: this
    /// one), to measure another build beside this one.
    #[arg(long, value_name = "PATH")]
    pub engine_binary: Option<PathBuf>,
    /// Print the figures as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// One offered rate of the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepEntry {
    pub offered_ticks_per_s: f64,
    pub achieved_ticks_per_s: f64,
    pub offered_events_per_s: f64,
    pub achieved_events_per_s: f64,
    pub sent: u64,
    pub acknowledged: u64,
    pub failed: u64,
    pub missing: u64,
    pub latency_ms: Option<LatencyMs>,
    /// Cores used while the rate was offered.
    pub cpu_cores: CpuCores,
    /// The share of the time the engine's committer was appending while
    /// the rate was offered (appends run one at a time: near 1 ticks
    /// queue behind it); None for an engine that does not export it.
    pub committer_busy: Option<f64>,
    /// Within the knee's bounds.
    pub within: bool,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceFigures {
    pub engine_binary: String,
    pub worlds: u32,
    pub sessions: u32,
    pub npcs: u32,
    pub seconds_per_rate: f64,
    pub p99_bound_ms: f64,
    pub min_achieved: f64,
    /// The knee: the highest offered rate within the bounds (0 when none
    /// is), and what was achieved there.
    pub knee_offered_ticks_per_s: f64,
    pub knee_ticks_per_s: f64,
    pub knee_events_per_s: f64,
    /// `bench append`, batches of 1000, on the same server in this run.
    pub append_events_per_s: f64,
    pub knee_ratio: f64,
    pub sweep: Vec<SweepEntry>,
    pub peak_rss_bytes: u64,
    pub relay: Option<RelayFigure>,
}

/// `provenant bench service`.
pub async fn service_command(args: &ServiceBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.database_url.starts_with("postgres"),
        "bench service needs a PostgreSQL server (got {})",
        redact_url(&args.database_url)
    );
    anyhow::ensure!(!args.rates.is_empty(), "--rates needs at least one rate");
    anyhow::ensure!(
        args.rates.iter().all(|r| r.is_finite() && *r > 0.0),
        "every rate must be above 0"
    );
    let say = |line: String| {
        if !args.json {
            println!("{line}");
        }
    };
    say("provenant bench service".into());
    let binary = EngineLaunch::binary_or_self(args.engine_binary.as_deref())?;
    say(format!(
        "append: batches of 1000, {} events …",
        args.append_events
    ));
    let append = crate::append::postgres_figure(&args.database_url, 1000, args.append_events)
        .await
        .context("the append measurement failed")?;
    say(format!(
        "append: {:.0} events/s (COPY {:.0} events/s)",
        append.events_per_s,
        append.copy_events_per_s.unwrap_or(f64::NAN)
    ));

    let scratch = Scratch::create(&args.database_url).await?;
    let (launch, names) = EngineLaunch::on_scratch(&binary, &scratch, &args.nats_url, "bench-svc")?;
    let result = sweep(args, &launch, &names, &say).await;
    scratch.drop_database().await;
    delete_streams(&args.nats_url, &names).await;
    let (sweep, peak_rss_bytes) = result?;

    let relay = if args.relay_rounds > 0 {
        Some(
            relay_figures(
                &args.database_url,
                &args.nats_url,
                args.relay_events,
                args.relay_rounds,
            )
            .await?,
        )
    } else {
        None
    };
    let knee = sweep
        .iter()
        .filter(|e| e.within)
        .max_by(|a, b| a.offered_ticks_per_s.total_cmp(&b.offered_ticks_per_s));
    let knee_events_per_s = knee.map_or(0.0, |k| k.achieved_events_per_s);
    let figures = ServiceFigures {
        engine_binary: binary.display().to_string(),
        worlds: args.worlds,
        sessions: args.sessions,
        npcs: args.npcs,
        seconds_per_rate: args.duration,
        p99_bound_ms: args.p99_ms,
        min_achieved: args.min_achieved,
        knee_offered_ticks_per_s: knee.map_or(0.0, |k| k.offered_ticks_per_s),
        knee_ticks_per_s: knee.map_or(0.0, |k| k.achieved_ticks_per_s),
        knee_events_per_s,
        append_events_per_s: append.events_per_s,
        knee_ratio: round3(knee_events_per_s / append.events_per_s),
        sweep,
        peak_rss_bytes,
        relay,
    };
    if args.json {
        print_json(&figures)?;
    } else {
        print_figures(&figures);
    }
    Ok(())
}

/// Starts the engine and offers each rate in turn; the sweep and the
/// engine's peak resident memory.
async fn sweep(
    args: &ServiceBenchArgs,
    launch: &EngineLaunch,
    names: &NatsNames,
    say: &impl Fn(String),
) -> anyhow::Result<(Vec<SweepEntry>, u64)> {
    let engine = EngineProcess::start(launch).await?;
    engine.wait_ready(Duration::from_secs(120)).await?;
    say(format!(
        "engine: {} serve on {}, NATS prefix {}",
        launch.binary.display(),
        engine.url,
        names.prefix()
    ));
    let mut entries = Vec::new();
    let mut misses = 0;
    let mut events_per_tick = f64::NAN;
    for &rate in &args.rates {
        say(format!(
            "offering {rate:.0} ticks/s for {} s …",
            args.duration
        ));
        let config = SimConfig {
            worlds: args.worlds,
            sessions: args.sessions,
            npcs: args.npcs,
            rate,
            duration: Duration::from_secs_f64(args.duration),
            drain: Duration::from_secs(60),
            ..engine.sim_config(launch)
        };
        let busy_before = engine.committer_busy_seconds().await?;
        let before = CpuSample::now(engine.pid);
        let started = std::time::Instant::now();
        let report = crate::sim::run(&config).await?;
        let cpu = CpuSample::now(engine.pid).since(&before);
        let wall = started.elapsed().as_secs_f64();
        let committer_busy = match (busy_before, engine.committer_busy_seconds().await?) {
            (Some(a), Some(b)) if wall > 0.0 => Some(round3((b - a) / wall)),
            _ => None,
        };
        if report.acknowledged > 0 {
            events_per_tick = report.events as f64 / report.acknowledged as f64;
        }
        let entry = entry_of(args, rate, events_per_tick, &report, cpu, committer_busy);
        say(format!(
            "  achieved {:.0} ticks/s ({:.0} events/s), p99 {:.1} ms, cores: engine {:.2}, PostgreSQL {:.2}, nats-server {:.2}, load generator {:.2}; committer busy {}{}",
            entry.achieved_ticks_per_s,
            entry.achieved_events_per_s,
            entry.latency_ms.map_or(f64::NAN, |l| l.p99),
            cpu.engine,
            cpu.postgres,
            cpu.nats_server,
            cpu.load_generator,
            busy_text(entry.committer_busy),
            if entry.within {
                ""
            } else {
                "  (beyond the knee)"
            }
        ));
        misses = if entry.within { 0 } else { misses + 1 };
        entries.push(entry);
        if misses >= 2 {
            break;
        }
        settle(&launch.database_url, &args.nats_url, names).await?;
    }
    let rss = engine.peak_rss_bytes().unwrap_or(0);
    engine.stop().await?;
    Ok((entries, rss))
}

fn entry_of(
    args: &ServiceBenchArgs,
    rate: f64,
    events_per_tick: f64,
    report: &SimReport,
    cpu: CpuCores,
    committer_busy: Option<f64>,
) -> SweepEntry {
    let achieved = report.ticks_per_second;
    let within = report.latency_ms.is_some_and(|l| l.p99 <= args.p99_ms)
        && achieved >= args.min_achieved * rate
        && report.missing == 0
        && report.failed == 0;
    SweepEntry {
        offered_ticks_per_s: rate,
        achieved_ticks_per_s: round3(achieved),
        offered_events_per_s: round3(rate * events_per_tick),
        achieved_events_per_s: round3(report.events_per_second),
        sent: report.sent,
        acknowledged: report.acknowledged,
        failed: report.failed,
        missing: report.missing,
        latency_ms: report.latency_ms,
        cpu_cores: cpu,
        committer_busy,
        within,
    }
}

fn busy_text(busy: Option<f64>) -> String {
    busy.map_or("?".into(), |b| format!("{b:.2}"))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn print_figures(f: &ServiceFigures) {
    println!();
    println!(
        "{:>9} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "offered",
        "ticks/s",
        "events/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "engine",
        "pg",
        "nats",
        "load",
        "commit"
    );
    for e in &f.sweep {
        let l = e.latency_ms.unwrap_or(LatencyMs {
            p50: f64::NAN,
            p90: f64::NAN,
            p99: f64::NAN,
            max: f64::NAN,
        });
        println!(
            "{:>9.0} {:>9.0} {:>10.0} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7}{}",
            e.offered_ticks_per_s,
            e.achieved_ticks_per_s,
            e.achieved_events_per_s,
            l.p50,
            l.p90,
            l.p99,
            l.max,
            e.cpu_cores.engine,
            e.cpu_cores.postgres,
            e.cpu_cores.nats_server,
            e.cpu_cores.load_generator,
            busy_text(e.committer_busy),
            if e.within { "" } else { "  beyond" }
        );
    }
    println!(
        "knee: {:.0} ticks/s offered, {:.0} ticks/s and {:.0} events/s achieved with p99 <= {} ms",
        f.knee_offered_ticks_per_s, f.knee_ticks_per_s, f.knee_events_per_s, f.p99_bound_ms
    );
    println!(
        "append (batches of 1000): {:.0} events/s; knee_ratio {:.3}",
        f.append_events_per_s, f.knee_ratio
    );
    println!(
        "engine peak RSS: {:.1} MiB",
        f.peak_rss_bytes as f64 / (1024.0 * 1024.0)
    );
    if let Some(relay) = &f.relay {
        print_relay(relay);
    }
}

/// Waits until the relay has published the whole log (the events stream's
/// last message is at the head), so that one rate's backlog does not weigh
/// on the next.
pub(crate) async fn settle(
    database_url: &str,
    nats_url: &str,
    names: &NatsNames,
) -> anyhow::Result<()> {
    let head = log_head(database_url).await?;
    let client = async_nats::connect(nats_url).await?;
    let js = async_nats::jetstream::new(client);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let name = names.events_stream();
        let mut stream = js.get_stream(&name).await?;
        let at = last_message(&mut stream, &name)
            .await?
            .map_or(0, |last| last.position);
        if at >= head {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the relay did not catch up with the log"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

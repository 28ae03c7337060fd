//! `provenant bench cluster`: the same load from `provenant sim` on one
//! engine and on several sharing the log (PostgreSQL) and NATS, beside each
//! other in one run: throughput and latency, the engines' CPU per tick, the
//! global append lock's busy share (the engines' appends run one at a time
//! across the cluster), the appends' size and time, and the lease traffic.
//! These are the figures docs/scaling.md's model is checked against.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use provenant_engine::client::http::EngineApi;
use serde::Serialize;

use crate::engine_process::{EngineLaunch, EngineProcess, print_json};
use crate::procstat::{CpuCores, CpuSample};
use crate::scratch::{DEFAULT_NATS_URL, DEFAULT_POSTGRES_URL, Scratch, delete_streams};
use crate::sim::{LatencyMs, SimConfig};

/// Arguments of `provenant bench cluster`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterBenchArgs {
    /// A PostgreSQL server; a scratch database per run is created on it and
    /// dropped.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_POSTGRES_URL, hide_env_values = true)]
    pub database_url: String,
    /// NATS with JetStream, 2.10 or newer (the ticks are filed by
    /// partition); the benchmark's streams are deleted at the end.
    #[arg(long, env = "NATS_URL", default_value = DEFAULT_NATS_URL, hide_env_values = true)]
    pub nats_url: String,
    /// Engine counts to run, one after the other, each on a fresh log.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 3])]
    pub instances: Vec<u32>,
    /// Partitions of the worlds (the same for every run).
    #[arg(long, default_value_t = 6)]
    pub partitions: u32,
    /// Offered ticks/s, over all worlds.
    #[arg(long, default_value_t = 150.0)]
    pub rate: f64,
    /// Seconds of sending per run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Worlds, sessions per world and NPCs per tick of the simulation.
    #[arg(long, default_value_t = 12)]
    pub worlds: u32,
    #[arg(long, default_value_t = 2)]
    pub sessions: u32,
    #[arg(long, default_value_t = 5)]
    pub npcs: u32,
    /// The engines' lease length.
    #[arg(long, default_value_t = 10.0)]
    pub lease_seconds: f64,
    /// The `provenant` binary whose `serve` is measured (default: this one).
    #[arg(long, value_name = "PATH")]
    pub engine_binary: Option<PathBuf>,
    /// Print the figures as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// One engine count's run.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterRun {
    pub instances: u32,
    pub offered_ticks_per_s: f64,
    pub achieved_ticks_per_s: f64,
    pub achieved_events_per_s: f64,
    pub acknowledged: u64,
    pub sent: u64,
    pub latency_ms: Option<LatencyMs>,
    pub cpu_cores: CpuCores,
    /// The engines' CPU (all of them) per acknowledged tick.
    pub engine_cpu_ms_per_tick: f64,
    /// PostgreSQL's CPU per acknowledged tick.
    pub postgres_cpu_ms_per_tick: f64,
    /// Group appends per second, all engines.
    pub appends_per_s: f64,
    pub events_per_append: f64,
    /// Mean time of an append (waiting for the global append lock
    /// included, with several engines).
    pub mean_append_ms: f64,
    /// The sum of the engines' append time over the wall time: with one
    /// engine, the share of the time the append lock was held.
    pub append_busy: f64,
    /// Lease statements per second, all engines.
    pub lease_operations_per_s: f64,
    /// Appends refused by a fence (none expected: nothing moves).
    pub fenced: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterFigures {
    pub engine_binary: String,
    pub partitions: u32,
    pub lease_seconds: f64,
    pub worlds: u32,
    pub sessions: u32,
    pub npcs: u32,
    pub seconds: f64,
    pub runs: Vec<ClusterRun>,
    /// The last run's achieved ticks/s over the first's.
    pub throughput_ratio: f64,
}

/// The counters read from each engine before and after the load.
const COUNTERS: [&str; 5] = [
    "provenant_log_appends_total",
    "provenant_log_appended_events_total",
    "provenant_log_append_duration_seconds_sum",
    "provenant_cluster_lease_operations_total",
    "provenant_log_appends_fenced_total",
];

/// `provenant bench cluster`.
pub async fn cluster_command(args: &ClusterBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.instances.iter().all(|n| (1..=16).contains(n)),
        "--instances: each count is 1 to 16"
    );
    anyhow::ensure!(
        args.rate.is_finite() && args.rate > 0.0,
        "--rate must be above 0"
    );
    let binary = EngineLaunch::binary_or_self(args.engine_binary.as_deref())?;
    let mut runs = Vec::new();
    for &n in &args.instances {
        if !args.json {
            println!(
                "{n} engine(s), {} partitions: offering {:.0} ticks/s for {} s …",
                args.partitions, args.rate, args.duration
            );
        }
        let scratch = Scratch::create(&args.database_url).await?;
        let (mut launch, names) =
            EngineLaunch::on_scratch(&binary, &scratch, &args.nats_url, "bench-cl")?;
        launch.env.extend([
            ("PROVENANT_PARTITIONS".into(), args.partitions.to_string()),
            (
                "PROVENANT_LEASE_SECONDS".into(),
                args.lease_seconds.to_string(),
            ),
        ]);
        let result = run(args, &launch, n).await;
        scratch.drop_database().await;
        delete_streams(&args.nats_url, &names).await;
        let run = result.with_context(|| format!("the run with {n} engine(s) failed"))?;
        if !args.json {
            print_run(&run);
        }
        runs.push(run);
    }
    let ratio = match (runs.first(), runs.last()) {
        (Some(a), Some(b)) if a.achieved_ticks_per_s > 0.0 => {
            round3(b.achieved_ticks_per_s / a.achieved_ticks_per_s)
        }
        _ => 0.0,
    };
    let figures = ClusterFigures {
        engine_binary: binary.display().to_string(),
        partitions: args.partitions,
        lease_seconds: args.lease_seconds,
        worlds: args.worlds,
        sessions: args.sessions,
        npcs: args.npcs,
        seconds: args.duration,
        runs,
        throughput_ratio: ratio,
    };
    if args.json {
        print_json(&figures)?;
    } else {
        println!(
            "throughput_ratio (last run / first): {:.3}",
            figures.throughput_ratio
        );
    }
    Ok(())
}

async fn run(args: &ClusterBenchArgs, launch: &EngineLaunch, n: u32) -> anyhow::Result<ClusterRun> {
    let mut engines = Vec::new();
    for i in 0..n {
        let mut one = launch.clone();
        one.env
            .push(("PROVENANT_INSTANCE".into(), format!("bench-engine-{i}")));
        let engine = EngineProcess::start(&one).await?;
        engine.wait_ready(Duration::from_secs(120)).await?;
        engines.push(engine);
    }
    let apis: Vec<EngineApi> = engines
        .iter()
        .map(|e| EngineApi::new(&e.url, None, 1))
        .collect::<anyhow::Result<_>>()?;
    balanced(&apis, args.partitions).await?;
    let before = counters(&apis).await?;
    let pids: Vec<u32> = engines.iter().map(|e| e.pid).collect();
    let cpu_before = CpuSample::of_engines(&pids);
    let started = std::time::Instant::now();
    let config = SimConfig {
        worlds: args.worlds,
        sessions: args.sessions,
        npcs: args.npcs,
        rate: args.rate,
        duration: Duration::from_secs_f64(args.duration),
        drain: Duration::from_secs(60),
        ..engines[0].sim_config(launch)
    };
    let report = crate::sim::run(&config).await?;
    let cpu = CpuSample::of_engines(&pids).since(&cpu_before);
    let wall = started.elapsed().as_secs_f64();
    let after = counters(&apis).await?;
    for engine in engines {
        engine.stop().await?;
    }
    let delta = |i: usize| after[i] - before[i];
    let (appends, events, append_seconds, lease_ops, fenced) =
        (delta(0), delta(1), delta(2), delta(3), delta(4));
    let ticks = report.acknowledged.max(1) as f64;
    Ok(ClusterRun {
        instances: n,
        offered_ticks_per_s: args.rate,
        achieved_ticks_per_s: round3(report.ticks_per_second),
        achieved_events_per_s: round3(report.events_per_second),
        acknowledged: report.acknowledged,
        sent: report.sent,
        latency_ms: report.latency_ms,
        cpu_cores: cpu,
        engine_cpu_ms_per_tick: round3(cpu.engine * wall * 1e3 / ticks),
        postgres_cpu_ms_per_tick: round3(cpu.postgres * wall * 1e3 / ticks),
        appends_per_s: round3(appends / wall),
        events_per_append: round3(events / appends.max(1.0)),
        mean_append_ms: round3(append_seconds * 1e3 / appends.max(1.0)),
        append_busy: round3(append_seconds / wall),
        lease_operations_per_s: round3(lease_ops / wall),
        fenced,
    })
}

/// Waits until the engines hold every partition between them, as evenly as
/// they can.
async fn balanced(apis: &[EngineApi], partitions: u32) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mut held = Vec::new();
        for api in apis {
            held.push(
                api.metric("provenant_cluster_partitions_held")
                    .await?
                    .unwrap_or(0.0) as u32,
            );
        }
        let (min, max) = (
            held.iter().copied().min().unwrap_or(0),
            held.iter().copied().max().unwrap_or(0),
        );
        if held.iter().sum::<u32>() == partitions && max - min <= 1 {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the engines did not share the partitions within 120 s: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`COUNTERS`] summed over the engines.
async fn counters(apis: &[EngineApi]) -> anyhow::Result<[f64; COUNTERS.len()]> {
    let mut sums = [0.0; COUNTERS.len()];
    for api in apis {
        for (sum, name) in sums.iter_mut().zip(COUNTERS) {
            *sum += api.metric(name).await?.unwrap_or(0.0);
        }
    }
    Ok(sums)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn print_run(r: &ClusterRun) {
    let p99 = r.latency_ms.map_or(f64::NAN, |l| l.p99);
    println!(
        "  {} engine(s): {:.0} ticks/s ({:.0} events/s), p99 {:.1} ms; CPU per tick: engines {:.2} ms, PostgreSQL {:.2} ms; appends {:.0}/s of {:.1} events, {:.2} ms each, append busy {:.2}; lease statements {:.1}/s",
        r.instances,
        r.achieved_ticks_per_s,
        r.achieved_events_per_s,
        p99,
        r.engine_cpu_ms_per_tick,
        r.postgres_cpu_ms_per_tick,
        r.appends_per_s,
        r.events_per_append,
        r.mean_append_ms,
        r.append_busy,
        r.lease_operations_per_s
    );
}

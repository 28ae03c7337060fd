//! provenant's benchmarks (`provenant bench …`), the sample data they fill
//! logs with, and the load generator (`provenant sim`): measured beside
//! their baselines, in the same run.
//!
//! Invariant: this crate depends on the engine and never the reverse; the
//! engine library carries no benchmark, sample data or load generator.
//! Everything here runs against real servers (a scratch PostgreSQL database,
//! NATS, a `provenant serve` process) and cleans up after itself.

pub mod append;
pub mod audit;
pub mod cluster;
pub mod engine_process;
pub mod procstat;
pub mod projections;
pub mod relay;
pub mod remote;
pub mod sample;
pub mod scratch;
pub mod service;
pub mod sim;
pub mod startup;
pub mod wasm_fixtures;

use std::process::ExitCode;

use clap::Subcommand;
use provenant_engine::error_text::report;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append throughput into PostgreSQL (batches of 1, 100, 1000) beside a
    /// raw COPY of the same rows, and into SQLite.
    Append(append::AppendBenchArgs),
    /// The relay (log → JetStream) beside a raw async-nats publish loop of
    /// the same messages.
    Relay(relay::RelayBenchArgs),
    /// `provenant serve` on PostgreSQL and NATS under `provenant sim` load,
    /// at offered rates going up: throughput, p50/p90/p99/max latency and
    /// the CPU of the engine, PostgreSQL and nats-server at each; the knee
    /// (the highest rate with p99 <= 50 ms that keeps up) beside `bench
    /// append` in the same run (`knee_ratio`); peak memory.
    Service(service::ServiceBenchArgs),
    /// Time from `provenant serve`'s start to `/readyz` 200 on logs of about
    /// 10,000 and 1,000,000 events of the same worlds (`startup_ratio`).
    Startup(startup::StartupBenchArgs),
    /// Rebuild throughput of each projection (events/s) from PostgreSQL and
    /// SQLite, beside a bare paged SELECT of the same rows, with where a
    /// rebuild's time goes (read, apply, encode, commit).
    Projections(projections::ProjectionsBenchArgs),
    /// `audit verify` and `audit replay` throughput (events/s) on a log of
    /// real recorded plugin calls in PostgreSQL (1,000,000 events by
    /// default), beside a bare paged SELECT of the same rows.
    Audit(audit::AuditBenchArgs),
    /// A remote plugin's condition through the engine over HTTP and over
    /// NATS on loopback, beside a bare request loop of the same bodies with
    /// the same clients: calls/s, p50 and p99 per call.
    Remote(remote::RemoteBenchArgs),
    /// The same `provenant sim` load on one engine and on several sharing
    /// the log and NATS (partitions; nats-server 2.10+): throughput,
    /// latency, CPU per tick, the append lock's busy share, lease traffic.
    Cluster(cluster::ClusterBenchArgs),
}

impl BenchCommand {
    /// Runs the benchmark; its exit code.
    pub async fn run(self) -> ExitCode {
        report(match self {
            BenchCommand::Append(args) => append::append(&args).await,
            BenchCommand::Relay(args) => relay::relay_command(&args).await,
            BenchCommand::Service(args) => service::service_command(&args).await,
            BenchCommand::Startup(args) => startup::startup_command(&args).await,
            BenchCommand::Projections(args) => projections::projections(&args).await,
            BenchCommand::Audit(args) => audit::audit(&args).await,
            BenchCommand::Remote(args) => remote::remote(&args).await,
            BenchCommand::Cluster(args) => cluster::cluster_command(&args).await,
        })
    }
}

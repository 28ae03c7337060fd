//! `provenant bench append`: append throughput, measured beside its baseline.
//!
//! For each batch size, the same pre-generated events (realistic plugin
//! actions, about 500 bytes of JSON each with provenance) are appended
//! through [`EventLog::append`] into `provenant.events`, then the very rows
//! the log wrote are `COPY`'d, batch by batch with a commit each, into
//! `provenant.events_copy`, a copy of the same table (`LIKE … INCLUDING ALL`:
//! same columns, keys and indexes). The ratio is provenant's events/s over
//! COPY's. SQLite is measured the same way without a baseline. Everything
//! runs in a scratch database that is dropped at the end.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use provenant_log::postgres::{COPY_COLUMNS, write_copy_row};
use provenant_log::{AppendBatch, EventLog, EventRow, LogConfig, redact_url};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::sample::generate;
use crate::scratch::{DEFAULT_POSTGRES_URL, Scratch, progress};

/// Arguments of `provenant bench append`.
#[derive(Debug, Clone, clap::Args)]
pub struct AppendBenchArgs {
    /// A PostgreSQL server; a scratch database is created on it and dropped.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = DEFAULT_POSTGRES_URL,
        hide_env_values = true
    )]
    pub database_url: String,
    /// Events appended for each batch size above 1.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Events appended with batches of 1 (one commit each).
    #[arg(long, default_value_t = 2_000)]
    pub single_events: usize,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 100, 1000])]
    pub batch_sizes: Vec<usize>,
    /// Do not measure SQLite.
    #[arg(long)]
    pub no_sqlite: bool,
}

impl AppendBenchArgs {
    /// How many events to append with batches of `batch`.
    fn events_for(&self, batch: usize) -> usize {
        if batch == 1 {
            self.single_events
        } else {
            self.events
        }
    }
}

/// One measured row.
#[derive(Debug, Clone)]
pub struct AppendFigure {
    pub backend: &'static str,
    pub batch: usize,
    pub events: usize,
    pub events_per_s: f64,
    pub copy_events_per_s: Option<f64>,
}

pub async fn append(args: &AppendBenchArgs) -> anyhow::Result<()> {
    if !args.database_url.starts_with("postgres") {
        bail!(
            "bench append needs a PostgreSQL server: pass --database-url postgres://… (DATABASE_URL is {})",
            redact_url(&args.database_url)
        );
    }
    if args.batch_sizes.contains(&0) {
        bail!("batch sizes must be at least 1");
    }
    let scratch = Scratch::create(&args.database_url).await?;
    let result = run(args, &scratch).await;
    scratch.drop_database().await;
    let figures = result?;
    println!();
    println!(
        "{:<9} {:>6} {:>8} {:>16} {:>12} {:>7}",
        "backend", "batch", "events", "provenant ev/s", "COPY ev/s", "ratio"
    );
    for f in &figures {
        let (copy, ratio) = match f.copy_events_per_s {
            Some(c) => (format!("{c:.0}"), format!("{:.2}", f.events_per_s / c)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<9} {:>6} {:>8} {:>16.0} {:>12} {:>7}",
            f.backend, f.batch, f.events, f.events_per_s, copy, ratio
        );
    }
    Ok(())
}

async fn run(args: &AppendBenchArgs, scratch: &Scratch) -> anyhow::Result<Vec<AppendFigure>> {
    let mut admin = PgConnection::connect(&scratch.url).await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut admin)
        .await?;
    let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&mut admin)
        .await?;
    let fsync: String = sqlx::query_scalar("SHOW fsync")
        .fetch_one(&mut admin)
        .await?;
    println!("provenant bench append");
    println!(
        "PostgreSQL {version} (synchronous_commit={sync}, fsync={fsync}) at {}, scratch database {}",
        redact_url(&args.database_url),
        scratch.name
    );

    let mut figures = Vec::new();
    let mut described = false;
    for &batch in &args.batch_sizes {
        let figure = postgres_batches(
            &mut admin,
            &scratch.url,
            batch,
            args.events_for(batch),
            &mut described,
        )
        .await?;
        println!(
            "postgres  batch {batch:>5}: provenant {:>9.0} events/s, COPY {:>9.0} events/s, ratio {:.2}",
            figure.events_per_s,
            figure.copy_events_per_s.unwrap_or(f64::NAN),
            figure.events_per_s / figure.copy_events_per_s.unwrap_or(f64::NAN)
        );
        figures.push(figure);
    }

    if !args.no_sqlite {
        let dir =
            std::env::temp_dir().join(format!("provenant-bench-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let result = sqlite_figures(args, &dir).await;
        let _ = std::fs::remove_dir_all(&dir);
        figures.extend(result?);
    }
    Ok(figures)
}

/// `bench append` with batches of `batch` alone (`total` events), on a
/// scratch database of its own: the figure `bench service` sets its knee
/// beside.
pub async fn postgres_figure(
    server: &str,
    batch: usize,
    total: usize,
) -> anyhow::Result<AppendFigure> {
    anyhow::ensure!(batch > 0, "the batch size must be at least 1");
    let scratch = Scratch::create(server).await?;
    let result = async {
        let mut admin = PgConnection::connect(&scratch.url).await?;
        postgres_batches(&mut admin, &scratch.url, batch, total, &mut true).await
    }
    .await;
    scratch.drop_database().await;
    result
}

/// Appends `total` events in batches of `batch` through the log at `url`,
/// each followed by a COPY of the very rows it wrote into a copy of the
/// table; the figure.
async fn postgres_batches(
    admin: &mut PgConnection,
    url: &str,
    batch: usize,
    total: usize,
    described: &mut bool,
) -> anyhow::Result<AppendFigure> {
    let batches = generate(total, batch)?;
    let log = EventLog::open(&LogConfig::new(url)).await?;
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS provenant.events_copy; \
         CREATE TABLE provenant.events_copy (LIKE provenant.events INCLUDING ALL)",
    )
    .execute(&mut *admin)
    .await?;
    // Interleaved: each batch is appended through the log, then the very
    // rows it wrote are COPY'd into the copy table in a transaction of
    // their own, so both see the same disk and the same table sizes.
    let copy_statement = format!("COPY provenant.events_copy ({COPY_COLUMNS}) FROM STDIN");
    let bar = progress(total as u64, &format!("postgres, batches of {batch}"));
    let (mut ours_time, mut copy_time) = (Duration::ZERO, Duration::ZERO);
    for b in batches {
        let n = b.len();
        let t = Instant::now();
        let out = log.append(AppendBatch::new(b)).await?;
        ours_time += t.elapsed();

        let first = out.positions.first().copied().unwrap_or(1);
        let written = log.read_forward(first - 1, n).await?;
        if !*described {
            let count = written.len().max(1) as f64;
            let whole: usize = written
                .iter()
                .map(|e| serde_json::to_string(e).map(|s| s.len()).unwrap_or(0))
                .sum();
            let body: usize = written
                .iter()
                .map(|e| e.provenance.canonical().len() + e.payload.text().len())
                .sum();
            println!(
                "events: payload + provenance {:.0} bytes of JSON on average; the whole event with ids, times and hashes {:.0}",
                body as f64 / count,
                whole as f64 / count
            );
            *described = true;
        }
        let mut text = String::new();
        for e in &written {
            let provenance = e.provenance.canonical();
            write_copy_row(&mut text, &EventRow::of(e, &provenance, e.payload.text()));
        }
        let t = Instant::now();
        let mut tx = admin.begin().await?;
        let mut copy = tx.copy_in_raw(copy_statement.as_str()).await?;
        copy.send(text.as_bytes()).await?;
        copy.finish().await?;
        tx.commit().await?;
        copy_time += t.elapsed();
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    let ours = total as f64 / ours_time.as_secs_f64();
    let copy = total as f64 / copy_time.as_secs_f64();
    log.close().await;
    Ok(AppendFigure {
        backend: "postgres",
        batch,
        events: total,
        events_per_s: ours,
        copy_events_per_s: Some(copy),
    })
}

async fn sqlite_figures(
    args: &AppendBenchArgs,
    dir: &std::path::Path,
) -> anyhow::Result<Vec<AppendFigure>> {
    let mut figures = Vec::new();
    for &batch in &args.batch_sizes {
        let total = args.events_for(batch);
        let batches = generate(total, batch)?;
        let url = format!(
            "sqlite://{}",
            dir.join(format!("batch-{batch}.db")).display()
        );
        let log = EventLog::open(&LogConfig::new(&url)).await?;
        let bar = progress(total as u64, &format!("sqlite, batches of {batch}"));
        let t = Instant::now();
        for b in batches {
            let n = b.len() as u64;
            log.append(AppendBatch::new(b)).await?;
            bar.inc(n);
        }
        let ours = total as f64 / t.elapsed().as_secs_f64();
        bar.finish_and_clear();
        println!(
            "sqlite    batch {batch:>5}: provenant {ours:>9.0} events/s (WAL, synchronous=FULL)"
        );
        figures.push(AppendFigure {
            backend: "sqlite",
            batch,
            events: total,
            events_per_s: ours,
            copy_events_per_s: None,
        });
        log.close().await;
    }
    Ok(figures)
}

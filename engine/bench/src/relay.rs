//! `provenant bench relay`: the same events (realistic plugin actions,
//! appended to a scratch PostgreSQL log first) published to a fresh
//! JetStream stream by the relay, from the log, and by a raw async-nats
//! publish loop of the very same messages (subjects, headers, bodies
//! prepared before the clock starts), pipelined the same way. The ratio is
//! the relay's events/s over the raw loop's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use provenant_log::{AppendBatch, EventLog};
use provenant_log::{LogConfig, redact_url};
use tokio::sync::watch;

use provenant_engine::nats_names::{NatsNames, POSITION_HEADER};
use provenant_engine::service::health::Health;
use provenant_engine::service::relay::{self, RelaySink};

use crate::sample::generate;
use crate::scratch::{
    DEFAULT_NATS_URL as DEFAULT_NATS, DEFAULT_POSTGRES_URL as DEFAULT_POSTGRES, Scratch, progress,
};

/// Arguments of `provenant bench relay`.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayBenchArgs {
    /// A PostgreSQL server; a scratch database is created on it and dropped.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_POSTGRES, hide_env_values = true)]
    pub database_url: String,
    /// NATS with JetStream; the benchmark's streams are deleted at the end.
    #[arg(long, env = "NATS_URL", default_value = DEFAULT_NATS, hide_env_values = true)]
    pub nats_url: String,
    /// Events relayed (and published by the raw loop).
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Rounds of each (alternating which goes first); the median is
    /// reported.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

/// The relay beside the raw publish loop: the median of the rounds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RelayFigure {
    pub events: usize,
    pub relay_events_per_s: f64,
    pub raw_events_per_s: f64,
    /// The median of the rounds' ratios.
    pub ratio: f64,
    /// Each round's (relay, raw) events/s.
    pub rounds: Vec<(f64, f64)>,
}

pub async fn relay_command(args: &RelayBenchArgs) -> anyhow::Result<()> {
    println!("provenant bench relay");
    let figure =
        relay_figures(&args.database_url, &args.nats_url, args.events, args.rounds).await?;
    print_relay(&figure);
    Ok(())
}

pub(crate) fn print_relay(f: &RelayFigure) {
    for (i, (relay, raw)) in f.rounds.iter().enumerate() {
        println!(
            "  round {}: relay {relay:>9.0} events/s, raw loop {raw:>9.0} events/s, ratio {:.2}",
            i + 1,
            relay / raw
        );
    }
    println!(
        "relay   {:>9.0} events/s   raw async-nats publish loop {:>9.0} events/s   ratio {:.2}   ({} events, median of {} rounds)",
        f.relay_events_per_s,
        f.raw_events_per_s,
        f.ratio,
        f.events,
        f.rounds.len()
    );
}

/// Measures the relay and the raw loop on `events` events, `rounds` times
/// each, alternating which goes first.
pub async fn relay_figures(
    server: &str,
    nats_url: &str,
    events: usize,
    rounds: usize,
) -> anyhow::Result<RelayFigure> {
    anyhow::ensure!(
        server.starts_with("postgres"),
        "bench relay needs a PostgreSQL server (got {})",
        redact_url(server)
    );
    anyhow::ensure!(rounds > 0, "--rounds must be at least 1");
    let scratch = Scratch::create(server).await?;
    let result = measure_relay(&scratch, nats_url, events, rounds).await;
    scratch.drop_database().await;
    result
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

async fn measure_relay(
    scratch: &Scratch,
    nats_url: &str,
    events: usize,
    rounds: usize,
) -> anyhow::Result<RelayFigure> {
    let log = EventLog::open(&LogConfig::new(&scratch.url)).await?;
    let bar = progress(events as u64, "appending the events");
    for batch in generate(events, 1000)? {
        let n = batch.len() as u64;
        log.append(AppendBatch::new(batch)).await?;
        bar.inc(n);
    }
    bar.finish_and_clear();
    let head = log.head().await?.position;

    let client = async_nats::connect(nats_url)
        .await
        .with_context(|| format!("cannot connect to NATS at {nats_url}"))?;
    let js = async_nats::jetstream::new(client.clone());

    // The raw loop's messages: the relay's, prepared before any clock starts
    // (how long reading and serialising takes is shown for comparison).
    let raw_prefix = "bench-raw";
    let template = NatsNames::new(raw_prefix)?;
    let mut messages = Vec::with_capacity(head as usize);
    let mut after = 0;
    let prepare = Instant::now();
    loop {
        let page = log.read_forward_json(after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for e in page {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                e.event_id.to_string().as_str(),
            );
            headers.insert(POSITION_HEADER, e.position.to_string().as_str());
            let subject = template.subject_of(e.world_id.as_ref(), e.plugin_id.as_ref(), &e.kind);
            messages.push((subject, headers, bytes::Bytes::from(e.json)));
        }
    }
    println!(
        "(reading the {head} events from the log and serialising them alone: {:.0} events/s)",
        head as f64 / prepare.elapsed().as_secs_f64()
    );

    let mut figures = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let tag = &uuid::Uuid::now_v7().simple().to_string()[20..];
        let relay_names = NatsNames::new(&format!("bench-relay-{tag}"))?;
        let raw_names = NatsNames::new(&format!("bench-raw-{tag}"))?;
        let result = async {
            let streams = provenant_engine::service::nats::StreamsConfig {
                partitions: provenant_events::Partitions::new(1).map_err(anyhow::Error::msg)?,
                replicas: 1,
            };
            provenant_engine::service::nats::ensure_streams(&js, &relay_names, streams).await?;
            provenant_engine::service::nats::ensure_streams(&js, &raw_names, streams).await?;
            let (relay, raw) = if round % 2 == 0 {
                let relay = relay_round(&log, &js, &relay_names, head).await?;
                let raw = raw_round(&js, &messages, raw_prefix, &raw_names, head).await?;
                (relay, raw)
            } else {
                let raw = raw_round(&js, &messages, raw_prefix, &raw_names, head).await?;
                let relay = relay_round(&log, &js, &relay_names, head).await?;
                (relay, raw)
            };
            let count = |names: &NatsNames| {
                let js = js.clone();
                let name = names.events_stream();
                async move {
                    let mut s = js.get_stream(&name).await?;
                    anyhow::Ok(s.info().await?.state.messages)
                }
            };
            let (relay_count, raw_count) = (count(&relay_names).await?, count(&raw_names).await?);
            anyhow::ensure!(
                relay_count == head && raw_count == head,
                "expected {head} messages in each stream, found {relay_count} (relay) and {raw_count} (raw)"
            );
            anyhow::Ok((
                head as f64 / relay.as_secs_f64(),
                head as f64 / raw.as_secs_f64(),
            ))
        }
        .await;
        for names in [&relay_names, &raw_names] {
            let _ = js.delete_stream(names.events_stream()).await;
            let _ = js.delete_stream(names.ticks_stream()).await;
            let _ = js.delete_stream(names.anchors_stream()).await;
        }
        figures.push(result?);
    }
    log.close().await;
    Ok(RelayFigure {
        events: head as usize,
        relay_events_per_s: median(figures.iter().map(|f| f.0).collect()),
        raw_events_per_s: median(figures.iter().map(|f| f.1).collect()),
        ratio: median(figures.iter().map(|f| f.0 / f.1).collect()),
        rounds: figures,
    })
}

/// The relay, from position 0 to the head, into `names`' events stream.
async fn relay_round(
    log: &EventLog,
    js: &async_nats::jetstream::Context,
    names: &NatsNames,
    head: u64,
) -> anyhow::Result<Duration> {
    let relayed = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn(relay::run(
        log.clone(),
        RelaySink::Nats {
            js: Box::new(js.clone()),
            names: names.clone(),
        },
        relay::Progress {
            relayed: relayed.clone(),
            reads: Default::default(),
        },
        Arc::new(Health::starting()),
        None,
        stopped,
    ));
    let bar = progress(head, "relay");
    loop {
        let done = relayed.load(Ordering::Relaxed);
        bar.set_position(done);
        if done >= head {
            break;
        }
        anyhow::ensure!(!task.is_finished(), "the relay stopped early");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let _ = stop.send(true);
    task.await.context("the relay task failed")?;
    Ok(elapsed)
}

/// The raw loop: `messages` (subjects under `template_prefix`) published
/// into `names`' events stream, at most [`relay::WINDOW`] awaiting their
/// acknowledgment (awaited by a second task): the relay's pipeline.
async fn raw_round(
    js: &async_nats::jetstream::Context,
    messages: &[(String, async_nats::HeaderMap, bytes::Bytes)],
    template_prefix: &str,
    names: &NatsNames,
    head: u64,
) -> anyhow::Result<Duration> {
    // Subjects and headers are cloned before the clock starts.
    let prepared: Vec<_> = messages
        .iter()
        .map(|(subject, headers, body)| {
            (
                subject.replacen(template_prefix, names.prefix(), 1),
                headers.clone(),
                body.clone(),
            )
        })
        .collect();
    let bar = progress(head, "raw publish loop");
    let started = Instant::now();
    let (acks, mut pending) = tokio::sync::mpsc::channel(relay::WINDOW);
    let awaiting = tokio::spawn(async move {
        while let Some(ack) = pending.recv().await {
            let ack: async_nats::jetstream::context::PublishAckFuture = ack;
            ack.await?;
        }
        anyhow::Ok(())
    });
    for (i, (subject, headers, body)) in prepared.into_iter().enumerate() {
        let ack = js.publish_with_headers(subject, headers, body).await?;
        if acks.send(ack).await.is_err() {
            break;
        }
        if i % 1024 == 0 {
            bar.set_position(i as u64);
        }
    }
    drop(acks);
    awaiting.await.context("the raw loop's acknowledgments")??;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    Ok(elapsed)
}

//! Starting and stopping the engine: the log opened (waiting while it is
//! unreachable), the plugins loaded, then every task started (worlds load
//! their state when their first job comes); a graceful stop finishes what
//! is in flight and saves the worlds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context as _;
use provenant_host::context::EngineInfo;
use provenant_host::plugin_host::{HostConfig, PluginHost};
use provenant_log::{AppendBatch, EventLog, LogConfig, LogError, TailCounters, redact_url};
use tokio::sync::{broadcast, watch};

use super::access::Tokens;
use super::anchors;
use super::cluster::{Cluster, Duties, Duty};
use super::commit::{CommitConfig, Committer};
use super::engine::Engine;
use super::health::Health;
use super::ownership::{Ownership, lease_partition};
use super::relay::{self, RelaySink};
use super::signals::{stop_signal, stopped};
use super::ticks::{self, PartitionWork};
use super::worlds::{Shared, Worlds, WorldsConfig};
use super::{http, nats};
use crate::nats_names::NatsNames;

/// The default HTTP address: loopback only.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9464";

/// How to run the engine.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The log: `postgres://…` or `sqlite://…`.
    pub database_url: String,
    /// NATS with JetStream; None: HTTP only, relay to the in-process bus.
    pub nats_url: Option<String>,
    /// How to authenticate to NATS and check its TLS.
    pub nats_auth: crate::nats_connect::NatsAuth,
    pub http_addr: SocketAddr,
    /// The roles' tokens. Once any is set, every route but the probes
    /// needs `Authorization: Bearer <token>` of a role it admits.
    pub tokens: Tokens,
    pub nats_names: NatsNames,
    /// Copies of each stream on a cluster of nats-servers.
    pub nats_replicas: usize,
    /// Recorded in every event's provenance.
    pub instance: String,
    /// Per plugin call.
    pub deadline: Duration,
    /// Where plugin calls run.
    pub isolation: provenant_host::runner::Isolation,
    /// The plugins: the built-in ones and a plugins directory's.
    pub plugins: crate::plugin_source::PluginSource,
    pub commit: CommitConfig,
    /// Chunks of committed events (512 each at most) the log's feed holds
    /// for the relay and the projections.
    pub feed_batches: usize,
    /// When idle worlds leave memory, and how often worlds are saved.
    pub worlds: WorldsConfig,
    /// The projections' settings (also when another process runs them: the
    /// admin API reads their rows).
    pub projections: provenant_projections::ProjectionsConfig,
    /// Run the projections in this process.
    pub run_projections: bool,
    /// How often the log's head is published to `<prefix>.anchors` (with
    /// NATS); `None`: never.
    pub anchor_every: Option<Duration>,
    /// The key the anchors are signed with; None: unsigned.
    pub anchor_key: Option<ed25519_dalek::SigningKey>,
    /// The engine's part in a cluster of engines on one log.
    pub cluster: ClusterConfig,
}

/// How this engine shares the work with others on the same log.
#[derive(Debug, Clone, Copy)]
pub struct ClusterConfig {
    /// How long a lease lasts unless renewed (renewed every third of it):
    /// how long the work of an engine that died waits for another.
    pub lease: Duration,
    /// The partition count asked for; None: the recorded one (1 when the
    /// first engine did not ask).
    pub partitions: Option<provenant_events::Partitions>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            lease: super::cluster::DEFAULT_LEASE,
            partitions: None,
        }
    }
}

/// A started engine.
pub struct Running {
    pub engine: Arc<Engine>,
    /// Where the HTTP API listens (the port is known even when 0 was asked).
    pub http_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    cluster: tokio::task::JoinHandle<Cluster>,
    anchors: Option<(anchors::Anchors, tokio::task::JoinHandle<()>)>,
    nats: Option<async_nats::Client>,
}

/// Starts the engine: opens the log (waiting for it to be reachable), loads
/// the plugins, then takes ticks. Nothing here reads the log's events, so
/// the time to start does not grow with the log.
pub async fn start(config: ServiceConfig) -> anyhow::Result<Running> {
    if config.tokens.is_empty() && !config.http_addr.ip().is_loopback() {
        anyhow::bail!(
            "refusing to listen on {} without a token: set PROVENANT_ADMIN_TOKEN (or --admin-token, or a game or reader token), or listen on a loopback address",
            config.http_addr
        );
    }
    config.tokens.check().map_err(anyhow::Error::msg)?;
    for role in config.tokens.short() {
        tracing::warn!(
            "the {} token is shorter than 16 characters: easy to guess",
            role.name()
        );
    }
    let health = Arc::new(Health::starting());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let log_config = LogConfig {
        feed_capacity: config.feed_batches,
        // An engine frozen mid-append holds up the others' appends and
        // takeovers at most about a lease.
        idle_in_transaction_timeout: config.cluster.lease,
        statement_timeout: Some(config.cluster.lease.max(Duration::from_secs(10)) * 3),
        ..LogConfig::new(&config.database_url)
    };
    let log = open_log(&log_config, &health).await?;
    let partitions = log
        .cluster_partitions(config.cluster.partitions)
        .await
        .context("cannot start in this cluster")?;
    let ownership = Arc::new(Ownership::new(partitions, config.nats_url.is_none()));
    let host = Arc::new(
        PluginHost::start(
            config.plugins.load()?,
            HostConfig {
                deadline: config.deadline,
                isolation: config.isolation,
                engine: EngineInfo {
                    version: provenant_host::ENGINE_VERSION.into(),
                    instance: config.instance.clone().into(),
                },
                ..HostConfig::default()
            },
        )
        .context("the plugins did not load")?,
    );
    log.append(AppendBatch::new(host.startup_events()))
        .await
        .context("cannot record the plugins loaded")?;
    // Nothing is folded here: each world's state is loaded (its snapshot,
    // then its events after it) when its first job comes.
    health.plugins_loaded();

    let (committer, _committer_task) = Committer::start(log.clone(), health.clone(), config.commit);
    let worlds = Worlds::new(Shared {
        host: host.clone(),
        ownership,
        committer: committer.clone(),
        log: log.clone(),
        health: health.clone(),
        shutdown: shutdown_rx.clone(),
        config: config.worlds,
    });
    let relayed = Arc::new(AtomicU64::new(0));
    let (bus, js, nats_client) = match &config.nats_url {
        Some(url) => {
            // Not ready until a partition's tick consumer runs.
            health.consumer(Some("the tick consumers are starting".into()));
            let client = nats::connect(url, &config.nats_auth, health.clone()).await?;
            let js = async_nats::jetstream::new(client.clone());
            let streams = nats::StreamsConfig {
                partitions,
                replicas: config.nats_replicas,
            };
            nats::ensure_streams(&js, &config.nats_names, streams).await?;
            (None, Some(js), Some(client))
        }
        None => {
            let (bus, _) = broadcast::channel(4096);
            (Some(bus), None, None)
        }
    };
    let engine = Arc::new(Engine {
        log: log.clone(),
        host,
        worlds,
        committer,
        health: health.clone(),
        relayed: relayed.clone(),
        reads: Default::default(),
        bus,
        tokens: config.tokens.clone(),
        relay_checkpoint: config.nats_names.relay_checkpoint(),
        lease_operations: AtomicU64::new(0),
    });
    let duties = duties(&config, &engine, js.clone(), partitions);
    let mut cluster = Cluster::new(
        log.clone(),
        engine.clone(),
        config.instance.clone(),
        config.cluster.lease,
        duties,
    );
    // The work free now is taken before the engine says it is ready.
    cluster
        .round()
        .await
        .context("cannot take this engine's share of the work")?;
    let cluster = tokio::spawn(cluster.run(shutdown_rx.clone()));
    let anchors = match (&js, config.anchor_every) {
        (Some(js), Some(every)) if !every.is_zero() => {
            let anchors = anchors::Anchors {
                log: log.clone(),
                js: js.clone(),
                names: config.nats_names.clone(),
                instance: config.instance.clone(),
                key: config.anchor_key.clone().map(Arc::new),
            };
            let task = tokio::spawn(anchors.clone().run(every, shutdown_rx.clone()));
            Some((anchors, task))
        }
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.http_addr))?;
    let http_addr = listener.local_addr()?;
    let app = http::router(engine.clone());
    let mut http_shutdown = shutdown_rx.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped(&mut http_shutdown).await })
            .await
    });
    tracing::info!(%http_addr, log = %log.backend_kind(), nats = config.nats_url.is_some(), "engine started");
    Ok(Running {
        engine,
        http_addr,
        shutdown,
        http,
        cluster,
        anchors,
        nats: nats_client,
    })
}

impl Running {
    /// Stops taking ticks, finishes and acknowledges what is in flight, lets
    /// the relay catch up with the head, and closes the log.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.engine.health.shutting_down();
        let _ = self.shutdown.send(true);
        // The tick consumers stop and hand their partitions over.
        let cluster = self
            .cluster
            .await
            .context("the cluster's task ended abnormally")?;
        self.http
            .await
            .context("the HTTP server ended abnormally")?
            .context("the HTTP server failed")?;
        self.engine.worlds.close().await;
        // The relay catches up with the head; every lease is given up.
        cluster.finish().await;
        if let Some((anchors, task)) = self.anchors {
            let _ = task.await;
            // The head as the engine leaves it.
            if let Err(e) = anchors.publish_if_moved(None).await {
                tracing::warn!(
                    "cannot publish the last anchor: {}",
                    crate::error_text::error_text(&e)
                );
            }
        }
        if let Some(client) = self.nats {
            // Acknowledgments are buffered: send them before exiting.
            if let Err(e) = client.flush().await {
                tracing::warn!(error = %e, "cannot flush the last acknowledgments; those ticks will be redelivered and recognised");
            }
        }
        self.engine.log.close().await;
        Ok(())
    }
}

/// What this engine can take on: a partition's ticks (with NATS), the relay,
/// the projections (unless another process runs them).
fn duties(
    config: &ServiceConfig,
    engine: &Arc<Engine>,
    js: Option<async_nats::jetstream::Context>,
    partitions: provenant_events::Partitions,
) -> Duties {
    let partition: Option<Duty> = js.clone().map(|js| {
        let engine = engine.clone();
        let names = config.nats_names.clone();
        let ttl = config.cluster.lease;
        Box::new(move |lease: &provenant_log::Lease, stop| {
            let work = PartitionWork {
                engine: engine.clone(),
                js: js.clone(),
                names: names.clone(),
                partitions,
                log: engine.log.clone(),
                lease: lease.clone(),
                partition: lease_partition(&lease.name).unwrap_or_default(),
                ttl,
            };
            tokio::spawn(ticks::consume_partition(work, stop))
        }) as Duty
    });
    let relay: Duty = {
        let engine = engine.clone();
        let names = config.nats_names.clone();
        Box::new(move |lease: &provenant_log::Lease, stop| {
            let sink = match (&js, &engine.bus) {
                (Some(js), _) => RelaySink::Nats {
                    js: Box::new(js.clone()),
                    names: names.clone(),
                },
                (None, Some(bus)) => RelaySink::Bus(bus.clone()),
                (None, None) => RelaySink::Bus(broadcast::channel(1).0),
            };
            tokio::spawn(relay::run(
                engine.log.clone(),
                sink,
                relay::Progress {
                    relayed: engine.relayed.clone(),
                    reads: engine.reads.relay.clone(),
                },
                engine.health.clone(),
                Some(lease.fence()),
                stop,
            ))
        })
    };
    let projections: Option<Duty> = config.run_projections.then(|| {
        let engine = engine.clone();
        let projections = config.projections.clone();
        Box::new(move |lease: &provenant_log::Lease, stop| {
            let engine = engine.clone();
            let projections = projections.clone();
            let fence = lease.fence();
            tokio::spawn(async move {
                match spawn_projections(
                    &engine.log,
                    &projections,
                    engine.reads.projections.clone(),
                    Some(fence),
                    stop,
                )
                .await
                {
                    Ok(tasks) => {
                        for task in tasks {
                            if let Err(e) = task.await {
                                tracing::error!(error = %e, "a projection ended abnormally");
                            }
                        }
                    }
                    Err(e) => tracing::error!(
                        "the projections are not running: {}",
                        crate::error_text::error_text(&e)
                    ),
                }
            })
        }) as Duty
    });
    Duties {
        partition,
        relay,
        projections,
    }
}

/// `provenant serve`: runs until SIGTERM or Ctrl-C, then stops gracefully.
pub async fn serve(config: ServiceConfig) -> anyhow::Result<()> {
    let url = redact_url(&config.database_url);
    let nats = config.nats_url.clone();
    // One listener for the whole run: a signal that comes between the
    // start and the wait (a supervisor stopping an engine it just started)
    // is not lost.
    let stop = stop_signal();
    tokio::pin!(stop);
    let running = tokio::select! {
        r = start(config) => r?,
        _ = &mut stop => {
            eprintln!("stopped before the engine was ready");
            return Ok(());
        }
    };
    println!(
        "provenant engine listening on http://{} (log: {} at {url}; ticks: {})",
        running.http_addr,
        running.engine.log.backend_kind(),
        match &nats {
            Some(n) => format!(
                "NATS {} and POST /v1/ticks",
                crate::nats_connect::shown_url(n)
            ),
            None => "POST /v1/ticks (no NATS_URL: events go to the in-process bus)".into(),
        }
    );
    stop.await;
    eprintln!("stopping: finishing the ticks in flight");
    running.stop().await?;
    eprintln!("stopped");
    Ok(())
}

/// Loads every projection and starts following the log with each, until
/// `stop` (`serve`, and `provenant projections run`); an error names the
/// projection that did not load.
pub async fn spawn_projections(
    log: &EventLog,
    config: &provenant_projections::ProjectionsConfig,
    reads: Arc<TailCounters>,
    fence: Option<provenant_log::Fence>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    provenant_projections::spawn_all(log, config, reads, fence, stop)
        .await
        .map_err(|e| {
            let provenant_projections::RunnerError::Log { name, .. } = &e;
            let context = format!("cannot load the projection {name}");
            anyhow::Error::new(e).context(context)
        })
}

/// Opens the log, waiting (and saying why on `/readyz` and in the logs)
/// while it is unreachable. A log that is there but refuses (bad URL, not
/// migratable) is an error at once.
async fn open_log(config: &LogConfig, health: &Health) -> anyhow::Result<EventLog> {
    let url = config.url.as_str();
    let mut wait = Duration::from_millis(100);
    loop {
        match EventLog::open(config).await {
            Ok(log) => {
                health.log_ok();
                return Ok(log);
            }
            Err(e @ LogError::Database(_)) => {
                health.log_failed(&e);
                tracing::warn!(url = %redact_url(url), error = %e, "the log is unreachable; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot open the log at {}", redact_url(url)));
            }
        }
    }
}

//! `provenant demo`: the whole story through the real engine service, in one
//! process. The engine starts on the embedded default (a SQLite log, ticks
//! handed to it in-process) or on PostgreSQL and NATS JetStream when their
//! URLs are given; two worlds are configured through it and a few thousand
//! ticks sent, each answered once its events are durable. Then the service's
//! guarantees (a malformed tick recorded as `TickRejected`, a tick sent
//! twice recognised as a duplicate), the log's own (idempotent appends,
//! optimistic concurrency), and, after a graceful stop, what each plugin did
//! as counted from the log, the throughput and the verified head.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::{self, ErrorCode, context::GetStreamErrorKind};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use provenant_events::log::{BackendKind, LogConfig, redact_url};
use provenant_events::{
    AppendBatch, EventKind, EventLog, ExpectedVersion, NewEvent, Position, SessionId, StreamName,
    VerifyConfig, WorldId,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::host::context::TickNpc;
use crate::host::kinds;
use crate::host::runner::Isolation;
use crate::host::tick::Tick;
use crate::intake;
use crate::service::nats::NatsNames;
use crate::service::relay::POSITION_HEADER;
use crate::service::worlds::{Answer, TickOutcome};
use crate::service::{self, Engine, Running, ServiceConfig};

/// Settings of `provenant demo`.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// The log: `postgres://…` or `sqlite://…`.
    pub database_url: String,
    /// NATS with JetStream; None: ticks are handed to the engine in-process.
    pub nats_url: Option<String>,
    /// The engine's NATS prefix (subjects, streams, consumer).
    pub nats_prefix: String,
    /// Game ticks, each for two sessions of the tavern (and every 100th for
    /// the cellar).
    pub ticks: u64,
}

const NPCS: usize = 3;
/// The engine instance recorded in every event's provenance.
const INSTANCE: &str = "demo";
/// Where the demo's ticks come from, in their `TickProcessed` and
/// `TickRejected` events (in-process; over NATS the engine records the
/// subject).
const SOURCE: &str = "demo";
/// Ticks awaiting their answer (in-process) or their stream acknowledgment
/// (NATS) at once.
const IN_FLIGHT: usize = 2048;
/// How long without any acknowledgment before the ticks still missing are
/// an error.
const ACK_IDLE: Duration = Duration::from_secs(30);
/// How long to wait for one answer, a rejection to be recorded, or the relay
/// to reach the head.
const WAIT: Duration = Duration::from_secs(30);

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
                side.url,
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
    println!();

    let running = service::start(ServiceConfig {
        database_url: config.database_url.clone(),
        nats_url: config.nats_url.clone(),
        http_addr: ([127, 0, 0, 1], 0).into(),
        admin_token: None,
        nats_names: names,
        instance: INSTANCE.into(),
        deadline: Duration::from_millis(50),
        isolation: Isolation::Thread,
        commit: Default::default(),
        projections: Default::default(),
        run_projections: true,
        anchor_every: Some(Duration::from_secs(10)),
    })
    .await
    .context("the engine did not start")?;
    let told = story(&running, log, nats.as_mut(), config, &bar).await;
    let stopped = running.stop().await;
    if let Some(side) = nats {
        side.close().await;
    }
    let told = told?;
    stopped.context("the engine did not stop cleanly")?;
    println!("engine stopped gracefully: every tick it had taken was answered first");
    println!();
    summary(log, start.position, &told).await
}

/// What the story leaves for the summary.
struct Told {
    plugins: Vec<String>,
    ticks: Tally,
    effective_config: Option<Value>,
}

/// Everything that happens while the engine runs, one line per step.
async fn story(
    running: &Running,
    log: &EventLog,
    mut nats: Option<&mut NatsSide>,
    config: &DemoConfig,
    bar: &ProgressBar,
) -> anyhow::Result<Told> {
    let engine = &running.engine;
    let plugins: Vec<String> = engine
        .host
        .plugins()
        .iter()
        .map(|p| p.info.id.to_string())
        .collect();
    println!(
        "engine started (instance {INSTANCE}, HTTP API on http://{}): plugins {} loaded, each recorded as a PluginLoaded event",
        running.http_addr,
        plugins.join(", ")
    );

    let tavern = WorldId::new("tavern")?;
    let cellar = WorldId::new("cellar")?;
    let mut configured = Vec::new();
    for (world, config) in [(&tavern, tavern_config()), (&cellar, cellar_config())] {
        let mut event = crate::world_cmd::configured_event(world, config)
            .with_context(|| format!("the configuration of {world} is refused"))?;
        event.provenance.engine_version = Some(engine.host.engine().version.clone());
        event.provenance.engine_instance = Some(engine.host.engine().instance.clone());
        let position = engine
            .worlds
            .configure(world, event.clone())
            .await
            .with_context(|| format!("the engine did not configure {world}"))?;
        configured.push((event, position));
    }
    println!(
        "worlds configured: tavern (stealth, romance, flaky; nosy disabled), cellar (only nosy), each a WorldConfigured event"
    );

    let sessions = [SessionId::new("s1")?, SessionId::new("s2")?];
    let mut plan = TickPlan::new(&tavern, &cellar, &sessions, config.ticks);
    let first = plan.next().context("no tick to send")?;
    let ticks = std::iter::once(first.clone()).chain(plan);
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.reset();
    let tally = match nats.as_deref_mut() {
        Some(side) => side.send(ticks).await,
        None => send_in_process(engine, ticks, bar).await,
    };
    bar.finish_and_clear();
    bar.set_draw_target(ProgressDrawTarget::hidden());
    let tally = tally?;
    println!(
        "{} ticks sent (tavern: 1 to {} for sessions s1 and s2; cellar: every 100th){}: each acknowledged once its events were durable, {} events in all",
        tally.sent,
        config.ticks,
        match &nats {
            Some(_) => " over NATS",
            None => "",
        },
        tally.events
    );

    // A malformed tick: recorded, refused, and the engine goes on.
    let (position, reason) = malformed(engine, log, nats.as_deref()).await?;
    println!(
        "a malformed tick (\"tick\": \"forty-two\"): refused, recorded as TickRejected at position {position}: {reason}"
    );

    // A tick sent again: recognised, nothing added.
    let before = log.head().await.context("cannot read the log's head")?;
    let again = match nats.as_deref_mut() {
        Some(side) => side.resend(&first).await?,
        None => resend_in_process(engine, &first).await?,
    };
    let after = log.head().await.context("cannot read the log's head")?;
    anyhow::ensure!(
        again.duplicate,
        "tick 1 of tavern/s1, sent again, was processed again"
    );
    println!(
        "tick 1 of tavern/s1 sent again: answered duplicate: true (its TickProcessed is at position {}), {} events added, {}",
        again.position,
        again.events,
        if after == before {
            "the log's head unchanged".to_owned()
        } else {
            format!(
                "but the log's head moved from {} to {}",
                before.position, after.position
            )
        }
    );

    // The log's own guarantees, through its API on the same log.
    let (events, positions): (Vec<NewEvent>, Vec<Position>) = configured.into_iter().unzip();
    let retry = log
        .append(AppendBatch::new(events))
        .await
        .context("cannot append the retried configuration")?;
    println!(
        "the worlds' configuration appended again through the log API: {} events written, same positions: {} (appends are idempotent by event_id)",
        retry.written,
        if retry.positions == positions {
            "yes"
        } else {
            "NO"
        }
    );
    let stream = StreamName::session(&tavern, &sessions[0]);
    let version = log.stream_version(&stream).await?;
    let mut late = NewEvent::new(stream.clone(), EventKind::new("DemoLateWrite")?, json!({}));
    late.world_id = Some(tavern.clone());
    let stale = AppendBatch::new(vec![late])
        .expect(stream, ExpectedVersion::Exact(version.saturating_sub(5)));
    match log.append(stale).await {
        Err(e) => println!(
            "a writer that read {} five events ago: refused: {e}",
            sessions[0]
        ),
        Ok(_) => anyhow::bail!("a stale expected version was accepted"),
    }

    if let Some(side) = nats.as_deref() {
        let head = log.head().await.context("cannot read the log's head")?;
        let messages = side.wait_for_relay(head.position).await?;
        println!(
            "stream {}: {messages} messages, the last one the log's head (position {}): the relay caught up",
            side.names.events_stream(),
            head.position
        );
    }

    let effective_config = engine
        .worlds
        .describe(&tavern)
        .await
        .ok()
        .flatten()
        .map(|w| w["effective_simulation_config"].clone());
    Ok(Told {
        plugins,
        ticks: tally,
        effective_config,
    })
}

/// What each plugin did, the throughput and the verified head, read from
/// the log after the engine stopped.
async fn summary(log: &EventLog, start: Position, told: &Told) -> anyhow::Result<()> {
    let mut per_plugin: BTreeMap<String, BTreeMap<&'static str, u64>> = told
        .plugins
        .iter()
        .map(|p| (p.clone(), BTreeMap::new()))
        .collect();
    let (mut events, mut processed) = (0u64, 0u64);
    let mut after = start;
    loop {
        let page = log
            .read_forward(after, 5_000)
            .await
            .context("cannot read the log")?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for e in &page {
            events += 1;
            let kind = e.kind.as_str();
            if kind == kinds::TICK_PROCESSED {
                processed += 1;
            }
            if let Some(plugin) = &e.plugin_id
                && let Some(label) = summary_label(kind)
            {
                *per_plugin
                    .entry(plugin.to_string())
                    .or_default()
                    .entry(label)
                    .or_default() += 1;
            }
        }
    }
    let columns = [
        "evaluations",
        "effects",
        "handled",
        "failures",
        "panics",
        "timeouts",
        "denials",
    ];
    println!("what each plugin did, counted from the {events} events this run added to the log:");
    print!("  {:<15}", "plugin");
    for c in columns {
        print!(" {c:>11}");
    }
    println!();
    for (plugin, counts) in &per_plugin {
        print!("  {plugin:<15}");
        for c in columns {
            print!(" {:>11}", counts.get(c).copied().unwrap_or(0));
        }
        println!();
    }
    println!(
        "  (failures, panics and timeouts come from example-flaky on purpose; denials from example-nosy,"
    );
    println!(
        "   which probes another plugin's flags and a session write in each failure mode: RAISE, WARN, SILENT)"
    );
    if let Some(config) = &told.effective_config {
        println!("  tavern's effective simulation config: {config}");
    }
    plugin_health(log).await?;
    let t = &told.ticks;
    if processed == t.sent {
        println!(
            "exactly once: {processed} TickProcessed events for {} ticks sent (the tick sent twice added none)",
            t.sent
        );
    } else {
        println!(
            "NOT exactly once: {processed} TickProcessed events for {} ticks sent",
            t.sent
        );
    }
    let seconds = t.seconds.max(1e-9);
    println!(
        "throughput: {} ticks in {:.2} s, {:.0} ticks/s, {:.0} events/s (from the first tick sent to the last acknowledged)",
        t.sent,
        t.seconds,
        t.sent as f64 / seconds,
        t.events as f64 / seconds
    );

    let report = log
        .verify(&VerifyConfig::default(), &mut |_| {})
        .await
        .context("cannot verify the log")?;
    println!();
    match &report.violation {
        None => println!(
            "chain verified: {} events intact, head {}",
            report.count, report.head
        ),
        Some(v) => println!(
            "chain TAMPERED at position {}: {}: {}",
            v.position, v.fault, v.detail
        ),
    }
    println!("store the head elsewhere, then check the log later with:");
    println!("  provenant audit verify --expect-head {}", report.head);

    let replayed = crate::audit::replay::replay(
        log,
        &crate::audit::replay::ReplayConfig {
            from: Some(start + 1),
            ..Default::default()
        },
        crate::host::plugins::builtin(),
        &|_, _| {},
    )
    .await
    .context("cannot replay the plugin calls")?;
    println!(
        "replayed with this build's plugins, each call fed what its event recorded: {} of {} calls matched{}",
        replayed.matched(),
        replayed.replayed(),
        skipped_text(&replayed)
    );
    println!("explain any plugin action, and re-check it against this build:");
    println!(
        "  provenant audit trail --session s1 --npc npc-0 --kind RelationshipUpdated --limit 5"
    );
    println!("  provenant audit replay --from POSITION --to POSITION");
    Ok(())
}

/// Each plugin's health as the `plugin_metrics` projection judges it (caught
/// up with the head first: the engine stopped before it had to).
async fn plugin_health(log: &EventLog) -> anyhow::Result<()> {
    let config = provenant_projections::ProjectionsConfig::default();
    let Some((_, factory)) = provenant_projections::standard(&config)
        .into_iter()
        .find(|(name, _)| *name == provenant_projections::names::PLUGIN_METRICS)
    else {
        return Ok(());
    };
    let head = log.head().await.context("cannot read the head")?.position;
    let mut runner = provenant_projections::Runner::load(log.clone(), factory, Default::default())
        .await
        .context("cannot load the plugin metrics projection")?;
    runner
        .catch_up(head, |_| {})
        .await
        .context("cannot bring the plugin metrics projection up to date")?;
    let stored = log
        .load_projection(provenant_projections::names::PLUGIN_METRICS)
        .await
        .context("cannot read the plugin metrics")?;
    println!(
        "plugin health (the plugin_metrics projection, over each plugin's last 200 calls within 5 minutes of game time;"
    );
    println!("   GET /admin/plugins/health and /metrics serve the same from a running engine):");
    for (plugin, json) in stored.map(|s| s.rows).unwrap_or_default() {
        let Ok(m) =
            serde_json::from_str::<provenant_projections::plugin_metrics::PluginMetrics>(&json)
        else {
            continue;
        };
        let latency = m.latency();
        let p99 = latency
            .p99_ms
            .map_or("-".to_owned(), |ms| format!("{ms:.2} ms"));
        println!(
            "  {plugin:<15} {:<10} p99 {p99:<10} {}",
            m.health_state().as_str(),
            m.health().reason
        );
    }
    Ok(())
}

/// ` (6 skipped: 6 deadline_exceeded)`, or nothing.
fn skipped_text(report: &crate::audit::replay::ReplayReport) -> String {
    let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
    for p in &report.plugins {
        for (reason, n) in &p.skipped {
            *reasons.entry(reason.as_str()).or_default() += n;
        }
    }
    if reasons.is_empty() {
        return String::new();
    }
    let each: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    format!(" ({} skipped: {})", report.skipped(), each.join(", "))
}

fn summary_label(kind: &str) -> Option<&'static str> {
    Some(match kind {
        kinds::CONDITION_EVALUATED => "evaluations",
        kinds::EFFECT_APPLIED => "effects",
        kinds::EVENT_HANDLED => "handled",
        kinds::PLUGIN_CALL_FAILED => "failures",
        kinds::PLUGIN_CALL_PANICKED => "panics",
        kinds::PLUGIN_DEADLINE_EXCEEDED => "timeouts",
        kinds::PERMISSION_DENIED => "denials",
        _ => return None,
    })
}

/// A progress bar over the ticks, drawn on stderr when it is a terminal
/// (hidden until the ticks are sent).
fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::hidden();
    bar.set_length(len);
    bar.set_style(
        ProgressStyle::with_template("ticks acknowledged {bar:30} {pos}/{len} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Ticks and what came back.
#[derive(Debug, Default, Clone)]
struct Tally {
    sent: u64,
    acknowledged: u64,
    /// Events the ticks added.
    events: u64,
    /// From the first tick sent to the last acknowledgment.
    seconds: f64,
}

impl Tally {
    fn answered(&mut self, a: &Answered) {
        self.acknowledged += 1;
        self.events += a.events;
    }
}

/// The engine's answer to a tick: the body of `POST /v1/ticks` and of the
/// notice on `<prefix>.acked.<world_id>`.
#[derive(Debug, Clone, Deserialize)]
struct Answered {
    tick_id: Uuid,
    #[serde(default)]
    duplicate: bool,
    #[serde(default)]
    events: u64,
    #[serde(default)]
    position: Position,
}

impl From<TickOutcome> for Answered {
    fn from(o: TickOutcome) -> Self {
        Answered {
            tick_id: o.tick_id,
            duplicate: o.duplicate,
            events: o.events as u64,
            position: o.position,
        }
    }
}

/// A tick, as the messages name it.
#[derive(Debug, Clone)]
struct TickRef {
    world: WorldId,
    session: SessionId,
    tick: u64,
}

impl From<&Tick> for TickRef {
    fn from(t: &Tick) -> Self {
        TickRef {
            world: t.world_id.clone(),
            session: t.session_id.clone(),
            tick: t.tick,
        }
    }
}

impl fmt::Display for TickRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tick {} of {}/{}", self.tick, self.world, self.session)
    }
}

/// Queues each tick behind its world's with the engine, keeping at most
/// [`IN_FLIGHT`] answers pending (a world's answers come in order).
async fn send_in_process(
    engine: &Engine,
    ticks: impl Iterator<Item = Tick>,
    bar: &ProgressBar,
) -> anyhow::Result<Tally> {
    let source: Arc<str> = SOURCE.into();
    let mut tally = Tally::default();
    let mut pending: VecDeque<(TickRef, Answer<TickOutcome>)> = VecDeque::new();
    let started = Instant::now();
    for tick in ticks {
        if pending.len() >= IN_FLIGHT
            && let Some((which, answer)) = pending.pop_front()
        {
            tally.answered(&answer_of(which, answer).await?);
            bar.inc(1);
        }
        let which = TickRef::from(&tick);
        let answer = engine
            .worlds
            .enqueue_tick(tick, source.clone())
            .await
            .with_context(|| format!("the engine did not take {which}"))?;
        tally.sent += 1;
        pending.push_back((which, answer));
    }
    while let Some((which, answer)) = pending.pop_front() {
        tally.answered(&answer_of(which, answer).await?);
        bar.inc(1);
    }
    tally.seconds = started.elapsed().as_secs_f64();
    Ok(tally)
}

async fn answer_of(which: TickRef, answer: Answer<TickOutcome>) -> anyhow::Result<Answered> {
    match answer.await {
        Ok(Ok(outcome)) => Ok(outcome.into()),
        Ok(Err(failure)) => Err(failure).with_context(|| format!("{which} was not processed")),
        Err(_) => anyhow::bail!("the engine stopped before answering {which}"),
    }
}

async fn resend_in_process(engine: &Engine, tick: &Tick) -> anyhow::Result<Answered> {
    let which = TickRef::from(tick);
    let answer = engine
        .worlds
        .enqueue_tick(tick.clone(), SOURCE.into())
        .await
        .with_context(|| format!("the engine did not take {which} again"))?;
    tokio::time::timeout(WAIT, answer_of(which.clone(), answer))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "no answer to {which}, sent again, within {}s",
                WAIT.as_secs()
            )
        })?
}

/// Sends a malformed tick; the position and reason of its `TickRejected`.
async fn malformed(
    engine: &Engine,
    log: &EventLog,
    nats: Option<&NatsSide>,
) -> anyhow::Result<(Position, String)> {
    let body = json!({
        "tick_id": Uuid::now_v7(),
        "world_id": "tavern",
        "session_id": "s1",
        "tick": "forty-two",
        "at": provenant_events::event::now(),
    })
    .to_string();
    let Some(side) = nats else {
        let rejection = match intake::parse_tick(body.as_bytes()) {
            Ok(_) => anyhow::bail!("the malformed tick was read as a tick"),
            Err(r) => r,
        };
        let position = engine
            .record_rejection(&rejection, SOURCE)
            .await
            .context("cannot record the rejected tick")?;
        return Ok((position, rejection.reason));
    };
    let head = log.head().await.context("cannot read the log's head")?;
    // The engine's own log handle: its appends wake the tail at once.
    let mut tail = engine
        .log
        .tail(head.position)
        .await
        .context("cannot follow the log")?;
    let subject = side.names.ticks_subject("tavern");
    side.js
        .publish(subject.clone(), body.into_bytes().into())
        .await
        .with_context(|| format!("cannot publish to {subject}"))?
        .await
        .with_context(|| format!("JetStream did not store the message on {subject}"))?;
    let rejected = async {
        loop {
            let e = tail.next().await.context("cannot read the log")?;
            if e.kind.as_str() == intake::TICK_REJECTED {
                let reason = e.payload.value()["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                return anyhow::Ok((e.position, reason));
            }
        }
    };
    tokio::time::timeout(WAIT, rejected).await.map_err(|_| {
        anyhow::anyhow!(
            "the malformed tick published on {subject} was not recorded as TickRejected within {}s",
            WAIT.as_secs()
        )
    })?
}

/// The demo as a game on NATS: publishes ticks with JetStream and follows
/// the engine's acknowledgment notices.
struct NatsSide {
    client: async_nats::Client,
    js: jetstream::Context,
    names: NatsNames,
    /// Without a password.
    url: String,
    /// Ticks published and not yet acknowledged.
    pending: Arc<Mutex<HashSet<Uuid>>>,
    /// The answers to the pending ticks, as the notices come.
    answers: mpsc::UnboundedReceiver<Answered>,
    notices: tokio::task::JoinHandle<()>,
}

impl NatsSide {
    /// Connects (an unreachable server is an error at once), checks that the
    /// events stream, if there is one, relays this log, and follows the
    /// acknowledgment notices before anything is sent.
    async fn connect(
        url: &str,
        names: NatsNames,
        log: &EventLog,
        bar: ProgressBar,
    ) -> anyhow::Result<Self> {
        let shown = redact_url(url);
        let client = async_nats::ConnectOptions::new()
            .name("provenant-demo")
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .with_context(|| format!("cannot connect to NATS at {shown}"))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(WAIT)
            .max_ack_inflight(IN_FLIGHT * 2)
            .backpressure_on_inflight(true)
            .build(client.clone());
        check_events_stream(&js, &names, log, &shown).await?;
        let notices = client
            .subscribe(names.acked_wildcard())
            .await
            .with_context(|| {
                format!("cannot subscribe to {} at {shown}", names.acked_wildcard())
            })?;
        // The subscription is in place on the server once this returns.
        client
            .flush()
            .await
            .with_context(|| format!("cannot reach NATS at {shown}"))?;
        let pending = Arc::new(Mutex::new(HashSet::new()));
        let (tx, answers) = mpsc::unbounded_channel();
        let notices = tokio::spawn(follow_notices(notices, pending.clone(), tx, bar));
        Ok(NatsSide {
            client,
            js,
            names,
            url: shown,
            pending,
            answers,
            notices,
        })
    }

    fn expect(&self, tick_id: Uuid) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tick_id);
    }

    /// Publishes every tick to `<prefix>.ticks.<world_id>` (header
    /// `Nats-Msg-Id: <tick_id>`), in order, then waits until each is
    /// acknowledged.
    async fn send(&mut self, ticks: impl Iterator<Item = Tick>) -> anyhow::Result<Tally> {
        let mut tally = Tally::default();
        let mut stored = FuturesUnordered::new();
        let started = Instant::now();
        for tick in ticks {
            while stored.len() >= IN_FLIGHT {
                if let Some((which, result)) = stored.next().await {
                    check_stored(which, result)?;
                }
            }
            let which = TickRef::from(&tick);
            let body = serde_json::to_vec(&tick).context("cannot encode a tick")?;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                tick.tick_id.to_string().as_str(),
            );
            let subject = self.names.ticks_subject(tick.world_id.as_str());
            self.expect(tick.tick_id);
            let ack = self
                .js
                .publish_with_headers(subject, headers, body.into())
                .await
                .with_context(|| format!("cannot publish {which}"))?;
            tally.sent += 1;
            stored.push(async move { (which, ack.await) });
        }
        while let Some((which, result)) = stored.next().await {
            check_stored(which, result)?;
        }
        while tally.acknowledged < tally.sent {
            match tokio::time::timeout(ACK_IDLE, self.answers.recv()).await {
                Ok(Some(answer)) => tally.answered(&answer),
                Ok(None) => anyhow::bail!(
                    "stopped following {} with {} of {} ticks not acknowledged",
                    self.names.acked_wildcard(),
                    tally.sent - tally.acknowledged,
                    tally.sent
                ),
                Err(_) => anyhow::bail!(
                    "{} of {} ticks not acknowledged: nothing came on {} for {}s (is another engine consuming {}?)",
                    tally.sent - tally.acknowledged,
                    tally.sent,
                    self.names.acked_wildcard(),
                    ACK_IDLE.as_secs(),
                    self.names.ticks_wildcard()
                ),
            }
        }
        tally.seconds = started.elapsed().as_secs_f64();
        Ok(tally)
    }

    /// Publishes a tick again, as a game retrying after JetStream's
    /// two-minute de-duplication window would (without `Nats-Msg-Id`, so
    /// that the engine, not the stream, recognises it); the engine's answer.
    async fn resend(&mut self, tick: &Tick) -> anyhow::Result<Answered> {
        let which = TickRef::from(tick);
        let body = serde_json::to_vec(tick).context("cannot encode a tick")?;
        self.expect(tick.tick_id);
        let ack = self
            .js
            .publish(
                self.names.ticks_subject(tick.world_id.as_str()),
                body.into(),
            )
            .await
            .with_context(|| format!("cannot publish {which} again"))?;
        check_stored(which.clone(), ack.await)?;
        let answer = async {
            while let Some(a) = self.answers.recv().await {
                if a.tick_id == tick.tick_id {
                    return Some(a);
                }
            }
            None
        };
        match tokio::time::timeout(WAIT, answer).await {
            Ok(Some(a)) => Ok(a),
            Ok(None) => anyhow::bail!(
                "stopped following {} before {which}, sent again, was acknowledged",
                self.names.acked_wildcard()
            ),
            Err(_) => anyhow::bail!(
                "{which}, sent again, was not acknowledged within {}s",
                WAIT.as_secs()
            ),
        }
    }

    /// Waits until the events stream's last message is the event at `head`;
    /// the messages the stream holds.
    async fn wait_for_relay(&self, head: Position) -> anyhow::Result<u64> {
        let deadline = Instant::now() + WAIT;
        loop {
            let last = last_message(&self.js, &self.names).await?;
            let reached = last.as_ref().map_or(0, |l| l.position);
            if let Some(last) = last
                && last.position >= head
            {
                anyhow::ensure!(
                    last.position == head,
                    "the stream {} is ahead of the log: its last event is at position {}, the log's head at {head}",
                    self.names.events_stream(),
                    last.position
                );
                return Ok(last.messages);
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "the relay did not catch up within {}s: the stream {} reaches position {reached}, the log's head is at {head}",
                    WAIT.as_secs(),
                    self.names.events_stream()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn close(self) {
        self.notices.abort();
        let _ = self.notices.await;
        if let Err(e) = self.client.drain().await {
            tracing::warn!(error = %e, "cannot close the demo's NATS connection cleanly");
        }
    }
}

fn check_stored(
    which: TickRef,
    result: Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
) -> anyhow::Result<()> {
    result
        .map(|_| ())
        .with_context(|| format!("JetStream did not store {which}"))
}

/// Forwards the answers to pending ticks, and counts them on the bar.
async fn follow_notices(
    mut notices: async_nats::Subscriber,
    pending: Arc<Mutex<HashSet<Uuid>>>,
    answers: mpsc::UnboundedSender<Answered>,
    bar: ProgressBar,
) {
    while let Some(message) = notices.next().await {
        let answer: Answered = match serde_json::from_slice(&message.payload) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(subject = %message.subject, "not an acknowledgment: {e}");
                continue;
            }
        };
        let ours = pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&answer.tick_id);
        if ours {
            bar.inc(1);
            if answers.send(answer).is_err() {
                return;
            }
        }
    }
}

/// The events stream's last message.
struct LastMessage {
    /// Messages in the stream.
    messages: u64,
    /// Its `Provenant-Position`.
    position: Position,
    /// Its `Nats-Msg-Id`: the event id.
    id: Option<String>,
}

/// None when the stream is missing or empty.
async fn last_message(
    js: &jetstream::Context,
    names: &NatsNames,
) -> anyhow::Result<Option<LastMessage>> {
    let name = names.events_stream();
    let mut stream = match js.get_stream(&name).await {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read the stream {name}")),
    };
    let state = stream
        .info()
        .await
        .with_context(|| format!("cannot read the stream {name}"))?
        .state
        .clone();
    if state.messages == 0 {
        return Ok(None);
    }
    let last = stream
        .get_raw_message(state.last_sequence)
        .await
        .with_context(|| format!("cannot read the last message of {name}"))?;
    let position = last
        .headers
        .get(POSITION_HEADER)
        .and_then(|v| v.as_str().parse::<Position>().ok())
        .filter(|p| *p > 0)
        .with_context(|| {
            format!(
                "the last message of {name} has no {POSITION_HEADER} header: is something other than provenant publishing to it?"
            )
        })?;
    Ok(Some(LastMessage {
        messages: state.messages,
        position,
        id: last
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_owned()),
    }))
}

/// Refuses a stream that holds another log's events: the relay would add
/// this log's after them.
async fn check_events_stream(
    js: &jetstream::Context,
    names: &NatsNames,
    log: &EventLog,
    url: &str,
) -> anyhow::Result<()> {
    let Some(last) = last_message(js, names).await? else {
        return Ok(());
    };
    let head = log.head().await.context("cannot read the log's head")?;
    let ours = log
        .read_forward(last.position - 1, 1)
        .await
        .context("cannot read the log")?
        .into_iter()
        .next()
        .filter(|e| e.position == last.position);
    let same = ours
        .as_ref()
        .is_some_and(|e| last.id.as_deref() == Some(e.event_id.to_string().as_str()));
    anyhow::ensure!(
        same,
        "the stream {} at {url} relays another log: its last message is event {} at position {}, {}; give this log a NATS prefix of its own (--nats-prefix or PROVENANT_NATS_PREFIX) or delete that stream",
        names.events_stream(),
        last.id.as_deref().unwrap_or("(no Nats-Msg-Id)"),
        last.position,
        match ours {
            Some(e) => format!("where this log holds event {}", e.event_id),
            None => format!(
                "beyond this log's head ({})",
                last.position.min(head.position)
            ),
        }
    );
    Ok(())
}

/// The tavern's configuration: stealth, romance and flaky; nosy disabled.
pub(crate) fn tavern_config() -> Value {
    json!({"name": "The Tavern", "meta": {"behavior": tavern_behavior()}})
}

/// The cellar's configuration: only nosy.
pub(crate) fn cellar_config() -> Value {
    json!({"name": "The Cellar", "meta": {"behavior": {
        "enabledPlugins": ["example-nosy"],
        "activities": [{"id": "snoop", "effects": [{"id": "effect:plugin:example-nosy:peek"}]}],
    }}})
}

fn tavern_behavior() -> Value {
    json!({
        "disabledPlugins": ["example-nosy"],
        "simulationConfig": {"tickSeconds": 1},
        "activities": [
            {"id": "sneak",
             "conditions": [{"id": "plugin:game-stealth:has_disguise"}],
             "effects": [{"id": "effect:plugin:game-stealth:raise_suspicion", "params": {"amount": 1}}]},
            {"id": "chat",
             "effects": [{"id": "effect:plugin:game-romance:affinity_boost", "params": {"amount": 1}}]},
            {"id": "flirt",
             "conditions": [{"id": "plugin:game-romance:is_attracted", "params": {"threshold": 100}}],
             "effects": [{"id": "effect:plugin:game-romance:affinity_boost", "params": {"amount": 3}}]},
            {"id": "gamble",
             "conditions": [{"id": "plugin:example-flaky:coin_flip",
                             "params": {"fail_rate": 0.02, "panic_rate": 0.005, "overrun_rate": 0.001, "overrun_ms": 80}}],
             "effects": [{"id": "effect:plugin:game-stealth:raise_suspicion", "params": {"amount": 0.5}}]}
        ]
    })
}

/// How many ticks `--ticks n` sends: the tavern's for two sessions, and the
/// cellar's every 100th.
fn total_ticks(n: u64) -> u64 {
    n * 2 + n / 100
}

/// The ticks, in the order they are sent: for each game tick, the tavern's
/// two sessions, then (every 100th) the cellar.
#[derive(Clone)]
struct TickPlan {
    tavern: WorldId,
    cellar: WorldId,
    sessions: [SessionId; 2],
    ticks: u64,
    game_start: chrono::DateTime<chrono::Utc>,
    /// The next game tick, and which of its ticks comes next (0, 1: the
    /// tavern's sessions; 2: the cellar).
    n: u64,
    step: u8,
}

impl TickPlan {
    fn new(tavern: &WorldId, cellar: &WorldId, sessions: &[SessionId; 2], ticks: u64) -> Self {
        TickPlan {
            tavern: tavern.clone(),
            cellar: cellar.clone(),
            sessions: sessions.clone(),
            ticks,
            game_start: provenant_events::event::now(),
            n: 1,
            step: 0,
        }
    }
}

impl Iterator for TickPlan {
    type Item = Tick;

    fn next(&mut self) -> Option<Tick> {
        while self.n <= self.ticks {
            let (n, step) = (self.n, self.step);
            if step >= 2 {
                (self.n, self.step) = (n + 1, 0);
            } else {
                self.step += 1;
            }
            let at = self.game_start + chrono::Duration::seconds(i64::try_from(n).ok()?);
            match step {
                0 | 1 => {
                    return Some(tavern_tick(
                        &self.tavern,
                        &self.sessions[step as usize],
                        n,
                        at,
                    ));
                }
                _ if n.is_multiple_of(100) => {
                    return Some(cellar_tick(&self.cellar, &self.sessions[0], n, at));
                }
                _ => {}
            }
        }
        None
    }
}

/// A tick of a tavern session: three NPCs, every seventh (by tick and NPC)
/// in disguise.
pub(crate) fn tavern_tick(
    world: &WorldId,
    session: &SessionId,
    n: u64,
    at: chrono::DateTime<chrono::Utc>,
) -> Tick {
    let npcs = (0..NPCS)
        .map(|i| TickNpc {
            npc_id: format!("npc-{i}"),
            location_id: Some(["hall", "bar", "stairs"][i % 3].into()),
            state: json!({"disguise": (n + i as u64).is_multiple_of(7)}),
        })
        .collect();
    Tick {
        tick_id: Uuid::now_v7(),
        world_id: world.clone(),
        session_id: session.clone(),
        tick: n,
        at,
        npcs,
        session_updates: None,
        context: None,
    }
}

/// A tick of the cellar: the rat.
pub(crate) fn cellar_tick(
    world: &WorldId,
    session: &SessionId,
    n: u64,
    at: chrono::DateTime<chrono::Utc>,
) -> Tick {
    Tick {
        tick_id: Uuid::now_v7(),
        world_id: world.clone(),
        session_id: session.clone(),
        tick: n,
        at,
        npcs: vec![TickNpc {
            npc_id: "rat".into(),
            location_id: Some("cellar".into()),
            state: json!({}),
        }],
        session_updates: None,
        context: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_sends_both_tavern_sessions_per_tick_and_the_cellar_every_100th() {
        let tavern = WorldId::new("tavern").unwrap();
        let cellar = WorldId::new("cellar").unwrap();
        let sessions = [SessionId::new("s1").unwrap(), SessionId::new("s2").unwrap()];
        for n in [1, 99, 100, 250] {
            let ticks: Vec<Tick> = TickPlan::new(&tavern, &cellar, &sessions, n).collect();
            assert_eq!(ticks.len() as u64, total_ticks(n), "{n}");
        }
        let ticks: Vec<Tick> = TickPlan::new(&tavern, &cellar, &sessions, 100).collect();
        let order: Vec<(&str, &str, u64)> = ticks
            .iter()
            .map(|t| (t.world_id.as_str(), t.session_id.as_str(), t.tick))
            .collect();
        assert_eq!(
            order[..3],
            [
                ("tavern", "s1", 1),
                ("tavern", "s2", 1),
                ("tavern", "s1", 2)
            ]
        );
        assert_eq!(order[order.len() - 1], ("cellar", "s1", 100));
        // Every tick reads back as the engine reads it from NATS.
        for t in &ticks {
            let body = serde_json::to_vec(t).unwrap();
            assert_eq!(&intake::parse_tick(&body).unwrap(), t);
        }
    }
}

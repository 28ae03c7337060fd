//! `provenant sim`: a game simulation and the engine's load generator.
//!
//! It configures `--worlds` worlds on a running engine (`PUT
//! /v1/worlds/{world_id}`), then sends ticks at a steady rate, round-robin
//! over (world, session), and measures each tick from just before it is sent
//! to its acknowledgment:
//!
//! - with NATS, ticks are published with JetStream to
//!   `<prefix>.ticks.<world_id>` (header `Nats-Msg-Id: <tick_id>`), and the
//!   acknowledgment is the engine's notice on `<prefix>.acked.<world_id>`;
//! - without, each tick is a `POST /v1/ticks`, whose answer comes when the
//!   tick is durable.
//!
//! Sending holds the rate asked for and never bursts a backlog: when it
//! cannot keep up, the report says what rate it achieved. After sending it
//! waits up to `--drain` seconds for outstanding acknowledgments; ticks still
//! unacknowledged then are reported as missing, not as an error. [`run`] is
//! what other commands (benchmarks) call; [`command`] is `provenant sim`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::{self, context::PublishAckFuture};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use provenant_events::WorldId;
use provenant_events::log::redact_url;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::service::nats::NatsNames;

/// Where `provenant serve` listens by default.
pub const DEFAULT_ENGINE_URL: &str = "http://127.0.0.1:9464";

/// How often the sender wakes to send the ticks that are due.
const STEP: Duration = Duration::from_millis(5);
/// The most sending may catch up after a stall, in time at the target rate:
/// a longer stall lowers the achieved rate instead of causing a burst.
const MAX_CATCH_UP: Duration = Duration::from_millis(50);
/// Requests in flight at once over HTTP.
const HTTP_IN_FLIGHT: usize = 256;
/// JetStream publishes awaiting their stream acknowledgment at once; the
/// sender waits beyond that.
const NATS_ACKS_IN_FLIGHT: usize = 5_000;
/// Deadline of the set-up requests (readiness, world configuration) and of
/// one JetStream stream acknowledgment.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the engine to say it is ready before sending anyway.
const READY_WAIT: Duration = Duration::from_secs(10);
/// Distinct failure messages kept in the report.
const MAX_FAILURE_MESSAGES: usize = 5;

/// `provenant sim` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// The running engine's HTTP API: the worlds are configured there (PUT
    /// /v1/worlds/{world_id}) and, without NATS, ticks are sent there (POST
    /// /v1/ticks). Plain http:// only.
    #[arg(long = "engine", value_name = "URL", env = "PROVENANT_ENGINE_URL", default_value = DEFAULT_ENGINE_URL)]
    pub engine_url: String,
    /// NATS with JetStream, e.g. nats://127.0.0.1:4222: ticks are published to
    /// <prefix>.ticks.<world_id> and acknowledged on <prefix>.acked.<world_id>.
    /// Without it ticks are sent with POST /v1/ticks.
    #[arg(long, value_name = "URL", env = "NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    /// Prefix of the NATS subjects: the engine's --nats-prefix.
    #[arg(
        long,
        value_name = "PREFIX",
        env = "PROVENANT_NATS_PREFIX",
        default_value = "provenant"
    )]
    pub nats_prefix: String,
    /// The engine's admin token, sent as `Authorization: Bearer <token>` on
    /// PUT and POST.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "PROVENANT_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// Worlds to simulate: <world-prefix>-1 … <world-prefix>-N, each
    /// configured with the stealth, romance and flaky plugins.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub worlds: u32,
    /// Game sessions per world; ticks go round-robin over (world, session).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub sessions: u32,
    /// NPCs in each tick.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    pub npcs: u32,
    /// Ticks per second to send, over all worlds.
    #[arg(long, value_name = "TICKS_PER_S", default_value_t = 200.0, value_parser = positive)]
    pub rate: f64,
    /// Seconds of sending (fractions allowed).
    #[arg(long, value_name = "S", default_value_t = 10.0, value_parser = seconds)]
    pub duration: f64,
    /// Seconds to wait, after sending, for outstanding acknowledgments;
    /// ticks still unacknowledged then are reported as missing.
    #[arg(long, value_name = "S", default_value_t = 30.0, value_parser = seconds)]
    pub drain: f64,
    /// The worlds are <world-prefix>-1 … <world-prefix>-N.
    #[arg(long, value_name = "PREFIX", default_value = "sim")]
    pub world_prefix: String,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a number above 0, not {s:?}")),
    }
}

fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e9).contains(&v) => Ok(v),
        _ => Err(format!("expected seconds (0 or more), not {s:?}")),
    }
}

impl SimArgs {
    /// The run's configuration (an empty NATS URL or token counts as none).
    pub fn config(&self) -> anyhow::Result<SimConfig> {
        Ok(SimConfig {
            engine_url: self.engine_url.clone(),
            nats_url: self.nats_url.clone().filter(|u| !u.is_empty()),
            nats_prefix: self.nats_prefix.clone(),
            admin_token: self.admin_token.clone().filter(|t| !t.is_empty()),
            worlds: self.worlds,
            sessions: self.sessions,
            npcs: self.npcs,
            rate: self.rate,
            duration: Duration::try_from_secs_f64(self.duration).context("invalid --duration")?,
            drain: Duration::try_from_secs_f64(self.drain).context("invalid --drain")?,
            world_prefix: self.world_prefix.clone(),
        })
    }
}

/// What to simulate, and against which engine.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The engine's HTTP API, `http://host:port`.
    pub engine_url: String,
    /// NATS with JetStream; None: ticks over `POST /v1/ticks`.
    pub nats_url: Option<String>,
    /// The engine's NATS prefix.
    pub nats_prefix: String,
    /// Sent as `Authorization: Bearer` on PUT and POST.
    pub admin_token: Option<String>,
    /// Worlds `<world_prefix>-1` … `<world_prefix>-<worlds>`.
    pub worlds: u32,
    /// Sessions per world.
    pub sessions: u32,
    /// NPCs per tick.
    pub npcs: u32,
    /// Ticks per second, over all worlds.
    pub rate: f64,
    /// How long to send.
    pub duration: Duration,
    /// How long to wait for acknowledgments after sending.
    pub drain: Duration,
    pub world_prefix: String,
}

impl Default for SimConfig {
    /// `provenant sim`'s defaults, over HTTP to the default address.
    fn default() -> Self {
        SimConfig {
            engine_url: DEFAULT_ENGINE_URL.into(),
            nats_url: None,
            nats_prefix: "provenant".into(),
            admin_token: None,
            worlds: 4,
            sessions: 4,
            npcs: 5,
            rate: 200.0,
            duration: Duration::from_secs(10),
            drain: Duration::from_secs(30),
            world_prefix: "sim".into(),
        }
    }
}

impl SimConfig {
    /// The world ids, `<world_prefix>-1` … (checked as world ids).
    pub fn world_ids(&self) -> anyhow::Result<Vec<String>> {
        (1..=self.worlds)
            .map(|i| {
                let id = format!("{}-{i}", self.world_prefix);
                WorldId::new(id.clone())
                    .with_context(|| format!("invalid --world-prefix {:?}", self.world_prefix))?;
                Ok(id)
            })
            .collect()
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.worlds >= 1, "at least one world is needed");
        anyhow::ensure!(
            self.sessions >= 1,
            "at least one session per world is needed"
        );
        anyhow::ensure!(
            self.rate.is_finite() && self.rate > 0.0,
            "the rate must be a number above 0, not {}",
            self.rate
        );
        NatsNames::new(&self.nats_prefix)?;
        self.world_ids()?;
        Ok(())
    }
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// A reason ticks failed, and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureCount {
    pub message: String,
    pub count: u64,
}

/// What a run sent, what came back, and how fast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// `nats` or `http`.
    pub transport: &'static str,
    pub worlds: u32,
    pub sessions: u32,
    pub npcs: u32,
    /// The rate asked for, ticks/s.
    pub target_rate: f64,
    /// Ticks sent (published, or POSTed).
    pub sent: u64,
    /// Ticks acknowledged (duplicates included).
    pub acknowledged: u64,
    /// Acknowledgments saying the tick was already in the log.
    pub duplicates: u64,
    /// Ticks refused or not stored (see `failures`).
    pub failed: u64,
    /// Sent, neither acknowledged nor failed within the drain.
    pub missing: u64,
    /// Events the acknowledged ticks added.
    pub events: u64,
    /// From the first send to the end of sending.
    pub send_seconds: f64,
    /// Ticks sent per second of sending.
    pub send_rate: f64,
    /// From the first send to the last acknowledgment.
    pub measured_seconds: f64,
    /// Acknowledged ticks per second over `measured_seconds`.
    pub ticks_per_second: f64,
    /// Events added per second over `measured_seconds`.
    pub events_per_second: f64,
    /// From just before a tick was sent to its acknowledgment; None when
    /// nothing was acknowledged.
    pub latency_ms: Option<LatencyMs>,
    /// The most frequent failure messages.
    pub failures: Vec<FailureCount>,
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "provenant sim: {} worlds x {} sessions, {} NPCs per tick, over {}, target {} ticks/s",
            self.worlds, self.sessions, self.npcs, self.transport, self.target_rate
        )?;
        writeln!(
            f,
            "  ticks sent     {:>9}   {:.1}/s over {:.2} s",
            self.sent, self.send_rate, self.send_seconds
        )?;
        writeln!(
            f,
            "  acknowledged   {:>9}   {} duplicates",
            self.acknowledged, self.duplicates
        )?;
        writeln!(f, "  failed         {:>9}", self.failed)?;
        writeln!(f, "  missing        {:>9}", self.missing)?;
        writeln!(f, "  events added   {:>9}", self.events)?;
        writeln!(
            f,
            "  throughput     {:>9.1} ticks/s   {:.1} events/s   (first send to last acknowledgment: {:.2} s)",
            self.ticks_per_second, self.events_per_second, self.measured_seconds
        )?;
        match &self.latency_ms {
            Some(l) => writeln!(
                f,
                "  latency ms     p50 {:.2}   p90 {:.2}   p99 {:.2}   max {:.2}",
                l.p50, l.p90, l.p99, l.max
            )?,
            None => writeln!(f, "  latency ms     - (nothing acknowledged)")?,
        }
        for failure in &self.failures {
            writeln!(f, "  failed x{}: {}", failure.count, failure.message)?;
        }
        Ok(())
    }
}

/// `provenant sim`: arguments, run, report.
pub async fn command(args: SimArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let report = run(&config).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).context("cannot encode the report")?
        );
    } else {
        print!("{report}");
    }
    Ok(())
}

/// Configures the worlds, sends ticks for `config.duration`, waits up to
/// `config.drain` for their acknowledgments, and reports. An error means the
/// run could not happen (engine or NATS unreachable, a world refused);
/// ticks that fail or go missing are in the report.
#[tracing::instrument(skip_all, fields(engine = %config.engine_url, nats = config.nats_url.is_some()))]
pub async fn run(config: &SimConfig) -> anyhow::Result<SimReport> {
    config.validate()?;
    let worlds = config.world_ids()?;
    let api = EngineApi::new(&config.engine_url, config.admin_token.as_deref())?;
    api.wait_ready().await?;
    let nats = match &config.nats_url {
        Some(url) => Some(NatsSide::connect(url, &config.nats_prefix).await?),
        None => None,
    };
    for (i, world) in worlds.iter().enumerate() {
        api.configure_world(world, &world_config(i + 1)).await?;
    }
    let tracker = Tracker::new();
    let mut sender = match nats {
        Some(nats) => Sender::nats(nats, &worlds, &tracker).await?,
        None => Sender::http(api, &tracker),
    };
    let mut schedule = Schedule::new(config, worlds);
    let transport = sender.transport();
    tracing::info!(
        transport,
        rate = config.rate,
        duration = ?config.duration,
        "sending"
    );
    let send_end = send_paced(config, &mut schedule, &mut sender).await;
    tracker.drain(config.drain).await;
    sender.stop().await;
    Ok(tracker.report(config, transport, send_end))
}

/// The configuration every simulated world gets.
pub fn world_config(i: usize) -> Value {
    json!({
        "name": format!("Sim world {i}"),
        "meta": {"behavior": {
            "enabledPlugins": ["game-stealth", "game-romance", "example-flaky"],
            "activities": [
                {"id": "sneak",
                 "conditions": [{"id": "plugin:game-stealth:has_disguise"}],
                 "effects": [{"id": "effect:plugin:game-stealth:raise_suspicion", "params": {"amount": 1}}]},
                {"id": "chat",
                 "conditions": [{"id": "plugin:game-romance:is_attracted", "params": {"threshold": 0}}],
                 "effects": [{"id": "effect:plugin:game-romance:affinity_boost", "params": {"amount": 1}}]},
                {"id": "gamble",
                 "conditions": [{"id": "plugin:example-flaky:coin_flip", "params": {"fail_rate": 0.02}}],
                 "effects": []}
            ]
        }}
    })
}

/// Sends the ticks due every [`STEP`] until `config.duration` has passed;
/// returns when the last send returned.
async fn send_paced(config: &SimConfig, schedule: &mut Schedule, sender: &mut Sender) -> Instant {
    let mut interval = tokio::time::interval(STEP);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let max_credit = (config.rate * MAX_CATCH_UP.as_secs_f64()).max(1.0);
    let start = Instant::now();
    let mut credit = 0.0_f64;
    let mut accounted = Duration::ZERO;
    loop {
        interval.tick().await;
        let elapsed = start.elapsed().min(config.duration);
        credit = (credit + config.rate * (elapsed - accounted).as_secs_f64()).min(max_credit);
        accounted = elapsed;
        // The epsilon absorbs rounding, so that rate x duration ticks go out.
        while credit >= 1.0 - 1e-6 {
            credit -= 1.0;
            let (world, tick_id, body) = schedule.next();
            sender.send(world, tick_id, body).await;
        }
        sender.reap();
        if elapsed >= config.duration {
            return Instant::now();
        }
    }
}

/// The ticks to send, in order: round-robin over (world, session), tick
/// numbers counting up per (world, session) from 1.
struct Schedule {
    worlds: Vec<String>,
    sessions: Vec<String>,
    npcs: Vec<String>,
    /// The last tick number of each (world, session).
    ticks: Vec<u64>,
    cursor: usize,
    game_start: DateTime<Utc>,
}

impl Schedule {
    fn new(config: &SimConfig, worlds: Vec<String>) -> Self {
        let pairs = worlds.len() * config.sessions as usize;
        Schedule {
            worlds,
            sessions: (1..=config.sessions)
                .map(|s| format!("session-{s}"))
                .collect(),
            npcs: (1..=config.npcs).map(|k| format!("npc-{k}")).collect(),
            ticks: vec![0; pairs],
            cursor: 0,
            game_start: Utc
                .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
        }
    }

    /// The next tick: its world's index, its id and its JSON.
    fn next(&mut self) -> (usize, Uuid, Bytes) {
        let pair = self.cursor % self.ticks.len();
        self.cursor = self.cursor.wrapping_add(1);
        let world = pair % self.worlds.len();
        let session = pair / self.worlds.len();
        self.ticks[pair] += 1;
        let tick = self.ticks[pair];
        let tick_id = Uuid::now_v7();
        let seconds = i64::try_from(tick).unwrap_or(i64::MAX);
        let at = self.game_start + chrono::TimeDelta::try_seconds(seconds).unwrap_or_default();
        let body = TickBody {
            tick_id,
            world_id: &self.worlds[world],
            session_id: &self.sessions[session],
            tick,
            at: at.to_rfc3339_opts(SecondsFormat::Secs, true),
            npcs: self
                .npcs
                .iter()
                .zip(1u64..)
                .map(|(npc_id, k)| NpcBody {
                    npc_id,
                    location_id: "hall",
                    state: NpcState {
                        disguise: (tick + k).is_multiple_of(3),
                    },
                })
                .collect(),
        };
        // Serializing these plain structs cannot fail.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        (world, tick_id, Bytes::from(body))
    }
}

#[derive(Serialize)]
struct TickBody<'a> {
    tick_id: Uuid,
    world_id: &'a str,
    session_id: &'a str,
    tick: u64,
    at: String,
    npcs: Vec<NpcBody<'a>>,
}

#[derive(Serialize)]
struct NpcBody<'a> {
    npc_id: &'a str,
    location_id: &'static str,
    state: NpcState,
}

#[derive(Serialize)]
struct NpcState {
    disguise: bool,
}

/// An acknowledgment: the engine's answer to a tick (HTTP) or its notice
/// (NATS), `{tick_id, world_id, duplicate, events, position}`.
#[derive(Debug, Deserialize)]
struct Ack {
    tick_id: Uuid,
    #[serde(default)]
    duplicate: bool,
    #[serde(default)]
    events: u64,
}

/// What became of the ticks sent, shared by the sender and the tasks that
/// see acknowledgments and failures.
#[derive(Clone)]
struct Tracker {
    inner: Arc<Mutex<Tally>>,
    /// Woken when nothing is outstanding any more.
    settled: Arc<Notify>,
}

#[derive(Default)]
struct Tally {
    /// Sent, not yet acknowledged nor failed: when it was sent.
    pending: HashMap<Uuid, Instant>,
    /// Failed: when it was sent and why (an acknowledgment may still come,
    /// e.g. after a JetStream acknowledgment timed out).
    failed: HashMap<Uuid, (Instant, String)>,
    sent: u64,
    first_send: Option<Instant>,
    acknowledged: u64,
    duplicates: u64,
    events: u64,
    latencies_us: Vec<u64>,
    last_ack: Option<Instant>,
}

impl Tracker {
    fn new() -> Self {
        Tracker {
            inner: Arc::new(Mutex::new(Tally::default())),
            settled: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tally> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a tick about to be sent; its latency starts now.
    fn sending(&self, tick_id: Uuid) {
        let at = Instant::now();
        let mut t = self.lock();
        t.sent += 1;
        t.first_send.get_or_insert(at);
        t.pending.insert(tick_id, at);
    }

    /// Counts an acknowledgment of a tick this run sent (once per tick).
    fn acked(&self, ack: &Ack, at: Instant) {
        let mut t = self.lock();
        let sent_at = match t.pending.remove(&ack.tick_id) {
            Some(sent_at) => sent_at,
            None => match t.failed.remove(&ack.tick_id) {
                Some((sent_at, _)) => sent_at,
                // Another run's, or a second notice of a redelivered tick.
                None => return,
            },
        };
        t.acknowledged += 1;
        t.duplicates += u64::from(ack.duplicate);
        t.events += ack.events;
        let micros = at.saturating_duration_since(sent_at).as_micros();
        t.latencies_us
            .push(u64::try_from(micros).unwrap_or(u64::MAX));
        t.last_ack = Some(t.last_ack.map_or(at, |last| last.max(at)));
        if t.pending.is_empty() {
            self.settled.notify_waiters();
        }
    }

    fn failed(&self, tick_id: Uuid, message: String) {
        let mut t = self.lock();
        if let Some(sent_at) = t.pending.remove(&tick_id) {
            t.failed.insert(tick_id, (sent_at, message));
        }
        if t.pending.is_empty() {
            self.settled.notify_waiters();
        }
    }

    /// Waits until nothing is outstanding, or `drain` has passed.
    async fn drain(&self, drain: Duration) {
        let deadline = tokio::time::Instant::now() + drain;
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.lock().pending.is_empty() {
                return;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return;
            }
        }
    }

    fn report(&self, config: &SimConfig, transport: &'static str, send_end: Instant) -> SimReport {
        let mut t = self.lock();
        let first_send = t.first_send;
        let send_seconds = first_send.map_or(0.0, |f| send_end.duration_since(f).as_secs_f64());
        let measured_seconds = match (first_send, t.last_ack) {
            (Some(first), Some(last)) => last.saturating_duration_since(first).as_secs_f64(),
            _ => 0.0,
        };
        let per_second = |n: u64, s: f64| if s > 0.0 { round(n as f64 / s, 1) } else { 0.0 };
        t.latencies_us.sort_unstable();
        let latency_ms = (!t.latencies_us.is_empty()).then(|| LatencyMs {
            p50: percentile_ms(&t.latencies_us, 50.0),
            p90: percentile_ms(&t.latencies_us, 90.0),
            p99: percentile_ms(&t.latencies_us, 99.0),
            max: percentile_ms(&t.latencies_us, 100.0),
        });
        let mut by_message: BTreeMap<&str, u64> = BTreeMap::new();
        for (_, message) in t.failed.values() {
            *by_message.entry(message).or_default() += 1;
        }
        let mut failures: Vec<FailureCount> = by_message
            .into_iter()
            .map(|(message, count)| FailureCount {
                message: message.to_owned(),
                count,
            })
            .collect();
        failures.sort_by(|a, b| b.count.cmp(&a.count).then(a.message.cmp(&b.message)));
        failures.truncate(MAX_FAILURE_MESSAGES);
        SimReport {
            transport,
            worlds: config.worlds,
            sessions: config.sessions,
            npcs: config.npcs,
            target_rate: config.rate,
            sent: t.sent,
            acknowledged: t.acknowledged,
            duplicates: t.duplicates,
            failed: t.failed.len() as u64,
            missing: t.pending.len() as u64,
            events: t.events,
            send_seconds: round(send_seconds, 3),
            send_rate: per_second(t.sent, send_seconds),
            measured_seconds: round(measured_seconds, 3),
            ticks_per_second: per_second(t.acknowledged, measured_seconds),
            events_per_second: per_second(t.events, measured_seconds),
            latency_ms,
            failures,
        }
    }
}

fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// The nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    let Some(last) = sorted_us.len().checked_sub(1) else {
        return 0.0;
    };
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let value = sorted_us[rank.saturating_sub(1).min(last)];
    round(value as f64 / 1000.0, 3)
}

/// The engine's HTTP API.
#[derive(Clone)]
struct EngineApi {
    client: Client<HttpConnector, Full<Bytes>>,
    /// `http://host:port`, without a trailing slash.
    base: String,
    ticks: Uri,
    bearer: Option<HeaderValue>,
}

impl EngineApi {
    fn new(engine_url: &str, admin_token: Option<&str>) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(engine_url)
            .with_context(|| format!("invalid engine URL {engine_url:?}"))?;
        anyhow::ensure!(
            parsed.scheme() == "http",
            "invalid engine URL {engine_url:?}: only http:// is supported"
        );
        let base = engine_url.trim_end_matches('/').to_owned();
        let ticks = format!("{base}/v1/ticks")
            .parse()
            .with_context(|| format!("invalid engine URL {engine_url:?}"))?;
        let bearer = admin_token
            .map(|token| {
                let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .context("the admin token is not a valid HTTP header value")?;
                value.set_sensitive(true);
                anyhow::Ok(value)
            })
            .transpose()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(HTTP_IN_FLIGHT)
            .build(connector);
        Ok(EngineApi {
            client,
            base,
            ticks,
            bearer,
        })
    }

    /// One request; the status and the body.
    async fn call(
        &self,
        method: Method,
        uri: Uri,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(CONTENT_TYPE, "application/json");
        if let Some(bearer) = &self.bearer {
            request = request.header(AUTHORIZATION, bearer.clone());
        }
        let request = request
            .body(Full::new(body))
            .context("cannot build the request")?;
        let response = self.client.request(request).await?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .context("cannot read the answer")?
            .to_bytes();
        Ok((status, body))
    }

    /// A set-up request, with a deadline and the engine's address in errors.
    async fn setup_call(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let url = format!("{}{path}", self.base);
        let uri: Uri = url.parse().with_context(|| format!("invalid URL {url}"))?;
        tokio::time::timeout(REQUEST_TIMEOUT, self.call(method.clone(), uri, body))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {}s", REQUEST_TIMEOUT.as_secs()))
            .and_then(|r| r)
            .with_context(|| format!("cannot reach the engine at {} ({method} {path})", self.base))
    }

    /// Checks that the engine answers; waits a little for it to be ready,
    /// and goes on with a warning if it does not become so.
    #[tracing::instrument(skip(self), fields(engine = %self.base))]
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_WAIT;
        loop {
            let (status, body) = self
                .setup_call(Method::GET, "/readyz", Bytes::new())
                .await?;
            if status.is_success() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let why = String::from_utf8_lossy(&body);
                tracing::warn!(
                    "the engine is not ready after {READY_WAIT:?} ({status}: {why}); sending anyway"
                );
                eprintln!(
                    "warning: the engine at {} is not ready ({status}: {why}); sending anyway",
                    self.base
                );
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `PUT /v1/worlds/{world}`; a refusal is an error.
    #[tracing::instrument(skip(self, config))]
    async fn configure_world(&self, world: &str, config: &Value) -> anyhow::Result<()> {
        let body = serde_json::to_vec(config).context("cannot encode the world configuration")?;
        let (status, answer) = self
            .setup_call(Method::PUT, &format!("/v1/worlds/{world}"), body.into())
            .await?;
        anyhow::ensure!(
            status.is_success(),
            "the engine at {} refused the configuration of world {world}: {}",
            self.base,
            error_message(status, &answer)
        );
        Ok(())
    }

    /// `POST /v1/ticks`: the acknowledgment, or why not.
    async fn post_tick(&self, body: Bytes) -> Result<Ack, String> {
        let (status, answer) = self
            .call(Method::POST, self.ticks.clone(), body)
            .await
            .map_err(|e| crate::cli::error_text(&e))?;
        if !status.is_success() {
            return Err(error_message(status, &answer));
        }
        serde_json::from_slice(&answer).map_err(|e| format!("unexpected answer ({e})"))
    }
}

/// `HTTP <status>: <the answer's "error", or its text>`.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    let error = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    format!("HTTP {status}: {error}")
}

/// The NATS side: a client, JetStream and the subjects.
struct NatsSide {
    client: async_nats::Client,
    js: jetstream::Context,
    names: NatsNames,
    /// For messages (without a password).
    url: String,
}

impl NatsSide {
    /// Connects (once: an unreachable server is an error) and checks that
    /// the engine's ticks stream exists.
    #[tracing::instrument(skip(url), fields(url = %redact_url(url)))]
    async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let names = NatsNames::new(prefix)?;
        let shown = redact_url(url);
        let client = async_nats::ConnectOptions::new()
            .name("provenant-sim")
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .with_context(|| format!("cannot connect to NATS at {shown}"))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .max_ack_inflight(NATS_ACKS_IN_FLIGHT)
            .backpressure_on_inflight(true)
            .build(client.clone());
        js.get_stream(names.ticks_stream()).await.with_context(|| {
            format!(
                "NATS at {shown} has no stream {}: is the engine running with NATS and --nats-prefix {prefix}?",
                names.ticks_stream()
            )
        })?;
        Ok(NatsSide {
            client,
            js,
            names,
            url: shown,
        })
    }
}

/// Sends ticks, over NATS or HTTP, and has what comes back counted.
enum Sender {
    Nats {
        js: jetstream::Context,
        /// Each world's ticks subject.
        subjects: Vec<String>,
        /// Publishes awaiting their stream acknowledgment.
        stored: mpsc::Sender<(Uuid, PublishAckFuture)>,
        /// The tasks following acknowledgment notices and stream acks.
        tasks: JoinSet<()>,
        client: async_nats::Client,
        tracker: Tracker,
    },
    Http {
        api: EngineApi,
        in_flight: Arc<Semaphore>,
        requests: JoinSet<()>,
        tracker: Tracker,
    },
}

impl Sender {
    /// Subscribes to the acknowledgment notices before anything is sent.
    async fn nats(nats: NatsSide, worlds: &[String], tracker: &Tracker) -> anyhow::Result<Self> {
        let NatsSide {
            client,
            js,
            names,
            url,
        } = nats;
        let notices = client
            .subscribe(names.acked_wildcard())
            .await
            .with_context(|| format!("cannot subscribe to {} at {url}", names.acked_wildcard()))?;
        // The subscription is in place on the server once this returns.
        client
            .flush()
            .await
            .with_context(|| format!("cannot reach NATS at {url}"))?;
        let mut tasks = JoinSet::new();
        tasks.spawn(follow_notices(notices, tracker.clone()));
        let (stored, pending_acks) = mpsc::channel(NATS_ACKS_IN_FLIGHT);
        tasks.spawn(await_stored(pending_acks, tracker.clone()));
        let subjects = worlds.iter().map(|w| names.ticks_subject(w)).collect();
        Ok(Sender::Nats {
            js,
            subjects,
            stored,
            tasks,
            client,
            tracker: tracker.clone(),
        })
    }

    fn http(api: EngineApi, tracker: &Tracker) -> Self {
        Sender::Http {
            api,
            in_flight: Arc::new(Semaphore::new(HTTP_IN_FLIGHT)),
            requests: JoinSet::new(),
            tracker: tracker.clone(),
        }
    }

    fn transport(&self) -> &'static str {
        match self {
            Sender::Nats { .. } => "nats",
            Sender::Http { .. } => "http",
        }
    }

    /// Sends one tick (its latency starts once it can go: over HTTP when a
    /// request slot is free); waits only when too many are outstanding.
    async fn send(&mut self, world: usize, tick_id: Uuid, body: Bytes) {
        match self {
            Sender::Nats {
                js,
                subjects,
                stored,
                tracker,
                ..
            } => {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(
                    async_nats::header::NATS_MESSAGE_ID,
                    tick_id.to_string().as_str(),
                );
                let subject = subjects[world].clone();
                tracker.sending(tick_id);
                match js.publish_with_headers(subject, headers, body).await {
                    Ok(ack) => {
                        if stored.send((tick_id, ack)).await.is_err() {
                            tracker.failed(tick_id, "the stream acknowledgment was lost".into());
                        }
                    }
                    Err(e) => tracker.failed(tick_id, format!("not published: {e}")),
                }
            }
            Sender::Http {
                api,
                in_flight,
                requests,
                tracker,
            } => {
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    tracker.failed(tick_id, "not sent: the sender stopped".into());
                    return;
                };
                tracker.sending(tick_id);
                let (api, tracker) = (api.clone(), tracker.clone());
                requests.spawn(async move {
                    let result = api.post_tick(body).await;
                    let now = Instant::now();
                    drop(permit);
                    match result {
                        Ok(ack) => tracker.acked(&ack, now),
                        Err(message) => tracker.failed(tick_id, message),
                    }
                });
            }
        }
    }

    /// Forgets finished requests.
    fn reap(&mut self) {
        if let Sender::Http { requests, .. } = self {
            while requests.try_join_next().is_some() {}
        }
    }

    /// Stops everything still waiting (what has not come back by now is
    /// missing).
    async fn stop(self) {
        match self {
            Sender::Nats {
                mut tasks,
                client,
                stored,
                ..
            } => {
                drop(stored);
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                let _ = client.drain().await;
            }
            Sender::Http { mut requests, .. } => {
                requests.abort_all();
                while requests.join_next().await.is_some() {}
            }
        }
    }
}

/// Counts the engine's acknowledgment notices.
async fn follow_notices(mut notices: async_nats::Subscriber, tracker: Tracker) {
    while let Some(message) = notices.next().await {
        let now = Instant::now();
        match serde_json::from_slice::<Ack>(&message.payload) {
            Ok(ack) => tracker.acked(&ack, now),
            Err(e) => tracing::warn!(subject = %message.subject, "not an acknowledgment: {e}"),
        }
    }
}

/// Awaits each publish's stream acknowledgment; a tick not stored is failed.
async fn await_stored(mut pending: mpsc::Receiver<(Uuid, PublishAckFuture)>, tracker: Tracker) {
    let mut waiting = FuturesUnordered::new();
    loop {
        tokio::select! {
            next = pending.recv() => match next {
                Some((tick_id, ack)) => waiting.push(async move { (tick_id, ack.await) }),
                None => break,
            },
            Some((tick_id, result)) = waiting.next(), if !waiting.is_empty() => {
                if let Err(e) = result {
                    tracker.failed(tick_id, format!("not stored by JetStream: {e}"));
                }
            }
        }
    }
    while let Some((tick_id, result)) = waiting.next().await {
        if let Err(e) = result {
            tracker.failed(tick_id, format!("not stored by JetStream: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let us: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&us, 50.0), 50.0);
        assert_eq!(percentile_ms(&us, 99.0), 99.0);
        assert_eq!(percentile_ms(&us, 100.0), 100.0);
        assert_eq!(percentile_ms(&[7000], 50.0), 7.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
    }

    #[test]
    fn the_schedule_goes_round_robin_and_counts_per_session() {
        let config = SimConfig {
            worlds: 2,
            sessions: 2,
            npcs: 3,
            ..SimConfig::default()
        };
        let mut schedule = Schedule::new(&config, config.world_ids().unwrap());
        let ticks: Vec<Value> = (0..8)
            .map(|_| serde_json::from_slice(&schedule.next().2).unwrap())
            .collect();
        let seen: Vec<(&str, &str, u64)> = ticks
            .iter()
            .map(|t| {
                (
                    t["world_id"].as_str().unwrap(),
                    t["session_id"].as_str().unwrap(),
                    t["tick"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen[..5],
            [
                ("sim-1", "session-1", 1),
                ("sim-2", "session-1", 1),
                ("sim-1", "session-2", 1),
                ("sim-2", "session-2", 1),
                ("sim-1", "session-1", 2),
            ]
        );
        assert_eq!(ticks[4]["at"], "2026-01-01T00:00:02Z");
        assert_eq!(ticks[4]["npcs"].as_array().unwrap().len(), 3);
        // (tick 2 + k 1) % 3 == 0.
        assert_eq!(ticks[4]["npcs"][0]["state"]["disguise"], true);
        assert_eq!(ticks[4]["npcs"][1]["state"]["disguise"], false);
        // Every tick parses as the engine's.
        for t in &ticks {
            crate::intake::parse_tick(t.to_string().as_bytes()).unwrap();
        }
    }

    #[test]
    fn a_bad_world_prefix_or_rate_is_refused() {
        let bad = SimConfig {
            world_prefix: "a.b".into(),
            ..SimConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = SimConfig {
            rate: 0.0,
            ..SimConfig::default()
        };
        assert!(bad.validate().is_err());
        assert!(SimConfig::default().validate().is_ok());
    }
}

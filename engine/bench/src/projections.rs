//! `provenant bench projections`: how fast the projections rebuild from the
//! log, measured beside a bare `SELECT` of the same rows.
//!
//! A scratch log is filled with a realistic mix of engine events (plugin
//! calls from [`sample::plugin_action`] with failures, denials, overruns and
//! panics mixed in, session writes, each tick ended by its `TickProcessed`),
//! appended through [`EventLog::append`] in batches of 1000. Then, for each
//! backend:
//!
//! - the baseline: the columns the log reads, `SELECT`ed in pages of the
//!   runner's page size ([`RunnerConfig::default`]) by position, each column
//!   fetched by sqlx and touched, but no [`Event`] built;
//! - each standard projection rebuilt from position 0 with
//!   [`rebuild_one`] (read, apply, commit every page), as
//!   `provenant projections rebuild` does;
//! - where the time goes: the same pages read with [`EventLog::read_forward`]
//!   and folded into a fresh projection without committing, timing the read,
//!   the folding and the encoding of the changed rows apart; what is left of
//!   the rebuild is the commits.
//!
//! PostgreSQL runs in a scratch database that is dropped at the end, SQLite
//! in a temporary file that is removed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use chrono::{DateTime, Utc};
use provenant_events::{
    CallKind, Event, EventKind, IdError, NewEvent, PluginId, Provenance, SessionId, StreamName,
    WorldId, keys, kinds,
};
use provenant_log::{AppendBatch, EventLog};
use provenant_log::{LogConfig, redact_url};
use provenant_projections::{Factory, ProjectionsConfig, RunnerConfig, standard};
use serde_json::{Value, json};
use sqlx::Connection;
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use provenant_engine::commands::projections::{rebuild_one, rebuild_together};

use crate::sample::{self, PLUGINS, Rng, Scene};
use crate::scratch::{DEFAULT_POSTGRES_URL, Scratch, progress};

/// The goal for a rebuild from PostgreSQL.
pub const GOAL_EVENTS_PER_S: f64 = 300_000.0;

/// Events appended per batch while filling the log.
const FILL_BATCH: usize = 1000;

/// Events of one tick of one session: plugin calls and session writes,
/// then the tick's `TickProcessed`.
const TICK_EVENTS: usize = 16;

/// The columns the PostgreSQL log reads (`SELECT_COLUMNS` of its backend).
const PG_SELECT: &str = "SELECT position, event_id, stream, stream_version, kind, plugin_id, \
    world_id, session_id, occurred_at, recorded_at, provenance::text AS provenance, \
    payload::text AS payload, schema_version, prev_hash, hash \
    FROM provenant.events WHERE position > $1 ORDER BY position LIMIT $2";

/// The columns the SQLite log reads.
const SQLITE_SELECT: &str = "SELECT position, event_id, stream, stream_version, kind, plugin_id, \
    world_id, session_id, occurred_at, recorded_at, provenance, payload, schema_version, \
    prev_hash, hash FROM events WHERE position > ? ORDER BY position LIMIT ?";

/// Arguments of `provenant bench projections`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProjectionsBenchArgs {
    /// A PostgreSQL server; a scratch database is created on it and dropped.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = DEFAULT_POSTGRES_URL,
        hide_env_values = true
    )]
    pub database_url: String,
    /// Events in the log the projections are rebuilt from.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Do not measure SQLite.
    #[arg(long)]
    pub no_sqlite: bool,
}

/// One measured row: `events` read (and folded) in `seconds`.
#[derive(Debug, Clone)]
pub struct ProjectionsFigure {
    pub backend: &'static str,
    pub what: String,
    pub events: u64,
    pub seconds: f64,
    /// The bare `SELECT`'s events/s on the same backend.
    pub select_events_per_s: f64,
}

impl ProjectionsFigure {
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }
}

/// Where one projection's rebuild spends its time, in seconds.
#[derive(Debug, Clone)]
pub struct Breakdown {
    pub backend: &'static str,
    pub name: &'static str,
    /// `EventLog::read_forward`: the query, and turning rows into events.
    pub read: f64,
    /// `Projection::apply` over every event (payload parsing included).
    pub apply: f64,
    /// `Projection::take_changes` after every page: the changed rows' JSON.
    pub encode: f64,
    /// The whole rebuild, commits included.
    pub rebuild: f64,
}

/// What one backend measured.
struct Measured {
    figures: Vec<ProjectionsFigure>,
    breakdowns: Vec<Breakdown>,
    /// Seconds to parse every payload into a `serde_json::Value`.
    parse_all: f64,
    events: u64,
}

pub async fn projections(args: &ProjectionsBenchArgs) -> anyhow::Result<()> {
    if !args.database_url.starts_with("postgres") {
        bail!(
            "bench projections needs a PostgreSQL server: pass --database-url postgres://… (DATABASE_URL is {})",
            redact_url(&args.database_url)
        );
    }
    if args.events == 0 {
        bail!("--events must be at least 1");
    }
    let scratch = Scratch::create(&args.database_url).await?;
    let result = postgres(args, &scratch).await;
    scratch.drop_database().await;
    let mut measured = vec![result?];
    if !args.no_sqlite {
        let path = std::env::temp_dir().join(format!(
            "provenant-bench-projections-{}.db",
            uuid::Uuid::now_v7().simple()
        ));
        let result = sqlite(args, &path).await;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
        measured.push(result?);
    }
    print_report(&measured);
    Ok(())
}

async fn postgres(args: &ProjectionsBenchArgs, scratch: &Scratch) -> anyhow::Result<Measured> {
    let mut conn = PgConnection::connect(&scratch.url).await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await?;
    let shared: String = sqlx::query_scalar("SHOW shared_buffers")
        .fetch_one(&mut conn)
        .await?;
    println!("provenant bench projections");
    println!(
        "PostgreSQL {version} (shared_buffers={shared}) at {}, scratch database {}",
        redact_url(&args.database_url),
        scratch.name
    );
    let log = EventLog::open(&LogConfig::new(&scratch.url)).await?;
    let result = async {
        fill(&log, args.events, "postgres").await?;
        // Fresh statistics, as a long-lived log would have.
        sqlx::raw_sql("ANALYZE provenant.events")
            .execute(&mut conn)
            .await?;
        // One untimed pass brings the table into the server's cache, so that
        // whatever runs first is not the one that reads the disk.
        let page = RunnerConfig::default().page;
        let _ = select_all_pg(&mut conn, page).await?;
        let baseline = select_all_pg(&mut conn, page).await?;
        measure(&log, "postgres", baseline).await
    }
    .await;
    log.close().await;
    result
}

async fn sqlite(args: &ProjectionsBenchArgs, path: &Path) -> anyhow::Result<Measured> {
    let url = format!("sqlite://{}", path.display());
    println!("SQLite {} (WAL)", path.display());
    let log = EventLog::open(&LogConfig::new(&url)).await?;
    let result = async {
        fill(&log, args.events, "sqlite").await?;
        let mut conn = SqliteConnection::connect(&url).await?;
        let _ = select_all_sqlite(&mut conn).await?;
        let baseline = select_all_sqlite(&mut conn).await?;
        conn.close().await?;
        measure(&log, "sqlite", baseline).await
    }
    .await;
    log.close().await;
    result
}

/// Appends `total` events of the mix in batches of [`FILL_BATCH`].
async fn fill(log: &EventLog, total: usize, backend: &str) -> anyhow::Result<()> {
    let mut mix = Mix::new()?;
    let bar = progress(total as u64, &format!("{backend}: filling the log"));
    let started = Instant::now();
    let mut left = total;
    while left > 0 {
        let n = left.min(FILL_BATCH);
        log.append(AppendBatch::new(mix.batch(n)?)).await?;
        left -= n;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    println!(
        "{backend}: {total} events appended in {:.1} s (batches of {FILL_BATCH}); kinds: {}",
        started.elapsed().as_secs_f64(),
        mix.describe()
    );
    Ok(())
}

/// The bare `SELECT` on PostgreSQL: every row, by pages of `page` rows,
/// each column fetched and touched. Returns (rows, seconds).
pub async fn select_all_pg(conn: &mut PgConnection, page: usize) -> anyhow::Result<(u64, f64)> {
    let page = page as i64;
    let started = Instant::now();
    let (mut after, mut rows, mut bytes) = (0i64, 0u64, 0usize);
    loop {
        let fetched = sqlx::query(PG_SELECT)
            .bind(after)
            .bind(page)
            .fetch_all(&mut *conn)
            .await?;
        if fetched.is_empty() {
            break;
        }
        for row in &fetched {
            after = touch_pg(row, &mut bytes)?;
        }
        rows += fetched.len() as u64;
    }
    std::hint::black_box(bytes);
    Ok((rows, started.elapsed().as_secs_f64()))
}

/// The same on SQLite.
async fn select_all_sqlite(conn: &mut SqliteConnection) -> anyhow::Result<(u64, f64)> {
    let page = RunnerConfig::default().page as i64;
    let started = Instant::now();
    let (mut after, mut rows, mut bytes) = (0i64, 0u64, 0usize);
    loop {
        let fetched = sqlx::query(SQLITE_SELECT)
            .bind(after)
            .bind(page)
            .fetch_all(&mut *conn)
            .await?;
        if fetched.is_empty() {
            break;
        }
        for row in &fetched {
            after = touch_sqlite(row, &mut bytes)?;
        }
        rows += fetched.len() as u64;
    }
    std::hint::black_box(bytes);
    Ok((rows, started.elapsed().as_secs_f64()))
}

/// Fetches every column of a PostgreSQL row (borrowed where it can be) and
/// adds up their sizes; returns the position.
fn touch_pg(row: &PgRow, bytes: &mut usize) -> Result<i64, sqlx::Error> {
    let position: i64 = row.try_get(0)?;
    let event_id: uuid::Uuid = row.try_get(1)?;
    let texts: [&str; 2] = [row.try_get(2)?, row.try_get(4)?];
    let version: i64 = row.try_get(3)?;
    let ids: [Option<&str>; 3] = [row.try_get(5)?, row.try_get(6)?, row.try_get(7)?];
    let times: [DateTime<Utc>; 2] = [row.try_get(8)?, row.try_get(9)?];
    let json: [&str; 2] = [row.try_get(10)?, row.try_get(11)?];
    let schema: i32 = row.try_get(12)?;
    let hashes: [&[u8]; 2] = [row.try_get(13)?, row.try_get(14)?];
    *bytes += event_id.as_bytes()[0] as usize
        + texts.iter().chain(&json).map(|s| s.len()).sum::<usize>()
        + ids.iter().flatten().map(|s| s.len()).sum::<usize>()
        + times
            .iter()
            .map(|t| t.timestamp_subsec_micros() as usize)
            .sum::<usize>()
        + hashes.iter().map(|h| h.len()).sum::<usize>()
        + (version + schema as i64) as usize;
    Ok(position)
}

/// The same for a SQLite row (ids and times are text there).
fn touch_sqlite(row: &SqliteRow, bytes: &mut usize) -> Result<i64, sqlx::Error> {
    let position: i64 = row.try_get(0)?;
    let texts: [&str; 5] = [
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(4)?,
        row.try_get(8)?,
        row.try_get(9)?,
    ];
    let version: i64 = row.try_get(3)?;
    let ids: [Option<&str>; 3] = [row.try_get(5)?, row.try_get(6)?, row.try_get(7)?];
    let json: [&str; 2] = [row.try_get(10)?, row.try_get(11)?];
    let schema: i64 = row.try_get(12)?;
    let hashes: [&[u8]; 2] = [row.try_get(13)?, row.try_get(14)?];
    *bytes += texts.iter().chain(&json).map(|s| s.len()).sum::<usize>()
        + ids.iter().flatten().map(|s| s.len()).sum::<usize>()
        + hashes.iter().map(|h| h.len()).sum::<usize>()
        + (version + schema) as usize;
    Ok(position)
}

/// Rebuilds every standard projection, then times the parts of a rebuild.
async fn measure(
    log: &EventLog,
    backend: &'static str,
    (select_rows, select_seconds): (u64, f64),
) -> anyhow::Result<Measured> {
    let select_events_per_s = select_rows as f64 / select_seconds.max(1e-9);
    let figure = |what: String, events: u64, seconds: f64| ProjectionsFigure {
        backend,
        what,
        events,
        seconds,
        select_events_per_s,
    };
    let mut figures = vec![figure(
        "SELECT (baseline)".into(),
        select_rows,
        select_seconds,
    )];
    println!(
        "{backend}: SELECT {select_rows} rows in {select_seconds:.2} s ({select_events_per_s:.0} events/s)"
    );

    let chosen = standard(&ProjectionsConfig::default());
    let mut rebuilt = Vec::new();
    let (mut all_events, mut all_seconds) = (0u64, 0f64);
    for (name, factory) in &chosen {
        let r = rebuild_one(log, name, factory.clone()).await?;
        println!(
            "{backend}: rebuilt {name}: {} events in {:.2} s ({:.0} events/s)",
            r.events,
            r.seconds,
            r.events as f64 / r.seconds.max(1e-9)
        );
        all_events = r.events;
        all_seconds += r.seconds;
        figures.push(figure(format!("rebuild {name}"), r.events, r.seconds));
        rebuilt.push((*name, r.seconds));
    }
    figures.push(figure(
        "rebuild all three, in sequence".into(),
        all_events,
        all_seconds,
    ));
    // As `provenant projections rebuild` does: one read for all three.
    let together = rebuild_together(log, chosen.clone()).await?;
    println!(
        "{backend}: rebuilt all three together: {} events in {:.2} s ({:.0} events/s)",
        together.events,
        together.seconds,
        together.events as f64 / together.seconds.max(1e-9)
    );
    figures.push(figure(
        "rebuild all three, one read (projections rebuild)".into(),
        together.events,
        together.seconds,
    ));

    let mut breakdowns = Vec::new();
    let mut parse_all = 0.0;
    for (i, ((name, factory), (_, rebuild))) in chosen.iter().zip(&rebuilt).enumerate() {
        let parts = fold_only(log, factory, i == 0).await?;
        if i == 0 {
            parse_all = parts.parse;
            figures.insert(
                1,
                figure(
                    "read_forward (Events, no apply)".into(),
                    parts.events,
                    parts.read,
                ),
            );
        }
        breakdowns.push(Breakdown {
            backend,
            name,
            read: parts.read,
            apply: parts.apply,
            encode: parts.encode,
            rebuild: *rebuild,
        });
    }
    Ok(Measured {
        figures,
        breakdowns,
        parse_all,
        events: all_events,
    })
}

/// The parts of a rebuild, timed apart.
struct Parts {
    events: u64,
    read: f64,
    apply: f64,
    encode: f64,
    parse: f64,
}

/// Reads the log as a rebuild does (pages of the runner's size, from
/// position 0) and folds it into a fresh projection, without committing.
/// With `parse`, also times parsing every payload into a `Value` on its
/// own (outside the projection, not cached in the events).
async fn fold_only(log: &EventLog, factory: &Factory, parse: bool) -> anyhow::Result<Parts> {
    let page = RunnerConfig::default().page;
    let mut projection = factory();
    let mut parts = Parts {
        events: 0,
        read: 0.0,
        apply: 0.0,
        encode: 0.0,
        parse: 0.0,
    };
    let mut after = 0;
    loop {
        let t = Instant::now();
        let events: Vec<Event> = log.read_forward(after, page).await?;
        parts.read += t.elapsed().as_secs_f64();
        let Some(last) = events.last() else {
            break;
        };
        after = last.position;
        parts.events += events.len() as u64;
        if parse {
            let t = Instant::now();
            for e in &events {
                let value: Value = serde_json::from_str(e.payload.text()).unwrap_or(Value::Null);
                std::hint::black_box(value);
            }
            parts.parse += t.elapsed().as_secs_f64();
        }
        let t = Instant::now();
        for e in &events {
            projection.apply(e);
        }
        parts.apply += t.elapsed().as_secs_f64();
        let t = Instant::now();
        std::hint::black_box(projection.take_changes());
        parts.encode += t.elapsed().as_secs_f64();
    }
    Ok(parts)
}

fn print_report(measured: &[Measured]) {
    println!();
    println!(
        "{:<9} {:<34} {:>9} {:>8} {:>11} {:>10}  goal",
        "backend", "measured", "events", "seconds", "events/s", "vs SELECT"
    );
    for m in measured {
        for f in &m.figures {
            let goal = if f.backend == "postgres" && f.what.starts_with("rebuild") {
                if f.events_per_s() >= GOAL_EVENTS_PER_S {
                    "met"
                } else {
                    "not met"
                }
            } else {
                ""
            };
            println!(
                "{:<9} {:<34} {:>9} {:>8.2} {:>11.0} {:>10.2}  {goal}",
                f.backend,
                f.what,
                f.events,
                f.seconds,
                f.events_per_s(),
                f.events_per_s() / f.select_events_per_s.max(1e-9)
            );
        }
    }
    println!(
        "goal: rebuild at least {GOAL_EVENTS_PER_S:.0} events/s from PostgreSQL (each projection)"
    );
    println!();
    println!("where a rebuild's time goes (seconds; commit = rebuild - read - apply - encode):");
    println!(
        "{:<9} {:<16} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "backend", "projection", "read", "apply", "encode", "commit", "rebuild"
    );
    for m in measured {
        for b in &m.breakdowns {
            println!(
                "{:<9} {:<16} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                b.backend,
                b.name,
                b.read,
                b.apply,
                b.encode,
                (b.rebuild - b.read - b.apply - b.encode).max(0.0),
                b.rebuild
            );
        }
        if let Some(b) = m.breakdowns.first() {
            println!(
                "{:<9} parsing every payload into a serde_json::Value alone: {:.2} s ({:.0} events/s)",
                b.backend,
                m.parse_all,
                m.events as f64 / m.parse_all.max(1e-9)
            );
        }
    }
}

/// A realistic mix of what the engine writes, from a fixed seed: the
/// plugins' `PluginLoaded` first, then ticks of [`TICK_EVENTS`] events of
/// one session each (sessions in turn), mostly successful plugin calls
/// ([`sample::plugin_action`]) with failed, denied, overrunning and
/// panicking calls, session writes and event handlers mixed in, each tick
/// ended by its `TickProcessed`.
struct Mix {
    rng: Rng,
    world: WorldId,
    sessions: Vec<SessionId>,
    plugins: Vec<PluginId>,
    start: DateTime<Utc>,
    made: usize,
    scene: Option<Scene>,
    call_index: u64,
    /// A `PermissionDenied` of this plugin was just written: the failure of
    /// the same call comes next.
    denied: Option<usize>,
    counts: std::collections::BTreeMap<&'static str, u64>,
}

impl Mix {
    fn new() -> Result<Self, IdError> {
        Ok(Mix {
            rng: Rng::new(42),
            world: WorldId::new("bench")?,
            sessions: (0..8)
                .map(|i| SessionId::new(format!("s{i}")))
                .collect::<Result<_, _>>()?,
            plugins: PLUGINS
                .iter()
                .map(|(id, _, _)| PluginId::new(*id))
                .collect::<Result<_, _>>()?,
            start: provenant_events::event::now(),
            made: 0,
            scene: None,
            call_index: 0,
            denied: None,
            counts: Default::default(),
        })
    }

    fn batch(&mut self, n: usize) -> Result<Vec<NewEvent>, IdError> {
        (0..n).map(|_| self.next_event()).collect()
    }

    /// How many of each kind were made, the largest first.
    fn describe(&self) -> String {
        let total = self.made.max(1) as f64;
        let mut counts: Vec<_> = self.counts.iter().collect();
        counts.sort_by(|a, b| b.1.cmp(a.1));
        counts
            .iter()
            .map(|(k, n)| format!("{k} {:.1}%", **n as f64 * 100.0 / total))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn next_event(&mut self) -> Result<NewEvent, IdError> {
        let i = self.made;
        self.made += 1;
        let event = if i < self.plugins.len() {
            self.loaded(i)?
        } else {
            self.in_tick(i - self.plugins.len())?
        };
        *self.counts.entry(kind_name(&event)).or_default() += 1;
        Ok(event)
    }

    fn in_tick(&mut self, i: usize) -> Result<NewEvent, IdError> {
        let (tick, slot) = (i / TICK_EVENTS, i % TICK_EVENTS);
        let scene = match &self.scene {
            Some(s) if slot != 0 => s.clone(),
            _ => {
                let sessions = self.sessions.len();
                let s = Scene::new(
                    &self.world,
                    &self.sessions[tick % sessions],
                    (tick / sessions) as u64,
                    self.start,
                );
                self.scene = Some(s.clone());
                self.call_index = 0;
                self.denied = None;
                s
            }
        };
        if slot == TICK_EVENTS - 1 {
            return tick_processed(&scene, TICK_EVENTS);
        }
        if let Some(plugin) = self.denied.take() {
            let e = self.failed_call(&scene, plugin, kinds::PLUGIN_CALL_FAILED);
            self.call_index += 1;
            return e;
        }
        let plugin = self.rng.below(self.plugins.len() as u64) as usize;
        let roll = self.rng.below(1000);
        let event = match roll {
            0..15 => self.failed_call(&scene, plugin, kinds::PLUGIN_CALL_FAILED),
            15..20 if slot + 2 < TICK_EVENTS => {
                // The denial, then (next) the failed call it caused.
                self.denied = Some(plugin);
                return self.denial(&scene, plugin);
            }
            20..25 => self.failed_call(&scene, plugin, kinds::PLUGIN_DEADLINE_EXCEEDED),
            25..27 => self.failed_call(&scene, plugin, kinds::PLUGIN_CALL_PANICKED),
            27..67 => self.session_write(&scene, plugin, kinds::SESSION_FLAG_SET),
            67..97 => self.session_write(&scene, plugin, kinds::RELATIONSHIP_UPDATED),
            97..117 => self.session_write(&scene, plugin, kinds::NPC_STATE_SET),
            117..137 => self.event_handled(&scene, plugin),
            _ => {
                let mut e = sample::plugin_action(&scene, &mut self.rng)?;
                e.provenance.call_index = Some(self.call_index);
                Ok(e)
            }
        };
        self.call_index += 1;
        event
    }

    fn loaded(&mut self, i: usize) -> Result<NewEvent, IdError> {
        let plugin = &self.plugins[i];
        let (_, condition, effect) = PLUGINS[i];
        let payload = json!({
            keys::MANIFEST: {
                "id": plugin.as_str(),
                "name": plugin.as_str(),
                "version": "1.0.0",
                "kind": "native",
                "permissions": ["behavior:extend_conditions", "behavior:extend_effects", "session:read", "session:write"],
                "enabled": true,
            },
            keys::GRANTED: ["behavior:extend_conditions", "behavior:extend_effects", "session:read", "session:write"],
            keys::REGISTERED: {"conditions": [condition], "effects": [effect], "event_handlers": []},
        });
        let mut e = NewEvent::at(
            StreamName::plugin(plugin),
            kind(kinds::PLUGIN_LOADED)?,
            payload,
            self.start,
        );
        e.plugin_id = Some(plugin.clone());
        e.provenance = Provenance {
            plugin_id: Some(plugin.clone()),
            plugin_version: Some("1.0.0".into()),
            engine_version: Some(provenant_host::ENGINE_VERSION.into()),
            engine_instance: Some("sample".into()),
            ..Provenance::default()
        };
        Ok(e)
    }

    /// A call that failed, overran or panicked (`kind`), as the host writes it.
    fn failed_call(
        &mut self,
        scene: &Scene,
        plugin: usize,
        kind: &'static str,
    ) -> Result<NewEvent, IdError> {
        let (_, condition, effect) = PLUGINS[plugin];
        let is_effect = self.rng.below(3) == 0;
        let (call, id_key, id) = if is_effect {
            (CallKind::Effect.as_str(), keys::EFFECT_ID, effect)
        } else {
            (CallKind::Condition.as_str(), keys::CONDITION_ID, condition)
        };
        let npc = format!("npc-{:03}", self.rng.below(40));
        let mut payload = json!({
            keys::CALL: call,
            id_key: id,
            keys::PARAMS: {"npc_id": npc},
            keys::CONTEXT: {"npc_id": npc, "location_id": "tavern-hall", "tick": scene.tick},
            keys::FALLBACK: false,
        });
        let took = 20 + self.rng.below(400);
        match kind {
            kinds::PLUGIN_CALL_FAILED => {
                payload[keys::ERROR] = json!(format!(
                    "plugin error: missing relationship for {npc} (code {})",
                    self.rng.below(8)
                ));
                payload[keys::INPUTS] = json!([{"capability": "get_relationship", "npc_key": npc}]);
                payload[keys::DURATION_US] = json!(took);
            }
            kinds::PLUGIN_DEADLINE_EXCEEDED => {
                payload[keys::DEADLINE_MS] = json!(50);
                payload[keys::WAITED_US] = json!(50_000 + took);
            }
            _ => {
                payload[keys::PANIC] =
                    json!("index out of bounds: the len is 0 but the index is 0");
                payload[keys::DURATION_US] = json!(took);
            }
        }
        let capability = if is_effect {
            "behavior.apply_effect"
        } else {
            "behavior.evaluate_condition"
        };
        self.event(
            scene,
            plugin,
            kind,
            StreamName::session(&scene.world, &scene.session),
            payload,
            capability,
        )
    }

    /// A capability refused to a plugin (on the plugin's stream).
    fn denial(&mut self, scene: &Scene, plugin: usize) -> Result<NewEvent, IdError> {
        let payload = json!({
            keys::CAPABILITY: "session_write.set_session_flag",
            keys::PERMISSION: "session:write",
            keys::MODE: "WARN",
            keys::REASON: "the plugin was not granted session:write for this world",
            keys::CALL: CallKind::Effect.as_str(),
        });
        let stream = StreamName::plugin(&self.plugins[plugin]);
        self.event(
            scene,
            plugin,
            kinds::PERMISSION_DENIED,
            stream,
            payload,
            "session_write.set_session_flag",
        )
    }

    /// A session flag, relationship or NPC state written by a plugin.
    fn session_write(
        &mut self,
        scene: &Scene,
        plugin: usize,
        kind: &'static str,
    ) -> Result<NewEvent, IdError> {
        let (id, _, _) = PLUGINS[plugin];
        let npc = format!("npc-{:03}", self.rng.below(40));
        let (payload, capability, stream) = match kind {
            kinds::SESSION_FLAG_SET => (
                json!({keys::KEY: format!("plugin:{id}:seen_{npc}"), keys::VALUE: self.rng.below(2) == 0}),
                "session_write.set_session_flag",
                StreamName::session(&scene.world, &scene.session),
            ),
            kinds::RELATIONSHIP_UPDATED => {
                let (affinity, trust) = (self.rng.below(100), self.rng.below(100));
                (
                    json!({
                        keys::NPC_KEY: npc,
                        keys::UPDATES: {"affinity": affinity},
                        keys::RELATIONSHIP: {"affinity": affinity, "trust": trust, "last_modified_by": id},
                    }),
                    "session_write.update_relationship",
                    StreamName::session(&scene.world, &scene.session),
                )
            }
            _ => {
                let location = ["tavern-hall", "market", "docks"][self.rng.below(3) as usize];
                (
                    json!({keys::NPC_ID: npc, keys::LOCATION_ID: location, keys::STATE: {"mood": "wary", "shift": self.rng.below(3)}}),
                    "npc.set_npc_state",
                    StreamName::world(&scene.world),
                )
            }
        };
        self.event(scene, plugin, kind, stream, payload, capability)
    }

    /// A plugin's event handler ran.
    fn event_handled(&mut self, scene: &Scene, plugin: usize) -> Result<NewEvent, IdError> {
        let payload = json!({
            keys::CALL: CallKind::EventHandler.as_str(),
            keys::HANDLER: "on_effect_applied",
            keys::PARAMS: {"event_id": uuid::Uuid::now_v7(), "kind": kinds::EFFECT_APPLIED},
            keys::INPUTS: [],
            keys::RESULT: null,
            keys::DURATION_US: 5 + self.rng.below(100),
        });
        self.event(
            scene,
            plugin,
            kinds::EVENT_HANDLED,
            StreamName::session(&scene.world, &scene.session),
            payload,
            "events.subscribe",
        )
    }

    fn event(
        &self,
        scene: &Scene,
        plugin: usize,
        kind_name: &'static str,
        stream: StreamName,
        payload: Value,
        capability: &'static str,
    ) -> Result<NewEvent, IdError> {
        let plugin_id = self.plugins[plugin].clone();
        let mut e = NewEvent::at(stream, kind(kind_name)?, payload, scene.at);
        e.plugin_id = Some(plugin_id.clone());
        e.world_id = Some(scene.world.clone());
        e.session_id = Some(scene.session.clone());
        e.provenance = Provenance {
            plugin_id: Some(plugin_id),
            plugin_version: Some("1.0.0".into()),
            capability: Some(capability.into()),
            tick_id: Some(scene.tick_id),
            tick: Some(scene.tick),
            call_index: Some(self.call_index),
            causation_id: Some(scene.tick_id),
            correlation_id: Some(scene.tick_id),
            engine_version: Some(provenant_host::ENGINE_VERSION.into()),
            engine_instance: Some("sample".into()),
            ..Provenance::default()
        };
        Ok(e)
    }
}

/// The last event of a tick, as the engine writes it.
fn tick_processed(scene: &Scene, events: usize) -> Result<NewEvent, IdError> {
    let mut e = NewEvent::at(
        StreamName::session(&scene.world, &scene.session),
        kind(kinds::TICK_PROCESSED)?,
        json!({keys::TICK_ID: scene.tick_id, keys::TICK: scene.tick, keys::EVENTS: events, keys::SOURCE: "nats"}),
        scene.at,
    );
    e.world_id = Some(scene.world.clone());
    e.session_id = Some(scene.session.clone());
    e.provenance = Provenance {
        tick_id: Some(scene.tick_id),
        tick: Some(scene.tick),
        causation_id: Some(scene.tick_id),
        correlation_id: Some(scene.tick_id),
        engine_version: Some(provenant_host::ENGINE_VERSION.into()),
        engine_instance: Some("sample".into()),
        ..Provenance::default()
    };
    Ok(e)
}

fn kind(name: &'static str) -> Result<EventKind, IdError> {
    EventKind::from_static(name)
}

/// The kind of `e`, as one of the names this module writes.
fn kind_name(e: &NewEvent) -> &'static str {
    kinds::ALL
        .iter()
        .copied()
        .find(|k| *k == e.kind.as_str())
        .unwrap_or(kinds::TICK_PROCESSED)
}

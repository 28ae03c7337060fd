//! `provenant audit replay`: re-executes recorded plugin calls with the
//! plugins of this build and compares what they do with what was recorded.
//!
//! Each recorded condition evaluation, effect application and event handler
//! call is fed back what its event recorded: the scene (game time, the NPC
//! and the tick's context), the params, the call index (and so the same
//! seeded RNG) and, for every read it makes, the result the recorded call
//! got. Its result, its outcome (evaluated, failed, panicked) and the events
//! it produces (writes, emitted events, denials) are compared with the
//! recorded ones. Nothing is appended and no game state is read: a replay
//! depends only on the events of the tick.
//!
//! Not compared: how long a call took, the reads themselves (a read the
//! recording holds no result for is a divergence, since the call could not
//! be fed what it asked for), and the merged `relationship` of a
//! `RelationshipUpdated` (the host's merge of the plugin's `updates` into a
//! relationship the call did not necessarily read). Skipped: calls of a
//! plugin this build lacks or carries at another version, calls that overran
//! their deadline (they never returned, so nothing of theirs was recorded),
//! and simulation config providers (a provider's value is recorded in the
//! effective config, not per call).
//!
//! A sandboxed (WebAssembly) plugin's calls name the digest of the module
//! that ran (`plugin_digest`): they are replayed with the module of that
//! plugin in the plugins directory, whatever its version. When its digest
//! is the recorded one, the replay re-executes the very code that ran
//! (`fuel_used` included); when it is another, the report says so and the
//! divergences show what the new module does differently with the same
//! inputs (`audit replay --plugins-dir NEW`: a new plugin version tried
//! against what production recorded). Without the plugin, its calls are
//! skipped as `module_not_available`.
//!
//! A remote plugin's calls name its endpoint (`plugin_endpoint`). They are
//! not re-executed by default (`remote`): the service is another process,
//! and replaying would send it requests. With `--remote-live` each recorded
//! request is sent again (rebuilt from the recording: the same context,
//! params and ids) to the endpoint of that plugin in the plugins directory,
//! and the report shows where today's answers differ from the recorded
//! ones; without the plugin they are skipped as `endpoint_not_available`.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use provenant_events::canonical::Canonical;
use provenant_events::{Event, NewEvent, Position, SessionId, WorldId};
use provenant_log::EventLog;
use serde_json::{Map, Value, json};

use super::reading::{open_read_only, progress_bar};
pub use super::replay_report::{
    Divergence, PluginReplay, ReplayOutcome, ReplayReport, SkipReason, print_outcome, render,
};
use super::ticks::{CallEvents, TickEvents, TickReader, TickScope};
use crate::commands::args::{AuditScope, DbArgs, PluginsDirArgs, isolation};
use crate::plugin_source::PluginSource;
use provenant_events::{CallKind, keys, kinds};
use provenant_host::context::{EngineInfo, RecordedReads, Scene, TickNpc};
use provenant_host::plugin_host::{RecordedCall, Replay, ReplayedCall};
use provenant_host::runner::Isolation;
use provenant_host::{HostConfig, Plugin, PluginHost};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub scope: AuditScope,
    /// Only calls recorded at this position or later.
    #[arg(long, value_name = "POS")]
    pub from: Option<u64>,
    /// Only calls recorded at this position or earlier (default: the head
    /// when the replay starts).
    #[arg(long, value_name = "POS")]
    pub to: Option<u64>,
    /// How long one replayed call may run before it counts as diverged;
    /// also the shortest wall-clock limit of a WebAssembly plugin's call in
    /// the replay (its manifest's may be shorter: a replay asks what the
    /// plugin does, not how fast this machine is; fuel still bounds it).
    #[arg(long, default_value_t = 10_000)]
    pub deadline_ms: u64,
    /// Where replayed calls run: `thread` (worker threads: a call that
    /// hangs is abandoned at the deadline) or `inline` (about twice as
    /// fast; a call that hangs holds the replay).
    #[arg(long, default_value = "thread", value_parser = ["thread", "inline"])]
    pub isolation: String,
    /// Divergences shown per plugin and version (the first ones).
    #[arg(long, default_value_t = 10)]
    pub show: usize,
    /// Print one JSON object instead of a report.
    #[arg(long)]
    pub json: bool,
    /// Send remote plugins' recorded requests again, to the endpoints of
    /// the plugins directory, and compare today's answers with the recorded
    /// ones (default: remote calls are reported as `remote`, nothing sent).
    #[arg(long)]
    pub remote_live: bool,
    #[command(flatten)]
    pub plugins: PluginsDirArgs,
}

impl ReplayArgs {
    pub fn config(&self) -> ReplayConfig {
        ReplayConfig {
            filter: CallFilter {
                world: self.scope.world.clone(),
                session: self.scope.session.clone(),
                plugin: self.scope.plugin.clone(),
            },
            from: self.from,
            to: self.to,
            deadline: Duration::from_millis(self.deadline_ms),
            isolation: isolation(&self.isolation),
            keep: self.show,
            remote: if self.remote_live {
                RemoteCalls::Resend
            } else {
                RemoteCalls::Report
            },
        }
    }
}

/// `provenant audit replay`: 0 all matched, 1 a divergence, 2 could not run.
pub async fn run(args: ReplayArgs) -> ExitCode {
    replay_command(
        &args.db.database_url,
        &args.config(),
        &PluginSource {
            examples: true,
            // The replay's deadline, not the manifests' (which the engine
            // enforced when it recorded): see WasmConfig::min_timeout_ms.
            min_wasm_timeout_ms: Some(args.deadline_ms),
            ..args.plugins.source()
        },
        args.json,
    )
    .await
    .exit_code()
}

/// What `provenant audit replay` replays, and how.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub filter: CallFilter,
    /// The first position whose calls are replayed (default 1).
    pub from: Option<Position>,
    /// The last position whose calls are replayed (default: the head when
    /// the replay starts).
    pub to: Option<Position>,
    /// How long one replayed call may run before it counts as diverged;
    /// also the shortest wall-clock limit of a WebAssembly plugin's call in
    /// the replay (its manifest's may be shorter: a replay asks what the
    /// plugin does, not how fast this machine is; fuel still bounds it).
    pub deadline: Duration,
    /// Where replayed calls run (a thread: a call that hangs cannot hang
    /// the replay).
    pub isolation: Isolation,
    /// Divergences kept per plugin and version (the first ones).
    pub keep: usize,
    /// What is done with remote plugins' calls.
    pub remote: RemoteCalls,
}

/// What a replay does with a remote plugin's recorded call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemoteCalls {
    /// Reports it as `remote`, sending nothing.
    #[default]
    Report,
    /// Sends its request again and compares the answer (`--remote-live`).
    Resend,
}

impl Default for ReplayConfig {
    /// Every call in the log, on worker threads with a deadline of 10 s
    /// each, the first 10 divergences of each plugin kept.
    fn default() -> Self {
        ReplayConfig {
            filter: CallFilter::default(),
            from: None,
            to: None,
            deadline: Duration::from_secs(10),
            isolation: Isolation::Thread,
            keep: 10,
            remote: RemoteCalls::Report,
        }
    }
}

/// Which recorded calls to replay: those that match every field given.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub world: Option<WorldId>,
    pub session: Option<SessionId>,
    pub plugin: Option<String>,
}

/// `provenant audit replay` with the plugins of this build (and of a plugins
/// directory) on the log at `database_url`: replays, prints the report
/// (text, or JSON with `json`) and returns how it ended.
pub async fn replay_command(
    database_url: &str,
    config: &ReplayConfig,
    plugins: &PluginSource,
    json: bool,
) -> ReplayOutcome {
    let loaded = plugins.load();
    let run = async { run_with(database_url, config, loaded?).await };
    let outcome = match run.await {
        Ok(r) if r.diverged() == 0 => ReplayOutcome::Matched(r),
        Ok(r) => ReplayOutcome::Diverged(r),
        Err(e) => ReplayOutcome::CouldNotRun(e),
    };
    print_outcome(&outcome, json);
    outcome
}

async fn run_with(
    database_url: &str,
    config: &ReplayConfig,
    plugins: Vec<Arc<dyn Plugin>>,
) -> anyhow::Result<ReplayReport> {
    let log = open_read_only(database_url).await?;
    let bar = progress_bar("replaying");
    let report = replay(&log, config, plugins, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await;
    bar.finish_and_clear();
    log.close().await;
    report
}

/// Replays the calls `config` selects with `plugins` (the plugins of a
/// build); `progress` is told how many of the range's events were read, and
/// how many there are.
pub async fn replay(
    log: &EventLog,
    config: &ReplayConfig,
    plugins: Vec<Arc<dyn Plugin>>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> anyhow::Result<ReplayReport> {
    let started = Instant::now();
    let host = PluginHost::start(
        plugins,
        HostConfig {
            deadline: config.deadline,
            isolation: config.isolation,
            engine: EngineInfo {
                version: provenant_host::ENGINE_VERSION.into(),
                instance: "audit-replay".into(),
            },
            ..HostConfig::default()
        },
    )
    .context("the plugins of this build do not start")?;
    let head = log.head().await.context("cannot read the log")?;
    let from = config.from.unwrap_or(1).max(1);
    let to = config.to.unwrap_or(head.position).min(head.position);
    let mut report = ReplayReport {
        from,
        to,
        events: (to + 1).saturating_sub(from),
        ..ReplayReport::default()
    };
    if from > to {
        return Ok(report);
    }
    let replayer = Arc::new(Replayer::new(host, config, from, to));
    let scope = TickScope {
        world: config.filter.world.clone(),
        session: config.filter.session.clone(),
        plugin: config.filter.plugin.clone(),
    };
    let mut reader = TickReader::scoped(log, from, to, &scope)
        .await
        .context("cannot read the log")?;

    // Ticks are replayed on blocking threads, a batch at a time, while the
    // next batch is read.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<TickEvents>>(workers * 2);
    let rx = Arc::new(Mutex::new(rx));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (replayer, rx) = (replayer.clone(), rx.clone());
            tokio::task::spawn_blocking(move || {
                let mut tally = Tally::default();
                loop {
                    let batch = match rx.lock() {
                        Ok(mut rx) => rx.blocking_recv(),
                        Err(_) => None,
                    };
                    let Some(batch) = batch else { break };
                    for tick in &batch {
                        replayer.tick(tick, &mut tally);
                    }
                }
                tally
            })
        })
        .collect();
    // Only the workers hold the receiver: if they all end, sending fails
    // instead of waiting.
    drop(rx);
    let read = async {
        let mut batch = Vec::new();
        let mut events = 0;
        while let Some(tick) = reader.next().await.context("cannot read the log")? {
            report.ticks += 1;
            events += tick.events.len();
            batch.push(tick);
            if events >= BATCH_EVENTS {
                let done = (reader.position().min(to) + 1).saturating_sub(from);
                progress(done, report.events);
                if tx.send(std::mem::take(&mut batch)).await.is_err() {
                    break;
                }
                events = 0;
            }
        }
        if !batch.is_empty() {
            let _ = tx.send(batch).await;
        }
        progress(report.events, report.events);
        anyhow::Ok(())
    }
    .await;
    drop(tx);
    let mut tally = Tally::default();
    for handle in handles {
        tally.merge(handle.await.context("a replay worker failed")?, config.keep);
    }
    read?;
    report.plugins = tally.into_plugins(config.keep);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Events per batch handed to a replay worker.
const BATCH_EVENTS: usize = 2_000;

/// What the workers share: the host with this build's plugins and what to
/// replay.
struct Replayer {
    host: PluginHost,
    /// Plugin id → version and (a sandboxed plugin's) digest, of this build.
    build: HashMap<String, (String, Option<String>)>,
    /// The ids of this build's remote plugins.
    remote_plugins: std::collections::HashSet<String>,
    remote: RemoteCalls,
    filter: CallFilter,
    from: Position,
    to: Position,
    keep: usize,
}

/// Counts and divergences by plugin, version and (recorded) module.
#[derive(Default)]
struct Tally(BTreeMap<(String, String, Option<String>), PluginReplay>);

impl Tally {
    fn of(&mut self, plugin: &str, version: &str, digest: Option<&str>) -> &mut PluginReplay {
        let key = (
            plugin.to_owned(),
            version.to_owned(),
            digest.map(str::to_owned),
        );
        self.0.entry(key).or_insert_with(|| PluginReplay {
            plugin_id: plugin.to_owned(),
            version: version.to_owned(),
            recorded_digest: digest.map(str::to_owned),
            ..PluginReplay::default()
        })
    }

    fn merge(&mut self, other: Tally, keep: usize) {
        for ((plugin, version, digest), p) in other.0 {
            let mine = self.of(&plugin, &version, digest.as_deref());
            if mine.replayed_digest.is_none() {
                mine.replayed_digest = p.replayed_digest;
            }
            mine.replayed += p.replayed;
            mine.matched += p.matched;
            mine.diverged += p.diverged;
            for (reason, n) in p.skipped {
                *mine.skipped.entry(reason).or_default() += n;
            }
            mine.divergences.extend(p.divergences);
            mine.divergences.sort_by_key(|d| d.position);
            mine.divergences.truncate(keep);
        }
    }

    fn into_plugins(self, keep: usize) -> Vec<PluginReplay> {
        self.0
            .into_values()
            .map(|mut p| {
                p.divergences.sort_by_key(|d| d.position);
                p.divergences.truncate(keep);
                p
            })
            .collect()
    }
}

impl Replayer {
    fn new(host: PluginHost, config: &ReplayConfig, from: Position, to: Position) -> Self {
        let build = host
            .plugins()
            .iter()
            .map(|p| {
                let digest = p.info.runtime.digest().map(|d| d.to_string());
                (p.info.id.to_string(), (p.info.version.to_string(), digest))
            })
            .collect();
        let remote_plugins = host
            .plugins()
            .iter()
            .filter(|p| p.info.runtime.endpoint().is_some())
            .map(|p| p.info.id.to_string())
            .collect();
        Replayer {
            host,
            build,
            remote_plugins,
            remote: config.remote,
            filter: config.filter.clone(),
            from,
            to,
            keep: config.keep,
        }
    }

    fn selects(&self, e: &Event) -> bool {
        (self.from..=self.to).contains(&e.position)
            && self
                .filter
                .world
                .as_ref()
                .is_none_or(|w| e.world_id.as_ref() == Some(w))
            && self
                .filter
                .session
                .as_ref()
                .is_none_or(|s| e.session_id.as_ref() == Some(s))
            && self
                .filter
                .plugin
                .as_deref()
                .is_none_or(|p| e.plugin_id.as_ref().is_some_and(|id| id.as_str() == p))
    }

    /// Replays the selected calls of one tick.
    fn tick(&self, tick: &TickEvents, tally: &mut Tally) {
        // Which of a plugin's handlers of one event each call was.
        let mut handler_calls: HashMap<(&str, String), usize> = HashMap::new();
        for call in tick.calls() {
            let e = call.event;
            let plugin = e.plugin_id.as_ref().map_or("", |p| p.as_str());
            let nth = if call.kind() == CallKind::EventHandler {
                let handled = call.event.payload.value()[keys::PARAMS][keys::EVENT_ID]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let n = handler_calls.entry((plugin, handled)).or_default();
                *n += 1;
                *n - 1
            } else {
                0
            };
            if !self.selects(e) {
                continue;
            }
            let version = e.provenance.plugin_version.as_deref().unwrap_or("");
            let digest = e.provenance.plugin_digest.as_deref();
            let verdict = self.call(tick, &call, nth, version);
            let entry = tally.of(plugin, version, digest);
            if digest.is_some()
                && entry.replayed_digest.is_none()
                && !matches!(verdict, Verdict::Skipped(_))
            {
                entry.replayed_digest = self.build.get(plugin).and_then(|(_, d)| d.clone());
            }
            match verdict {
                Verdict::Skipped(reason) => *entry.skipped.entry(reason).or_default() += 1,
                Verdict::Matched => {
                    entry.replayed += 1;
                    entry.matched += 1;
                }
                Verdict::Diverged(mismatch) => {
                    entry.replayed += 1;
                    entry.diverged += 1;
                    if entry.divergences.len() < self.keep {
                        entry.divergences.push(divergence(tick, &call, mismatch));
                    }
                }
            }
        }
    }

    fn call(&self, tick: &TickEvents, call: &CallEvents<'_>, nth: usize, version: &str) -> Verdict {
        let e = call.event;
        let plugin = e.plugin_id.as_ref().map_or("", |p| p.as_str());
        if e.provenance.plugin_endpoint.is_some() {
            if self.remote == RemoteCalls::Report {
                return Verdict::Skipped(SkipReason::Remote);
            }
            if !self.remote_plugins.contains(plugin) {
                return Verdict::Skipped(SkipReason::EndpointNotAvailable);
            }
        }
        if e.provenance.plugin_endpoint.is_none() {
            match (self.build.get(plugin), &e.provenance.plugin_digest) {
                // A sandboxed plugin's call: replayed with the plugin's module,
                // whichever it is.
                (Some((_, Some(_))), Some(_)) => {}
                (_, Some(_)) => return Verdict::Skipped(SkipReason::ModuleNotAvailable),
                (None, None) => return Verdict::Skipped(SkipReason::PluginNotInBuild),
                (Some((v, _)), None) if v != version => {
                    return Verdict::Skipped(SkipReason::VersionNotInBuild);
                }
                (Some(_), None) => {}
            }
        }
        if e.kind.as_str() == kinds::PLUGIN_DEADLINE_EXCEEDED {
            return Verdict::Skipped(SkipReason::DeadlineExceeded);
        }
        let payload = e.payload.value();
        let (Some(call_index), Some(scene)) = (
            e.provenance.call_index,
            scene_of(e, call.kind() != CallKind::EventHandler),
        ) else {
            return Verdict::Skipped(SkipReason::IncompleteRecord);
        };
        let (id, activity) = (call.id(), call.activity());
        let replayed = match call.kind() {
            CallKind::Condition => ReplayedCall::Condition { id, activity },
            CallKind::Effect => ReplayedCall::Effect { id, activity },
            CallKind::EventHandler => {
                let handled = payload[keys::PARAMS][keys::EVENT_ID]
                    .as_str()
                    .unwrap_or_default();
                let Some(event) = tick.event(handled) else {
                    return Verdict::Skipped(SkipReason::IncompleteRecord);
                };
                ReplayedCall::EventHandler {
                    plugin,
                    event: serde_json::to_value(event.as_new_event()).unwrap_or(Value::Null),
                    nth,
                }
            }
            CallKind::SimulationConfig => return Verdict::Skipped(SkipReason::ProviderCall),
            CallKind::Other => return Verdict::Skipped(SkipReason::IncompleteRecord),
        };
        // (Panicked calls recorded no reads before provenant recorded them.)
        let Some(inputs) = payload.get(keys::INPUTS).and_then(Value::as_array) else {
            return Verdict::Skipped(SkipReason::IncompleteRecord);
        };
        let outcome = self.host.replay(RecordedCall {
            call: replayed,
            scene: Arc::new(scene),
            params: &payload[keys::PARAMS],
            reads: RecordedReads::from_inputs(inputs),
            call_index,
        });
        match outcome {
            Replay::Ran { events, unrecorded } => match compare(call, &events, &unrecorded) {
                None => Verdict::Matched,
                Some(m) => Verdict::Diverged(m),
            },
            Replay::NotRegistered => Verdict::Diverged(Mismatch {
                what: "not_registered",
                recorded: json!({"kind": e.kind, "id": id}),
                replayed: json!(format!("this build's {plugin} {version} registers no {id}")),
            }),
            Replay::MissingContext(missing) => Verdict::Diverged(Mismatch {
                what: "missing_context",
                recorded: payload[keys::CONTEXT].clone(),
                replayed: json!({"required_context_missing": missing}),
            }),
        }
    }
}

enum Verdict {
    Matched,
    Diverged(Mismatch),
    Skipped(SkipReason),
}

/// What differs between a recorded call and its replay.
#[derive(Debug)]
struct Mismatch {
    what: &'static str,
    recorded: Value,
    replayed: Value,
}

fn divergence(tick: &TickEvents, call: &CallEvents<'_>, m: Mismatch) -> Divergence {
    let e = call.event;
    Divergence {
        position: e.position,
        kind: e.kind.to_string(),
        call: call.call().to_owned(),
        id: call.id().to_owned(),
        tick: e.provenance.tick.or_else(|| tick.tick()),
        world_id: e.world_id.as_ref().map(|w| w.to_string()),
        session_id: e.session_id.as_ref().map(|s| s.to_string()),
        npc_id: call.npc().map(str::to_owned),
        what: m.what.to_owned(),
        recorded: m.recorded,
        replayed: m.replayed,
    }
}

/// The scene a recorded call ran in, rebuilt from its event: the world,
/// session, tick and game time are the event's own, the NPC (for
/// conditions and effects) and the tick's context come from the recorded
/// `context`.
fn scene_of(e: &Event, with_npc: bool) -> Option<Scene> {
    let mut context: Map<String, Value> = e.payload.value()[keys::CONTEXT].as_object()?.clone();
    let npc = match (with_npc, context.get(keys::NPC_ID).and_then(Value::as_str)) {
        (true, Some(npc_id)) => {
            let npc = TickNpc {
                npc_id: npc_id.to_owned(),
                location_id: context
                    .get(keys::LOCATION_ID)
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                state: context.get(keys::NPC_STATE).cloned().unwrap_or(Value::Null),
            };
            for key in [keys::NPC_ID, keys::LOCATION_ID, keys::NPC_STATE] {
                context.remove(key);
            }
            Some(npc)
        }
        _ => None,
    };
    Some(Scene {
        world: e.world_id.clone()?,
        session: e.session_id.clone()?,
        tick_id: e.provenance.tick_id?,
        tick: e.provenance.tick?,
        at: e.occurred_at,
        npc: npc.as_ref().map(|_| 0),
        npcs: Arc::new(npc.into_iter().collect()),
        context: Value::Object(context),
        memo: Default::default(),
    })
}

/// Fields of a call's event that differ from run to run.
const VOLATILE: [&str; 3] = [keys::DURATION_US, keys::WAITED_US, keys::INPUTS];

/// The first thing that differs between a recorded call and the events its
/// replay produced (the call's own event last), or `None`.
fn compare(
    call: &CallEvents<'_>,
    replayed: &[NewEvent],
    unrecorded: &[Canonical],
) -> Option<Mismatch> {
    let recorded = call.event;
    let recorded_payload = recorded.payload.value();
    if !unrecorded.is_empty() {
        let asked: Vec<Value> = unrecorded
            .iter()
            .map(|c| serde_json::from_str(c.as_str()).unwrap_or(Value::Null))
            .collect();
        let held: Vec<Value> = recorded_payload[keys::INPUTS]
            .as_array()
            .map(|inputs| inputs.iter().map(|i| i[keys::REQUEST].clone()).collect())
            .unwrap_or_default();
        return Some(Mismatch {
            what: "reads",
            recorded: json!({"reads": held}),
            replayed: json!({"reads_not_recorded": asked}),
        });
    }
    let Some((own, writes)) = replayed.split_last() else {
        return Some(Mismatch {
            what: "outcome",
            recorded: outcome(recorded.kind.as_str(), recorded_payload),
            replayed: Value::Null,
        });
    };
    let own_payload = own.payload.value();
    if own.kind != recorded.kind {
        return Some(Mismatch {
            what: "outcome",
            recorded: outcome(recorded.kind.as_str(), recorded_payload),
            replayed: outcome(own.kind.as_str(), own_payload),
        });
    }
    for key in [keys::RESULT, keys::ERROR, keys::PANIC] {
        if recorded_payload.get(key) != own_payload.get(key) {
            return Some(Mismatch {
                what: key,
                recorded: recorded_payload.get(key).cloned().unwrap_or(Value::Null),
                replayed: own_payload.get(key).cloned().unwrap_or(Value::Null),
            });
        }
    }
    // A remote plugin's circuit is the replay's own, not the recorded one's.
    let circuit = |kind: &str| {
        matches!(
            kind,
            kinds::PLUGIN_CIRCUIT_OPENED | kinds::PLUGIN_CIRCUIT_CLOSED
        )
    };
    let recorded_writes: Vec<Value> = call
        .produced
        .iter()
        .filter(|e| !circuit(e.kind.as_str()))
        .map(|e| comparable(&e.as_new_event()))
        .collect();
    let replayed_writes: Vec<Value> = writes
        .iter()
        .filter(|e| !circuit(e.kind.as_str()))
        .map(comparable)
        .collect();
    if recorded_writes != replayed_writes {
        return Some(Mismatch {
            what: "writes",
            recorded: Value::Array(recorded_writes),
            replayed: Value::Array(replayed_writes),
        });
    }
    let (a, b) = (stable(recorded_payload), stable(own_payload));
    if a != b {
        let keys: Vec<&String> = a
            .keys()
            .chain(b.keys())
            .filter(|k| a.get(*k) != b.get(*k))
            .collect();
        let pick = |m: &Map<String, Value>| -> Map<String, Value> {
            keys.iter()
                .map(|k| ((*k).clone(), m.get(*k).cloned().unwrap_or(Value::Null)))
                .collect()
        };
        return Some(Mismatch {
            what: "record",
            recorded: Value::Object(pick(&a)),
            replayed: Value::Object(pick(&b)),
        });
    }
    None
}

/// How a call ended, for a divergence in outcome.
fn outcome(kind: &str, payload: &Value) -> Value {
    let mut o = Map::new();
    o.insert("kind".into(), json!(kind));
    for key in [keys::RESULT, keys::ERROR, keys::PANIC, keys::FALLBACK] {
        if let Some(v) = payload.get(key) {
            o.insert(key.into(), v.clone());
        }
    }
    Value::Object(o)
}

/// An event a call produced, as replay compares it.
fn comparable(e: &NewEvent) -> Value {
    let mut payload = e.payload.value().clone();
    if e.kind.as_str() == kinds::RELATIONSHIP_UPDATED
        && let Some(p) = payload.as_object_mut()
    {
        p.remove(keys::RELATIONSHIP);
    }
    json!({"kind": e.kind, "stream": e.stream, "session_id": e.session_id, "payload": payload})
}

/// A call event's payload without what differs from run to run.
fn stable(payload: &Value) -> Map<String, Value> {
    let mut m = payload.as_object().cloned().unwrap_or_default();
    for key in VOLATILE {
        m.remove(key);
    }
    m
}

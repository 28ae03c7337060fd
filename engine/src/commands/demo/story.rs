//! Everything that happens while the demo's engine runs, one line per step:
//! the worlds configured, the ticks sent, a malformed tick refused, a tick
//! sent twice recognised, the log's own guarantees, the relay caught up.

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget};
use provenant_events::{
    EventKind, NewEvent, Position, SessionId, StreamName, WorldId, keys, kinds,
};
use provenant_host::intake;
use provenant_host::world::configured_event;
use provenant_log::{AppendBatch, EventLog, ExpectedVersion};
use provenant_plugins::worlds::{TickPlan, cellar_config, tavern_config};
use serde_json::{Value, json};
use uuid::Uuid;

use super::args::DemoConfig;
use super::limits::{INSTANCE, SOURCE, WAIT};
use super::nats::NatsSide;
use super::ticks::{Tally, resend_in_process, send_in_process};
use crate::service::engine::Engine;
use crate::service::run::Running;

/// What the story leaves for the summary.
pub struct Told {
    pub plugins: Vec<String>,
    pub ticks: Tally,
    pub effective_config: Option<Value>,
}

/// Everything that happens while the engine runs, one line per step.
pub async fn story(
    running: &Running,
    log: &EventLog,
    mut nats: Option<&mut NatsSide>,
    config: &DemoConfig,
    oracle: bool,
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
    let (mut tavern_config, mut cellar_config) = (tavern_config(), cellar_config());
    let sandboxed = config.plugins.examples;
    if sandboxed {
        with_examples(&mut tavern_config, &mut cellar_config);
    }
    if oracle
        && let (Some(list), Some(extra)) = (
            tavern_config["meta"]["behavior"]["activities"].as_array_mut(),
            provenant_remote::examples::oracle_activities().as_array(),
        )
    {
        list.extend(extra.iter().cloned());
    }
    for (world, config) in [(&tavern, tavern_config), (&cellar, cellar_config)] {
        let mut event = configured_event(world, config)
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
    if oracle {
        println!(
            "the tavern also consults the remote tavern oracle (its is_fated condition and prophesy effect, over HTTP)"
        );
    }
    if sandboxed {
        println!(
            "worlds configured: tavern (stealth, romance, flaky, and the WebAssembly innkeeper and gossip; nosy disabled), cellar (nosy, and the WebAssembly runaway, which never returns), each a WorldConfigured event"
        );
    } else {
        println!(
            "worlds configured: tavern (stealth, romance, flaky; nosy disabled), cellar (only nosy), each a WorldConfigured event"
        );
    }

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
            side.names().events_stream(),
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
    let subject = side.names().ticks_subject("tavern");
    side.js()
        .publish(subject.clone(), body.into_bytes().into())
        .await
        .with_context(|| format!("cannot publish to {subject}"))?
        .await
        .with_context(|| format!("JetStream did not store the message on {subject}"))?;
    let rejected = async {
        loop {
            let e = tail.next().await.context("cannot read the log")?;
            if e.kind.as_str() == kinds::TICK_REJECTED {
                let reason = e.payload.value()[keys::REASON]
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

/// The example WebAssembly plugins' activities added to the demo's worlds
/// (the runaway enabled in the cellar beside nosy).
fn with_examples(tavern: &mut Value, cellar: &mut Value) {
    use provenant_wasm::examples::{cellar_activities, tavern_activities};
    for (world, extra) in [(tavern, tavern_activities()), (cellar, cellar_activities())] {
        let behavior = &mut world["meta"]["behavior"];
        if let (Some(list), Some(extra)) = (behavior["activities"].as_array_mut(), extra.as_array())
        {
            list.extend(extra.iter().cloned());
        }
        if let Some(enabled) = behavior["enabledPlugins"].as_array_mut() {
            enabled.push(Value::from("wasm-runaway"));
        }
    }
}

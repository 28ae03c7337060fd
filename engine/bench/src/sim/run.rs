//! `provenant sim`: configure the worlds, send, drain, report.

use std::time::Duration;

use anyhow::Context as _;
use provenant_engine::client::http::EngineApi;
use provenant_engine::client::nats::{TickClient, TickClientConfig};
use provenant_engine::nats_names::NatsNames;
use serde_json::{Value, json};

use super::args::SimArgs;
use super::config::SimConfig;
use super::pacing::send_paced;
use super::report::SimReport;
use super::schedule::Schedule;
use super::sender::{HTTP_IN_FLIGHT, NATS_ACKS_IN_FLIGHT, Sender};
use super::tracker::Tracker;

/// Deadline of one JetStream stream acknowledgment: as long as a set-up
/// request's.
const REQUEST_TIMEOUT: Duration = provenant_engine::client::http::REQUEST_TIMEOUT;
/// How long to wait for the engine to say it is ready before sending anyway.
const READY_WAIT: Duration = Duration::from_secs(10);

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
    let api = EngineApi::new(
        &config.engine_url,
        config.token.as_ref().map(|t| t.expose()),
        HTTP_IN_FLIGHT,
    )?;
    api.wait_ready(READY_WAIT).await?;
    let nats = match &config.nats_url {
        Some(url) => Some(connect_nats(url, &config.nats_prefix, &config.nats_auth).await?),
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

/// Connects to NATS (once: an unreachable server is an error) and checks
/// that the engine's ticks stream exists.
#[tracing::instrument(skip(url), fields(url = %provenant_engine::nats_connect::shown_url(url)))]
async fn connect_nats(
    url: &str,
    prefix: &str,
    auth: &provenant_engine::nats_connect::NatsAuth,
) -> anyhow::Result<TickClient> {
    let names = NatsNames::new(prefix)?;
    let client = TickClient::connect(
        url,
        names,
        &TickClientConfig {
            name: "provenant-sim",
            request_timeout: REQUEST_TIMEOUT,
            acks_in_flight: NATS_ACKS_IN_FLIGHT,
            auth: auth.clone(),
        },
    )
    .await?;
    let stream = client.names.ticks_stream();
    client.js.get_stream(&stream).await.with_context(|| {
        format!(
            "NATS at {} has no stream {stream}: is the engine running with NATS and --nats-prefix {prefix}?",
            client.url
        )
    })?;
    Ok(client)
}

//! `provenant sim`'s arguments.

use std::time::Duration;

use anyhow::Context as _;

use super::config::{SimConfig, default_engine_url};

/// `provenant sim` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// The running engine's HTTP API: the worlds are configured there (PUT
    /// /v1/worlds/{world_id}) and, without NATS, ticks are sent there (POST
    /// /v1/ticks). Plain http:// only.
    #[arg(long = "engine", value_name = "URL", env = "PROVENANT_ENGINE_URL", default_value_t = default_engine_url())]
    pub engine_url: String,
    /// NATS with JetStream, e.g. nats://127.0.0.1:4222: ticks are published to
    /// <prefix>.ticks.<world_id> and acknowledged on <prefix>.acked.<world_id>.
    /// Without it ticks are sent with POST /v1/ticks.
    #[arg(long, value_name = "URL", env = "NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    #[command(flatten)]
    pub nats_auth: provenant_engine::commands::args::NatsAuthArgs,
    /// Prefix of the NATS subjects: the engine's --nats-prefix.
    #[arg(
        long,
        value_name = "PREFIX",
        env = "PROVENANT_NATS_PREFIX",
        default_value = "provenant"
    )]
    pub nats_prefix: String,
    /// The token sent as `Authorization: Bearer <token>` on PUT and POST:
    /// the engine's game token (or its admin token).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "PROVENANT_GAME_TOKEN",
        hide_env_values = true,
        alias = "admin-token",
        value_parser = provenant_engine::secret::parse_secret
    )]
    pub game_token: Option<provenant_engine::secret::SecretArg>,
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
            nats_auth: self.nats_auth.auth(),
            nats_prefix: self.nats_prefix.clone(),
            token: self.game_token.clone().and_then(|t| t.0),
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

//! What to simulate, and against which engine.

use std::time::Duration;

use anyhow::Context as _;
use provenant_engine::nats_names::NatsNames;
use provenant_engine::service::run::DEFAULT_HTTP_ADDR;
use provenant_events::WorldId;

/// Where `provenant serve` listens by default, as a URL.
pub fn default_engine_url() -> String {
    format!("http://{DEFAULT_HTTP_ADDR}")
}

/// What to simulate, and against which engine.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The engine's HTTP API, `http://host:port`.
    pub engine_url: String,
    /// NATS with JetStream; None: ticks over `POST /v1/ticks`.
    pub nats_url: Option<String>,
    /// NATS credentials and TLS.
    pub nats_auth: provenant_engine::nats_connect::NatsAuth,
    /// The engine's NATS prefix.
    pub nats_prefix: String,
    /// The game's token, sent as `Authorization: Bearer` on PUT and POST.
    pub token: Option<provenant_engine::secret::Secret>,
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
            engine_url: default_engine_url(),
            nats_url: None,
            nats_auth: Default::default(),
            nats_prefix: "provenant".into(),
            token: None,
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

    pub fn validate(&self) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

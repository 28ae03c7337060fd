//! `provenant serve` as a process the benchmarks start, measure and stop:
//! this binary, or another build of it (`--engine-binary`, to measure a
//! baseline build beside this one in the same run).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use provenant_engine::client::http::EngineApi;
use provenant_engine::nats_names::NatsNames;
use tokio::io::AsyncBufReadExt as _;

use crate::scratch::Scratch;
use crate::sim::SimConfig;

/// How to start the engine.
#[derive(Debug, Clone)]
pub struct EngineLaunch {
    /// The `provenant` binary whose `serve` runs.
    pub binary: PathBuf,
    pub database_url: String,
    pub nats_url: Option<String>,
    pub nats_prefix: String,
    /// More environment variables (settings of `serve`).
    pub env: Vec<(String, String)>,
}

impl EngineLaunch {
    /// `binary`'s engine on a scratch database, with NATS names of its own
    /// (`<stem>-<random>`).
    pub fn on_scratch(
        binary: &Path,
        scratch: &Scratch,
        nats_url: &str,
        stem: &str,
    ) -> anyhow::Result<(Self, NatsNames)> {
        let tag = &uuid::Uuid::now_v7().simple().to_string()[20..];
        let names = NatsNames::new(&format!("{stem}-{tag}"))?;
        let launch = EngineLaunch {
            binary: binary.to_owned(),
            database_url: scratch.url.clone(),
            nats_url: Some(nats_url.to_owned()),
            nats_prefix: names.prefix().to_owned(),
            env: Vec::new(),
        };
        Ok((launch, names))
    }

    /// `binary`, or this program when None.
    pub fn binary_or_self(binary: Option<&Path>) -> anyhow::Result<PathBuf> {
        match binary {
            Some(b) => Ok(b.to_owned()),
            None => std::env::current_exe().context("cannot find this program"),
        }
    }
}

/// A running `provenant serve`; killed when dropped.
pub struct EngineProcess {
    child: tokio::process::Child,
    pub pid: u32,
    /// `http://host:port`.
    pub url: String,
    /// When the process was spawned.
    pub spawned: Instant,
    /// From the spawn to the line that says where it listens.
    pub listening_after: Duration,
}

impl EngineProcess {
    /// Starts the engine and waits for the line that says where it listens.
    pub async fn start(launch: &EngineLaunch) -> anyhow::Result<Self> {
        let mut command = tokio::process::Command::new(&launch.binary);
        command
            .arg("serve")
            .env("DATABASE_URL", &launch.database_url)
            .env("PROVENANT_NATS_PREFIX", &launch.nats_prefix)
            .env("PROVENANT_HTTP_ADDR", "127.0.0.1:0")
            .env_remove("PROVENANT_ADMIN_TOKEN")
            .env_remove("NATS_URL")
            .env("RUST_LOG", "warn")
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(nats) = &launch.nats_url {
            command.env("NATS_URL", nats);
        }
        let spawned = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {} serve", launch.binary.display()))?;
        let pid = child.id().context("the engine has no process id")?;
        let stdout = child.stdout.take().context("no engine stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = lines
            .next_line()
            .await?
            .context("the engine exited before listening")?;
        let listening_after = spawned.elapsed();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let addr = first
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .with_context(|| format!("unexpected engine output: {first}"))?;
        Ok(EngineProcess {
            child,
            pid,
            url: format!("http://{addr}"),
            spawned,
            listening_after,
        })
    }

    /// Polls `/readyz` until it answers 200 (every 2 ms, for at most
    /// `wait`); the time from the spawn.
    pub async fn wait_ready(&self, wait: Duration) -> anyhow::Result<Duration> {
        let api = EngineApi::new(&self.url, None, 4)?;
        let deadline = Instant::now() + wait;
        loop {
            if api.is_ready().await.unwrap_or(false) {
                return Ok(self.spawned.elapsed());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the engine was not ready within {wait:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// `provenant sim` against this engine through `launch`'s NATS, on the
    /// worlds `sim-1`, `sim-2`, …; the caller sets the load.
    pub fn sim_config(&self, launch: &EngineLaunch) -> SimConfig {
        SimConfig {
            engine_url: self.url.clone(),
            nats_url: launch.nats_url.clone(),
            nats_prefix: launch.nats_prefix.clone(),
            token: None,
            world_prefix: "sim".into(),
            ..SimConfig::default()
        }
    }

    /// Seconds the engine's committer has spent appending
    /// (`provenant_log_append_duration_seconds_sum`); None for an engine
    /// that does not export it (a build before it).
    pub async fn committer_busy_seconds(&self) -> anyhow::Result<Option<f64>> {
        EngineApi::new(&self.url, None, 1)?
            .metric("provenant_log_append_duration_seconds_sum")
            .await
    }

    pub fn peak_rss_bytes(&self) -> Option<u64> {
        crate::procstat::peak_rss_bytes(self.pid)
    }

    /// SIGTERM (the engine's graceful stop), then waits for it to exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .context("the engine did not stop within 60 s of SIGTERM")??;
        anyhow::ensure!(status.success(), "the engine exited with {status}");
        Ok(())
    }
}

/// Prints a benchmark's figures as one JSON object (`--json`).
pub fn print_json(figures: &impl serde::Serialize) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(figures).context("cannot encode the figures")?
    );
    Ok(())
}

//! The engine's HTTP API, from the outside: `GET /readyz`, `PUT
//! /v1/worlds/{id}`, `POST /v1/ticks` (plain `http://`, HTTP/1.1, pooled
//! connections).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use provenant_events::TickAck;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::error_text::error_text;

/// How long a set-up request (readiness, configuration) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A running engine's HTTP API. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct EngineApi {
    client: reqwest::Client,
    /// `http://host:port`, without a trailing slash.
    base: String,
    ticks: Url,
    bearer: Option<HeaderValue>,
}

impl EngineApi {
    /// The engine at `engine_url` (`http://host:port`), with the admin
    /// token its writes need when it has one; keeps up to `connections`
    /// idle connections.
    pub fn new(
        engine_url: &str,
        admin_token: Option<&str>,
        connections: usize,
    ) -> anyhow::Result<Self> {
        let parsed =
            Url::parse(engine_url).with_context(|| format!("invalid engine URL {engine_url:?}"))?;
        anyhow::ensure!(
            parsed.scheme() == "http",
            "invalid engine URL {engine_url:?}: only http:// is supported"
        );
        let base = engine_url.trim_end_matches('/').to_owned();
        let ticks = Url::parse(&format!("{base}/v1/ticks"))
            .with_context(|| format!("invalid engine URL {engine_url:?}"))?;
        let bearer = admin_token
            .map(|token| {
                let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .context("the admin token is not a valid HTTP header value")?;
                value.set_sensitive(true);
                anyhow::Ok(value)
            })
            .transpose()?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(connections)
            .build()
            .context("cannot make an HTTP client")?;
        Ok(EngineApi {
            client,
            base,
            ticks,
            bearer,
        })
    }

    /// One request with a JSON body; the status and the body.
    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = self
            .client
            .request(method, url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(bearer) = &self.bearer {
            request = request.header(AUTHORIZATION, bearer.clone());
        }
        let response = request.send().await?;
        let status = response.status();
        let body = response.bytes().await.context("cannot read the answer")?;
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
        let url = Url::parse(&url).with_context(|| format!("invalid URL {url}"))?;
        tokio::time::timeout(REQUEST_TIMEOUT, self.call(method.clone(), url, body))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {}s", REQUEST_TIMEOUT.as_secs()))
            .and_then(|r| r)
            .with_context(|| format!("cannot reach the engine at {} ({method} {path})", self.base))
    }

    /// Whether the engine answers `GET /readyz` with a success (one probe;
    /// an engine that does not answer yet is an error).
    pub async fn is_ready(&self) -> anyhow::Result<bool> {
        let (status, _) = self
            .setup_call(Method::GET, "/readyz", Bytes::new())
            .await?;
        Ok(status.is_success())
    }

    /// The value of an unlabelled sample in `GET /metrics` (the whole line's
    /// name, e.g. `provenant_log_append_duration_seconds_sum`); None when
    /// the engine does not export it.
    pub async fn metric(&self, name: &str) -> anyhow::Result<Option<f64>> {
        let (status, body) = self
            .setup_call(Method::GET, "/metrics", Bytes::new())
            .await?;
        anyhow::ensure!(
            status.is_success(),
            "GET /metrics: {}",
            error_message(status, &body)
        );
        let text = std::str::from_utf8(&body).context("/metrics is not UTF-8")?;
        Ok(text
            .lines()
            .filter_map(|line| line.split_once(' '))
            .find(|(sample, _)| *sample == name)
            .and_then(|(_, value)| value.trim().parse().ok()))
    }

    /// Checks that the engine answers; waits up to `wait` for it to be
    /// ready, and goes on with a warning if it does not become so.
    #[tracing::instrument(skip(self), fields(engine = %self.base))]
    pub async fn wait_ready(&self, wait: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + wait;
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
                    "the engine is not ready after {wait:?} ({status}: {why}); sending anyway"
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
    pub async fn configure_world(&self, world: &str, config: &Value) -> anyhow::Result<()> {
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

    /// `POST /v1/ticks` with a tick's JSON: the acknowledgment (once its
    /// events are durable), or why not.
    pub async fn post_tick(&self, body: Bytes) -> Result<TickAck, String> {
        let (status, answer) = self
            .call(Method::POST, self.ticks.clone(), body)
            .await
            .map_err(|e| error_text(&e))?;
        if !status.is_success() {
            return Err(error_message(status, &answer));
        }
        serde_json::from_slice(&answer).map_err(|e| format!("unexpected answer ({e})"))
    }
}

/// `HTTP <status>: <the answer's "error", or its text>`.
pub fn error_message(status: StatusCode, body: &[u8]) -> String {
    let error = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    format!("HTTP {status}: {error}")
}

//! `provenant bench remote`: a remote plugin's condition called through the
//! engine (the plugin host and the remote client: context, request, reply
//! checked, call event built) over HTTP and over NATS on loopback, beside a
//! bare request loop sending the same bodies with the same clients (hyper's
//! pooled client, async-nats) to the same responders. Calls one after the
//! other; calls/s, p50 and p99 per call; rounds alternate the two.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::StreamExt;
use provenant_host::context::Scene;
use provenant_host::state::GameState;
use provenant_host::{HostConfig, PluginHost};
use provenant_remote::protocol::Operation;
use provenant_remote::transport::Transport;
use provenant_remote::{RemoteConfig, RemoteRuntime};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::scratch::DEFAULT_NATS_URL;

/// Arguments of `provenant bench remote`.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteBenchArgs {
    /// Calls per measured loop.
    #[arg(long, default_value_t = 20_000)]
    pub calls: u64,
    /// Rounds (each measures the bare loop, then the engine).
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// The NATS server of the NATS rows.
    #[arg(long, env = "NATS_URL", default_value = DEFAULT_NATS_URL, hide_env_values = true)]
    pub nats_url: String,
}

/// One measured loop.
#[derive(Debug, Clone)]
pub struct Figure {
    pub calls_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

impl Figure {
    fn of(mut took: Vec<Duration>, total: Duration) -> Figure {
        took.sort();
        let at = |q: f64| {
            let i = ((took.len() as f64 * q) as usize).min(took.len().saturating_sub(1));
            took.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
        };
        Figure {
            calls_per_s: took.len() as f64 / total.as_secs_f64(),
            p50_us: at(0.50),
            p99_us: at(0.99),
        }
    }
}

/// The bodies the responders got (the first one, for the bare loop).
type Seen = Arc<Mutex<Option<Bytes>>>;

pub async fn remote(args: &RemoteBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.calls >= 100, "--calls must be at least 100");
    let seen: Seen = Arc::default();
    // The responders run on a runtime of their own (one thread), apart from
    // both loops' clients, as a service in another process would.
    let responders = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-responder")
        .enable_all()
        .build()?;
    let subject = format!("bench.remote.{}", Uuid::now_v7().simple());
    let (http, responder_nats) = {
        let (seen, url, subject) = (seen.clone(), args.nats_url.clone(), subject.clone());
        responders
            .spawn(async move {
                let http = http_responder(seen.clone()).await?;
                let nats = async_nats::connect(&url)
                    .await
                    .with_context(|| format!("cannot reach NATS at {url}"))?;
                nats_responder(&nats, &subject, seen).await?;
                anyhow::Ok((http, nats))
            })
            .await??
    };
    let nats = async_nats::connect(&args.nats_url)
        .await
        .with_context(|| format!("cannot reach NATS at {}", args.nats_url))?;
    println!(
        "a remote condition called {} times one after the other, on loopback: through the engine (host and remote client) beside a bare loop of the same bodies with the same client; {} rounds",
        args.calls, args.rounds
    );
    for (kind, endpoint) in [
        ("HTTP", format!("http://{http}")),
        ("NATS", format!("nats:{subject}")),
    ] {
        let dir = tempfile::tempdir().context("a directory for the plugin")?;
        let host = host(dir.path(), &endpoint, &args.nats_url)?;
        // One call through the engine first: the body the bare loop sends.
        *seen.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let (state, scene) = crate::sample::guard_scene()?;
        engine_loop(&host, &state, &scene, 100);
        let body = seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .context("the responder saw no request")?;
        println!("\n{kind} ({endpoint}), request body {} bytes:", body.len());
        println!(
            "  {:<7} {:>12} {:>9} {:>9}   {:>12} {:>9} {:>9}   {:>12} {:>9} {:>9}   {:>6}",
            "round",
            "bare calls/s",
            "p50 µs",
            "p99 µs",
            "client",
            "p50 µs",
            "p99 µs",
            "engine",
            "p50 µs",
            "p99 µs",
            "ratio"
        );
        // The remote client alone (its runtime, transport and deadline, no
        // host): where the engine's time goes.
        let client_runtime = Arc::new(RemoteRuntime::new()?);
        let transport = match kind {
            "HTTP" => Transport::Http {
                client: provenant_remote::transport::http_client(&endpoint)
                    .map_err(anyhow::Error::msg)?,
                base: endpoint.clone(),
                token: None,
            },
            _ => Transport::Nats {
                client: nats.clone(),
                subject: subject.clone(),
                token: None,
            },
        };
        for round in 1..=args.rounds {
            let bare = match kind {
                "HTTP" => bare_http(&endpoint, &body, args.calls).await?,
                _ => bare_nats(&nats, &subject, &body, args.calls).await?,
            };
            let (rt, t, b, calls) = (
                client_runtime.clone(),
                transport.clone(),
                body.clone(),
                args.calls,
            );
            let client = tokio::task::spawn_blocking(move || client_loop(&rt, &t, &b, calls))
                .await
                .context("the client loop")?;
            let (host, state, scene) = (host.clone(), state.clone(), scene.clone());
            let engine =
                tokio::task::spawn_blocking(move || engine_loop(&host, &state, &scene, calls))
                    .await
                    .context("the engine loop")?;
            println!(
                "  {round:<7} {:>12.0} {:>9.1} {:>9.1}   {:>12.0} {:>9.1} {:>9.1}   {:>12.0} {:>9.1} {:>9.1}   {:>6.2}",
                bare.calls_per_s,
                bare.p50_us,
                bare.p99_us,
                client.calls_per_s,
                client.p50_us,
                client.p99_us,
                engine.calls_per_s,
                engine.p50_us,
                engine.p99_us,
                engine.calls_per_s / bare.calls_per_s
            );
        }
    }
    println!("\n(ratio: the engine's calls/s over the bare loop's, the same round)");
    drop(responder_nats);
    responders.shutdown_background();
    Ok(())
}

/// A host with one remote plugin, `bench-remote`, at `endpoint`.
fn host(dir: &std::path::Path, endpoint: &str, nats_url: &str) -> anyhow::Result<Arc<PluginHost>> {
    let folder = dir.join("bench-remote");
    std::fs::create_dir_all(&folder)?;
    let manifest = json!({
        "id": "bench-remote", "name": "bench-remote", "version": "1.0.0",
        "kind": "remote_feature", "permissions": ["behavior:extend_conditions"],
        "endpoint": endpoint, "timeout_ms": 1000,
        "registrations": {"conditions": [{"name": "c"}]},
    });
    std::fs::write(folder.join("manifest.json"), manifest.to_string())?;
    let runtime = Arc::new(RemoteRuntime::new()?);
    let plugin = provenant_remote::load_plugin(
        &folder,
        &runtime,
        &RemoteConfig {
            nats_url: nats_url.to_owned(),
        },
    )?;
    Ok(Arc::new(PluginHost::start(
        vec![Arc::new(plugin)],
        HostConfig::default(),
    )?))
}

fn engine_loop(
    host: &PluginHost,
    state: &Arc<GameState>,
    scene: &Arc<Scene>,
    calls: u64,
) -> Figure {
    let mut took = Vec::with_capacity(calls as usize);
    let start = Instant::now();
    for i in 0..calls {
        let t = Instant::now();
        let d =
            host.evaluate_condition(state, scene, "a", "plugin:bench-remote:c", &Value::Null, i);
        took.push(t.elapsed());
        std::hint::black_box(d);
    }
    Figure::of(took, start.elapsed())
}

fn client_loop(runtime: &RemoteRuntime, transport: &Transport, body: &Bytes, calls: u64) -> Figure {
    let mut took = Vec::with_capacity(calls as usize);
    let start = Instant::now();
    for _ in 0..calls {
        let t = Instant::now();
        let transport = transport.clone();
        let body = body.to_vec();
        let http = matches!(transport, Transport::Http { .. });
        let send = async move {
            transport
                .send(Operation::EvaluateCondition, body, 1 << 20)
                .await
        };
        let reply = match http {
            true => runtime.wait_local(send, Duration::from_secs(1)),
            false => runtime.wait(send, Duration::from_secs(1)),
        };
        took.push(t.elapsed());
        std::hint::black_box(reply);
    }
    Figure::of(took, start.elapsed())
}

async fn bare_http(endpoint: &str, body: &Bytes, calls: u64) -> anyhow::Result<Figure> {
    use http_body_util::{BodyExt, Full};
    let client = provenant_remote::transport::http_client(endpoint).map_err(anyhow::Error::msg)?;
    let url = format!("{endpoint}/evaluate-condition");
    let mut took = Vec::with_capacity(calls as usize);
    let start = Instant::now();
    for _ in 0..calls {
        let t = Instant::now();
        let request = hyper::Request::post(&url)
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))?;
        let response = client.request(request).await?;
        let reply = response.into_body().collect().await?.to_bytes();
        took.push(t.elapsed());
        std::hint::black_box(reply);
    }
    Ok(Figure::of(took, start.elapsed()))
}

async fn bare_nats(
    nats: &async_nats::Client,
    subject: &str,
    body: &Bytes,
    calls: u64,
) -> anyhow::Result<Figure> {
    let mut took = Vec::with_capacity(calls as usize);
    let start = Instant::now();
    for _ in 0..calls {
        let t = Instant::now();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Provenant-Operation", "evaluate-condition");
        let reply = nats
            .request_with_headers(subject.to_owned(), headers, body.clone())
            .await?;
        took.push(t.elapsed());
        std::hint::black_box(reply);
    }
    Ok(Figure::of(took, start.elapsed()))
}

const ANSWER: &str = r#"{"result":true}"#;

/// An HTTP responder on a port of its own answering every condition true.
async fn http_responder(seen: Seen) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/evaluate-condition",
        axum::routing::post(move |body: Bytes| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(body);
                ([("content-type", "application/json")], ANSWER)
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// A NATS responder on `subject` answering every condition true.
async fn nats_responder(
    nats: &async_nats::Client,
    subject: &str,
    seen: Seen,
) -> anyhow::Result<()> {
    let mut sub = nats.subscribe(subject.to_owned()).await?;
    let replies = nats.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            seen.lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(m.payload.clone());
            if let Some(reply) = m.reply {
                let _ = replies
                    .publish(reply, Bytes::from_static(ANSWER.as_bytes()))
                    .await;
            }
        }
    });
    nats.flush().await?;
    Ok(())
}

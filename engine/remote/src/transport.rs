//! Sending a request and waiting for its reply, at most the deadline.
//!
//! Remote calls are made from the host's synchronous plugin calls, on
//! whatever thread evaluates a tick (a blocking pool thread, a test's
//! runtime). The I/O runs on runtimes of the client's own
//! ([`RemoteRuntime`]): over HTTP the calling thread drives it, over NATS one
//! thread does. A slow plugin holds only the thread of the world that called
//! it. Connections are kept alive and reused.

use std::future::Future;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::protocol::{OPERATION_HEADER, Operation, excerpt};

/// Why a request got no usable reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `deadline`, `unreachable`, `status`, `too_large`, `no_responders`,
    /// `runtime`.
    pub reason: &'static str,
    pub message: String,
}

impl Failure {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
        }
    }
}

/// How long past a deadline a caller waits for the runtime to report it.
const BACKSTOP: Duration = Duration::from_millis(20);

/// The runtimes remote calls' I/O runs on; shut down in the background when
/// dropped (so dropping them anywhere, even in async code, is safe).
///
/// - HTTP requests run on a current-thread runtime that the calling thread
///   drives itself (`Runtime::block_on`): the thread evaluating a world's
///   tick writes the request and waits in `epoll` for the reply, with no
///   hand-off to another thread. When several threads call at once, one
///   drives the runtime and the others' requests progress on it.
/// - NATS requests run on a one-thread runtime of their own: the NATS
///   connection must be driven all the time (pings, replies), not only
///   while a call waits.
pub struct RemoteRuntime {
    shared: Option<tokio::runtime::Runtime>,
    local: Option<tokio::runtime::Runtime>,
}

impl RemoteRuntime {
    /// Starts the runtimes (one I/O thread, for NATS).
    pub fn new() -> std::io::Result<Self> {
        let shared = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("provenant-remote")
            .enable_all()
            .build()?;
        let local = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(RemoteRuntime {
            shared: Some(shared),
            local: Some(local),
        })
    }

    /// Runs `future` on the NATS runtime, from any thread, for at most
    /// `wait`: its output, or `None` when the deadline came first (the
    /// future is then dropped, abandoning what it was doing).
    ///
    /// The calling thread polls the future itself (`block_on` on the
    /// runtime's handle) unless it is inside a current-thread runtime,
    /// where blocking is not allowed: then the future runs on the runtime's
    /// thread and the caller waits for its result. On a multi-threaded
    /// runtime's worker, `block_in_place` first hands the worker's other
    /// tasks to another thread.
    pub fn wait<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
        wait: Duration,
    ) -> Option<T> {
        let handle = self.shared.as_ref()?.handle();
        // Made inside the runtime: a timer belongs to the runtime it is
        // made in.
        let bounded = async move { tokio::time::timeout(wait, future).await.ok() };
        if !in_current_thread_runtime() {
            return tokio::task::block_in_place(|| handle.block_on(bounded));
        }
        let (done, result) = mpsc::sync_channel(1);
        handle.spawn(async move {
            let _ = done.send(bounded.await);
        });
        // The task's own timer ends it at the deadline; this bound is only
        // in case the runtime itself is stuck.
        result.recv_timeout(wait + BACKSTOP).ok().flatten()
    }

    /// Runs `future` on the HTTP runtime, driven by the calling thread, for
    /// at most `wait` (`None` when the deadline came first). Inside a
    /// current-thread runtime, where this thread may not block on another,
    /// a short-lived thread drives it instead.
    pub fn wait_local<T: Send>(
        &self,
        future: impl Future<Output = T> + Send,
        wait: Duration,
    ) -> Option<T> {
        let local = self.local.as_ref()?;
        let bounded = async move { tokio::time::timeout(wait, future).await.ok() };
        if !in_current_thread_runtime() {
            return tokio::task::block_in_place(|| local.block_on(bounded));
        }
        std::thread::scope(|s| s.spawn(|| local.block_on(bounded)).join().ok().flatten())
    }
}

/// Whether this thread is inside a current-thread runtime (or has one's
/// handle), where it may not block on another runtime.
fn in_current_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
}

impl Drop for RemoteRuntime {
    fn drop(&mut self) {
        for runtime in [self.shared.take(), self.local.take()]
            .into_iter()
            .flatten()
        {
            runtime.shutdown_background();
        }
    }
}

/// A secret that never shows in logs or debug output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The pooled HTTP client of one remote plugin (connections kept alive).
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for `base`: plain for `http://`, rustls (ring, the system's
/// roots) for `https://`. Its connections are made, and kept alive, on the
/// runtime its requests run on.
pub fn http_client(base: &str) -> Result<HttpClient, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if base.starts_with("https://") {
        let found = rustls_native_certs::load_native_certs();
        if found.certs.is_empty() {
            return Err(format!(
                "no CA certificates found on this machine for https endpoints: {:?}",
                found.errors
            ));
        }
        roots.add_parsable_certificates(found.certs);
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https))
}

/// How requests reach the plugin.
#[derive(Clone)]
pub enum Transport {
    Http {
        client: HttpClient,
        /// The endpoint, without a trailing `/`.
        base: String,
        token: Option<Secret>,
    },
    Nats {
        client: async_nats::Client,
        subject: String,
        token: Option<Secret>,
    },
}

impl Transport {
    /// Sends `body` for `op` and reads a reply of at most `max` bytes.
    /// (The caller bounds it with the deadline.)
    pub async fn send(&self, op: Operation, body: Vec<u8>, max: u64) -> Result<Bytes, Failure> {
        match self {
            Transport::Http {
                client,
                base,
                token,
            } => http(client, base, token.as_ref(), op, body, max).await,
            Transport::Nats {
                client,
                subject,
                token,
            } => nats(client, subject, token.as_ref(), op, body, max).await,
        }
    }
}

async fn http(
    client: &HttpClient,
    base: &str,
    token: Option<&Secret>,
    op: Operation,
    body: Vec<u8>,
    max: u64,
) -> Result<Bytes, Failure> {
    let url = format!("{base}/{}", op.as_str());
    let mut request = hyper::Request::post(&url)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(token) = token {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| Failure::new("runtime", "the token is not a valid header value"))?;
        value.set_sensitive(true);
        request = request.header(AUTHORIZATION, value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Failure::new("runtime", format!("POST {url}: {e}")))?;
    let response = client.request(request).await.map_err(|e| {
        Failure::new(
            "unreachable",
            format!("POST {url} failed: {}", error_chain(&e)),
        )
    })?;
    let status = response.status();
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(&url, max));
    }
    let read = Limited::new(response.into_body(), max as usize)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large(&url, max)
            } else {
                Failure::new(
                    "unreachable",
                    format!(
                        "reading the reply of POST {url} failed: {}",
                        error_chain(&*e)
                    ),
                )
            }
        })?
        .to_bytes();
    if !status.is_success() {
        return Err(Failure::new(
            "status",
            format!("POST {url} answered {status}: {}", excerpt(&read)),
        ));
    }
    Ok(read)
}

fn too_large(what: &str, max: u64) -> Failure {
    Failure::new(
        "too_large",
        format!("the reply of {what} is over max_reply_bytes ({max} bytes)"),
    )
}

async fn nats(
    client: &async_nats::Client,
    subject: &str,
    token: Option<&Secret>,
    op: Operation,
    body: Vec<u8>,
    max: u64,
) -> Result<Bytes, Failure> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(OPERATION_HEADER, op.as_str());
    if let Some(token) = token {
        headers.insert(
            "Authorization",
            format!("Bearer {}", token.expose()).as_str(),
        );
    }
    let reply = client
        .request_with_headers(subject.to_owned(), headers, body.into())
        .await
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => Failure::new(
                "no_responders",
                format!("no service listens on nats:{subject}"),
            ),
            _ => Failure::new(
                "unreachable",
                format!("the request to nats:{subject} failed: {e}"),
            ),
        })?;
    if reply.payload.len() as u64 > max {
        return Err(too_large(&format!("nats:{subject}"), max));
    }
    Ok(reply.payload)
}

/// An error with its causes, which say what actually happened
/// ("connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

//! Remote plugin services for the tests: a real HTTP server (axum, on a
//! port of its own) whose answers the test scripts, recording every request
//! it gets; and remote plugin folders that point at it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// How the service answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 200 with this JSON body.
    Json(Value),
    /// This status and body.
    Status(u16, String),
    /// 200 with these bytes as they are.
    Raw(Vec<u8>),
    /// Never answers (until the server stops).
    Hang,
    /// Waits, then answers.
    After(Duration, Box<Answer>),
}

/// One request the service got.
#[derive(Debug, Clone)]
pub struct Received {
    /// The operation (`evaluate-condition`, …).
    pub operation: String,
    pub authorization: Option<String>,
    pub body: Value,
    /// The client's address: one per connection.
    pub peer: SocketAddr,
}

type Script = dyn Fn(&str, &Value) -> Answer + Send + Sync;

/// A running service; stopped when dropped.
pub struct RemoteService {
    pub addr: SocketAddr,
    received: Arc<(Mutex<Vec<Received>>, Condvar)>,
    script: Arc<Mutex<Arc<Script>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl RemoteService {
    /// Starts a service answering each request with `script(operation,
    /// body)`.
    pub fn start(script: impl Fn(&str, &Value) -> Answer + Send + Sync + 'static) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the service");
        let received = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let script: Arc<Mutex<Arc<Script>>> = Arc::new(Mutex::new(Arc::new(script)));
        // Bound here, without blocking on the runtime: tests that start a
        // service may run on a runtime of their own.
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        std_listener.set_nonblocking(true).expect("non-blocking");
        let addr = std_listener.local_addr().expect("its address");
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener).expect("a tokio listener")
        };
        let (r, s) = (received.clone(), script.clone());
        let app = axum::Router::new().route(
            "/{operation}",
            axum::routing::post(
                move |axum::extract::Path(operation): axum::extract::Path<String>,
                      axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
                      headers: axum::http::HeaderMap,
                      body: axum::body::Bytes| {
                    let (r, s) = (r.clone(), s.clone());
                    async move {
                        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let authorization = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let script = s.lock().unwrap().clone();
                        let answer = script(&operation, &body);
                        r.0.lock().unwrap().push(Received {
                            operation,
                            authorization,
                            body,
                            peer,
                        });
                        r.1.notify_all();
                        respond(answer).await
                    }
                },
            ),
        );
        runtime.spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, app).await;
        });
        RemoteService {
            addr,
            received,
            script,
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.0.lock().unwrap().clone()
    }

    /// Waits until the service got `n` requests; false if it did not
    /// within `limit`.
    pub fn wait_for(&self, n: usize, limit: Duration) -> bool {
        let (got, arrived) = &*self.received;
        let got = got.lock().unwrap();
        let (got, _) = arrived
            .wait_timeout_while(got, limit, |got| got.len() < n)
            .unwrap();
        got.len() >= n
    }

    /// Answers from now on with `script`.
    pub fn set(&self, script: impl Fn(&str, &Value) -> Answer + Send + Sync + 'static) {
        *self.script.lock().unwrap() = Arc::new(script);
    }
}

impl Drop for RemoteService {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn respond(
    answer: Answer,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = axum::response::Response> + Send>> {
    use axum::response::IntoResponse;
    Box::pin(async move {
        match answer {
            Answer::Json(v) => axum::Json(v).into_response(),
            Answer::Status(code, body) => (
                axum::http::StatusCode::from_u16(code)
                    .unwrap_or(axum::http::StatusCode::IM_A_TEAPOT),
                body,
            )
                .into_response(),
            Answer::Raw(bytes) => bytes.into_response(),
            Answer::Hang => {
                std::future::pending::<()>().await;
                ().into_response()
            }
            Answer::After(wait, then) => {
                tokio::time::sleep(wait).await;
                respond(*then).await
            }
        }
    })
}

/// Writes remote plugin folder `dir/<id>` with a manifest of `id`,
/// `permissions`, `endpoint` and the `extra` fields (registrations: one
/// condition `c` and one effect `e` unless `extra` says otherwise).
pub fn write_remote_plugin(
    dir: &Path,
    id: &str,
    permissions: &[&str],
    endpoint: &str,
    extra: Value,
) {
    let mut m = json!({
        "id": id, "name": id, "version": "1.0.0", "kind": "remote_feature",
        "permissions": permissions,
        "endpoint": endpoint,
        "registrations": {"conditions": [{"name": "c"}], "effects": [{"name": "e"}]},
    });
    if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            m.insert(k.clone(), v.clone());
        }
    }
    let folder = dir.join(id);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("manifest.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
}

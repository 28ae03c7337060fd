//! HTTP for the tests, through a real client (reqwest): one request, its
//! status and its body. Transport errors panic with the request named, as a
//! failed assertion would; [`try_http_text`] returns them instead, for a
//! test that expects the engine to go away.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

/// A client per request: each test runs on a runtime of its own, and a
/// pooled connection must not outlive the runtime that made it.
fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))
}

/// One request; the status and the body, or why no answer came.
pub async fn try_http_text(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    bearer: Option<&str>,
) -> Result<(u16, String), String> {
    let client = client()?;
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|e| format!("invalid method {method:?}: {e}"))?;
    let mut request = client
        .request(method.clone(), format!("http://{addr}{path}"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.unwrap_or_default().to_vec());
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("{method} http://{addr}{path}: {e}"))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|e| format!("{method} http://{addr}{path}: reading the answer: {e}"))?;
    Ok((status, text))
}

/// One request; the status and the body.
pub async fn http_text(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    bearer: Option<&str>,
) -> (u16, String) {
    try_http_text(addr, method, path, body, bearer)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// One request; the status and the JSON body (Null when the body is empty
/// or not JSON).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    bearer: Option<&str>,
) -> (u16, Value) {
    let (status, text) = http_text(addr, method, path, body, bearer).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `GET path` with one header as given (to send an `Authorization` value
/// other than `Bearer <token>`); the status and the body.
pub async fn try_http_text_with_header(
    addr: SocketAddr,
    path: &str,
    (name, value): (&str, &str),
) -> Result<(u16, String), String> {
    let response = client()?
        .get(format!("http://{addr}{path}"))
        .header(name, value)
        .send()
        .await
        .map_err(|e| format!("GET http://{addr}{path}: {e}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, text))
}

//! The HTTP API: ticks in, worlds, reads of the log, liveness and
//! readiness. Every error is a JSON object `{"error": "..."}`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use provenant_events::{EventKind, PluginId, SessionId, WorldId};
use provenant_log::EventFilter;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::{self, Access};
use super::api_error::ApiError;
use super::engine::Engine;
use super::ownership::NotHeld;
use super::worlds::JobFailure;
use provenant_host::intake::{self, MAX_TICK_BYTES, Rejection};

/// How long `POST /v1/ticks` waits for a tick to be durable before it
/// answers 503 (the tick may still be processed; resending it is safe).
const TICK_WAIT: Duration = Duration::from_secs(30);
/// The most events `GET /v1/events` returns at once.
const MAX_EVENTS_PAGE: usize = 1000;

pub fn router(engine: Arc<Engine>) -> Router {
    let (router, _) = api().split_for_parts();
    router
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(engine.clone(), authorize))
        .with_state(engine)
}

/// The OpenAPI document of the HTTP API, made from the same routes the
/// router serves (so the two cannot drift apart).
pub fn openapi() -> Value {
    let (_, mut doc) = api().split_for_parts();
    doc.info = utoipa::openapi::InfoBuilder::new()
        .title("provenant")
        .version(provenant_host::ENGINE_VERSION)
        .description(Some(
            "The engine service: ticks in, the log, worlds, sessions, the admin API (once any role has a token, every operation but /livez and /readyz needs `Authorization: Bearer <token>` with the token of a role it admits: 401 without, 403 for another role), Prometheus metrics and health. Every error is a JSON object {\"error\": \"...\"}.",
        ))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        TOKEN_SCHEME,
        utoipa::openapi::security::SecurityScheme::Http(
            utoipa::openapi::security::HttpBuilder::new()
                .scheme(utoipa::openapi::security::HttpAuthScheme::Bearer)
                .description(Some(
                    "A role's token (--game-token, --reader-token, --admin-token); the scopes of an operation are the roles it admits",
                ))
                .build(),
        ),
    );
    document_access(&mut doc);
    let mut doc = serde_json::to_value(doc).unwrap_or_else(|e| json!({"error": e.to_string()}));
    super::api_schemas::document_inputs(&mut doc);
    doc
}

/// The security scheme's name in the OpenAPI document.
const TOKEN_SCHEME: &str = "token";

/// Each operation's roles and its 401 and 403 answers, from
/// [`access::required`], the function the middleware asks.
fn document_access(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::ResponseBuilder;
    use utoipa::openapi::security::SecurityRequirement;
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            (Method::GET, &mut item.get),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::DELETE, &mut item.delete),
            (Method::PATCH, &mut item.patch),
            (Method::HEAD, &mut item.head),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let Access::Roles(roles) = access::required(&method, path) else {
                continue;
            };
            operation.security = Some(vec![SecurityRequirement::new(
                TOKEN_SCHEME,
                roles.iter().map(|r| r.name()),
            )]);
            let answers = &mut operation.responses.responses;
            answers.insert(
                "401".into(),
                ResponseBuilder::new()
                    .description("Tokens are set and none was given, or not one of them")
                    .build()
                    .into(),
            );
            answers.insert(
                "403".into(),
                ResponseBuilder::new()
                    .description("The token's role is not one this operation admits")
                    .build()
                    .into(),
            );
        }
    }
}

/// Every route, with its OpenAPI description.
fn api() -> OpenApiRouter<Arc<Engine>> {
    use super::admin;
    OpenApiRouter::new()
        .routes(routes!(post_tick))
        .routes(routes!(get_world, put_world))
        .routes(routes!(get_events))
        .routes(routes!(admin::session))
        .routes(routes!(admin::list))
        .routes(routes!(admin::all_metrics))
        .routes(routes!(admin::reset))
        .routes(routes!(admin::plugin_metrics))
        .routes(routes!(admin::health))
        .routes(routes!(admin::behavior_extensions))
        .routes(routes!(admin::details))
        .routes(routes!(admin::cluster))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(livez))
        .routes(routes!(readyz))
}

#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "This document (OpenAPI 3.1)")))]
async fn openapi_json() -> Response {
    axum::Json(openapi()).into_response()
}

/// The token of an `Authorization: Bearer <token>` value (the scheme's
/// case does not matter, RFC 9110).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

/// Once any token is set, every route but the probes needs a token whose
/// role the route admits: 401 without one (or with one no role has), 403
/// with a role the route does not admit.
async fn authorize(State(engine): State<Arc<Engine>>, request: Request, next: Next) -> Response {
    if engine.tokens.is_empty() {
        return next.run(request).await;
    }
    let access = access::required(request.method(), request.uri().path());
    let Access::Roles(roles) = access else {
        return next.run(request).await;
    };
    let role = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .and_then(|given| engine.tokens.role_of(given));
    let Some(role) = role else {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this request needs Authorization: Bearer <token> with the token of a role it admits",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    if !access.admits(role) {
        let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} {} needs the {} role; this token is the {} role's",
                request.method(),
                request.uri().path(),
                names.join(" or "),
                role.name()
            ),
        )
        .into_response();
    }
    next.run(request).await
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format (version 0.0.4), from the projections", content_type = "text/plain"), (status = 503, description = "The projections cannot be read")))]
/// `GET /metrics`: Prometheus text format.
async fn metrics(State(engine): State<Arc<Engine>>) -> Result<Response, ApiError> {
    let text = super::prometheus::render(&engine).await.map_err(|e| {
        ApiError::unavailable(format!(
            "cannot read the metrics: {}",
            crate::error_text::error_text(&e)
        ))
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

#[utoipa::path(post, path = "/v1/ticks", tag = "game", request_body(description = "A tick: {tick_id, world_id, session_id, tick, at, npcs: [{npc_id, location_id, state}], session_updates?, context?}, at most 1 MiB", content_type = "application/json"), responses((status = 200, description = "The tick's events are durable: {tick_id, duplicate, events, position}"), (status = 400, description = "Not a valid tick (recorded as TickRejected)"), (status = 413, description = "Larger than 1 MiB (recorded as TickRejected)"), (status = 503, description = "Not durable in time, or shutting down; resending is safe")))]
async fn post_tick(State(engine): State<Arc<Engine>>, body: Body) -> Result<Response, ApiError> {
    let bytes = match read_limited(body, MAX_TICK_BYTES).await {
        Ok(bytes) => bytes,
        Err(Oversized { start, read }) => {
            let rejection = Rejection {
                reason: format!(
                    "the tick is larger than the limit of {MAX_TICK_BYTES} bytes (1 MiB): more than {read} bytes sent"
                ),
                excerpt: intake::excerpt(&start),
                bytes: read,
            };
            return Err(rejected(&engine, &rejection, StatusCode::PAYLOAD_TOO_LARGE).await);
        }
    };
    let tick = match intake::parse_tick(&bytes) {
        Ok(tick) => tick,
        Err(rejection) => {
            let status = if rejection.reason.starts_with("not JSON") {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            return Err(rejected(&engine, &rejection, status).await);
        }
    };
    // A tick refused because its world changed behind this engine's back
    // (its state is read again) or its partition was restarting is done
    // again here, a few times, rather than handed back to the game.
    let deadline = tokio::time::Instant::now() + TICK_WAIT;
    let mut wait = Duration::from_millis(10);
    let mut attempts = 0;
    let answer = loop {
        attempts += 1;
        let answer = engine
            .worlds
            .enqueue_tick(tick.clone(), "http".into(), None)
            .await;
        let answer = match answer {
            Ok(answer) => tokio::time::timeout_at(deadline, answer).await,
            Err(failure) => Ok(Ok(Err(failure))),
        };
        match answer {
            Ok(Ok(Err(JobFailure::Retry(_) | JobFailure::NotHeld(NotHeld::Restarting { .. }))))
                if attempts < 5 && tokio::time::Instant::now() + wait < deadline =>
            {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => break other,
        }
    };
    match answer {
        Ok(Ok(Ok(outcome))) => Ok(axum::Json(outcome).into_response()),
        Ok(Ok(Err(failure))) => Err(failure.into()),
        Ok(Err(_)) => Err(JobFailure::ShuttingDown.into()),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the tick is not durable after {}s (is the log reachable? see /readyz); sending it again with the same tick_id is safe",
                TICK_WAIT.as_secs()
            ),
        )),
    }
}

/// Records a rejected tick and builds the answer.
async fn rejected(engine: &Engine, rejection: &Rejection, status: StatusCode) -> ApiError {
    let mut body = json!({"error": rejection.reason, "bytes": rejection.bytes});
    match engine.record_rejection(rejection, "http").await {
        Ok(position) => body["rejected_event_position"] = json!(position),
        Err(e) => {
            tracing::warn!(error = %e, "cannot record a rejected tick");
            body["rejected_event_position"] = Value::Null;
        }
    }
    ApiError::with_body(status, body)
}

struct Oversized {
    start: Vec<u8>,
    read: usize,
}

/// The body, or what was read of it once it passed `limit`.
async fn read_limited(body: Body, limit: usize) -> Result<Vec<u8>, Oversized> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        bytes.extend_from_slice(&chunk);
        if bytes.len() > limit {
            let read = bytes.len();
            bytes.truncate(intake::EXCERPT_BYTES * 4);
            return Err(Oversized { start: bytes, read });
        }
    }
    Ok(bytes)
}

#[utoipa::path(put, path = "/v1/worlds/{world_id}", tag = "game", params(("world_id" = String, Path)), request_body(description = "{name, description?, locations?, meta: {behavior: {enabledPlugins?, simulationConfig?, activities?}}}", content_type = "application/json"), responses((status = 200, description = "Recorded as a WorldConfigured event: {world_id, position}"), (status = 422, description = "Not a valid world configuration: the field that is wrong")))]
async fn put_world(
    State(engine): State<Arc<Engine>>,
    Path(world_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let world = WorldId::new(world_id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let config: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )
    })?;
    let mut event = provenant_host::world::configured_event(&world, config).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid world configuration: {e}"),
        )
    })?;
    event.provenance.engine_version = Some(engine.host.engine().version.clone());
    event.provenance.engine_instance = Some(engine.host.engine().instance.clone());
    let position = engine.worlds.configure(&world, event).await?;
    Ok(axum::Json(json!({"world_id": world, "position": position})).into_response())
}

#[utoipa::path(get, path = "/v1/worlds/{world_id}", tag = "game", params(("world_id" = String, Path)), responses((status = 200, description = "The current configuration and the effective simulation config"), (status = 404, description = "Never configured")))]
async fn get_world(
    State(engine): State<Arc<Engine>>,
    Path(world_id): Path<String>,
) -> Result<Response, ApiError> {
    let world = WorldId::new(world_id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    match engine.worlds.describe(&world).await? {
        Some(description) => Ok(axum::Json(description).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("world {world} has never been configured"),
        )),
    }
}

/// `GET /v1/events` parameters, all optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    after: Option<u64>,
    limit: Option<usize>,
    world: Option<String>,
    session: Option<String>,
    plugin: Option<String>,
    kind: Option<String>,
}

#[utoipa::path(get, path = "/v1/events", tag = "log", params(("after" = Option<u64>, Query, description = "Position to read after (default 0)"), ("limit" = Option<usize>, Query, description = "At most this many, 1 to 1000 (default 100)"), ("world" = Option<String>, Query), ("session" = Option<String>, Query), ("plugin" = Option<String>, Query), ("kind" = Option<String>, Query)), responses((status = 200, description = "{events: [event JSON], next_after}"), (status = 400, description = "A bad parameter")))]
async fn get_events(
    State(engine): State<Arc<Engine>>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let bad = |e: provenant_events::IdError| ApiError::new(StatusCode::BAD_REQUEST, e.to_string());
    let filter = EventFilter {
        world: q.world.map(WorldId::new).transpose().map_err(bad)?,
        session: q.session.map(SessionId::new).transpose().map_err(bad)?,
        plugin: q.plugin.map(PluginId::new).transpose().map_err(bad)?,
        kind: q
            .kind
            .map(EventKind::new)
            .transpose()
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?,
        kinds: Vec::new(),
    };
    let after = q.after.unwrap_or(0);
    if after > i64::MAX as u64 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("after is {after}; positions go up to {}", i64::MAX),
        ));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_EVENTS_PAGE).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("limit is {limit}; it takes 1 to {MAX_EVENTS_PAGE}"),
        ));
    }
    let events = engine
        .log
        .read_filtered(after, limit, &filter)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let next_after = events.last().map_or(after, |e| e.position);
    Ok(axum::Json(json!({"events": events, "next_after": next_after})).into_response())
}

#[utoipa::path(get, path = "/livez", tag = "operations", responses((status = 200, description = "The process answers")))]
async fn livez() -> Response {
    axum::Json(json!({"status": "alive"})).into_response()
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Ready: log reachable, plugins loaded, consumer running"), (status = 503, description = "Not ready, and why")))]
async fn readyz(State(engine): State<Arc<Engine>>) -> Response {
    let readiness = engine.health.readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(readiness)).into_response()
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

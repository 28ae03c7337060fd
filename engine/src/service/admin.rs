//! The admin API (`/admin/plugins/...`, the original's seven endpoints with
//! its JSON shapes) and the session reads of the game
//! (`/v1/sessions/{world_id}/{session_id}`).
//!
//! What the plugins are (manifests, registrations) comes from this engine's
//! plugin host; what they did (metrics, health) and session state come from
//! the projections' rows in the log's database, so every engine and a
//! restarted one answer the same.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use provenant_events::{EventKind, NewEvent, StreamName};
use provenant_events::{keys, kinds};
use provenant_projections::names;
use provenant_projections::plugin_metrics::{HealthState, PluginMetrics};
use provenant_projections::session::{SessionState, session_key};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api_error::ApiError;
use super::engine::Engine;
use provenant_host::manifest::PluginKind;

/// Every plugin's metrics row, by plugin id (empty before the projection
/// has seen anything).
async fn metrics_rows(engine: &Engine) -> Result<BTreeMap<String, PluginMetrics>, ApiError> {
    let stored = engine
        .log
        .load_projection(names::PLUGIN_METRICS)
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot read the plugin metrics: {e}")))?;
    let mut rows = BTreeMap::new();
    for (key, json) in stored.map(|s| s.rows).unwrap_or_default() {
        match serde_json::from_str::<PluginMetrics>(&json) {
            Ok(m) => {
                rows.insert(key, m);
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "the plugin metrics row of {key} does not read ({e}); rebuild it with `provenant projections rebuild plugin_metrics`"
                    ),
                ));
            }
        }
    }
    // Plugins loaded here but not yet seen by the projection: zeros.
    for plugin in engine.host.plugins() {
        let id = plugin.manifest.id.clone();
        rows.entry(id.clone())
            .or_insert_with(|| PluginMetrics::empty(&id));
    }
    Ok(rows)
}

/// One plugin's metrics, or 404 when neither this engine nor the log knows
/// the plugin.
async fn metrics_of(engine: &Engine, plugin_id: &str) -> Result<PluginMetrics, ApiError> {
    metrics_rows(engine)
        .await?
        .remove(plugin_id)
        .ok_or_else(|| unknown_plugin(plugin_id))
}

fn unknown_plugin(plugin_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no plugin {plugin_id:?}: it is not loaded here and the log has no record of it"),
    )
}

#[utoipa::path(get, path = "/admin/plugins/list", tag = "admin", responses((status = 200, description = "The loaded plugins: {feature_plugins: [{id, name, version, enabled, kind, description}], route_plugins, total, skipped_plugins}")))]
/// `GET /admin/plugins/list`
pub async fn list(State(engine): State<Arc<Engine>>) -> Response {
    let mut feature = Vec::new();
    let mut route = Vec::new();
    for plugin in engine.host.plugins() {
        let m = &plugin.manifest;
        let entry = json!({
            "id": m.id, "name": m.name, "version": m.version, "enabled": m.enabled,
            "kind": m.kind.to_string(), "description": m.description,
        });
        match m.kind {
            PluginKind::Route => route.push(entry),
            PluginKind::Feature | PluginKind::RemoteFeature => feature.push(entry),
        }
    }
    let skipped: Vec<Value> = engine
        .host
        .skipped()
        .iter()
        .map(|(id, reason)| json!({"id": id.as_str(), "reason": reason.to_string()}))
        .collect();
    axum::Json(json!({
        "total": feature.len() + route.len(),
        "feature_plugins": feature,
        "route_plugins": route,
        "skipped_plugins": skipped,
    }))
    .into_response()
}

#[utoipa::path(get, path = "/admin/plugins/metrics", tag = "admin", responses((status = 200, description = "{summary: {total_plugins, total_requests, total_errors, overall_error_rate, unhealthy_plugins, unhealthy_count}, plugins: {id: metrics}}, counted since the last reset, from the plugin_metrics projection"), (status = 503, description = "The projection cannot be read")))]
/// `GET /admin/plugins/metrics`
pub async fn all_metrics(State(engine): State<Arc<Engine>>) -> Result<Response, ApiError> {
    let rows = metrics_rows(&engine).await?;
    let (mut requests, mut errors) = (0u64, 0u64);
    let mut unhealthy = Vec::new();
    let mut plugins = serde_json::Map::new();
    for (id, m) in &rows {
        let shown = m.admin_metrics();
        requests += shown["requests"]["total"].as_u64().unwrap_or(0);
        errors += shown["requests"]["errors"].as_u64().unwrap_or(0);
        if m.health_state() == HealthState::Unhealthy {
            unhealthy.push(id.clone());
        }
        plugins.insert(id.clone(), shown);
    }
    Ok(axum::Json(json!({
        "summary": {
            "total_plugins": rows.len(),
            "total_requests": requests,
            "total_errors": errors,
            "overall_error_rate": rate(errors, requests),
            "unhealthy_count": unhealthy.len(),
            "unhealthy_plugins": unhealthy,
        },
        "plugins": plugins,
    }))
    .into_response())
}

#[utoipa::path(get, path = "/admin/plugins/metrics/{plugin_id}", tag = "admin", params(("plugin_id" = String, Path, description = "A plugin id")), responses((status = 200, description = "{plugin_id, requests: {total, errors, error_rate, average_time_ms, last_request}, behavior_extensions: {condition_evaluations, condition_failures, condition_failure_rate, effect_applications, effect_failures, effect_failure_rate}, event_handlers: {calls, failures, failure_rate}, health: {is_healthy, last_check, recent_errors, state, reason, since}, timeouts, panics, permission_denials, latency_ms: {p50, p95, p99}}"), (status = 404, description = "Unknown plugin")))]
/// `GET /admin/plugins/metrics/{plugin_id}`
pub async fn plugin_metrics(
    State(engine): State<Arc<Engine>>,
    Path(plugin_id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(metrics_of(&engine, &plugin_id).await?.admin_metrics()).into_response())
}

#[utoipa::path(get, path = "/admin/plugins/health", tag = "admin", responses((status = 200, description = "{overall_healthy, unhealthy_plugins, health_status: {id: {is_healthy, last_check, error_count, request_error_rate, condition_failure_rate, effect_failure_rate, event_handler_failure_rate, state, reason, since, circuit?}}} over each plugin's sliding window; a remote plugin's circuit is {state, since, times_opened, not_sent}")))]
/// `GET /admin/plugins/health`
pub async fn health(State(engine): State<Arc<Engine>>) -> Result<Response, ApiError> {
    let rows = metrics_rows(&engine).await?;
    let mut status = serde_json::Map::new();
    let mut unhealthy = Vec::new();
    for (id, m) in &rows {
        if m.health_state() == HealthState::Unhealthy {
            unhealthy.push(id.clone());
        }
        status.insert(id.clone(), m.admin_health());
    }
    Ok(axum::Json(json!({
        "overall_healthy": unhealthy.is_empty(),
        "unhealthy_plugins": unhealthy,
        "health_status": status,
    }))
    .into_response())
}

#[utoipa::path(get, path = "/admin/plugins/behavior-extensions", tag = "admin", responses((status = 200, description = "{registry_locked, conditions: {total, by_plugin, list}, effects: {total, by_plugin, list}, simulation_configs: {total, by_plugin, providers}}")))]
/// `GET /admin/plugins/behavior-extensions`
pub async fn behavior_extensions(State(engine): State<Arc<Engine>>) -> Response {
    let registry = engine.host.registry();
    let by_plugin = |ids: Vec<&str>| {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for id in ids {
            *counts.entry(id).or_default() += 1;
        }
        json!(counts)
    };
    let conditions: Vec<Value> = registry
        .conditions
        .values()
        .map(|c| {
            json!({"condition_id": c.id.as_str(), "plugin_id": c.plugin.id.as_str(),
                   "description": c.description, "required_context": c.required_context})
        })
        .collect();
    let effects: Vec<Value> = registry
        .effects
        .values()
        .map(|e| {
            json!({"effect_id": e.id.as_str(), "plugin_id": e.plugin.id.as_str(),
                   "description": e.description, "default_params": e.default_params})
        })
        .collect();
    let mut providers: Vec<&provenant_host::registry::ProviderEntry> =
        registry.providers.values().collect();
    providers.sort_by_key(|p| (p.priority, p.id.as_str().to_owned()));
    let provider_list: Vec<Value> = providers
        .iter()
        .map(|p| {
            json!({"provider_id": p.id.as_str(), "plugin_id": p.plugin.id.as_str(),
                   "description": p.description, "priority": p.priority})
        })
        .collect();
    let condition_plugins = by_plugin(
        registry
            .conditions
            .values()
            .map(|c| c.plugin.id.as_str())
            .collect(),
    );
    let effect_plugins = by_plugin(
        registry
            .effects
            .values()
            .map(|e| e.plugin.id.as_str())
            .collect(),
    );
    let provider_plugins = by_plugin(providers.iter().map(|p| p.plugin.id.as_str()).collect());
    axum::Json(json!({
        "registry_locked": registry.is_locked(),
        "conditions": {"total": conditions.len(), "by_plugin": condition_plugins, "list": conditions},
        "effects": {"total": effects.len(), "by_plugin": effect_plugins, "list": effects},
        "simulation_configs": {"total": provider_list.len(), "by_plugin": provider_plugins, "providers": provider_list},
    }))
    .into_response()
}

#[utoipa::path(get, path = "/admin/plugins/{plugin_id}/details", tag = "admin", params(("plugin_id" = String, Path, description = "A plugin id")), responses((status = 200, description = "{plugin_id, name, version, description, author, kind, enabled, permissions, granted_permissions, dependencies, metrics, behavior_extensions: {conditions, effects}}"), (status = 404, description = "Unknown plugin")))]
/// `GET /admin/plugins/{plugin_id}/details`
pub async fn details(
    State(engine): State<Arc<Engine>>,
    Path(plugin_id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(plugin) = engine
        .host
        .plugins()
        .iter()
        .find(|p| p.manifest.id == plugin_id)
    else {
        return Err(unknown_plugin(&plugin_id));
    };
    let m = &plugin.manifest;
    let registry = engine.host.registry();
    let conditions: Vec<&str> = registry
        .conditions
        .values()
        .filter(|c| c.plugin.id.as_str() == plugin_id)
        .map(|c| c.id.as_str())
        .collect();
    let effects: Vec<&str> = registry
        .effects
        .values()
        .filter(|e| e.plugin.id.as_str() == plugin_id)
        .map(|e| e.id.as_str())
        .collect();
    let metrics = metrics_of(&engine, &plugin_id).await?;
    Ok(axum::Json(json!({
        "plugin_id": m.id,
        "name": m.name,
        "version": m.version,
        "description": m.description,
        "author": m.author,
        "kind": m.kind.to_string(),
        "enabled": m.enabled,
        "permissions": m.permissions,
        "granted_permissions": plugin.info.granted.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "dependencies": m.dependencies,
        "metrics": metrics.admin_metrics(),
        "behavior_extensions": {"conditions": conditions, "effects": effects},
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
pub struct ResetQuery {
    plugin_id: Option<String>,
}

#[utoipa::path(post, path = "/admin/plugins/metrics/reset", tag = "admin", params(("plugin_id" = Option<String>, Query, description = "The plugin to reset; all plugins when absent")), responses((status = 200, description = "{status: \"ok\", message, position}: a MetricsReset event was appended"), (status = 404, description = "Unknown plugin")))]
/// `POST /admin/plugins/metrics/reset[?plugin_id=]`: appends a
/// `MetricsReset` event; the counters restart from it (the history stays in
/// the log, and Prometheus counters, which never go down, are not reset).
pub async fn reset(
    State(engine): State<Arc<Engine>>,
    Query(query): Query<ResetQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(id) = &query.plugin_id {
        metrics_of(&engine, id).await?;
    }
    let requested_by = json!({
        "authenticated": !engine.tokens.is_empty(),
        "user_agent": headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok()),
        "requested_by": headers.get("x-requested-by").and_then(|v| v.to_str().ok()),
        "via": "POST /admin/plugins/metrics/reset",
    });
    let mut event = NewEvent::new(
        StreamName::engine(),
        const { EventKind::known(kinds::METRICS_RESET) },
        json!({keys::PLUGIN_ID: query.plugin_id, keys::REQUESTED_BY: requested_by}),
    );
    event.provenance.engine_version = Some(engine.host.engine().version.clone());
    event.provenance.engine_instance = Some(engine.host.engine().instance.clone());
    let positions = engine
        .committer
        .append(vec![event], None, None)
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot record the reset: {e}")))?;
    let position = positions.first().copied().unwrap_or_default();
    let message = match &query.plugin_id {
        Some(id) => format!("metrics of {id} reset (MetricsReset at position {position})"),
        None => format!("metrics of every plugin reset (MetricsReset at position {position})"),
    };
    Ok(
        axum::Json(json!({"status": "ok", "message": message, "position": position}))
            .into_response(),
    )
}

#[utoipa::path(get, path = "/v1/sessions/{world_id}/{session_id}", tag = "game", params(("world_id" = String, Path), ("session_id" = String, Path)), responses((status = 200, description = "{world_id, session_id, flags, relationships, npcs, last_tick, updated_position, updated_at, projection_position} from the sessions projection"), (status = 404, description = "No such session (yet)")))]
/// `GET /v1/sessions/{world_id}/{session_id}`
pub async fn session(
    State(engine): State<Arc<Engine>>,
    Path((world_id, session_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let key = session_key(&world_id, &session_id);
    let stored = engine
        .log
        .projection_rows(names::SESSIONS, std::slice::from_ref(&key))
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot read the sessions: {e}")))?;
    let Some((position, json)) = stored.and_then(|s| {
        let position = s.position;
        s.rows.into_iter().next().map(|(_, json)| (position, json))
    }) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no session {session_id:?} in world {world_id:?} (yet: the sessions projection may still be catching up)"
            ),
        ));
    };
    let state: SessionState = serde_json::from_str(&json).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the session row does not read ({e}); rebuild it with `provenant projections rebuild sessions`"),
        )
    })?;
    let mut body = serde_json::to_value(&state)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if let Some(object) = body.as_object_mut() {
        object.insert("projection_position".into(), json!(position));
    }
    Ok(axum::Json(body).into_response())
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[utoipa::path(get, path = "/admin/cluster", tag = "admin", responses((status = 200, description = "{partitions, head, instances, partition_leases: [{partition, lease: {owner, epoch, expires_at, acquired_at, expired}}], relay: {lease, lag}, projections: {lease, lag}}"), (status = 503, description = "The log is unreachable")))]
/// `GET /admin/cluster`: the engines sharing this log and who works what.
pub async fn cluster(State(engine): State<Arc<Engine>>) -> Result<Response, ApiError> {
    let status = super::cluster_status::read(&engine.log, &engine.relay_checkpoint)
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot read the cluster's state: {e}")))?;
    Ok(axum::Json(status).into_response())
}

//! Per-plugin metrics and health, folded from the plugin-call events.
//!
//! [`PluginMetricsProjection`] keeps one row per plugin (key: the plugin id,
//! value: the JSON of a [`PluginMetrics`]). A row holds three views of the
//! plugin's calls:
//!
//! - **since the last reset** ([`Counters`], recent errors): what the admin
//!   API answers, in the original plugin system's shape
//!   ([`PluginMetrics::admin_metrics`], [`PluginMetrics::admin_health`]);
//!   `MetricsReset` clears them;
//! - **lifetime** (calls by kind and outcome, permission denials, duration
//!   histograms): never reset, for Prometheus counters;
//! - **the window**: the newest calls (at most [`HealthConfig::window_calls`])
//!   whose game time is within [`HealthConfig::window`] of the latest game
//!   time this plugin was seen at in the same world. Health and latency
//!   percentiles are computed over it, so a plugin that recovers becomes
//!   healthy again.
//!
//! Samples that fall out of the window are dropped as soon as their world's
//! clock moves past them, so every stored sample is in the window and a
//! reader of a row needs no configuration to compute rates or percentiles.
//!
//! Everything a later `apply` reads is in the rows (the window, the world
//! clocks, the health state and the marker of a permission denial waiting
//! for its call), so restoring from rows and going on gives the same rows as
//! applying every event from position 0. Only event fields are read, never
//! the clock.
//!
//! The parts, one job each: `config` (how health is judged, the bounds of
//! a row), `outcome` (how a call ended), `text` (cut texts, timestamps),
//! `rates` (failure rates and thresholds), `window` (the sliding health
//! window), `latency` (percentiles over it), `lifetime` (never-reset
//! totals and histograms), `health` (the judgement), `decode` (reading
//! only the needed payload fields from the payload's text), `call` (a call
//! event read), `model` (the row and its readers), `admin` (the admin
//! API's answers), `fold` (an event folded into a row), `remote` (a remote plugin's
//! circuit and failures by reason) and `projection`
//! (the [`Projection`](crate::Projection)).

mod admin;
mod call;
mod config;
mod decode;
mod fold;
mod health;
mod latency;
mod lifetime;
mod model;
mod outcome;
mod projection;
mod rates;
mod remote;
mod text;
mod window;

#[cfg(test)]
mod tests;

pub use config::{
    CONDITION_FAILURE_THRESHOLD_PCT, EFFECT_FAILURE_THRESHOLD_PCT,
    EVENT_HANDLER_FAILURE_THRESHOLD_PCT, HealthConfig, RECENT_ERRORS, REQUEST_ERROR_THRESHOLD_PCT,
};
pub use health::{Health, HealthState};
pub use latency::Latency;
pub use lifetime::{DURATION_BUCKETS, DurationHistogram};
pub use model::{Counters, PluginMetrics, RecentError, ResetMark};
pub use outcome::{ErrorType, Outcome};
pub use projection::PluginMetricsProjection;
pub use rates::{Rate, WindowRates};

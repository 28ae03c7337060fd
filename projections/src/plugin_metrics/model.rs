//! The per-plugin row, [`PluginMetrics`], and what it answers: the counters
//! and recent errors since the last reset, health and the window, the
//! lifetime totals and the manifest.

use std::collections::{BTreeMap, VecDeque};

use provenant_events::CallKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::health::{Health, HealthSlot, HealthState};
use super::latency::Latency;
use super::lifetime::{DurationHistogram, Lifetime};
use super::outcome::{ErrorType, Outcome};
use super::rates::WindowRates;
use super::text::strings_of;
use super::window::Window;

/// The counters since the last reset (or since the start).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Plugin calls, every outcome.
    pub requests: u64,
    /// Calls that did not end ok.
    pub errors: u64,
    /// The sum of the calls' durations (waited time for timeouts).
    pub total_time_us: u64,
    /// `recorded_at` of the latest call, RFC 3339.
    pub last_request: Option<String>,
    pub condition_evaluations: u64,
    pub condition_failures: u64,
    pub effect_applications: u64,
    pub effect_failures: u64,
    pub event_handler_calls: u64,
    pub event_handler_failures: u64,
    pub timeouts: u64,
    pub panics: u64,
    /// Permission denials by the denied permission.
    pub permission_denials: BTreeMap<String, u64>,
}

/// One of the last [`RECENT_ERRORS`](super::config::RECENT_ERRORS) calls that did not end ok.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentError {
    /// `recorded_at` of the call's event, RFC 3339.
    pub timestamp: String,
    /// The call event's log position.
    pub position: u64,
    pub error_type: ErrorType,
    pub error_message: String,
    /// `{call, id, world_id, session_id, tick, call_index, duration_us}`,
    /// plus `denied_permissions` for a denied call and `deadline_ms` for a
    /// timeout.
    pub context: Value,
}

/// The last reset of the since-reset metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResetMark {
    /// `recorded_at` of the `MetricsReset` event, RFC 3339.
    pub at: String,
    pub position: u64,
    pub requested_by: Value,
}

/// The latest `PluginLoaded` of the plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Loaded {
    pub(super) position: u64,
    pub(super) at: String,
    pub(super) manifest: Value,
    pub(super) granted: Value,
    pub(super) registered: Value,
}

/// Permission denials of one plugin call, waiting for the call's event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct PendingDenial {
    pub(super) tick_id: Option<Uuid>,
    pub(super) call_index: Option<u64>,
    pub(super) position: u64,
    pub(super) permissions: Vec<String>,
}

/// A remote plugin's circuit and its failed calls by reason, lifetime
/// (never reset); folded in `remote`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Remote {
    /// Whether the circuit is open.
    pub open: bool,
    /// `recorded_at` of its last change, RFC 3339.
    pub since: Option<String>,
    pub times_opened: u64,
    /// Failed calls that say why (remote plugins' calls), by reason.
    pub failures_by_reason: BTreeMap<String, u64>,
}

/// One plugin's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginMetrics {
    pub(super) plugin_id: String,
    pub(super) loaded: Option<Loaded>,
    pub(super) counters: Counters,
    /// Oldest first.
    pub(super) recent_errors: VecDeque<RecentError>,
    pub(super) reset: Option<ResetMark>,
    pub(super) lifetime: Lifetime,
    pub(super) window: Window,
    pub(super) health: HealthSlot,
    pub(super) pending_denial: Option<PendingDenial>,
    /// A remote plugin's circuit and failures by reason (absent from rows
    /// written before remote plugins).
    #[serde(default)]
    pub(super) remote: Remote,
}

impl PluginMetrics {
    /// A plugin with nothing recorded (loaded, not yet seen in the log).
    pub fn empty(plugin_id: &str) -> Self {
        Self::new(plugin_id)
    }

    pub(super) fn new(plugin_id: &str) -> Self {
        PluginMetrics {
            plugin_id: plugin_id.to_owned(),
            loaded: None,
            counters: Counters::default(),
            recent_errors: VecDeque::new(),
            reset: None,
            lifetime: Lifetime::default(),
            window: Window::default(),
            health: HealthSlot::default(),
            pending_denial: None,
            remote: Remote::default(),
        }
    }

    pub fn plugin_id(&self) -> &str {
        &self.plugin_id
    }

    // --- since the last reset -------------------------------------------

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The last [`RECENT_ERRORS`](super::config::RECENT_ERRORS) failed calls, oldest first.
    pub fn recent_errors(&self) -> impl Iterator<Item = &RecentError> {
        self.recent_errors.iter()
    }

    pub fn last_reset(&self) -> Option<&ResetMark> {
        self.reset.as_ref()
    }

    // --- health and the window ----------------------------------------

    pub fn health(&self) -> &Health {
        self.health.view()
    }

    pub fn health_state(&self) -> HealthState {
        self.health.state
    }

    /// The failure rates over the window.
    pub fn window_rates(&self) -> WindowRates {
        self.window.rates()
    }

    /// p50, p95 and p99 of the window's call durations, nearest rank
    /// (sorted durations, index `ceil(p/100 * n) - 1`).
    pub fn latency(&self) -> Latency {
        Latency::nearest_rank(self.window.samples.iter().map(|s| s.us).collect())
    }

    // --- lifetime (Prometheus) ----------------------------------------

    /// Lifetime calls by kind and outcome.
    pub fn lifetime_calls(&self) -> impl Iterator<Item = (CallKind, Outcome, u64)> + '_ {
        self.lifetime
            .calls
            .iter()
            .flat_map(|(k, by)| by.iter().map(move |(o, n)| (*k, *o, *n)))
    }

    /// Lifetime permission denials by permission.
    pub fn lifetime_denials(&self) -> impl Iterator<Item = (&str, u64)> {
        self.lifetime
            .permission_denials
            .iter()
            .map(|(p, n)| (p.as_str(), *n))
    }

    /// Lifetime duration histograms by call kind.
    pub fn histograms(&self) -> impl Iterator<Item = (CallKind, &DurationHistogram)> {
        self.lifetime.durations.iter().map(|(k, h)| (*k, h))
    }

    pub fn histogram(&self, kind: CallKind) -> Option<&DurationHistogram> {
        self.lifetime.durations.get(&kind)
    }

    // --- manifest -------------------------------------------------------

    /// The manifest of the latest `PluginLoaded`.
    pub fn manifest(&self) -> Option<&Value> {
        self.loaded.as_ref().map(|l| &l.manifest)
    }

    /// The granted permissions of the latest `PluginLoaded`.
    pub fn granted(&self) -> Option<&Value> {
        self.loaded.as_ref().map(|l| &l.granted)
    }

    /// What the plugin registered (`{conditions, effects,
    /// event_subscriptions, simulation_configs}`).
    pub fn registered(&self) -> Option<&Value> {
        self.loaded.as_ref().map(|l| &l.registered)
    }

    /// The log position of the latest `PluginLoaded`.
    pub fn loaded_position(&self) -> Option<u64> {
        self.loaded.as_ref().map(|l| l.position)
    }

    /// A string field of the manifest (`name`, `version`, `description`,
    /// `author`, `kind`).
    pub fn manifest_str(&self, field: &str) -> Option<&str> {
        self.manifest()?.get(field)?.as_str()
    }

    /// The manifest's `enabled`; true when absent.
    pub fn enabled(&self) -> bool {
        self.manifest()
            .and_then(|m| m.get("enabled"))
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }

    /// The string items of the manifest's list `field` (`permissions`,
    /// `dependencies`).
    pub fn manifest_list(&self, field: &str) -> Vec<&str> {
        strings_of(self.manifest().and_then(|m| m.get(field)))
    }

    /// The string items of the registered list `field` (`conditions`,
    /// `effects`, ...).
    pub fn registered_list(&self, field: &str) -> Vec<&str> {
        strings_of(self.registered().and_then(|r| r.get(field)))
    }
}

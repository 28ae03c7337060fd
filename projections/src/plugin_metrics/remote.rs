//! A remote plugin's circuit (`PluginCircuitOpened`, `PluginCircuitClosed`)
//! and its failed calls by reason (`PluginCallFailed.reason`: `status`,
//! `unreachable`, `bad_reply`, `too_large`, `no_responders`, and the calls
//! not sent, `circuit_open` and `rate_limited`).

use provenant_events::event::format_timestamp;
use provenant_events::{Event, keys, kinds};
use serde_json::{Value, json};

use super::config::MAX_KEY_CHARS;
use super::model::PluginMetrics;

impl PluginMetrics {
    /// Folds a circuit event.
    pub(super) fn record_circuit(&mut self, event: &Event) {
        let r = &mut self.remote;
        r.open = event.kind.as_str() == kinds::PLUGIN_CIRCUIT_OPENED;
        if r.open {
            r.times_opened = r.times_opened.saturating_add(1);
        }
        r.since = Some(format_timestamp(&event.recorded_at));
    }

    /// Counts a failed call's `reason`, when it gives one.
    pub(super) fn record_failure_reason(&mut self, event: &Event) {
        if let Some(Value::String(reason)) = event.payload.value().get(keys::REASON) {
            let reason: String = reason.chars().take(MAX_KEY_CHARS).collect();
            let n = self.remote.failures_by_reason.entry(reason).or_insert(0);
            *n = n.saturating_add(1);
        }
    }

    /// Whether the plugin is remote (its manifest's kind) or ever had a
    /// circuit.
    pub fn is_remote(&self) -> bool {
        self.remote.times_opened > 0
            || self
                .loaded
                .as_ref()
                .is_some_and(|l| l.manifest["kind"] == "remote_feature")
    }

    /// Whether its circuit is open now.
    pub fn circuit_open(&self) -> bool {
        self.remote.open
    }

    /// Lifetime failed calls by reason.
    pub fn failures_by_reason(&self) -> impl Iterator<Item = (&str, u64)> {
        self.remote
            .failures_by_reason
            .iter()
            .map(|(r, n)| (r.as_str(), *n))
    }

    /// The circuit, as the health endpoint shows it.
    pub(super) fn circuit_json(&self) -> Value {
        json!({
            "state": if self.remote.open { "open" } else { "closed" },
            "since": self.remote.since,
            "times_opened": self.remote.times_opened,
            "not_sent": {
                "circuit_open": self.remote.failures_by_reason.get("circuit_open").copied().unwrap_or(0),
                "rate_limited": self.remote.failures_by_reason.get("rate_limited").copied().unwrap_or(0),
            },
        })
    }
}

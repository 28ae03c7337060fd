//! [`PluginMetricsProjection`]: the plugins' rows, by plugin id, and the
//! [`Projection`] that folds the log's events into them.

use std::collections::{BTreeMap, BTreeSet};

use provenant_events::{Event, keys, kinds};
use serde_json::Value;

use crate::projection::Projection;

use super::call::Call;
use super::config::HealthConfig;
use super::model::PluginMetrics;

/// The plugin of an event: its `plugin_id`, else its provenance's.
fn plugin_of(event: &Event) -> Option<&str> {
    event
        .plugin_id
        .as_ref()
        .or(event.provenance.plugin_id.as_ref())
        .map(|p| p.as_str())
}

/// Per-plugin metrics and health; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct PluginMetricsProjection {
    config: HealthConfig,
    plugins: BTreeMap<String, PluginMetrics>,
    dirty: BTreeSet<String>,
}

impl PluginMetricsProjection {
    pub const NAME: &'static str = crate::names::PLUGIN_METRICS;
    pub const VERSION: u32 = 1;

    pub fn new(config: HealthConfig) -> Self {
        PluginMetricsProjection {
            config,
            plugins: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// Every plugin seen, by id.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginMetrics> {
        self.plugins.values()
    }

    pub fn get(&self, plugin_id: &str) -> Option<&PluginMetrics> {
        self.plugins.get(plugin_id)
    }

    /// The plugin's metrics, marked changed (made if new). The id is
    /// copied only the first time.
    fn entry(&mut self, plugin_id: &str) -> Option<&mut PluginMetrics> {
        if !self.dirty.contains(plugin_id) {
            self.dirty.insert(plugin_id.to_owned());
        }
        if !self.plugins.contains_key(plugin_id) {
            self.plugins
                .insert(plugin_id.to_owned(), PluginMetrics::new(plugin_id));
        }
        self.plugins.get_mut(plugin_id)
    }

    fn on_call(&mut self, event: &Event) {
        let Some(plugin) = plugin_of(event) else {
            return;
        };
        let config = self.config;
        let kind = event.kind.as_str();
        let Some(m) = self.entry(plugin) else {
            return;
        };
        // The denials of a call come right before its event: any call event
        // of the plugin ends the wait, and only a failure is denied.
        let pending = m.pending_denial.take();
        let denied = pending
            .filter(|p| {
                kind == kinds::PLUGIN_CALL_FAILED
                    && p.tick_id == event.provenance.tick_id
                    && p.call_index == event.provenance.call_index
                    && p.position < event.position
            })
            .map(|p| p.permissions);
        if let Some(call) = Call::read(event, kind, denied) {
            m.record_call(&config, event, call);
        }
        if kind == kinds::PLUGIN_CALL_FAILED {
            m.record_failure_reason(event);
        }
    }

    fn on_circuit(&mut self, event: &Event) {
        if let Some(plugin) = plugin_of(event)
            && let Some(m) = self.entry(plugin)
        {
            m.record_circuit(event);
        }
    }

    fn on_denied(&mut self, event: &Event) {
        if let Some(plugin) = plugin_of(event)
            && let Some(m) = self.entry(plugin)
        {
            m.record_denial(event);
        }
    }

    fn on_loaded(&mut self, event: &Event) {
        if let Some(plugin) = plugin_of(event)
            && let Some(m) = self.entry(plugin)
        {
            m.record_loaded(event);
        }
    }

    fn on_reset(&mut self, event: &Event) {
        let payload = event.payload.value();
        let requested_by = payload
            .get(keys::REQUESTED_BY)
            .cloned()
            .unwrap_or(Value::Null);
        match payload.get(keys::PLUGIN_ID) {
            // One plugin; a plugin not seen yet has nothing to reset.
            Some(Value::String(id)) => {
                if let Some(m) = self.plugins.get_mut(id.as_str()) {
                    m.record_reset(event, requested_by);
                    self.dirty.insert(id.clone());
                }
            }
            // Every plugin seen so far.
            Some(Value::Null) => {
                for (id, m) in &mut self.plugins {
                    m.record_reset(event, requested_by.clone());
                    self.dirty.insert(id.clone());
                }
            }
            // Missing or not a string: not a reset this build can read.
            _ => {}
        }
    }
}

impl Projection for PluginMetricsProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        Self::VERSION
    }

    fn restore(&mut self, rows: Vec<(String, String)>) -> Result<(), String> {
        let mut plugins = BTreeMap::new();
        for (key, text) in rows {
            let metrics: PluginMetrics = serde_json::from_str(&text)
                .map_err(|e| format!("plugin_metrics row {key:?} does not decode: {e}"))?;
            if metrics.plugin_id != key {
                return Err(format!(
                    "plugin_metrics row {key:?} holds plugin {:?}",
                    metrics.plugin_id
                ));
            }
            plugins.insert(key, metrics);
        }
        self.plugins = plugins;
        self.dirty.clear();
        Ok(())
    }

    fn apply(&mut self, event: &Event) {
        match event.kind.as_str() {
            kinds::PLUGIN_LOADED => self.on_loaded(event),
            kinds::PERMISSION_DENIED => self.on_denied(event),
            kinds::METRICS_RESET => self.on_reset(event),
            kinds::PLUGIN_CIRCUIT_OPENED | kinds::PLUGIN_CIRCUIT_CLOSED => self.on_circuit(event),
            kind if kinds::records_a_call(kind) => self.on_call(event),
            _ => {}
        }
    }

    fn take_changes(&mut self) -> Vec<(String, Option<String>)> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut out = Vec::with_capacity(dirty.len());
        for key in dirty {
            let Some(metrics) = self.plugins.get(&key) else {
                out.push((key, None));
                continue;
            };
            match serde_json::to_string(metrics) {
                Ok(text) => out.push((key, Some(text))),
                Err(error) => {
                    tracing::error!(plugin = %key, %error, "plugin metrics row does not encode");
                }
            }
        }
        out
    }
}

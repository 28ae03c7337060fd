//! Folding one event into a plugin's row: a call, a permission denial, a
//! metrics reset or a `PluginLoaded`.

use provenant_events::event::format_timestamp;
use provenant_events::{CallKind, Event, keys};
use serde_json::Value;

use super::call::Call;
use super::config::{HealthConfig, MAX_KEY_CHARS, MAX_PENDING_PERMISSIONS, RECENT_ERRORS};
use super::decode::CallFields;
use super::health::{Health, HealthSlot, HealthState, recheck};
use super::model::{Counters, Loaded, PendingDenial, PluginMetrics, RecentError, ResetMark};
use super::outcome::ErrorType;
use super::text::{clip, write_time};
use super::window::Window;

impl PluginMetrics {
    // --- folding ------------------------------------------------------------

    pub(super) fn record_call(&mut self, config: &HealthConfig, event: &Event, call: Call) {
        let failed = !call.outcome.is_ok();
        let c = &mut self.counters;
        inc(&mut c.requests);
        if failed {
            inc(&mut c.errors);
        }
        c.total_time_us = c.total_time_us.saturating_add(call.duration_us);
        // `recorded_at` is written once per call, into the buffer of the
        // previous `last_request`; the other texts of this call copy it.
        let last_request = c.last_request.get_or_insert_with(String::new);
        last_request.clear();
        write_time(last_request, &event.recorded_at);
        let at: &str = last_request;
        let (calls, failures) = match call.kind {
            CallKind::Condition => (
                Some(&mut c.condition_evaluations),
                Some(&mut c.condition_failures),
            ),
            CallKind::Effect => (
                Some(&mut c.effect_applications),
                Some(&mut c.effect_failures),
            ),
            CallKind::EventHandler => (
                Some(&mut c.event_handler_calls),
                Some(&mut c.event_handler_failures),
            ),
            CallKind::SimulationConfig | CallKind::Other => (None, None),
        };
        if let Some(n) = calls {
            inc(n);
        }
        if let (true, Some(n)) = (failed, failures) {
            inc(n);
        }
        match call.error_type {
            Some(ErrorType::Timeout) => inc(&mut c.timeouts),
            Some(ErrorType::Panic) => inc(&mut c.panics),
            _ => {}
        }
        if let Some(error_type) = call.error_type {
            self.recent_errors.push_back(RecentError {
                timestamp: at.to_owned(),
                position: event.position,
                error_type,
                error_message: call.message,
                context: call.context,
            });
            while self.recent_errors.len() > RECENT_ERRORS {
                self.recent_errors.pop_front();
            }
        }

        let by_outcome = self.lifetime.calls.entry(call.kind).or_default();
        inc(by_outcome.entry(call.outcome).or_insert(0));
        self.lifetime
            .durations
            .entry(call.kind)
            .or_default()
            .observe(call.duration_us);

        let world = event.world_id.as_ref().map_or("", |w| w.as_str());
        let rates = self.window.add(
            config,
            world,
            event.occurred_at.timestamp_micros(),
            (call.kind, call.outcome, call.duration_us),
        );
        recheck(&mut self.health, rates, config, event.position, at);
    }

    pub(super) fn record_denial(&mut self, event: &Event) {
        let payload = CallFields::of(event);
        let permission = payload
            .permission
            .as_str()
            .or_else(|| event.provenance.permission.as_ref().map(|p| p.as_str()))
            .unwrap_or("unknown");
        let permission = clip(permission, MAX_KEY_CHARS);
        inc(self
            .counters
            .permission_denials
            .entry(permission.clone())
            .or_insert(0));
        inc(self
            .lifetime
            .permission_denials
            .entry(permission.clone())
            .or_insert(0));
        let (tick_id, call_index) = (event.provenance.tick_id, event.provenance.call_index);
        match &mut self.pending_denial {
            Some(p) if p.tick_id == tick_id && p.call_index == call_index => {
                p.position = event.position;
                if p.permissions.len() < MAX_PENDING_PERMISSIONS {
                    p.permissions.push(permission);
                }
            }
            pending => {
                *pending = Some(PendingDenial {
                    tick_id,
                    call_index,
                    position: event.position,
                    permissions: vec![permission],
                });
            }
        }
    }

    pub(super) fn record_reset(&mut self, event: &Event, requested_by: Value) {
        let at = format_timestamp(&event.recorded_at);
        self.counters = Counters::default();
        self.recent_errors.clear();
        self.window = Window::default();
        self.health = HealthSlot::from(Health {
            state: HealthState::Unknown,
            reason: "metrics reset; no plugin calls since".to_owned(),
            since: Some(at.clone()),
            since_position: Some(event.position),
            last_check: Some(at.clone()),
        });
        self.reset = Some(ResetMark {
            at,
            position: event.position,
            requested_by,
        });
    }

    pub(super) fn record_loaded(&mut self, event: &Event) {
        let payload = event.payload.value();
        let field = |k: &str| payload.get(k).cloned().unwrap_or(Value::Null);
        self.loaded = Some(Loaded {
            position: event.position,
            at: format_timestamp(&event.recorded_at),
            manifest: field(keys::MANIFEST),
            granted: field(keys::GRANTED),
            registered: field(keys::REGISTERED),
        });
    }
}

fn inc(n: &mut u64) {
    *n = n.saturating_add(1);
}

//! Health judgement: a plugin's [`HealthState`] and [`Health`], judged from
//! the rates over its window against the thresholds.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::config::HealthConfig;
use super::rates::WindowRates;
use super::text::set_text;

/// A plugin's health, judged over the window.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// No rate has enough samples to be judged.
    #[default]
    Unknown = 0,
    /// At least one rate judged, none above half its threshold.
    Healthy = 1,
    /// A judged rate is above half its threshold.
    Degraded = 2,
    /// A judged rate is above its threshold.
    Unhealthy = 3,
}

impl HealthState {
    /// The value of a Prometheus gauge: 0 unknown, 1 healthy, 2 degraded,
    /// 3 unhealthy.
    pub fn as_gauge(self) -> f64 {
        f64::from(self as u8)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Unknown => "unknown",
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Unhealthy => "unhealthy",
        }
    }

    /// The original's `is_healthy`: anything but unhealthy.
    pub fn is_healthy(self) -> bool {
        self != HealthState::Unhealthy
    }
}

/// The health of a plugin and when it last changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub state: HealthState,
    /// A readable sentence saying why.
    pub reason: String,
    /// `recorded_at` of the event where the state last changed.
    pub since: Option<String>,
    pub since_position: Option<u64>,
    /// `recorded_at` of the last recomputation.
    pub last_check: Option<String>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            state: HealthState::Unknown,
            reason: "no plugin calls yet".to_owned(),
            since: None,
            since_position: None,
            last_check: None,
        }
    }
}

/// Why a plugin has its health: a sentence as stored, or the rates it is
/// judged from (the sentence is made only when someone reads it).
#[derive(Debug, Clone, PartialEq)]
enum Reason {
    Text(String),
    Judged {
        rates: WindowRates,
        min_samples: usize,
    },
}

impl Reason {
    fn text(&self) -> Cow<'_, str> {
        match self {
            Reason::Text(text) => Cow::Borrowed(text),
            Reason::Judged { rates, min_samples } => Cow::Owned(judge(rates, *min_samples).1),
        }
    }
}

/// A row's [`Health`] as folded: the same fields, except that the reason
/// is kept as what it is made from, and [`Health`] is made on first read
/// (and forgotten at the next change). Encoded and decoded as [`Health`].
#[derive(Clone)]
pub(super) struct HealthSlot {
    pub(super) state: HealthState,
    reason: Reason,
    pub(super) since: Option<String>,
    pub(super) since_position: Option<u64>,
    pub(super) last_check: Option<String>,
    view: OnceLock<Health>,
}

impl HealthSlot {
    pub(super) fn view(&self) -> &Health {
        self.view.get_or_init(|| Health {
            state: self.state,
            reason: self.reason.text().into_owned(),
            since: self.since.clone(),
            since_position: self.since_position,
            last_check: self.last_check.clone(),
        })
    }

    pub(super) fn reason(&self) -> Cow<'_, str> {
        match self.view.get() {
            Some(health) => Cow::Borrowed(&health.reason),
            None => self.reason.text(),
        }
    }

    /// Makes the slot changeable: the made [`Health`] is forgotten.
    fn edit(&mut self) -> &mut Self {
        if self.view.get().is_some() {
            self.view = OnceLock::new();
        }
        self
    }
}

impl From<Health> for HealthSlot {
    fn from(h: Health) -> Self {
        HealthSlot {
            state: h.state,
            reason: Reason::Text(h.reason),
            since: h.since,
            since_position: h.since_position,
            last_check: h.last_check,
            view: OnceLock::new(),
        }
    }
}

impl Default for HealthSlot {
    fn default() -> Self {
        HealthSlot::from(Health::default())
    }
}

impl PartialEq for HealthSlot {
    fn eq(&self, other: &Self) -> bool {
        self.state == other.state
            && self.since == other.since
            && self.since_position == other.since_position
            && self.last_check == other.last_check
            && (self.reason == other.reason || self.reason() == other.reason())
    }
}

impl fmt::Debug for HealthSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.view().fmt(f)
    }
}

impl Serialize for HealthSlot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// [`Health`]'s encoding, borrowed.
        #[derive(Serialize)]
        #[serde(rename = "Health")]
        struct Out<'a> {
            state: HealthState,
            reason: &'a str,
            since: &'a Option<String>,
            since_position: Option<u64>,
            last_check: &'a Option<String>,
        }
        Out {
            state: self.state,
            reason: &self.reason(),
            since: &self.since,
            since_position: self.since_position,
            last_check: &self.last_check,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for HealthSlot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Health::deserialize(deserializer).map(HealthSlot::from)
    }
}

/// Recomputes health from the `rates` over the window, at the event at
/// `position`, recorded at `at`. The reason's sentence is made when it is read.
pub(super) fn recheck(
    health: &mut HealthSlot,
    rates: WindowRates,
    config: &HealthConfig,
    position: u64,
    at: &str,
) {
    let state = judge_state(&rates, config.min_samples);
    let health = health.edit();
    if state != health.state {
        set_text(&mut health.since, at);
        health.since_position = Some(position);
    }
    health.state = state;
    health.reason = Reason::Judged {
        rates,
        min_samples: config.min_samples,
    };
    set_text(&mut health.last_check, at);
}

/// The state [`judge`] gives, without its sentence.
fn judge_state(rates: &WindowRates, min_samples: usize) -> HealthState {
    let min = u64::try_from(min_samples).unwrap_or(u64::MAX);
    let mut state = HealthState::Unknown;
    for (r, _, pct, _) in rates.judged() {
        if r.total <= min {
            continue;
        }
        if r.above_pct(pct) {
            return HealthState::Unhealthy;
        }
        if r.above_half_pct(pct) {
            state = HealthState::Degraded;
        } else if state == HealthState::Unknown {
            state = HealthState::Healthy;
        }
    }
    state
}

/// Judges the rates: the state and a sentence saying why.
fn judge(rates: &WindowRates, min_samples: usize) -> (HealthState, String) {
    let min = u64::try_from(min_samples).unwrap_or(u64::MAX);
    let all = rates.judged();
    let judged: Vec<_> = all.iter().filter(|(r, ..)| r.total > min).collect();
    if judged.is_empty() {
        return (
            HealthState::Unknown,
            format!(
                "not enough calls in the window to judge a rate \
                 (more than {min_samples} of a kind needed, {} calls in the window)",
                rates.request_errors.total
            ),
        );
    }
    let over: Vec<String> = judged
        .iter()
        .filter(|(r, _, pct, _)| r.above_pct(*pct))
        .map(|(r, name, pct, unit)| {
            format!(
                "{name} {:.2} > {:.2} over the last {} {unit}",
                r.value(),
                *pct as f64 / 100.0,
                r.total
            )
        })
        .collect();
    if !over.is_empty() {
        return (HealthState::Unhealthy, over.join("; "));
    }
    let half: Vec<String> = judged
        .iter()
        .filter(|(r, _, pct, _)| r.above_half_pct(*pct))
        .map(|(r, name, pct, unit)| {
            format!(
                "{name} {:.2} > {:.2} (half of {:.2}) over the last {} {unit}",
                r.value(),
                *pct as f64 / 200.0,
                *pct as f64 / 100.0,
                r.total
            )
        })
        .collect();
    if !half.is_empty() {
        return (HealthState::Degraded, half.join("; "));
    }
    let fine: Vec<String> = judged
        .iter()
        .map(|(r, name, _, unit)| {
            format!("{name} {:.2} over the last {} {unit}", r.value(), r.total)
        })
        .collect();
    (
        HealthState::Healthy,
        format!(
            "every judged rate is at most half its threshold: {}",
            fine.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::plugin_metrics::config::HealthConfig;
    use crate::plugin_metrics::health::{HealthState, judge, judge_state};
    use crate::plugin_metrics::rates::{Rate, WindowRates};
    use crate::plugin_metrics::text::clip;

    #[test]
    fn health_config_defaults() {
        let c = HealthConfig::default();
        assert_eq!(c.window, chrono::Duration::minutes(5));
        assert_eq!((c.window_calls, c.min_samples), (200, 10));
        assert_eq!(HealthState::Degraded.as_gauge(), 2.0);
        assert_eq!(HealthState::Unknown.as_str(), "unknown");
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(clip("hé", 2), "hé");
    }

    #[test]
    fn the_state_alone_is_the_state_of_the_judgement() {
        let rate = |failures, total| Rate { failures, total };
        let mut seen = BTreeSet::new();
        for total in [0u64, 3, 4, 10, 11, 12, 20] {
            for failures in 0..=total {
                for (other_failures, other_total) in [(0, 0), (0, 12), (2, 12), (7, 12)] {
                    let rates = WindowRates {
                        request_errors: rate(failures + other_failures, total + other_total),
                        condition_failures: rate(failures, total),
                        effect_failures: rate(other_failures, other_total),
                        event_handler_failures: rate(0, total / 2),
                    };
                    for min in [0usize, 3, 10] {
                        let (state, _) = judge(&rates, min);
                        assert_eq!(judge_state(&rates, min), state, "{rates:?} {min}");
                        seen.insert(state);
                    }
                }
            }
        }
        assert_eq!(seen.len(), 4);
    }
}

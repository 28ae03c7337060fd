//! Failure rates over the window ([`Rate`], [`WindowRates`]) and the
//! threshold each is judged against.

use super::config::{
    CONDITION_FAILURE_THRESHOLD_PCT, EFFECT_FAILURE_THRESHOLD_PCT,
    EVENT_HANDLER_FAILURE_THRESHOLD_PCT, REQUEST_ERROR_THRESHOLD_PCT,
};

/// A failure rate over the window: `failures` of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rate {
    pub failures: u64,
    pub total: u64,
}

impl Rate {
    /// `failures / total`, 0.0 when there were no calls.
    pub fn value(self) -> f64 {
        ratio(self.failures, self.total)
    }

    /// Whether the rate is above `pct` percent (exact, in integers).
    pub(super) fn above_pct(self, pct: u64) -> bool {
        u128::from(self.failures) * 100 > u128::from(self.total) * u128::from(pct)
    }

    /// Whether the rate is above half of `pct` percent.
    pub(super) fn above_half_pct(self, pct: u64) -> bool {
        u128::from(self.failures) * 200 > u128::from(self.total) * u128::from(pct)
    }
}

/// The four rates health is judged on, over the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowRates {
    /// Non-ok calls of all calls.
    pub request_errors: Rate,
    pub condition_failures: Rate,
    pub effect_failures: Rate,
    pub event_handler_failures: Rate,
}

impl WindowRates {
    /// (rate, name, threshold in percent, what the samples are).
    pub(super) fn judged(&self) -> [(Rate, &'static str, u64, &'static str); 4] {
        [
            (
                self.request_errors,
                "request error rate",
                REQUEST_ERROR_THRESHOLD_PCT,
                "calls",
            ),
            (
                self.condition_failures,
                "condition failure rate",
                CONDITION_FAILURE_THRESHOLD_PCT,
                "condition calls",
            ),
            (
                self.effect_failures,
                "effect failure rate",
                EFFECT_FAILURE_THRESHOLD_PCT,
                "effect calls",
            ),
            (
                self.event_handler_failures,
                "event handler failure rate",
                EVENT_HANDLER_FAILURE_THRESHOLD_PCT,
                "event handler calls",
            ),
        ]
    }
}

pub(super) fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

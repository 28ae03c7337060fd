//! Lifetime totals, never reset (for Prometheus): calls by kind and outcome,
//! permission denials, and call duration histograms.

use std::collections::BTreeMap;

use provenant_events::CallKind;
use serde::{Deserialize, Serialize};

use super::outcome::Outcome;

/// The upper bounds, in seconds, of the call duration histogram's buckets
/// (a last `+Inf` bucket is implied).
pub const DURATION_BUCKETS: [f64; 16] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0,
];

/// [`DURATION_BUCKETS`] in microseconds: durations are compared as integers.
const DURATION_BUCKETS_US: [u64; 16] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000,
];

/// A duration histogram with the bounds of [`DURATION_BUCKETS`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DurationHistogram {
    /// Per-bucket counts, NOT cumulative: `counts[i]` counts the durations
    /// `d` with `DURATION_BUCKETS[i-1] < d <= DURATION_BUCKETS[i]`;
    /// `counts[16]` counts those above the last bound (`+Inf`).
    counts: [u64; 17],
    /// Per-bucket sums (microseconds), so that a bucket's observations can
    /// be re-recorded at their mean (which lies in the bucket) by an
    /// exporter that only records observations.
    sums_us: [u64; 17],
    count: u64,
    sum_us: u64,
}

impl DurationHistogram {
    pub(super) fn observe(&mut self, us: u64) {
        let bucket = DURATION_BUCKETS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(DURATION_BUCKETS_US.len());
        if let Some(c) = self.counts.get_mut(bucket) {
            *c = c.saturating_add(1);
        }
        if let Some(sum) = self.sums_us.get_mut(bucket) {
            *sum = sum.saturating_add(us);
        }
        self.count = self.count.saturating_add(1);
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// The buckets' upper bounds in seconds (`+Inf` not included).
    pub fn bounds(&self) -> &'static [f64; 16] {
        &DURATION_BUCKETS
    }

    /// Non-cumulative counts, one per bound plus the last one for `+Inf`.
    pub fn counts(&self) -> &[u64; 17] {
        &self.counts
    }

    /// Each bucket's (count, sum of its durations in seconds), non
    /// cumulative, `+Inf` last.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, f64)> + '_ {
        self.counts
            .iter()
            .zip(self.sums_us.iter())
            .map(|(&c, &s)| (c, s as f64 / 1_000_000.0))
    }

    /// Cumulative counts, Prometheus `le` style: one per bound plus `+Inf`
    /// (which equals [`DurationHistogram::count`]).
    pub fn cumulative(&self) -> [u64; 17] {
        let mut out = [0u64; 17];
        let mut total = 0u64;
        for (o, c) in out.iter_mut().zip(self.counts.iter()) {
            total = total.saturating_add(*c);
            *o = total;
        }
        out
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The sum of the observed durations, in microseconds (exact).
    pub fn sum_us(&self) -> u64 {
        self.sum_us
    }

    /// The sum of the observed durations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1_000_000.0
    }
}

/// Never reset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Lifetime {
    pub(super) calls: BTreeMap<CallKind, BTreeMap<Outcome, u64>>,
    pub(super) permission_denials: BTreeMap<String, u64>,
    pub(super) durations: BTreeMap<CallKind, DurationHistogram>,
}

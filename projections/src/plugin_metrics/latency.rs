//! Latency percentiles over the window's call durations (nearest rank).

/// Latency percentiles over the window (nearest rank), in milliseconds;
/// `None` when the window is empty.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latency {
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub samples: usize,
}

impl Latency {
    /// p50, p95 and p99 of `us` (call durations in microseconds), nearest
    /// rank (sorted durations, index `ceil(p/100 * n) - 1`).
    pub(super) fn nearest_rank(mut us: Vec<u64>) -> Latency {
        us.sort_unstable();
        let pick = |p: usize| -> Option<f64> {
            let n = us.len();
            if n == 0 {
                return None;
            }
            let rank = p.saturating_mul(n).div_ceil(100).max(1);
            us.get(rank - 1).map(|v| *v as f64 / 1000.0)
        };
        Latency {
            p50_ms: pick(50),
            p95_ms: pick(95),
            p99_ms: pick(99),
            samples: us.len(),
        }
    }
}

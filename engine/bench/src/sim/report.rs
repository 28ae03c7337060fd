//! What a run sent, what came back, and how fast.

use std::fmt;

use serde::Serialize;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// A reason ticks failed, and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureCount {
    pub message: String,
    pub count: u64,
}

/// What a run sent, what came back, and how fast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// `nats` or `http`.
    pub transport: &'static str,
    pub worlds: u32,
    pub sessions: u32,
    pub npcs: u32,
    /// The rate asked for, ticks/s.
    pub target_rate: f64,
    /// Ticks sent (published, or POSTed).
    pub sent: u64,
    /// Ticks acknowledged (duplicates included).
    pub acknowledged: u64,
    /// Acknowledgments saying the tick was already in the log.
    pub duplicates: u64,
    /// Ticks refused or not stored (see `failures`).
    pub failed: u64,
    /// Sent, neither acknowledged nor failed within the drain.
    pub missing: u64,
    /// Events the acknowledged ticks added.
    pub events: u64,
    /// From the first send to the end of sending.
    pub send_seconds: f64,
    /// Ticks sent per second of sending.
    pub send_rate: f64,
    /// From the first send to the last acknowledgment.
    pub measured_seconds: f64,
    /// Acknowledged ticks per second over `measured_seconds`.
    pub ticks_per_second: f64,
    /// Events added per second over `measured_seconds`.
    pub events_per_second: f64,
    /// From just before a tick was sent to its acknowledgment; None when
    /// nothing was acknowledged.
    pub latency_ms: Option<LatencyMs>,
    /// The most frequent failure messages.
    pub failures: Vec<FailureCount>,
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "provenant sim: {} worlds x {} sessions, {} NPCs per tick, over {}, target {} ticks/s",
            self.worlds, self.sessions, self.npcs, self.transport, self.target_rate
        )?;
        writeln!(
            f,
            "  ticks sent     {:>9}   {:.1}/s over {:.2} s",
            self.sent, self.send_rate, self.send_seconds
        )?;
        writeln!(
            f,
            "  acknowledged   {:>9}   {} duplicates",
            self.acknowledged, self.duplicates
        )?;
        writeln!(f, "  failed         {:>9}", self.failed)?;
        writeln!(f, "  missing        {:>9}", self.missing)?;
        writeln!(f, "  events added   {:>9}", self.events)?;
        writeln!(
            f,
            "  throughput     {:>9.1} ticks/s   {:.1} events/s   (first send to last acknowledgment: {:.2} s)",
            self.ticks_per_second, self.events_per_second, self.measured_seconds
        )?;
        match &self.latency_ms {
            Some(l) => writeln!(
                f,
                "  latency ms     p50 {:.2}   p90 {:.2}   p99 {:.2}   max {:.2}",
                l.p50, l.p90, l.p99, l.max
            )?,
            None => writeln!(f, "  latency ms     - (nothing acknowledged)")?,
        }
        for failure in &self.failures {
            writeln!(f, "  failed x{}: {}", failure.count, failure.message)?;
        }
        Ok(())
    }
}

pub fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// The nearest-rank percentile of sorted microseconds, in milliseconds.
pub fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    let Some(last) = sorted_us.len().checked_sub(1) else {
        return 0.0;
    };
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let value = sorted_us[rank.saturating_sub(1).min(last)];
    round(value as f64 / 1000.0, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let us: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&us, 50.0), 50.0);
        assert_eq!(percentile_ms(&us, 99.0), 99.0);
        assert_eq!(percentile_ms(&us, 100.0), 100.0);
        assert_eq!(percentile_ms(&[7000], 50.0), 7.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
    }
}

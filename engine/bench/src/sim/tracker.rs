//! What became of the ticks sent: acknowledged (with their latency),
//! failed, or still missing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use provenant_events::TickAck;
use tokio::sync::Notify;
use uuid::Uuid;

use super::config::SimConfig;
use super::report::{FailureCount, LatencyMs, SimReport, percentile_ms, round};

/// Distinct failure messages kept in the report.
const MAX_FAILURE_MESSAGES: usize = 5;

/// What became of the ticks sent, shared by the sender and the tasks that
/// see acknowledgments and failures.
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<Mutex<Tally>>,
    /// Woken when nothing is outstanding any more.
    settled: Arc<Notify>,
}

#[derive(Default)]
struct Tally {
    /// Sent, not yet acknowledged nor failed: when it was sent.
    pending: HashMap<Uuid, Instant>,
    /// Failed: when it was sent and why (an acknowledgment may still come,
    /// e.g. after a JetStream acknowledgment timed out).
    failed: HashMap<Uuid, (Instant, String)>,
    sent: u64,
    first_send: Option<Instant>,
    acknowledged: u64,
    duplicates: u64,
    events: u64,
    latencies_us: Vec<u64>,
    last_ack: Option<Instant>,
}

impl Tracker {
    pub fn new() -> Self {
        Tracker {
            inner: Arc::new(Mutex::new(Tally::default())),
            settled: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tally> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a tick about to be sent; its latency starts now.
    pub fn sending(&self, tick_id: Uuid) {
        let at = Instant::now();
        let mut t = self.lock();
        t.sent += 1;
        t.first_send.get_or_insert(at);
        t.pending.insert(tick_id, at);
    }

    /// Counts an acknowledgment of a tick this run sent (once per tick).
    pub fn acked(&self, ack: &TickAck, at: Instant) {
        let mut t = self.lock();
        let sent_at = match t.pending.remove(&ack.tick_id) {
            Some(sent_at) => sent_at,
            None => match t.failed.remove(&ack.tick_id) {
                Some((sent_at, _)) => sent_at,
                // Another run's, or a second notice of a redelivered tick.
                None => return,
            },
        };
        t.acknowledged += 1;
        t.duplicates += u64::from(ack.duplicate);
        t.events += ack.events;
        let micros = at.saturating_duration_since(sent_at).as_micros();
        t.latencies_us
            .push(u64::try_from(micros).unwrap_or(u64::MAX));
        t.last_ack = Some(t.last_ack.map_or(at, |last| last.max(at)));
        if t.pending.is_empty() {
            self.settled.notify_waiters();
        }
    }

    pub fn failed(&self, tick_id: Uuid, message: String) {
        let mut t = self.lock();
        if let Some(sent_at) = t.pending.remove(&tick_id) {
            t.failed.insert(tick_id, (sent_at, message));
        }
        if t.pending.is_empty() {
            self.settled.notify_waiters();
        }
    }

    /// Waits until nothing is outstanding, or `drain` has passed.
    pub async fn drain(&self, drain: Duration) {
        let deadline = tokio::time::Instant::now() + drain;
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.lock().pending.is_empty() {
                return;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return;
            }
        }
    }

    pub fn report(
        &self,
        config: &SimConfig,
        transport: &'static str,
        send_end: Instant,
    ) -> SimReport {
        let mut t = self.lock();
        let first_send = t.first_send;
        let send_seconds = first_send.map_or(0.0, |f| send_end.duration_since(f).as_secs_f64());
        let measured_seconds = match (first_send, t.last_ack) {
            (Some(first), Some(last)) => last.saturating_duration_since(first).as_secs_f64(),
            _ => 0.0,
        };
        let per_second = |n: u64, s: f64| if s > 0.0 { round(n as f64 / s, 1) } else { 0.0 };
        t.latencies_us.sort_unstable();
        let latency_ms = (!t.latencies_us.is_empty()).then(|| LatencyMs {
            p50: percentile_ms(&t.latencies_us, 50.0),
            p90: percentile_ms(&t.latencies_us, 90.0),
            p99: percentile_ms(&t.latencies_us, 99.0),
            max: percentile_ms(&t.latencies_us, 100.0),
        });
        let mut by_message: BTreeMap<&str, u64> = BTreeMap::new();
        for (_, message) in t.failed.values() {
            *by_message.entry(message).or_default() += 1;
        }
        let mut failures: Vec<FailureCount> = by_message
            .into_iter()
            .map(|(message, count)| FailureCount {
                message: message.to_owned(),
                count,
            })
            .collect();
        failures.sort_by(|a, b| b.count.cmp(&a.count).then(a.message.cmp(&b.message)));
        failures.truncate(MAX_FAILURE_MESSAGES);
        SimReport {
            transport,
            worlds: config.worlds,
            sessions: config.sessions,
            npcs: config.npcs,
            target_rate: config.rate,
            sent: t.sent,
            acknowledged: t.acknowledged,
            duplicates: t.duplicates,
            failed: t.failed.len() as u64,
            missing: t.pending.len() as u64,
            events: t.events,
            send_seconds: round(send_seconds, 3),
            send_rate: per_second(t.sent, send_seconds),
            measured_seconds: round(measured_seconds, 3),
            ticks_per_second: per_second(t.acknowledged, measured_seconds),
            events_per_second: per_second(t.events, measured_seconds),
            latency_ms,
            failures,
        }
    }
}

//! A remote plugin's circuit breaker and rate limit. After `failures` calls
//! in a row fail, the circuit opens: calls are not sent (each recorded as
//! skipped, with why) until the cool-down has passed; then one call is sent
//! as a probe while the others are still skipped, and its outcome closes
//! the circuit or opens it again. The rate limit is a token bucket
//! (`governor`).

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::manifest::Circuit;

/// Whether a call may be sent now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Send it (`probe`: the one call that decides whether the circuit
    /// closes).
    Send { probe: bool },
    /// Do not: the circuit is open, for this long still (zero while a
    /// probe is out).
    Open { remaining: Duration },
}

/// A change of the circuit's state, to record as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Opened {
        /// Failures in a row (1 when a probe failed).
        failures: u32,
        cool_down_ms: u64,
        error: String,
    },
    Closed {
        /// How long it was open.
        open_ms: u64,
        /// Calls not sent meanwhile.
        skipped: u64,
    },
}

#[derive(Debug)]
enum Phase {
    Closed {
        failures: u32,
    },
    Open {
        since: Instant,
        until: Instant,
        skipped: u64,
        probing: bool,
    },
}

/// The circuit of one plugin, shared by every world's calls.
#[derive(Debug)]
pub struct Breaker {
    circuit: Circuit,
    phase: Mutex<Phase>,
}

impl Breaker {
    pub fn new(circuit: Circuit) -> Self {
        Breaker {
            circuit,
            phase: Mutex::new(Phase::Closed { failures: 0 }),
        }
    }

    /// Whether the circuit is open (a probe out counts as open).
    pub fn is_open(&self) -> bool {
        matches!(*self.lock(), Phase::Open { .. })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides whether a call made at `now` is sent.
    pub fn admit(&self, now: Instant) -> Admit {
        match &mut *self.lock() {
            Phase::Closed { .. } => Admit::Send { probe: false },
            Phase::Open {
                until,
                skipped,
                probing,
                ..
            } => {
                if !*probing && now >= *until {
                    *probing = true;
                    Admit::Send { probe: true }
                } else {
                    *skipped += 1;
                    Admit::Open {
                        remaining: until.saturating_duration_since(now),
                    }
                }
            }
        }
    }

    /// Records the outcome of a sent call (`error`: why it failed).
    pub fn record(&self, now: Instant, error: Option<&str>) -> Option<Transition> {
        let cool_down = Duration::from_millis(self.circuit.cool_down_ms);
        let mut phase = self.lock();
        match (&mut *phase, error) {
            (Phase::Closed { failures }, None) => {
                *failures = 0;
                None
            }
            (Phase::Closed { failures }, Some(error)) => {
                *failures += 1;
                if *failures < self.circuit.failures {
                    return None;
                }
                let failures = *failures;
                *phase = Phase::Open {
                    since: now,
                    until: now + cool_down,
                    skipped: 0,
                    probing: false,
                };
                Some(Transition::Opened {
                    failures,
                    cool_down_ms: self.circuit.cool_down_ms,
                    error: error.to_owned(),
                })
            }
            (Phase::Open { since, skipped, .. }, None) => {
                let closed = Transition::Closed {
                    open_ms: now.saturating_duration_since(*since).as_millis() as u64,
                    skipped: *skipped,
                };
                *phase = Phase::Closed { failures: 0 };
                Some(closed)
            }
            (Phase::Open { until, probing, .. }, Some(error)) => {
                // The probe failed (or a call sent before the circuit
                // opened came back late): wait another cool-down.
                let was_probe = std::mem::replace(probing, false);
                if !was_probe {
                    return None;
                }
                *until = now + cool_down;
                Some(Transition::Opened {
                    failures: 1,
                    cool_down_ms: self.circuit.cool_down_ms,
                    error: error.to_owned(),
                })
            }
        }
    }
}

/// A token bucket of `per_s` calls a second, with a burst of as many.
pub fn rate_limiter(per_s: u32) -> Option<DefaultDirectRateLimiter> {
    let per_s = NonZeroU32::new(per_s)?;
    Some(RateLimiter::direct(Quota::per_second(per_s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_circuit_opens_after_failures_in_a_row_and_one_probe_decides() {
        let b = Breaker::new(Circuit {
            failures: 3,
            cool_down_ms: 1_000,
        });
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // A success in between starts the count again.
        for outcome in [Some("x"), Some("x"), None, Some("x"), Some("x")] {
            assert_eq!(b.admit(t0), Admit::Send { probe: false });
            assert_eq!(b.record(t0, outcome), None);
        }
        assert_eq!(
            b.record(ms(10), Some("refused")),
            Some(Transition::Opened {
                failures: 3,
                cool_down_ms: 1_000,
                error: "refused".into()
            })
        );
        assert!(b.is_open());
        assert_eq!(
            b.admit(ms(500)),
            Admit::Open {
                remaining: Duration::from_millis(510)
            }
        );
        // After the cool-down: one probe, the others still skipped.
        assert_eq!(b.admit(ms(1_010)), Admit::Send { probe: true });
        assert!(matches!(b.admit(ms(1_011)), Admit::Open { .. }));
        // The probe fails: another cool-down.
        assert!(matches!(
            b.record(ms(1_020), Some("still down")),
            Some(Transition::Opened { failures: 1, .. })
        ));
        assert!(matches!(b.admit(ms(1_500)), Admit::Open { .. }));
        assert_eq!(b.admit(ms(2_020)), Admit::Send { probe: true });
        assert_eq!(
            b.record(ms(2_030), None),
            Some(Transition::Closed {
                open_ms: 2_020,
                skipped: 3
            })
        );
        assert!(!b.is_open());
        assert_eq!(b.admit(ms(2_031)), Admit::Send { probe: false });
    }

    #[test]
    fn the_rate_limit_lets_a_burst_through_then_refuses() {
        let limiter = rate_limiter(3).unwrap();
        let passed = (0..10).filter(|_| limiter.check().is_ok()).count();
        assert_eq!(passed, 3);
        assert!(rate_limiter(0).is_none());
    }
}

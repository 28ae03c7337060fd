//! The sliding health window: a plugin's newest calls whose game time is
//! within the window of their world's clock, with the rates over them.

use std::collections::{BTreeSet, VecDeque};

use provenant_events::CallKind;
use serde::{Deserialize, Serialize};

use super::config::{HealthConfig, MAX_WORLD_CLOCKS};
use super::outcome::Outcome;
use super::rates::{Rate, WindowRates};

/// The latest game time this plugin was seen at in one world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct WorldClock {
    /// The world id; empty for events without a world.
    pub(super) world: String,
    /// Microseconds since the epoch.
    pub(super) latest_us: i64,
}

/// One call in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Sample {
    /// Index into `Window::worlds`.
    pub(super) w: usize,
    /// `occurred_at` (game time), microseconds since the epoch.
    pub(super) t: i64,
    pub(super) k: CallKind,
    pub(super) o: Outcome,
    pub(super) us: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Window {
    pub(super) worlds: Vec<WorldClock>,
    /// Oldest first (log order). Every sample is within the window of its
    /// world's clock.
    pub(super) samples: VecDeque<Sample>,
    /// What [`Window::add`] knows of the samples, so that it need not look
    /// at every one of them per call. Not stored (made again from the
    /// samples after a restore) and not compared.
    #[serde(skip)]
    tally: Option<Tally>,
}

/// What [`Window::add`] keeps of a window's samples, up to date as they
/// come and go.
#[derive(Debug, Clone, Default)]
struct Tally {
    /// The rates over the samples.
    rates: WindowRates,
    /// Per world (as `Window::worlds`): at most the earliest game time of
    /// its samples. Only when the window's cutoff passes it can a sample of
    /// the world leave.
    floors: Vec<i64>,
}

impl PartialEq for Window {
    fn eq(&self, other: &Self) -> bool {
        self.worlds == other.worlds && self.samples == other.samples
    }
}

impl Window {
    /// Adds a call, drops the samples that leave the window and gives the
    /// rates over the window.
    pub(super) fn add(
        &mut self,
        config: &HealthConfig,
        world: &str,
        at_us: i64,
        sample: (CallKind, Outcome, u64),
    ) -> WindowRates {
        let mut tally = match self.tally.take() {
            Some(tally) if tally.floors.len() == self.worlds.len() => tally,
            // Nothing known of when the samples are.
            _ => Tally {
                rates: self.rates(),
                floors: vec![i64::MIN; self.worlds.len()],
            },
        };
        let w = match self.worlds.iter().position(|c| c.world == world) {
            Some(w) => w,
            None => {
                self.worlds.push(WorldClock {
                    world: world.to_owned(),
                    latest_us: at_us,
                });
                tally.floors.push(i64::MAX);
                self.worlds.len() - 1
            }
        };
        let latest_us = match self.worlds.get_mut(w) {
            Some(clock) => {
                clock.latest_us = clock.latest_us.max(at_us);
                clock.latest_us
            }
            None => at_us,
        };
        let window_us = config.window.num_microseconds().unwrap_or(i64::MAX).max(0);
        let cutoff = latest_us.saturating_sub(window_us);
        let (k, o, us) = sample;
        let sample = Sample {
            w,
            t: at_us,
            k,
            o,
            us,
        };
        count_sample(&mut tally.rates, &sample, true);
        self.samples.push_back(sample);
        if let Some(floor) = tally.floors.get_mut(w) {
            *floor = (*floor).min(at_us);
            // Otherwise no sample of the world is before the cutoff.
            if *floor < cutoff {
                let mut earliest = i64::MAX;
                let rates = &mut tally.rates;
                self.samples.retain(|s| {
                    if s.w != w {
                        return true;
                    }
                    if s.t < cutoff {
                        count_sample(rates, s, false);
                        return false;
                    }
                    earliest = earliest.min(s.t);
                    true
                });
                *floor = earliest;
            }
        }
        while self.samples.len() > config.window_calls {
            if let Some(s) = self.samples.pop_front() {
                count_sample(&mut tally.rates, &s, false);
            }
        }
        if self.worlds.len() > MAX_WORLD_CLOCKS {
            self.forget_idle_worlds(&mut tally);
        }
        let rates = tally.rates;
        self.tally = Some(tally);
        rates
    }

    /// The failure rates over the window, counted.
    pub(super) fn rates(&self) -> WindowRates {
        let mut r = WindowRates::default();
        for s in &self.samples {
            count_sample(&mut r, s, true);
        }
        r
    }

    /// Drops the clocks of worlds without a sample, renumbering samples
    /// (and the tally of the window).
    fn forget_idle_worlds(&mut self, tally: &mut Tally) {
        let used: BTreeSet<usize> = self.samples.iter().map(|s| s.w).collect();
        let mut renumber = vec![None; self.worlds.len()];
        let mut kept = Vec::with_capacity(used.len());
        let mut floors = Vec::with_capacity(used.len());
        for (old, clock) in std::mem::take(&mut self.worlds).into_iter().enumerate() {
            if used.contains(&old) {
                if let Some(slot) = renumber.get_mut(old) {
                    *slot = Some(kept.len());
                }
                kept.push(clock);
                floors.push(tally.floors.get(old).copied().unwrap_or(i64::MIN));
            }
        }
        self.worlds = kept;
        tally.floors = floors;
        let rates = &mut tally.rates;
        self.samples
            .retain_mut(|s| match renumber.get(s.w).copied().flatten() {
                Some(w) => {
                    s.w = w;
                    true
                }
                None => {
                    count_sample(rates, s, false);
                    false
                }
            });
    }
}

/// Counts `s` in the rates (`add`), or stops counting it.
fn count_sample(r: &mut WindowRates, s: &Sample, add: bool) {
    let failed = u64::from(!s.o.is_ok());
    let bump = |r: &mut Rate| {
        if add {
            r.total = r.total.saturating_add(1);
            r.failures = r.failures.saturating_add(failed);
        } else {
            r.total = r.total.saturating_sub(1);
            r.failures = r.failures.saturating_sub(failed);
        }
    };
    bump(&mut r.request_errors);
    match s.k {
        CallKind::Condition => bump(&mut r.condition_failures),
        CallKind::Effect => bump(&mut r.effect_failures),
        CallKind::EventHandler => bump(&mut r.event_handler_failures),
        CallKind::SimulationConfig | CallKind::Other => {}
    }
}

//! Per-plugin metrics and health, folded from the plugin-call events.
//!
//! [`PluginMetricsProjection`] keeps one row per plugin (key: the plugin id,
//! value: the JSON of a [`PluginMetrics`]). A row holds three views of the
//! plugin's calls:
//!
//! - **since the last reset** ([`Counters`], recent errors): what the admin
//!   API answers, in the original plugin system's shape
//!   ([`PluginMetrics::admin_metrics`], [`PluginMetrics::admin_health`]);
//!   `MetricsReset` clears them;
//! - **lifetime** (calls by kind and outcome, permission denials, duration
//!   histograms): never reset, for Prometheus counters;
//! - **the window**: the newest calls (at most [`HealthConfig::window_calls`])
//!   whose game time is within [`HealthConfig::window`] of the latest game
//!   time this plugin was seen at in the same world. Health and latency
//!   percentiles are computed over it, so a plugin that recovers becomes
//!   healthy again.
//!
//! Samples that fall out of the window are dropped as soon as their world's
//! clock moves past them, so every stored sample is in the window and a
//! reader of a row needs no configuration to compute rates or percentiles.
//!
//! Everything a later `apply` reads is in the rows (the window, the world
//! clocks, the health state and the marker of a permission denial waiting
//! for its call), so restoring from rows and going on gives the same rows as
//! applying every event from position 0. Only event fields are read, never
//! the clock.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::OnceLock;

use provenant_events::event::{format_timestamp, write_timestamp};
use provenant_events::{CallKind, Event};
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Projection;
use provenant_events::kinds;

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

/// How many failed calls a row keeps in `recent_errors`.
pub const RECENT_ERRORS: usize = 10;

/// Health thresholds, in percent: a rate above one makes the plugin
/// unhealthy, a rate above half of one makes it degraded.
pub const REQUEST_ERROR_THRESHOLD_PCT: u64 = 50;
pub const CONDITION_FAILURE_THRESHOLD_PCT: u64 = 30;
pub const EFFECT_FAILURE_THRESHOLD_PCT: u64 = 30;
pub const EVENT_HANDLER_FAILURE_THRESHOLD_PCT: u64 = 50;

/// Texts taken from payloads (error messages, ids) are cut to this many
/// characters, so that a row stays bounded whatever a plugin writes.
const MAX_TEXT_CHARS: usize = 512;
/// Permission names (map keys) are cut to this many characters.
const MAX_KEY_CHARS: usize = 128;
/// Above this many world clocks, the clocks of worlds that no longer have a
/// sample in the window are forgotten.
const MAX_WORLD_CLOCKS: usize = 64;
/// A pending denial remembers at most this many permissions.
const MAX_PENDING_PERMISSIONS: usize = 16;

/// How health is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// The game-time window, per world (default 5 minutes).
    pub window: chrono::Duration,
    /// The most calls the window keeps, newest first (default 200).
    pub window_calls: usize,
    /// A rate is judged only with more than this many samples (default 10).
    pub min_samples: usize,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            window: chrono::Duration::minutes(5),
            window_calls: 200,
            min_samples: 10,
        }
    }
}

/// How a plugin call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It returned a value (`ConditionEvaluated`, `EffectApplied`,
    /// `EventHandled`).
    Ok,
    /// It returned an error or panicked (`PluginCallFailed`,
    /// `PluginCallPanicked`).
    Error,
    /// It failed because a capability was refused: a `PluginCallFailed`
    /// right after a `PermissionDenied` of the same plugin call.
    Denied,
    /// It overran its deadline (`PluginDeadlineExceeded`).
    Timeout,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Denied,
        Outcome::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Denied => "denied",
            Outcome::Timeout => "timeout",
        }
    }

    pub fn is_ok(self) -> bool {
        self == Outcome::Ok
    }
}

/// The type of a recent error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    Error,
    Panic,
    Timeout,
    Denied,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Error => "error",
            ErrorType::Panic => "panic",
            ErrorType::Timeout => "timeout",
            ErrorType::Denied => "denied",
        }
    }
}

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

/// The counters since the last reset (or since the start).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Plugin calls, every outcome.
    pub requests: u64,
    /// Calls that did not end ok.
    pub errors: u64,
    /// The sum of the calls' durations (waited time for timeouts).
    pub total_time_us: u64,
    /// `recorded_at` of the latest call, RFC 3339.
    pub last_request: Option<String>,
    pub condition_evaluations: u64,
    pub condition_failures: u64,
    pub effect_applications: u64,
    pub effect_failures: u64,
    pub event_handler_calls: u64,
    pub event_handler_failures: u64,
    pub timeouts: u64,
    pub panics: u64,
    /// Permission denials by the denied permission.
    pub permission_denials: BTreeMap<String, u64>,
}

/// One of the last [`RECENT_ERRORS`] calls that did not end ok.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentError {
    /// `recorded_at` of the call's event, RFC 3339.
    pub timestamp: String,
    /// The call event's log position.
    pub position: u64,
    pub error_type: ErrorType,
    pub error_message: String,
    /// `{call, id, world_id, session_id, tick, call_index, duration_us}`,
    /// plus `denied_permissions` for a denied call and `deadline_ms` for a
    /// timeout.
    pub context: Value,
}

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
    fn observe(&mut self, us: u64) {
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
struct Lifetime {
    calls: BTreeMap<CallKind, BTreeMap<Outcome, u64>>,
    permission_denials: BTreeMap<String, u64>,
    durations: BTreeMap<CallKind, DurationHistogram>,
}

/// The latest game time this plugin was seen at in one world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WorldClock {
    /// The world id; empty for events without a world.
    world: String,
    /// Microseconds since the epoch.
    latest_us: i64,
}

/// One call in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sample {
    /// Index into `Window::worlds`.
    w: usize,
    /// `occurred_at` (game time), microseconds since the epoch.
    t: i64,
    k: CallKind,
    o: Outcome,
    us: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Window {
    worlds: Vec<WorldClock>,
    /// Oldest first (log order). Every sample is within the window of its
    /// world's clock.
    samples: VecDeque<Sample>,
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
    fn add(
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
    fn rates(&self) -> WindowRates {
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
    fn above_pct(self, pct: u64) -> bool {
        u128::from(self.failures) * 100 > u128::from(self.total) * u128::from(pct)
    }

    /// Whether the rate is above half of `pct` percent.
    fn above_half_pct(self, pct: u64) -> bool {
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
    fn judged(&self) -> [(Rate, &'static str, u64, &'static str); 4] {
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

/// Latency percentiles over the window (nearest rank), in milliseconds;
/// `None` when the window is empty.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latency {
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub samples: usize,
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
struct HealthSlot {
    state: HealthState,
    reason: Reason,
    since: Option<String>,
    since_position: Option<u64>,
    last_check: Option<String>,
    view: OnceLock<Health>,
}

impl HealthSlot {
    fn view(&self) -> &Health {
        self.view.get_or_init(|| Health {
            state: self.state,
            reason: self.reason.text().into_owned(),
            since: self.since.clone(),
            since_position: self.since_position,
            last_check: self.last_check.clone(),
        })
    }

    fn reason(&self) -> Cow<'_, str> {
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

/// The last reset of the since-reset metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResetMark {
    /// `recorded_at` of the `MetricsReset` event, RFC 3339.
    pub at: String,
    pub position: u64,
    pub requested_by: Value,
}

/// The latest `PluginLoaded` of the plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Loaded {
    position: u64,
    at: String,
    manifest: Value,
    granted: Value,
    registered: Value,
}

/// Permission denials of one plugin call, waiting for the call's event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PendingDenial {
    tick_id: Option<Uuid>,
    call_index: Option<u64>,
    position: u64,
    permissions: Vec<String>,
}

/// One plugin's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginMetrics {
    plugin_id: String,
    loaded: Option<Loaded>,
    counters: Counters,
    /// Oldest first.
    recent_errors: VecDeque<RecentError>,
    reset: Option<ResetMark>,
    lifetime: Lifetime,
    window: Window,
    health: HealthSlot,
    pending_denial: Option<PendingDenial>,
}

impl PluginMetrics {
    /// A plugin with nothing recorded (loaded, not yet seen in the log).
    pub fn empty(plugin_id: &str) -> Self {
        Self::new(plugin_id)
    }

    fn new(plugin_id: &str) -> Self {
        PluginMetrics {
            plugin_id: plugin_id.to_owned(),
            loaded: None,
            counters: Counters::default(),
            recent_errors: VecDeque::new(),
            reset: None,
            lifetime: Lifetime::default(),
            window: Window::default(),
            health: HealthSlot::default(),
            pending_denial: None,
        }
    }

    pub fn plugin_id(&self) -> &str {
        &self.plugin_id
    }

    // --- since the last reset -------------------------------------------

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The last [`RECENT_ERRORS`] failed calls, oldest first.
    pub fn recent_errors(&self) -> impl Iterator<Item = &RecentError> {
        self.recent_errors.iter()
    }

    pub fn last_reset(&self) -> Option<&ResetMark> {
        self.reset.as_ref()
    }

    // --- health and the window ----------------------------------------

    pub fn health(&self) -> &Health {
        self.health.view()
    }

    pub fn health_state(&self) -> HealthState {
        self.health.state
    }

    /// The failure rates over the window.
    pub fn window_rates(&self) -> WindowRates {
        self.window.rates()
    }

    /// p50, p95 and p99 of the window's call durations, nearest rank
    /// (sorted durations, index `ceil(p/100 * n) - 1`).
    pub fn latency(&self) -> Latency {
        let mut us: Vec<u64> = self.window.samples.iter().map(|s| s.us).collect();
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

    // --- lifetime (Prometheus) ----------------------------------------

    /// Lifetime calls by kind and outcome.
    pub fn lifetime_calls(&self) -> impl Iterator<Item = (CallKind, Outcome, u64)> + '_ {
        self.lifetime
            .calls
            .iter()
            .flat_map(|(k, by)| by.iter().map(move |(o, n)| (*k, *o, *n)))
    }

    /// Lifetime permission denials by permission.
    pub fn lifetime_denials(&self) -> impl Iterator<Item = (&str, u64)> {
        self.lifetime
            .permission_denials
            .iter()
            .map(|(p, n)| (p.as_str(), *n))
    }

    /// Lifetime duration histograms by call kind.
    pub fn histograms(&self) -> impl Iterator<Item = (CallKind, &DurationHistogram)> {
        self.lifetime.durations.iter().map(|(k, h)| (*k, h))
    }

    pub fn histogram(&self, kind: CallKind) -> Option<&DurationHistogram> {
        self.lifetime.durations.get(&kind)
    }

    // --- manifest -------------------------------------------------------

    /// The manifest of the latest `PluginLoaded`.
    pub fn manifest(&self) -> Option<&Value> {
        self.loaded.as_ref().map(|l| &l.manifest)
    }

    /// The granted permissions of the latest `PluginLoaded`.
    pub fn granted(&self) -> Option<&Value> {
        self.loaded.as_ref().map(|l| &l.granted)
    }

    /// What the plugin registered (`{conditions, effects,
    /// event_subscriptions, simulation_configs}`).
    pub fn registered(&self) -> Option<&Value> {
        self.loaded.as_ref().map(|l| &l.registered)
    }

    /// The log position of the latest `PluginLoaded`.
    pub fn loaded_position(&self) -> Option<u64> {
        self.loaded.as_ref().map(|l| l.position)
    }

    /// A string field of the manifest (`name`, `version`, `description`,
    /// `author`, `kind`).
    pub fn manifest_str(&self, field: &str) -> Option<&str> {
        self.manifest()?.get(field)?.as_str()
    }

    /// The manifest's `enabled`; true when absent.
    pub fn enabled(&self) -> bool {
        self.manifest()
            .and_then(|m| m.get("enabled"))
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }

    /// The string items of the manifest's list `field` (`permissions`,
    /// `dependencies`).
    pub fn manifest_list(&self, field: &str) -> Vec<&str> {
        strings_of(self.manifest().and_then(|m| m.get(field)))
    }

    /// The string items of the registered list `field` (`conditions`,
    /// `effects`, ...).
    pub fn registered_list(&self, field: &str) -> Vec<&str> {
        strings_of(self.registered().and_then(|r| r.get(field)))
    }

    // --- admin API --------------------------------------------------------

    /// One plugin's metrics, in the original's shape plus `state`, `reason`,
    /// `since`, `since_position` in `health`, and `timeouts`, `panics`,
    /// `permission_denials`, `latency_ms` and `reset` at the top level.
    pub fn admin_metrics(&self) -> Value {
        let c = &self.counters;
        let average_time_ms = if c.requests == 0 {
            0.0
        } else {
            c.total_time_us as f64 / c.requests as f64 / 1000.0
        };
        let latency = self.latency();
        let recent: Vec<Value> = self.recent_errors.iter().map(recent_error_json).collect();
        json!({
            "plugin_id": self.plugin_id,
            "requests": {
                "total": c.requests,
                "errors": c.errors,
                "error_rate": ratio(c.errors, c.requests),
                "average_time_ms": average_time_ms,
                "total_time_ms": c.total_time_us as f64 / 1000.0,
                "last_request": c.last_request,
            },
            "behavior_extensions": {
                "condition_evaluations": c.condition_evaluations,
                "condition_failures": c.condition_failures,
                "condition_failure_rate": ratio(c.condition_failures, c.condition_evaluations),
                "effect_applications": c.effect_applications,
                "effect_failures": c.effect_failures,
                "effect_failure_rate": ratio(c.effect_failures, c.effect_applications),
            },
            "event_handlers": {
                "calls": c.event_handler_calls,
                "failures": c.event_handler_failures,
                "failure_rate": ratio(c.event_handler_failures, c.event_handler_calls),
            },
            "health": {
                "is_healthy": self.health.state.is_healthy(),
                "last_check": self.health.last_check,
                "recent_errors": recent,
                "state": self.health.state.as_str(),
                "reason": self.health.reason(),
                "since": self.health.since,
                "since_position": self.health.since_position,
            },
            "timeouts": c.timeouts,
            "panics": c.panics,
            "permission_denials": c.permission_denials,
            "latency_ms": {
                "p50": latency.p50_ms,
                "p95": latency.p95_ms,
                "p99": latency.p99_ms,
                "samples": latency.samples,
            },
            "reset": self.reset.as_ref().map(|r| json!({"at": r.at, "position": r.position})),
        })
    }

    /// One plugin's entry of `GET /health`: the original's shape plus
    /// `event_handler_failure_rate`, `state`, `reason` and `since`. Rates are
    /// over the window; `error_count` counts errors since the last reset.
    pub fn admin_health(&self) -> Value {
        let r = self.window_rates();
        json!({
            "is_healthy": self.health.state.is_healthy(),
            "last_check": self.health.last_check,
            "error_count": self.counters.errors,
            "request_error_rate": r.request_errors.value(),
            "condition_failure_rate": r.condition_failures.value(),
            "effect_failure_rate": r.effect_failures.value(),
            "event_handler_failure_rate": r.event_handler_failures.value(),
            "state": self.health.state.as_str(),
            "reason": self.health.reason(),
            "since": self.health.since,
        })
    }

    // --- folding ------------------------------------------------------------

    fn record_call(&mut self, config: &HealthConfig, event: &Event, call: Call) {
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

    fn record_denial(&mut self, event: &Event) {
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

    fn record_reset(&mut self, event: &Event, requested_by: Value) {
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

    fn record_loaded(&mut self, event: &Event) {
        let payload = event.payload.value();
        let field = |k: &str| payload.get(k).cloned().unwrap_or(Value::Null);
        self.loaded = Some(Loaded {
            position: event.position,
            at: format_timestamp(&event.recorded_at),
            manifest: field("manifest"),
            granted: field("granted"),
            registered: field("registered"),
        });
    }
}

/// Recomputes health from the `rates` over the window, at the event at
/// `position`, recorded at `at`. The reason's sentence is made when it is read.
fn recheck(
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

/// Appends [`format_timestamp`]'s text of `t` to `out` (the same text,
/// without the formatting machinery for the years it can write).
fn write_time(out: &mut String, t: &chrono::DateTime<chrono::Utc>) {
    use chrono::{Datelike, Timelike};
    let utc = t.naive_utc();
    let year = match u32::try_from(utc.year()) {
        Ok(year) if year <= 9999 => year,
        _ => return write_timestamp(out, t),
    };
    /// Writes `n` in the digits of `field`, zero-padded.
    fn put(field: &mut [u8], mut n: u32) {
        for d in field.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    put(&mut text[0..4], year);
    put(&mut text[5..7], utc.month());
    put(&mut text[8..10], utc.day());
    put(&mut text[11..13], utc.hour());
    put(&mut text[14..16], utc.minute());
    put(&mut text[17..19], utc.second());
    // A leap second is carried in the nanoseconds; kept in range as
    // `format_timestamp` does.
    put(
        &mut text[20..26],
        (utc.nanosecond() % 1_000_000_000) / 1_000,
    );
    match std::str::from_utf8(&text) {
        Ok(text) => out.push_str(text),
        Err(_) => write_timestamp(out, t),
    }
}

/// Sets `slot` to `text`, reusing its buffer.
fn set_text(slot: &mut Option<String>, text: &str) {
    match slot {
        Some(s) => {
            s.clear();
            s.push_str(text);
        }
        None => *slot = Some(text.to_owned()),
    }
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

/// What one call event says.
struct Call {
    kind: CallKind,
    outcome: Outcome,
    /// `None` for ok calls.
    error_type: Option<ErrorType>,
    message: String,
    duration_us: u64,
    context: Value,
}

impl Call {
    /// Reads a call event of kind `event_kind`; `denied` holds the
    /// permissions of a matching pending denial.
    fn read(event: &Event, event_kind: &str, denied: Option<Vec<String>>) -> Option<Call> {
        let implied = match event_kind {
            kinds::CONDITION_EVALUATED => Some(CallKind::Condition),
            kinds::EFFECT_APPLIED => Some(CallKind::Effect),
            kinds::EVENT_HANDLED => Some(CallKind::EventHandler),
            kinds::PLUGIN_CALL_FAILED
            | kinds::PLUGIN_CALL_PANICKED
            | kinds::PLUGIN_DEADLINE_EXCEEDED => None,
            _ => return None,
        };
        let mut payload = CallFields::of(event);
        let call_name = payload.call.as_str();
        let kind = match (call_name, implied) {
            (Some(name), _) => CallKind::from_call(name),
            (None, Some(kind)) => kind,
            (None, None) => CallKind::Other,
        };
        let (outcome, error_type, message) = match event_kind {
            kinds::PLUGIN_CALL_FAILED => {
                let message = payload
                    .error
                    .take()
                    .unwrap_or(Cow::Borrowed("unknown error"));
                if denied.is_some() {
                    (Outcome::Denied, Some(ErrorType::Denied), message)
                } else {
                    (Outcome::Error, Some(ErrorType::Error), message)
                }
            }
            kinds::PLUGIN_CALL_PANICKED => (
                Outcome::Error,
                Some(ErrorType::Panic),
                payload
                    .panic
                    .take()
                    .unwrap_or(Cow::Borrowed("unknown panic")),
            ),
            kinds::PLUGIN_DEADLINE_EXCEEDED => {
                let message = match payload.deadline_ms.as_u64() {
                    Some(ms) => Cow::Owned(format!("deadline of {ms} ms exceeded")),
                    None => Cow::Borrowed("deadline exceeded"),
                };
                (Outcome::Timeout, Some(ErrorType::Timeout), message)
            }
            _ => (Outcome::Ok, None, Cow::Borrowed("")),
        };
        let duration_us = if outcome == Outcome::Timeout {
            payload.waited_us.micros()
        } else {
            payload.duration_us.micros()
        };
        let context = if error_type.is_some() {
            let mut ctx = serde_json::Map::new();
            ctx.insert(
                "call".to_owned(),
                Value::String(clip(call_name.unwrap_or(kind.as_str()), MAX_KEY_CHARS)),
            );
            ctx.insert("id".to_owned(), payload.call_id(kind));
            ctx.insert(
                "world_id".to_owned(),
                event
                    .world_id
                    .as_ref()
                    .map_or(Value::Null, |w| Value::String(w.to_string())),
            );
            ctx.insert(
                "session_id".to_owned(),
                event
                    .session_id
                    .as_ref()
                    .map_or(Value::Null, |s| Value::String(s.to_string())),
            );
            ctx.insert("tick".to_owned(), json!(event.provenance.tick));
            ctx.insert("call_index".to_owned(), json!(event.provenance.call_index));
            ctx.insert("duration_us".to_owned(), json!(duration_us));
            if outcome == Outcome::Timeout
                && let Some(ms) = payload.deadline_ms.as_u64()
            {
                ctx.insert("deadline_ms".to_owned(), json!(ms));
            }
            if let (Outcome::Denied, Some(permissions)) = (outcome, &denied) {
                ctx.insert("denied_permissions".to_owned(), json!(permissions));
            }
            Value::Object(ctx)
        } else {
            Value::Null
        };
        Some(Call {
            kind,
            outcome,
            error_type,
            message: clip(&message, MAX_TEXT_CHARS),
            duration_us,
            context,
        })
    }
}

/// A payload field as the fold reads it. Reading one never fails, whatever
/// its JSON type; it reads as [`Value`]'s `as_str`, `as_u64` and
/// [`micros`] would.
#[derive(Debug, Default, PartialEq)]
enum Field<'a> {
    /// Absent, `null`, a boolean, an array or an object.
    #[default]
    Absent,
    Str(Cow<'a, str>),
    /// A non-negative integer.
    U64(u64),
    /// A negative integer.
    I64(i64),
    F64(f64),
}

impl<'a> Field<'a> {
    fn of(v: Option<&'a Value>) -> Self {
        match v {
            Some(Value::String(s)) => Field::Str(Cow::Borrowed(s)),
            Some(Value::Number(n)) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), ..) => Field::U64(u),
                (None, Some(i), _) => Field::I64(i),
                (None, None, Some(f)) => Field::F64(f),
                (None, None, None) => Field::Absent,
            },
            _ => Field::Absent,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            _ => None,
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            Field::U64(u) => Some(*u),
            _ => None,
        }
    }

    /// A number of microseconds; anything else is 0 (as [`micros`]).
    fn micros(&self) -> u64 {
        match self {
            Field::U64(u) => *u,
            // Negative.
            Field::I64(_) => 0,
            Field::F64(f) if f.is_finite() && *f >= 0.0 => *f as u64,
            _ => 0,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;

        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Field::Absent)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(match u64::try_from(v) {
                    Ok(u) => Field::U64(u),
                    Err(_) => Field::I64(v),
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Field::U64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                // As `Value`: a number that is not finite is `null`.
                Ok(if v.is_finite() {
                    Field::F64(v)
                } else {
                    Field::Absent
                })
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field::Absent)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field::Absent)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(FieldVisitor)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Absent)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Absent)
            }
        }

        deserializer.deserialize_any(FieldVisitor)
    }
}

/// The payload fields the fold reads, read from the payload's text without
/// building its value (the rest, often large `context`, `inputs` and
/// `result` objects, is skipped). Reads as [`Value::get`] on the payload's
/// value would: a payload that is not an object has none of them, a field
/// of another type reads as such, and of repeated keys the last one counts.
#[derive(Debug, Default, PartialEq)]
struct CallFields<'a> {
    call: Field<'a>,
    condition_id: Field<'a>,
    effect_id: Field<'a>,
    handler: Field<'a>,
    provider_id: Field<'a>,
    id: Field<'a>,
    duration_us: Field<'a>,
    waited_us: Field<'a>,
    deadline_ms: Field<'a>,
    permission: Field<'a>,
    /// `error` as [`text_of`] reads it.
    error: Option<Cow<'a, str>>,
    /// `panic` as [`text_of`] reads it.
    panic: Option<Cow<'a, str>>,
}

impl<'a> CallFields<'a> {
    /// The fields of `event`'s payload: from its text, or from its value
    /// when the text does not read (it always does: the text is JSON).
    fn of(event: &'a Event) -> Self {
        serde_json::from_str(event.payload.text())
            .unwrap_or_else(|_| CallFields::of_value(event.payload.value()))
    }

    fn of_value(payload: &'a Value) -> Self {
        let field = |k: &str| Field::of(payload.get(k));
        CallFields {
            call: field("call"),
            condition_id: field("condition_id"),
            effect_id: field("effect_id"),
            handler: field("handler"),
            provider_id: field("provider_id"),
            id: field("id"),
            duration_us: field("duration_us"),
            waited_us: field("waited_us"),
            deadline_ms: field("deadline_ms"),
            permission: field("permission"),
            error: text_of(payload.get("error")).map(Cow::Owned),
            panic: text_of(payload.get("panic")).map(Cow::Owned),
        }
    }

    /// The called thing's id: the key of its kind, else any id key.
    fn call_id(&self, kind: CallKind) -> Value {
        let by_key = |k: &str| match k {
            "condition_id" => &self.condition_id,
            "effect_id" => &self.effect_id,
            "handler" => &self.handler,
            "provider_id" => &self.provider_id,
            _ => &self.id,
        };
        let keys = ["condition_id", "effect_id", "handler", "provider_id", "id"];
        kind.id_key()
            .into_iter()
            .chain(keys)
            .find_map(|k| by_key(k).as_str())
            .map_or(Value::Null, |id| Value::String(clip(id, MAX_TEXT_CHARS)))
    }
}

/// A message field, read as [`text_of`] reads it.
struct Message<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Message<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Borrowed when it is a string without escapes; otherwise the
        // value, as `text_of` would read it (rare: failures only).
        let value = <&'de serde_json::value::RawValue>::deserialize(deserializer)?;
        if let Ok(s) = serde_json::from_str::<&'de str>(value.get()) {
            return Ok(Message(Some(Cow::Borrowed(s))));
        }
        let value: Value = serde_json::from_str(value.get()).map_err(de::Error::custom)?;
        Ok(Message(text_of(Some(&value)).map(Cow::Owned)))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for CallFields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = CallFields<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(CallFields::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(CallFields::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(CallFields::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(CallFields::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(CallFields::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(CallFields::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(CallFields::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(CallFields::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = CallFields::default();
                while let Some(key) = map.next_key::<Key>()? {
                    let slot = match key {
                        Key::Call => &mut out.call,
                        Key::ConditionId => &mut out.condition_id,
                        Key::EffectId => &mut out.effect_id,
                        Key::Handler => &mut out.handler,
                        Key::ProviderId => &mut out.provider_id,
                        Key::Id => &mut out.id,
                        Key::DurationUs => &mut out.duration_us,
                        Key::WaitedUs => &mut out.waited_us,
                        Key::DeadlineMs => &mut out.deadline_ms,
                        Key::Permission => &mut out.permission,
                        Key::Error => {
                            out.error = map.next_value::<Message<'de>>()?.0;
                            continue;
                        }
                        Key::Panic => {
                            out.panic = map.next_value::<Message<'de>>()?.0;
                            continue;
                        }
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = map.next_value()?;
                }
                Ok(out)
            }
        }

        deserializer.deserialize_any(FieldsVisitor)
    }
}

/// A key of a call payload.
enum Key {
    Call,
    ConditionId,
    EffectId,
    Handler,
    ProviderId,
    Id,
    DurationUs,
    WaitedUs,
    DeadlineMs,
    Permission,
    Error,
    Panic,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "call" => Key::Call,
                    "condition_id" => Key::ConditionId,
                    "effect_id" => Key::EffectId,
                    "handler" => Key::Handler,
                    "provider_id" => Key::ProviderId,
                    "id" => Key::Id,
                    "duration_us" => Key::DurationUs,
                    "waited_us" => Key::WaitedUs,
                    "deadline_ms" => Key::DeadlineMs,
                    "permission" => Key::Permission,
                    "error" => Key::Error,
                    "panic" => Key::Panic,
                    _ => Key::Other,
                })
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The plugin of an event: its `plugin_id`, else its provenance's.
fn plugin_of(event: &Event) -> Option<&str> {
    event
        .plugin_id
        .as_ref()
        .or(event.provenance.plugin_id.as_ref())
        .map(|p| p.as_str())
}

/// A message: a string as is, another non-null value as its JSON text.
fn text_of(v: Option<&Value>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

fn strings_of(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `s` cut to `max` characters (an ellipsis marks a cut).
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((end, _)) => {
            let mut out = s.get(..end).unwrap_or_default().to_owned();
            out.push('…');
            out
        }
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn inc(n: &mut u64) {
    *n = n.saturating_add(1);
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

fn recent_error_json(e: &RecentError) -> Value {
    json!({
        "timestamp": e.timestamp,
        "position": e.position,
        "error_type": e.error_type.as_str(),
        "error_message": e.error_message,
        "context": e.context,
    })
}

/// Per-plugin metrics and health; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct PluginMetricsProjection {
    config: HealthConfig,
    plugins: BTreeMap<String, PluginMetrics>,
    dirty: BTreeSet<String>,
}

impl PluginMetricsProjection {
    pub const NAME: &'static str = "plugin_metrics";
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
        let requested_by = payload.get("requested_by").cloned().unwrap_or(Value::Null);
        match payload.get("plugin_id") {
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
    use provenant_events::{EventHash, EventKind, PluginId, Provenance, StreamName, WorldId};

    fn base() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()
    }

    /// The text of `recorded_at` of the event at `position`.
    fn ts(position: u64) -> String {
        format_timestamp(&(base() + chrono::Duration::seconds(position as i64)))
    }

    /// An event at `position` in world `w1`, at game time `base +
    /// occurred_s` seconds, recorded at `base + position` seconds.
    fn ev(
        position: u64,
        kind: &str,
        plugin: Option<&str>,
        payload: Value,
        occurred_s: i64,
    ) -> Event {
        Event {
            position,
            event_id: Uuid::from_u128(u128::from(position)),
            stream: StreamName::new("plugin:test").unwrap(),
            stream_version: position,
            kind: EventKind::new(kind).unwrap(),
            plugin_id: plugin.map(|p| PluginId::new(p).unwrap()),
            world_id: Some(WorldId::new("w1").unwrap()),
            session_id: None,
            occurred_at: base() + chrono::Duration::seconds(occurred_s),
            recorded_at: base() + chrono::Duration::seconds(position as i64),
            provenance: Provenance::default(),
            payload: payload.into(),
            schema_version: 1,
            prev_hash: EventHash::ZERO,
            hash: EventHash::ZERO,
        }
    }

    fn in_world(mut e: Event, world: &str) -> Event {
        e.world_id = Some(WorldId::new(world).unwrap());
        e
    }

    fn in_call(mut e: Event, tick: u128, call_index: u64) -> Event {
        e.provenance.tick_id = Some(Uuid::from_u128(tick));
        e.provenance.tick = Some(tick as u64);
        e.provenance.call_index = Some(call_index);
        e
    }

    /// Hands out dense positions; game time = position unless told.
    struct Seq(u64);

    impl Seq {
        fn new() -> Self {
            Seq(0)
        }
        fn at(&mut self, kind: &str, plugin: &str, payload: Value, occurred_s: i64) -> Event {
            self.0 += 1;
            ev(self.0, kind, Some(plugin), payload, occurred_s)
        }
        fn next(&mut self, kind: &str, plugin: &str, payload: Value) -> Event {
            let t = self.0 as i64 + 1;
            self.at(kind, plugin, payload, t)
        }
    }

    fn cond_ok(us: u64) -> Value {
        json!({"call": "condition", "condition_id": "plugin:p:c", "duration_us": us, "result": true})
    }

    fn cond_failed(msg: &str, us: u64) -> Value {
        json!({"call": "condition", "condition_id": "plugin:p:c", "duration_us": us,
               "error": msg, "fallback": false, "inputs": []})
    }

    fn run(p: &mut PluginMetricsProjection, events: &[Event]) {
        for e in events {
            p.apply(e);
        }
    }

    fn projection() -> PluginMetricsProjection {
        PluginMetricsProjection::new(HealthConfig::default())
    }

    /// Twelve condition calls of 100 µs in plugin `p`; the ones whose index
    /// is in `failing` fail.
    fn twelve(failing: &[usize]) -> Vec<Event> {
        let mut s = Seq::new();
        (0..12)
            .map(|i| {
                if failing.contains(&i) {
                    s.next(kinds::PLUGIN_CALL_FAILED, "p", cond_failed("boom", 100))
                } else {
                    s.next(kinds::CONDITION_EVALUATED, "p", cond_ok(100))
                }
            })
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn dump(p: &PluginMetricsProjection) -> BTreeMap<String, String> {
        p.plugins()
            .map(|m| (m.plugin_id().to_owned(), serde_json::to_string(m).unwrap()))
            .collect()
    }

    #[test]
    fn four_condition_failures_of_twelve_is_unhealthy() {
        let mut p = projection();
        run(&mut p, &twelve(&[0, 3, 6, 9]));
        let m = p.get("p").unwrap();
        let a = m.admin_metrics();
        assert_eq!(a["plugin_id"], "p");
        assert_eq!(a["requests"]["total"], 12);
        assert_eq!(a["requests"]["errors"], 4);
        assert!(close(
            a["requests"]["error_rate"].as_f64().unwrap(),
            4.0 / 12.0
        ));
        assert!(close(
            a["requests"]["average_time_ms"].as_f64().unwrap(),
            0.1
        ));
        assert_eq!(a["requests"]["last_request"], ts(12));
        let b = &a["behavior_extensions"];
        assert_eq!(b["condition_evaluations"], 12);
        assert_eq!(b["condition_failures"], 4);
        assert!(close(
            b["condition_failure_rate"].as_f64().unwrap(),
            1.0 / 3.0
        ));
        assert_eq!(b["effect_applications"], 0);
        assert_eq!(b["effect_failure_rate"], 0.0);
        assert_eq!(
            a["event_handlers"],
            json!({"calls": 0, "failures": 0, "failure_rate": 0.0})
        );
        let h = &a["health"];
        assert_eq!(h["is_healthy"], false);
        assert_eq!(h["state"], "unhealthy");
        assert_eq!(
            h["reason"],
            "condition failure rate 0.33 > 0.30 over the last 12 condition calls"
        );
        // Judged from the 11th call on: 4 of 11.
        assert_eq!(h["since"], ts(11));
        assert_eq!(h["since_position"], 11);
        assert_eq!(h["last_check"], ts(12));
        assert_eq!(h["recent_errors"].as_array().unwrap().len(), 4);
        assert_eq!(a["reset"], Value::Null);
        assert_eq!(m.health_state(), HealthState::Unhealthy);
        assert_eq!(m.health_state().as_gauge(), 3.0);

        let health = m.admin_health();
        assert_eq!(health["is_healthy"], false);
        assert_eq!(health["error_count"], 4);
        assert!(close(
            health["condition_failure_rate"].as_f64().unwrap(),
            1.0 / 3.0
        ));
        assert!(close(
            health["request_error_rate"].as_f64().unwrap(),
            1.0 / 3.0
        ));
        assert_eq!(health["effect_failure_rate"], 0.0);
        assert_eq!(health["event_handler_failure_rate"], 0.0);
        assert_eq!(health["state"], "unhealthy");
        assert_eq!(health["since"], ts(11));
    }

    #[test]
    fn two_condition_failures_of_twelve_is_degraded() {
        let mut p = projection();
        run(&mut p, &twelve(&[0, 6]));
        let m = p.get("p").unwrap();
        assert_eq!(m.health_state(), HealthState::Degraded);
        assert!(m.health_state().is_healthy());
        assert_eq!(
            m.health().reason,
            "condition failure rate 0.17 > 0.15 (half of 0.30) over the last 12 condition calls"
        );
        assert_eq!(m.health().since_position, Some(11));
        assert_eq!(m.admin_metrics()["health"]["is_healthy"], true);
    }

    #[test]
    fn ten_samples_are_not_judged_eleven_are() {
        let mut p = projection();
        let mut s = Seq::new();
        let events: Vec<Event> = (0..10)
            .map(|i| {
                if i % 2 == 0 {
                    s.next(kinds::PLUGIN_CALL_FAILED, "p", cond_failed("x", 1))
                } else {
                    s.next(kinds::CONDITION_EVALUATED, "p", cond_ok(1))
                }
            })
            .collect();
        run(&mut p, &events);
        let m = p.get("p").unwrap();
        assert_eq!(m.health_state(), HealthState::Unknown);
        assert_eq!(m.health().since, None);
        assert_eq!(m.health().last_check, Some(ts(10)));
        assert_eq!(m.admin_metrics()["health"]["is_healthy"], true);
        assert!(
            m.health().reason.starts_with("not enough calls"),
            "{}",
            m.health().reason
        );

        p.apply(&s.next(kinds::CONDITION_EVALUATED, "p", cond_ok(1)));
        let m = p.get("p").unwrap();
        // 5 of 11 = 0.45.
        assert_eq!(m.health_state(), HealthState::Unhealthy);
        assert_eq!(m.health().since_position, Some(11));

        let mut q = projection();
        let mut s = Seq::new();
        let ok: Vec<Event> = (0..11)
            .map(|_| {
                s.next(
                    kinds::EVENT_HANDLED,
                    "h",
                    json!({"call": "event_handler", "handler": "h on X", "duration_us": 5}),
                )
            })
            .collect();
        run(&mut q, &ok);
        let m = q.get("h").unwrap();
        assert_eq!(m.health_state(), HealthState::Healthy);
        assert_eq!(m.counters().event_handler_calls, 11);
        assert_eq!(m.health_state().as_gauge(), 1.0);
    }

    #[test]
    fn a_denial_right_before_a_failure_makes_it_denied() {
        let mut p = projection();
        let plugin = "example-nosy";
        let mut s = Seq::new();
        let denial = |s: &mut Seq, permission: Value| {
            s.next(
                kinds::PERMISSION_DENIED,
                plugin,
                json!({"call": "effect:plugin:example-nosy:peek", "capability": "session.get_session_flag",
                       "mode": "RAISE", "permission": permission, "reason": "no"}),
            )
        };
        let failed = json!({"call": "effect", "effect_id": "effect:plugin:example-nosy:peek",
                            "error": "permission denied: session:read", "duration_us": 30,
                            "fallback": null});
        let mut e1 = in_call(denial(&mut s, Value::Null), 77, 2);
        e1.provenance.permission = Some("session:read".into());
        let e2 = in_call(
            s.next(kinds::PLUGIN_CALL_FAILED, plugin, failed.clone()),
            77,
            2,
        );
        let mut e3 = in_call(denial(&mut s, json!("world:write")), 77, 3);
        e3.provenance.permission = Some("session:read".into());
        // Another call index: an ordinary error.
        let e4 = in_call(
            s.next(kinds::PLUGIN_CALL_FAILED, plugin, failed.clone()),
            77,
            4,
        );
        let e5 = in_call(denial(&mut s, Value::Null), 77, 5);
        // The call survived its (warned) denial.
        let e6 = in_call(
            s.next(
                kinds::EFFECT_APPLIED,
                plugin,
                json!({"call": "effect", "effect_id": "e", "duration_us": 9}),
            ),
            77,
            5,
        );
        // The denial was consumed by the call above.
        let e7 = in_call(s.next(kinds::PLUGIN_CALL_FAILED, plugin, failed), 77, 5);
        run(&mut p, &[e1, e2, e3, e4, e5, e6, e7]);

        let m = p.get(plugin).unwrap();
        let c = m.counters();
        assert_eq!(
            c.permission_denials,
            BTreeMap::from([
                ("session:read".to_owned(), 1),
                ("unknown".to_owned(), 1),
                ("world:write".to_owned(), 1),
            ])
        );
        assert_eq!(c.effect_applications, 4);
        assert_eq!(c.effect_failures, 3);
        assert_eq!(c.errors, 3);
        let calls: Vec<_> = m.lifetime_calls().collect();
        assert_eq!(
            calls,
            vec![
                (CallKind::Effect, Outcome::Ok, 1),
                (CallKind::Effect, Outcome::Error, 2),
                (CallKind::Effect, Outcome::Denied, 1),
            ]
        );
        let denials: Vec<_> = m.lifetime_denials().collect();
        assert_eq!(
            denials,
            vec![("session:read", 1), ("unknown", 1), ("world:write", 1)]
        );
        let recent: Vec<_> = m.recent_errors().collect();
        let types: Vec<_> = recent.iter().map(|e| e.error_type).collect();
        assert_eq!(
            types,
            vec![ErrorType::Denied, ErrorType::Error, ErrorType::Error]
        );
        assert_eq!(recent[0].position, 2);
        assert_eq!(recent[0].error_message, "permission denied: session:read");
        assert_eq!(recent[0].context["call"], "effect");
        assert_eq!(recent[0].context["id"], "effect:plugin:example-nosy:peek");
        assert_eq!(recent[0].context["call_index"], 2);
        assert_eq!(
            recent[0].context["denied_permissions"],
            json!(["session:read"])
        );
        let a = m.admin_metrics();
        assert_eq!(a["health"]["recent_errors"][0]["error_type"], "denied");
        assert_eq!(a["permission_denials"]["world:write"], 1);
    }

    #[test]
    fn timeouts_and_panics() {
        let mut p = projection();
        let mut s = Seq::new();
        let events = [
            s.next(
                kinds::PLUGIN_DEADLINE_EXCEEDED,
                "example-flaky",
                json!({"call": "condition", "condition_id": "c", "deadline_ms": 50,
                       "fallback": false, "waited_us": 50093}),
            ),
            s.next(
                kinds::PLUGIN_CALL_PANICKED,
                "example-flaky",
                json!({"call": "condition", "condition_id": "c", "duration_us": 145,
                       "fallback": false, "panic": "example-flaky panicked on purpose (0.026)"}),
            ),
        ];
        run(&mut p, &events);
        let m = p.get("example-flaky").unwrap();
        let c = m.counters();
        assert_eq!((c.timeouts, c.panics, c.errors, c.requests), (1, 1, 2, 2));
        assert_eq!((c.condition_evaluations, c.condition_failures), (2, 2));
        assert_eq!(c.total_time_us, 50_238);
        let recent: Vec<_> = m.recent_errors().collect();
        assert_eq!(recent[0].error_type, ErrorType::Timeout);
        assert_eq!(recent[0].error_message, "deadline of 50 ms exceeded");
        assert_eq!(recent[0].context["deadline_ms"], 50);
        assert_eq!(recent[0].context["duration_us"], 50093);
        assert_eq!(recent[1].error_type, ErrorType::Panic);
        assert_eq!(
            recent[1].error_message,
            "example-flaky panicked on purpose (0.026)"
        );
        let calls: Vec<_> = m.lifetime_calls().collect();
        assert_eq!(
            calls,
            vec![
                (CallKind::Condition, Outcome::Error, 1),
                (CallKind::Condition, Outcome::Timeout, 1),
            ]
        );
        let h = m.histogram(CallKind::Condition).unwrap();
        let mut expected = [0u64; 17];
        expected[4] = 1; // 145 µs: (100, 250]
        expected[12] = 1; // 50093 µs: (50 ms, 100 ms]
        assert_eq!(h.counts(), &expected);
        assert_eq!(h.count(), 2);
        assert_eq!(h.sum_us(), 50_238);
        let a = m.admin_metrics();
        assert_eq!(a["timeouts"], 1);
        assert_eq!(a["panics"], 1);
    }

    #[test]
    fn recent_errors_keep_the_last_ten_in_order() {
        let mut p = projection();
        let mut s = Seq::new();
        let events: Vec<Event> = (0..13)
            .map(|i| {
                s.next(
                    kinds::PLUGIN_CALL_FAILED,
                    "p",
                    cond_failed(&format!("e{i}"), 1),
                )
            })
            .collect();
        run(&mut p, &events);
        let m = p.get("p").unwrap();
        let got: Vec<(String, u64, String)> = m
            .recent_errors()
            .map(|e| (e.error_message.clone(), e.position, e.timestamp.clone()))
            .collect();
        let want: Vec<(String, u64, String)> = (3..13)
            .map(|i| (format!("e{i}"), i + 1, ts(i + 1)))
            .collect();
        assert_eq!(got, want);
        assert_eq!(m.counters().errors, 13);
    }

    #[test]
    fn latency_percentiles_are_nearest_rank() {
        let mut p = projection();
        let mut s = Seq::new();
        // 100, 200, ..., 2000 µs in a scrambled order.
        let events: Vec<Event> = (0..20u64)
            .map(|i| {
                s.next(
                    kinds::CONDITION_EVALUATED,
                    "p",
                    cond_ok(((i * 7) % 20 + 1) * 100),
                )
            })
            .collect();
        run(&mut p, &events);
        let l = p.get("p").unwrap().latency();
        // n = 20: p50 -> rank 10, p95 -> rank 19, p99 -> rank 20.
        assert_eq!(l.samples, 20);
        assert_eq!(l.p50_ms, Some(1.0));
        assert_eq!(l.p95_ms, Some(1.9));
        assert_eq!(l.p99_ms, Some(2.0));

        let mut q = projection();
        let mut s = Seq::new();
        let events: Vec<Event> = [5000, 1000, 3000]
            .into_iter()
            .map(|us| s.next(kinds::CONDITION_EVALUATED, "q", cond_ok(us)))
            .collect();
        run(&mut q, &events);
        let m = q.get("q").unwrap();
        // n = 3, sorted [1, 3, 5] ms: ranks 2, 3, 3.
        let l = m.latency();
        assert_eq!(
            (l.p50_ms, l.p95_ms, l.p99_ms),
            (Some(3.0), Some(5.0), Some(5.0))
        );
        assert_eq!(
            m.admin_metrics()["latency_ms"],
            json!({"p50": 3.0, "p95": 5.0, "p99": 5.0, "samples": 3})
        );

        let mut empty = projection();
        empty.apply(&ev(1, kinds::PERMISSION_DENIED, Some("e"), json!({}), 0));
        let a = empty.get("e").unwrap().admin_metrics();
        assert_eq!(
            a["latency_ms"],
            json!({"p50": null, "p95": null, "p99": null, "samples": 0})
        );
    }

    #[test]
    fn histogram_buckets_are_upper_inclusive() {
        let mut p = projection();
        let mut s = Seq::new();
        let events: Vec<Event> = [0u64, 10, 11, 2_500, 1_000_000, 1_000_001]
            .into_iter()
            .map(|us| {
                s.next(
                    kinds::EVENT_HANDLED,
                    "p",
                    json!({"call": "event_handler", "handler": "p on X", "duration_us": us}),
                )
            })
            .collect();
        run(&mut p, &events);
        let m = p.get("p").unwrap();
        let hs: Vec<_> = m.histograms().collect();
        assert_eq!(hs.len(), 1);
        let (kind, h) = hs[0];
        assert_eq!(kind, CallKind::EventHandler);
        let mut expected = [0u64; 17];
        expected[0] = 2; // 0 and 10 µs: <= 0.00001 s
        expected[1] = 1; // 11 µs: <= 0.000025 s
        expected[7] = 1; // 2500 µs: <= 0.0025 s
        expected[15] = 1; // 1 s: <= 1.0
        expected[16] = 1; // above 1 s: +Inf
        assert_eq!(h.counts(), &expected);
        assert_eq!(h.cumulative()[16], 6);
        assert_eq!(h.cumulative()[0], 2);
        assert_eq!(h.cumulative()[15], 5);
        assert_eq!(h.count(), 6);
        assert_eq!(h.sum_us(), 2_002_522);
        assert!(close(h.sum_seconds(), 2.002522));
        assert_eq!(h.bounds(), &DURATION_BUCKETS);
        assert_eq!(CallKind::EventHandler.as_str(), "event_handler");
    }

    #[test]
    fn the_window_is_game_time_per_world() {
        let mut p = projection();
        let mut s = Seq::new();
        // Eleven failures in w1 at game time 0..10 s.
        let events: Vec<Event> = (0..11)
            .map(|i| s.at(kinds::PLUGIN_CALL_FAILED, "p", cond_failed("x", 1), i))
            .collect();
        run(&mut p, &events);
        assert_eq!(p.get("p").unwrap().health_state(), HealthState::Unhealthy);
        // A world whose clock is far behind does not push w1's calls out.
        let events: Vec<Event> = (0..5)
            .map(|i| {
                in_world(
                    s.at(kinds::CONDITION_EVALUATED, "p", cond_ok(1), -10_000 + i),
                    "w2",
                )
            })
            .collect();
        run(&mut p, &events);
        let m = p.get("p").unwrap();
        assert_eq!(m.latency().samples, 16);
        assert_eq!(
            m.window_rates().condition_failures,
            Rate {
                failures: 11,
                total: 16
            }
        );
        assert_eq!(m.health_state(), HealthState::Unhealthy);
        // w1 moves on 6 minutes: its old calls leave the window, w2's stay.
        let e = s.at(kinds::CONDITION_EVALUATED, "p", cond_ok(1), 400);
        let moved_at = e.position;
        p.apply(&e);
        let m = p.get("p").unwrap();
        assert_eq!(m.latency().samples, 6);
        assert_eq!(
            m.window_rates().condition_failures,
            Rate {
                failures: 0,
                total: 6
            }
        );
        assert_eq!(m.health_state(), HealthState::Unknown);
        assert_eq!(m.health().since_position, Some(moved_at));
        // Since-reset counters are not windowed.
        assert_eq!(m.counters().requests, 17);
        assert_eq!(m.counters().condition_failures, 11);

        // The window's edge: exactly `window` old stays, older leaves.
        let mut q = projection();
        let mut s = Seq::new();
        q.apply(&s.at(kinds::CONDITION_EVALUATED, "q", cond_ok(1), 0));
        q.apply(&s.at(kinds::CONDITION_EVALUATED, "q", cond_ok(1), 300));
        assert_eq!(q.get("q").unwrap().latency().samples, 2);
        q.apply(&s.at(kinds::CONDITION_EVALUATED, "q", cond_ok(1), 301));
        assert_eq!(q.get("q").unwrap().latency().samples, 2);
        // A late event older than the window does not count at all.
        q.apply(&s.at(kinds::PLUGIN_CALL_FAILED, "q", cond_failed("late", 1), 0));
        assert_eq!(
            q.get("q").unwrap().window_rates().request_errors,
            Rate {
                failures: 0,
                total: 2
            }
        );
    }

    #[test]
    fn the_window_keeps_the_newest_window_calls() {
        let mut p = PluginMetricsProjection::new(HealthConfig {
            window_calls: 15,
            ..HealthConfig::default()
        });
        let mut s = Seq::new();
        let events: Vec<Event> = (0..20)
            .map(|i| {
                if i < 10 {
                    s.next(kinds::PLUGIN_CALL_FAILED, "p", cond_failed("x", 1))
                } else {
                    s.next(kinds::CONDITION_EVALUATED, "p", cond_ok(1))
                }
            })
            .collect();
        run(&mut p, &events);
        let m = p.get("p").unwrap();
        assert_eq!(m.latency().samples, 15);
        // The newest 15: 5 failures and 10 ok.
        assert_eq!(
            m.window_rates().condition_failures,
            Rate {
                failures: 5,
                total: 15
            }
        );
        assert_eq!(m.health_state(), HealthState::Unhealthy);
        assert_eq!(m.counters().requests, 20);
        assert_eq!(m.histogram(CallKind::Condition).unwrap().count(), 20);
    }

    #[test]
    fn a_plugin_recovers() {
        let mut p = projection();
        let mut s = Seq::new();
        let events: Vec<Event> = (0..12)
            .map(|i| {
                if i % 2 == 0 {
                    s.next(kinds::PLUGIN_CALL_FAILED, "p", cond_failed("x", 1))
                } else {
                    s.next(kinds::CONDITION_EVALUATED, "p", cond_ok(1))
                }
            })
            .collect();
        run(&mut p, &events);
        assert_eq!(p.get("p").unwrap().health_state(), HealthState::Unhealthy);
        // 6 failures of n calls: unhealthy while n < 20, degraded while
        // n < 40, healthy from n = 40.
        let mut states = BTreeMap::new();
        for _ in 0..40 {
            let e = s.next(kinds::CONDITION_EVALUATED, "p", cond_ok(1));
            p.apply(&e);
            states.insert(e.position, p.get("p").unwrap().health_state());
        }
        assert_eq!(states[&19], HealthState::Unhealthy);
        assert_eq!(states[&20], HealthState::Degraded);
        assert_eq!(states[&39], HealthState::Degraded);
        assert_eq!(states[&40], HealthState::Healthy);
        assert_eq!(states[&52], HealthState::Healthy);
        let m = p.get("p").unwrap();
        assert_eq!(m.health().since, Some(ts(40)));
        assert_eq!(m.health().since_position, Some(40));
        assert_eq!(m.health().last_check, Some(ts(52)));
        assert!(
            m.health().reason.starts_with("every judged rate"),
            "{}",
            m.health().reason
        );
        // The since-reset error rate still remembers.
        assert_eq!(m.counters().condition_failures, 6);
    }

    #[test]
    fn metrics_reset_one_plugin_and_all() {
        let mut p = projection();
        let mut s = Seq::new();
        let mut events = Vec::new();
        for i in 0..12 {
            for plugin in ["a", "b"] {
                events.push(if i % 3 == 0 {
                    s.next(kinds::PLUGIN_CALL_FAILED, plugin, cond_failed("x", 10))
                } else {
                    s.next(kinds::CONDITION_EVALUATED, plugin, cond_ok(10))
                });
            }
        }
        run(&mut p, &events);
        p.take_changes();
        let a_lifetime: Vec<_> = p.get("a").unwrap().lifetime_calls().collect();
        let a_hist = p.get("a").unwrap().histogram(CallKind::Condition).cloned();
        let b_before = p.get("b").unwrap().clone();
        assert_eq!(b_before.health_state(), HealthState::Unhealthy);

        let mut reset = ev(
            100,
            kinds::METRICS_RESET,
            None,
            json!({"plugin_id": "a", "requested_by": {"user": "ops"}}),
            0,
        );
        reset.world_id = None;
        p.apply(&reset);
        let changes = p.take_changes();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0, "a");
        let a = p.get("a").unwrap();
        assert_eq!(a.counters(), &Counters::default());
        assert_eq!(a.recent_errors().count(), 0);
        assert_eq!(a.latency().samples, 0);
        assert_eq!(a.health_state(), HealthState::Unknown);
        assert_eq!(a.health().since, Some(ts(100)));
        assert_eq!(a.health().since_position, Some(100));
        assert_eq!(a.lifetime_calls().collect::<Vec<_>>(), a_lifetime);
        assert_eq!(a.histogram(CallKind::Condition).cloned(), a_hist);
        assert_eq!(a.last_reset().unwrap().requested_by, json!({"user": "ops"}));
        let am = a.admin_metrics();
        assert_eq!(am["reset"], json!({"at": ts(100), "position": 100}));
        assert_eq!(am["requests"]["total"], 0);
        assert_eq!(am["requests"]["last_request"], Value::Null);
        assert_eq!(am["health"]["is_healthy"], true);
        assert_eq!(p.get("b").unwrap(), &b_before);

        // A plugin never seen, and a reset without `plugin_id`: nothing.
        p.apply(&ev(
            101,
            kinds::METRICS_RESET,
            None,
            json!({"plugin_id": "zzz"}),
            0,
        ));
        p.apply(&ev(
            102,
            kinds::METRICS_RESET,
            None,
            json!({"requested_by": "x"}),
            0,
        ));
        assert!(p.take_changes().is_empty());
        assert!(p.get("zzz").is_none());

        // a calls again, then every plugin is reset.
        p.apply(&ev(
            103,
            kinds::CONDITION_EVALUATED,
            Some("a"),
            cond_ok(10),
            0,
        ));
        assert_eq!(p.get("a").unwrap().counters().requests, 1);
        p.apply(&ev(
            104,
            kinds::METRICS_RESET,
            None,
            json!({"plugin_id": null, "requested_by": null}),
            0,
        ));
        let keys: Vec<String> = p.take_changes().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["a".to_owned(), "b".to_owned()]);
        for m in p.plugins() {
            assert_eq!(m.counters(), &Counters::default());
            assert_eq!(m.health_state(), HealthState::Unknown);
            assert_eq!(m.health().since_position, Some(104));
            assert_eq!(m.last_reset().unwrap().position, 104);
        }
        let b = p.get("b").unwrap();
        assert_eq!(
            b.lifetime_calls().collect::<Vec<_>>(),
            b_before.lifetime_calls().collect::<Vec<_>>()
        );
        assert_eq!(b.admin_health()["error_count"], 0);
        assert_eq!(b.admin_health()["request_error_rate"], 0.0);
    }

    #[test]
    fn plugin_loaded_keeps_the_manifest() {
        let mut p = projection();
        let payload = json!({
            "granted": ["session:read"],
            "manifest": {"author": "me", "dependencies": ["core"], "description": "sneaky",
                         "enabled": true, "id": "game-stealth", "kind": "feature",
                         "name": "Stealth", "permissions": ["session:read", "session:write"],
                         "version": "1.2.0"},
            "registered": {"conditions": ["plugin:game-stealth:has_disguise"],
                           "effects": ["effect:plugin:game-stealth:hide"],
                           "event_subscriptions": [], "simulation_configs": []}
        });
        p.apply(&ev(
            7,
            kinds::PLUGIN_LOADED,
            Some("game-stealth"),
            payload,
            0,
        ));
        let m = p.get("game-stealth").unwrap();
        assert_eq!(m.loaded_position(), Some(7));
        assert_eq!(m.manifest_str("name"), Some("Stealth"));
        assert_eq!(m.manifest_str("version"), Some("1.2.0"));
        assert_eq!(m.manifest_str("missing"), None);
        assert!(m.enabled());
        assert_eq!(
            m.manifest_list("permissions"),
            vec!["session:read", "session:write"]
        );
        assert_eq!(m.manifest_list("dependencies"), vec!["core"]);
        assert_eq!(
            m.registered_list("conditions"),
            vec!["plugin:game-stealth:has_disguise"]
        );
        assert_eq!(
            m.registered_list("effects"),
            vec!["effect:plugin:game-stealth:hide"]
        );
        assert_eq!(m.granted(), Some(&json!(["session:read"])));
        assert_eq!(m.health_state(), HealthState::Unknown);
        assert_eq!(m.admin_metrics()["requests"]["total"], 0);
    }

    #[test]
    fn changes_are_the_touched_rows() {
        let mut p = projection();
        assert_eq!(p.name(), "plugin_metrics");
        assert_eq!(p.version(), 1);
        p.apply(&ev(1, kinds::CONDITION_EVALUATED, Some("a"), cond_ok(1), 0));
        p.apply(&ev(2, kinds::CONDITION_EVALUATED, Some("b"), cond_ok(1), 0));
        let changes = p.take_changes();
        assert_eq!(changes.len(), 2);
        assert!(changes.iter().all(|(_, v)| v.is_some()));
        assert!(p.take_changes().is_empty());
        // Events without a plugin, and kinds this projection does not read.
        p.apply(&ev(3, kinds::CONDITION_EVALUATED, None, cond_ok(1), 0));
        p.apply(&ev(
            4,
            kinds::SESSION_FLAG_SET,
            Some("a"),
            json!({"key": "k"}),
            0,
        ));
        assert!(p.take_changes().is_empty());
        // The provenance's plugin stands in for a missing one.
        let mut e = ev(5, kinds::CONDITION_EVALUATED, None, cond_ok(1), 0);
        e.provenance.plugin_id = Some(PluginId::new("b").unwrap());
        p.apply(&e);
        let changes = p.take_changes();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0, "b");
        assert_eq!(p.get("b").unwrap().counters().requests, 2);
    }

    /// A log touching every path, for the restore test.
    fn mixed_log() -> Vec<Event> {
        let mut s = Seq::new();
        let mut out = Vec::new();
        out.push(s.next(
            kinds::PLUGIN_LOADED,
            "a",
            json!({"granted": [], "manifest": {"name": "A"}, "registered": {"conditions": ["c"]}}),
        ));
        for i in 0..30i64 {
            let plugin = if i % 3 == 0 { "b" } else { "a" };
            let t = i * 20;
            let e = match i % 7 {
                0 => s.at(kinds::PLUGIN_CALL_FAILED, plugin, cond_failed("x", 40), t),
                1 => s.at(
                    kinds::EFFECT_APPLIED,
                    plugin,
                    json!({"call": "effect", "effect_id": "e", "duration_us": 900}),
                    t,
                ),
                2 => {
                    let mut d = in_call(
                        s.at(kinds::PERMISSION_DENIED, plugin, json!({"permission": null}), t),
                        i as u128,
                        1,
                    );
                    d.provenance.permission = Some("session:read".into());
                    out.push(d);
                    in_call(
                        s.at(
                            kinds::PLUGIN_CALL_FAILED,
                            plugin,
                            json!({"call": "effect", "effect_id": "e", "error": "denied", "duration_us": 3}),
                            t,
                        ),
                        i as u128,
                        1,
                    )
                }
                3 => s.at(
                    kinds::PLUGIN_DEADLINE_EXCEEDED,
                    plugin,
                    json!({"call": "condition", "condition_id": "c", "deadline_ms": 50, "waited_us": 50_100}),
                    t,
                ),
                4 => in_world(s.at(kinds::CONDITION_EVALUATED, plugin, cond_ok(70), t - 5_000), "w2"),
                5 => s.at(
                    kinds::PLUGIN_CALL_PANICKED,
                    plugin,
                    json!({"call": "event_handler", "handler": "h", "panic": "p", "duration_us": 12}),
                    t,
                ),
                _ => s.at(kinds::CONDITION_EVALUATED, plugin, cond_ok(30), t),
            };
            out.push(e);
            if i == 14 {
                out.push(s.at(
                    kinds::METRICS_RESET,
                    "a",
                    json!({"plugin_id": "a", "requested_by": "ops"}),
                    t,
                ));
            }
            if i == 22 {
                out.push(s.at(kinds::METRICS_RESET, "a", json!({"plugin_id": null}), t));
            }
        }
        out
    }

    #[test]
    fn restoring_from_rows_and_going_on_equals_applying_everything() {
        let config = HealthConfig {
            window: chrono::Duration::seconds(200),
            window_calls: 8,
            min_samples: 3,
        };
        let events = mixed_log();
        let mut full = PluginMetricsProjection::new(config);
        run(&mut full, &events);
        let want = dump(&full);
        let a = full.get("a").unwrap();
        assert!(a.lifetime_calls().any(|(_, o, _)| o == Outcome::Denied));
        // Some cut falls between a denial and its failure.
        let between = events
            .windows(2)
            .position(|w| w[0].kind.as_str() == kinds::PERMISSION_DENIED)
            .unwrap()
            + 1;
        assert_eq!(events[between].kind.as_str(), kinds::PLUGIN_CALL_FAILED);

        for cut in 0..=events.len() {
            let mut first = PluginMetricsProjection::new(config);
            run(&mut first, &events[..cut]);
            let rows: Vec<(String, String)> = first
                .take_changes()
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
            let mut second = PluginMetricsProjection::new(config);
            second.restore(rows).unwrap();
            assert!(second.take_changes().is_empty());
            run(&mut second, &events[cut..]);
            assert_eq!(dump(&second), want, "cut at {cut}");
        }
    }

    #[test]
    fn restore_refuses_rows_that_do_not_decode() {
        let mut p = projection();
        assert!(p.restore(vec![("a".into(), "{".into())]).is_err());
        assert!(p.restore(vec![("a".into(), "{}".into())]).is_err());
        let mut q = projection();
        q.apply(&ev(1, kinds::CONDITION_EVALUATED, Some("b"), cond_ok(1), 0));
        let (_, row) = q.take_changes().pop().unwrap();
        assert!(p.restore(vec![("a".into(), row.clone().unwrap())]).is_err());
        assert!(p.restore(vec![("b".into(), row.unwrap())]).is_ok());
        assert_eq!(p.get("b").unwrap().counters().requests, 1);
    }

    #[test]
    fn malformed_payloads_never_panic() {
        let payloads = [
            Value::Null,
            json!(42),
            json!("text"),
            json!([1, 2]),
            json!({}),
            json!({"call": 5, "duration_us": "x", "waited_us": -3, "error": {"a": 1},
                   "deadline_ms": "z", "panic": [1], "permission": 7, "plugin_id": 7,
                   "manifest": 3, "registered": "r", "condition_id": 9, "requested_by": [1]}),
            json!({"call": "condition", "duration_us": 1e300, "waited_us": 1e300}),
            json!({"call": "effect", "duration_us": -1.5, "error": null, "panic": null}),
            json!({"call": "unheard_of", "id": "x".repeat(5000), "error": "e".repeat(5000)}),
            json!({"plugin_id": "p"}),
            json!({"plugin_id": null}),
        ];
        let event_kinds = [
            kinds::CONDITION_EVALUATED,
            kinds::EFFECT_APPLIED,
            kinds::EVENT_HANDLED,
            kinds::PLUGIN_CALL_FAILED,
            kinds::PLUGIN_CALL_PANICKED,
            kinds::PLUGIN_DEADLINE_EXCEEDED,
            kinds::PERMISSION_DENIED,
            kinds::PLUGIN_LOADED,
            kinds::METRICS_RESET,
            "SomethingNew",
        ];
        let mut p = projection();
        let mut position = 0;
        for kind in event_kinds {
            for payload in &payloads {
                for plugin in [Some("p"), None] {
                    position += 1;
                    let mut e = ev(position, kind, plugin, payload.clone(), position as i64);
                    if position % 3 == 0 {
                        e.world_id = None;
                    }
                    p.apply(&e);
                }
            }
        }
        let m = p.get("p").unwrap();
        let _ = m.admin_metrics();
        let _ = m.admin_health();
        let _ = m.latency();
        for r in m.recent_errors() {
            assert!(r.error_message.chars().count() <= MAX_TEXT_CHARS + 1);
        }
        let rows: Vec<(String, String)> = p
            .take_changes()
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        let mut q = projection();
        q.restore(rows).unwrap();
        assert_eq!(dump(&q), dump(&p));

        // An empty object is still a call, of 0 µs, of the kind its event
        // implies.
        let mut r = projection();
        r.apply(&ev(1, kinds::CONDITION_EVALUATED, Some("p"), json!({}), 0));
        r.apply(&ev(2, kinds::PLUGIN_CALL_FAILED, Some("p"), json!([]), 0));
        let m = r.get("p").unwrap();
        assert_eq!(m.counters().condition_evaluations, 1);
        assert_eq!(m.counters().requests, 2);
        assert_eq!(m.counters().total_time_us, 0);
        let calls: Vec<_> = m.lifetime_calls().collect();
        assert_eq!(
            calls,
            vec![
                (CallKind::Condition, Outcome::Ok, 1),
                (CallKind::Other, Outcome::Error, 1)
            ]
        );
        assert_eq!(
            m.recent_errors().next().unwrap().error_message,
            "unknown error"
        );
    }

    #[test]
    fn many_worlds_keep_a_bounded_set_of_clocks() {
        let mut p = PluginMetricsProjection::new(HealthConfig {
            window_calls: 10,
            ..HealthConfig::default()
        });
        for i in 0..200u64 {
            let e = in_world(
                ev(
                    i + 1,
                    kinds::CONDITION_EVALUATED,
                    Some("p"),
                    cond_ok(1),
                    i as i64,
                ),
                &format!("w{i}"),
            );
            p.apply(&e);
        }
        let m = p.get("p").unwrap();
        assert!(m.window.worlds.len() <= MAX_WORLD_CLOCKS + 1);
        assert_eq!(m.latency().samples, 10);
        assert!(m.window.samples.iter().all(|s| s.w < m.window.worlds.len()));
        // The newest samples still point at their own worlds.
        let newest = m.window.samples.back().unwrap();
        assert_eq!(m.window.worlds[newest.w].world, "w199");
    }

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
    fn payload_fields_read_from_the_text_as_from_the_value() {
        let texts = [
            r#"{"call":"condition","condition_id":"c1","duration_us":12,"inputs":{"a":[1,{"b":"c"}]}}"#,
            r#"{"c\u0061ll":"effect","effect_id":"e\"1","duration_us":7.9}"#,
            r#"{"call":"condition","call":"effect","duration_us":5,"duration_us":"x"}"#,
            r#"{"call":5,"duration_us":-3,"waited_us":1e300,"error":{"b":1,"a":[1,2.5,"x"]},"deadline_ms":50}"#,
            r#"{"error":"multi\nline \u00e9","panic":[1,{"z":null}],"deadline_ms":-5,"waited_us":123.75}"#,
            r#"{"error":null,"panic":null,"deadline_ms":50.0,"waited_us":"z","handler":"h","id":"i"}"#,
            r#"{"error":12345678901234567890,"panic":true,"deadline_ms":18446744073709551615}"#,
            r#"{"error":-0.0,"panic":"p\\q","handler":7,"id":"x","provider_id":"p","duration_us":-0}"#,
            r#"{"permission":"session:read","permission":7}"#,
            r#"{"permission":"world:\u0077rite","call":"simulation_config","duration_us":1}"#,
            r#"  {"call" : "effect" , "effect_id" : "spaced" , "duration_us" : 40 }  "#,
            r#"[1,2,{"call":"effect"}]"#,
            r#""call""#,
            "null",
            "42",
            "true",
            "{}",
        ];
        for text in texts {
            let value: Value = serde_json::from_str(text).unwrap();
            let from_text: CallFields<'_> = serde_json::from_str(text).unwrap();
            assert_eq!(from_text, CallFields::of_value(&value), "{text}");
            for kind in CallKind::ALL {
                assert_eq!(
                    from_text.call_id(kind),
                    CallFields::of_value(&value).call_id(kind),
                    "{text}"
                );
            }
        }
        let fields: CallFields<'_> =
            serde_json::from_str(r#"{"duration_us":-3,"waited_us":1e300,"deadline_ms":2.5}"#)
                .unwrap();
        assert_eq!(fields.duration_us.micros(), 0);
        assert_eq!(fields.waited_us.micros(), u64::MAX);
        assert_eq!(fields.deadline_ms.as_u64(), None);
        assert_eq!(fields.deadline_ms.micros(), 2);
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

    #[test]
    fn timestamps_are_written_as_format_timestamp_writes_them() {
        let mut times = vec![
            base(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(10000, 6, 1, 0, 0, 0).unwrap(),
            // A leap second.
            Utc.from_utc_datetime(
                &chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                    .unwrap()
                    .and_hms_nano_opt(23, 59, 59, 1_999_999_999)
                    .unwrap(),
            ),
        ];
        for i in 0..200i64 {
            times.push(base() + chrono::Duration::microseconds(i * 987_654_321_123 + i));
        }
        for t in times {
            let mut out = "x".to_owned();
            write_time(&mut out, &t);
            assert_eq!(out, format!("x{}", format_timestamp(&t)));
        }
    }

    #[test]
    fn a_row_read_back_reads_as_the_row_it_was() {
        let mut p = projection();
        run(&mut p, &twelve(&[0, 3, 6, 9]));
        let m = p.get("p").unwrap();
        let text = serde_json::to_string(m).unwrap();
        let back: PluginMetrics = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, m);
        assert_eq!(back.health(), m.health());
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["health"]["reason"], m.health().reason.as_str());
        assert_eq!(
            v["health"].as_object().unwrap().keys().collect::<Vec<_>>(),
            ["last_check", "reason", "since", "since_position", "state"]
        );
    }
}

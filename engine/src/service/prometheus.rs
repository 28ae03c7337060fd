//! `GET /metrics`: Prometheus text, rendered by metrics-exporter-prometheus
//! from the projections' rows.
//!
//! Every scrape builds a fresh recorder (never a process-wide one) and fills
//! it with the totals the projections hold, so a restarted engine, or a
//! second engine on the same database, reports the same values. Counters
//! are lifetime totals: a metrics reset (`MetricsReset`) restarts the admin
//! API's counters, never these, since Prometheus counters only go up. Labels
//! are bounded: plugin ids, call kinds, outcomes, permission strings,
//! failure reasons and projection names; never world, session, NPC or event ids.

use std::sync::atomic::Ordering;

use anyhow::Context as _;
use metrics::{Key, Label, Metadata, Recorder as _, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use provenant_projections::names;
use provenant_projections::plugin_metrics::{DURATION_BUCKETS, PluginMetrics};
use provenant_projections::totals::Totals;

use super::commit::APPEND_BUCKETS;
use super::engine::Engine;

const CALLS: &str = "provenant_plugin_calls_total";
const DURATION: &str = "provenant_plugin_call_duration_seconds";
const HEALTH: &str = "provenant_plugin_health";
const DENIALS: &str = "provenant_permission_denials_total";
const HEAD: &str = "provenant_log_head_position";
const RELAYED: &str = "provenant_relay_position";
const RELAY_LAG: &str = "provenant_relay_lag_events";
const PROJECTION_POSITION: &str = "provenant_projection_position";
const PROJECTION_LAG: &str = "provenant_projection_lag_events";
const TICKS: &str = "provenant_ticks_processed_total";
const REJECTED: &str = "provenant_ticks_rejected_total";
const RESETS: &str = "provenant_metrics_resets_total";
const BUILD: &str = "provenant_build_info";
const READY: &str = "provenant_ready";
const CIRCUIT: &str = "provenant_plugin_circuit_open";
const FAILURES: &str = "provenant_plugin_call_failures_total";
const WORLDS_LOADED: &str = "provenant_worlds_loaded";
const FOLLOWED: &str = "provenant_log_followed_events_total";
const FOLLOWER_READS: &str = "provenant_log_follower_reads_total";
const APPENDS: &str = "provenant_log_appends_total";
const APPENDS_FENCED: &str = "provenant_log_appends_fenced_total";
const LEASE_OPERATIONS: &str = "provenant_cluster_lease_operations_total";
const PARTITIONS_HELD: &str = "provenant_cluster_partitions_held";
const APPENDED: &str = "provenant_log_appended_events_total";
const APPEND_FAILURES: &str = "provenant_log_append_failures_total";
const APPEND_DURATION: &str = "provenant_log_append_duration_seconds";

/// The Prometheus text of the engine's metrics now.
pub async fn render(engine: &Engine) -> anyhow::Result<String> {
    let head = engine
        .log
        .head()
        .await
        .context("cannot read the log's head")?
        .position;
    let plugins = load::<PluginMetrics>(engine, names::PLUGIN_METRICS).await?;
    let totals = load::<Totals>(engine, names::TOTALS)
        .await?
        .into_iter()
        .next()
        .unwrap_or_default();
    let statuses = engine
        .log
        .projection_statuses()
        .await
        .context("cannot read the projections' checkpoints")?;

    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(DURATION.into()), &DURATION_BUCKETS)
        .context("invalid histogram buckets")?
        .set_buckets_for_metric(Matcher::Full(APPEND_DURATION.into()), &APPEND_BUCKETS)
        .context("invalid histogram buckets")?
        .build_recorder();
    let r = Registry(&recorder);
    r.describe_all();

    for m in &plugins {
        let plugin = m.plugin_id().to_owned();
        for (kind, outcome, count) in m.lifetime_calls() {
            r.counter(
                CALLS,
                vec![
                    Label::new("plugin", plugin.clone()),
                    Label::new("kind", kind.as_str()),
                    Label::new("outcome", outcome.as_str()),
                ],
            )
            .absolute(count);
        }
        for (kind, histogram) in m.histograms() {
            let h = r.histogram(
                DURATION,
                vec![
                    Label::new("plugin", plugin.clone()),
                    Label::new("kind", kind.as_str()),
                ],
            );
            // Each bucket's observations, at their mean: the mean of the
            // values in a bucket lies in that bucket, so every bucket count
            // and the sum come out as the projection holds them.
            for (count, sum) in histogram.buckets() {
                if count > 0 {
                    h.record_many(
                        sum / count as f64,
                        usize::try_from(count).unwrap_or(usize::MAX),
                    );
                }
            }
        }
        for (permission, count) in m.lifetime_denials() {
            r.counter(
                DENIALS,
                vec![
                    Label::new("plugin", plugin.clone()),
                    Label::new("permission", permission.to_owned()),
                ],
            )
            .absolute(count);
        }
        for (reason, count) in m.failures_by_reason() {
            r.counter(
                FAILURES,
                vec![
                    Label::new("plugin", plugin.clone()),
                    Label::new("reason", reason.to_owned()),
                ],
            )
            .absolute(count);
        }
        if m.is_remote() {
            r.gauge(CIRCUIT, vec![Label::new("plugin", plugin.clone())])
                .set(if m.circuit_open() { 1.0 } else { 0.0 });
        }
        r.gauge(HEALTH, vec![Label::new("plugin", plugin)])
            .set(m.health_state().as_gauge());
    }

    r.gauge(HEAD, vec![]).set(head as f64);
    if engine.relays_to_nats() {
        let relayed = engine.relayed.load(Ordering::Relaxed);
        r.gauge(RELAYED, vec![]).set(relayed as f64);
        r.gauge(RELAY_LAG, vec![])
            .set(head.saturating_sub(relayed) as f64);
    }
    for status in statuses
        .iter()
        .filter(|s| names::ALL.contains(&s.name.as_str()))
    {
        let label = vec![Label::new("projection", status.name.clone())];
        r.gauge(PROJECTION_POSITION, label.clone())
            .set(status.position as f64);
        r.gauge(PROJECTION_LAG, label)
            .set(head.saturating_sub(status.position) as f64);
    }
    for name in names::ALL {
        if !statuses.iter().any(|s| s.name == *name) {
            // Never run yet: all of the log is ahead of it.
            let label = vec![Label::new("projection", name.to_string())];
            r.gauge(PROJECTION_POSITION, label.clone()).set(0.0);
            r.gauge(PROJECTION_LAG, label).set(head as f64);
        }
    }
    r.gauge(WORLDS_LOADED, vec![])
        .set(engine.worlds.loaded() as f64);
    for (follower, counters) in [
        ("relay", &engine.reads.relay),
        ("projections", &engine.reads.projections),
    ] {
        let stats = counters.stats();
        for (source, count) in [("feed", stats.from_feed), ("log", stats.from_log)] {
            r.counter(
                FOLLOWED,
                vec![
                    Label::new("follower", follower),
                    Label::new("source", source),
                ],
            )
            .absolute(count);
        }
        r.counter(FOLLOWER_READS, vec![Label::new("follower", follower)])
            .absolute(stats.log_reads);
    }
    let commits = engine.committer.counts();
    r.counter(APPENDS, vec![]).absolute(commits.appends);
    r.counter(APPENDED, vec![]).absolute(commits.events);
    r.counter(APPEND_FAILURES, vec![])
        .absolute(commits.failures);
    r.counter(APPENDS_FENCED, vec![]).absolute(commits.fenced);
    r.counter(LEASE_OPERATIONS, vec![]).absolute(
        engine
            .lease_operations
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    r.gauge(PARTITIONS_HELD, vec![])
        .set(engine.worlds.ownership().held().len() as f64);
    let h = r.histogram(APPEND_DURATION, vec![]);
    for (count, seconds) in commits.durations {
        // At their mean, as the plugin call durations.
        if count > 0 {
            h.record_many(
                seconds / count as f64,
                usize::try_from(count).unwrap_or(usize::MAX),
            );
        }
    }
    r.gauge(READY, vec![])
        .set(if engine.health.readiness().ready {
            1.0
        } else {
            0.0
        });
    r.counter(TICKS, vec![]).absolute(totals.ticks_processed);
    r.counter(REJECTED, vec![]).absolute(totals.ticks_rejected);
    r.counter(RESETS, vec![]).absolute(totals.metrics_resets);
    r.gauge(
        BUILD,
        vec![Label::new(
            "version",
            provenant_host::ENGINE_VERSION.to_string(),
        )],
    )
    .set(1.0);
    Ok(recorder.handle().render())
}

/// The rows of a projection, decoded.
async fn load<T: serde::de::DeserializeOwned>(
    engine: &Engine,
    name: &'static str,
) -> anyhow::Result<Vec<T>> {
    let stored = engine
        .log
        .load_projection(name)
        .await
        .with_context(|| format!("cannot read the {name} projection"))?;
    stored
        .map(|s| s.rows)
        .unwrap_or_default()
        .into_iter()
        .map(|(key, json)| {
            serde_json::from_str(&json).with_context(|| {
                format!("the {name} row {key:?} does not read; rebuild it with `provenant projections rebuild {name}`")
            })
        })
        .collect()
}

/// Registers metrics on one recorder, without installing it anywhere.
struct Registry<'a>(&'a PrometheusRecorder);

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl Registry<'_> {
    fn counter(&self, name: &'static str, labels: Vec<Label>) -> metrics::Counter {
        self.0
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> metrics::Gauge {
        self.0
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> metrics::Histogram {
        self.0
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    fn describe_all(&self) {
        let describe = |name: &'static str, unit: Option<Unit>, help: &'static str| {
            self.0.describe_gauge(name.into(), unit, help.into());
        };
        let describe_counter = |name: &'static str, help: &'static str| {
            self.0.describe_counter(name.into(), None, help.into());
        };
        describe_counter(
            CALLS,
            "Plugin calls by plugin, kind (condition, effect, event_handler, simulation_config) and outcome (ok, error, timeout, denied), since the log began",
        );
        self.0.describe_histogram(
            DURATION.into(),
            Some(Unit::Seconds),
            "Duration of plugin calls (a timed-out call counts the time waited)".into(),
        );
        describe(
            HEALTH,
            None,
            "Plugin health over its sliding window: 0 unknown, 1 healthy, 2 degraded, 3 unhealthy",
        );
        describe_counter(
            DENIALS,
            "Capability requests refused, by plugin and permission",
        );
        describe(
            CIRCUIT,
            None,
            "Whether a remote plugin's circuit is open (1): its calls are not sent",
        );
        describe_counter(
            FAILURES,
            "Failed plugin calls that say why, by reason (remote plugins: status, unreachable, bad_reply, too_large, no_responders; not sent: circuit_open, rate_limited)",
        );
        describe(HEAD, None, "Position of the last event in the log");
        describe(
            RELAYED,
            None,
            "Position of the last event the relay published to NATS",
        );
        describe(
            RELAY_LAG,
            None,
            "Events in the log not yet published to NATS",
        );
        describe(
            PROJECTION_POSITION,
            None,
            "Position of the last event a projection has committed",
        );
        describe(
            PROJECTION_LAG,
            None,
            "Events in the log a projection has not committed yet",
        );
        describe(
            WORLDS_LOADED,
            None,
            "Worlds whose state is in memory (worlds in play; an idle world is saved and leaves)",
        );
        describe_counter(
            FOLLOWED,
            "Events the engine's relay and projections followed, by source: feed (handed over in memory by the append) or log (read back while catching up), since the engine started",
        );
        describe_counter(
            FOLLOWER_READS,
            "Reads of the log by the engine's relay and projections (those that found nothing included), since the engine started",
        );
        describe_counter(
            APPENDS,
            "Group appends the engine's committer made (each commits the events of several ticks and worlds together), since the engine started",
        );
        describe_counter(
            APPENDED,
            "Events appended by the engine's committer, since the engine started",
        );
        describe_counter(
            APPEND_FAILURES,
            "Group appends that failed (every tick in the group is retried or refused), since the engine started",
        );
        describe_counter(
            APPENDS_FENCED,
            "Group appends refused because a partition's lease had been taken over by another engine (its ticks are left to the new holder), since the engine started",
        );
        describe_counter(
            LEASE_OPERATIONS,
            "Lease statements this engine ran (renewals, takeovers, lists, releases), since it started: the cluster's cost on the database",
        );
        describe(
            PARTITIONS_HELD,
            None,
            "Partitions of the worlds this engine holds the lease of now",
        );
        self.0.describe_histogram(
            APPEND_DURATION.into(),
            Some(Unit::Seconds),
            "Duration of the committer's group appends, failures included, since the engine started: appends run one at a time, so the rate of the sum is the committer's busy share; near 1 ticks queue behind it and latency climbs".into(),
        );
        describe_counter(TICKS, "Ticks processed (TickProcessed events)");
        describe_counter(
            REJECTED,
            "Ticks rejected as bad input (TickRejected events)",
        );
        describe_counter(RESETS, "Plugin metrics resets (MetricsReset events)");
        describe(
            READY,
            None,
            "Whether the engine is ready (1), as /readyz says: the log reachable, the plugins loaded, NATS and the tick consumer running",
        );
        describe(
            BUILD,
            None,
            "Build information: always 1, with the version as a label",
        );
    }
}

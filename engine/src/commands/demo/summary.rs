//! What each plugin did, the throughput, the plugins' health, the verified
//! head and the replay: read from the log after the demo's engine stopped.

use std::collections::BTreeMap;

use anyhow::Context as _;
use provenant_events::{Position, keys, kinds};
use provenant_log::{EventLog, VerifyConfig};

use super::story::Told;
use crate::commands::audit::replay::{ReplayConfig, ReplayReport, replay};
use crate::plugin_source::PluginSource;

/// What each plugin did, the throughput and the verified head, read from
/// the log after the engine stopped.
pub async fn summary(
    log: &EventLog,
    start: Position,
    told: &Told,
    plugins: &PluginSource,
) -> anyhow::Result<()> {
    let mut per_plugin: BTreeMap<String, BTreeMap<&'static str, u64>> = told
        .plugins
        .iter()
        .map(|p| (p.clone(), BTreeMap::new()))
        .collect();
    let (mut events, mut processed) = (0u64, 0u64);
    let mut after = start;
    loop {
        let page = log
            .read_forward(after, 5_000)
            .await
            .context("cannot read the log")?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for e in &page {
            events += 1;
            let kind = e.kind.as_str();
            if kind == kinds::TICK_PROCESSED {
                processed += 1;
            }
            if let Some(plugin) = &e.plugin_id
                && let Some(label) = summary_label(kind, e.payload.value())
            {
                *per_plugin
                    .entry(plugin.to_string())
                    .or_default()
                    .entry(label)
                    .or_default() += 1;
            }
        }
    }
    let columns = [
        "evaluations",
        "effects",
        "handled",
        "failures",
        "panics",
        "timeouts",
        "denials",
        "sandboxed",
    ];
    println!("what each plugin did, counted from the {events} events this run added to the log:");
    print!("  {:<15}", "plugin");
    for c in columns {
        print!(" {c:>11}");
    }
    println!();
    for (plugin, counts) in &per_plugin {
        print!("  {plugin:<15}");
        for c in columns {
            print!(" {:>11}", counts.get(c).copied().unwrap_or(0));
        }
        println!();
    }
    println!(
        "  (failures, panics and timeouts come from example-flaky on purpose; denials from example-nosy,"
    );
    println!(
        "   which probes another plugin's flags and a session write in each failure mode: RAISE, WARN, SILENT;"
    );
    println!(
        "   sandboxed: calls the WebAssembly sandbox stopped at a limit, here wasm-runaway's endless loop out of fuel)"
    );
    if let Some(config) = &told.effective_config {
        println!("  tavern's effective simulation config: {config}");
    }
    plugin_health(log).await?;
    let t = &told.ticks;
    if processed == t.sent {
        println!(
            "exactly once: {processed} TickProcessed events for {} ticks sent (the tick sent twice added none)",
            t.sent
        );
    } else {
        println!(
            "NOT exactly once: {processed} TickProcessed events for {} ticks sent",
            t.sent
        );
    }
    let seconds = t.seconds.max(1e-9);
    println!(
        "throughput: {} ticks in {:.2} s, {:.0} ticks/s, {:.0} events/s (from the first tick sent to the last acknowledged)",
        t.sent,
        t.seconds,
        t.sent as f64 / seconds,
        t.events as f64 / seconds
    );

    let report = log
        .verify(&VerifyConfig::default(), &mut |_| {})
        .await
        .context("cannot verify the log")?;
    println!();
    match &report.violation {
        None => println!(
            "chain verified: {} events intact, head {}",
            report.count, report.head
        ),
        Some(v) => println!(
            "chain TAMPERED at position {}: {}: {}",
            v.position, v.fault, v.detail
        ),
    }
    println!("store the head elsewhere, then check the log later with:");
    println!("  provenant audit verify --expect-head {}", report.head);

    let config = ReplayConfig {
        from: Some(start + 1),
        ..Default::default()
    };
    // As `audit replay`: WebAssembly calls get at least the replay's
    // deadline, so a busy machine does not stop calls the engine completed.
    let replaying = PluginSource {
        min_wasm_timeout_ms: Some(u64::try_from(config.deadline.as_millis()).unwrap_or(u64::MAX)),
        ..plugins.clone()
    };
    let replayed = replay(log, &config, replaying.load()?, &|_, _| {})
        .await
        .context("cannot replay the plugin calls")?;
    println!(
        "replayed with this build's plugins, each call fed what its event recorded: {} of {} calls matched{}",
        replayed.matched(),
        replayed.replayed(),
        skipped_text(&replayed)
    );
    println!("explain any plugin action, and re-check it against this build:");
    println!(
        "  provenant audit trail --session s1 --npc npc-0 --kind RelationshipUpdated --limit 5"
    );
    println!("  provenant audit replay --from POSITION --to POSITION");
    Ok(())
}

/// Each plugin's health as the `plugin_metrics` projection judges it (caught
/// up with the head first: the engine stopped before it had to).
async fn plugin_health(log: &EventLog) -> anyhow::Result<()> {
    let config = provenant_projections::ProjectionsConfig::default();
    let Some((_, factory)) = provenant_projections::standard(&config)
        .into_iter()
        .find(|(name, _)| *name == provenant_projections::names::PLUGIN_METRICS)
    else {
        return Ok(());
    };
    let head = log.head().await.context("cannot read the head")?.position;
    let mut runner = provenant_projections::Runner::load(log.clone(), factory, Default::default())
        .await
        .context("cannot load the plugin metrics projection")?;
    runner
        .catch_up(head, |_| {})
        .await
        .context("cannot bring the plugin metrics projection up to date")?;
    let stored = log
        .load_projection(provenant_projections::names::PLUGIN_METRICS)
        .await
        .context("cannot read the plugin metrics")?;
    println!(
        "plugin health (the plugin_metrics projection, over each plugin's last 200 calls within 5 minutes of game time;"
    );
    println!("   GET /admin/plugins/health and /metrics serve the same from a running engine):");
    for (plugin, json) in stored.map(|s| s.rows).unwrap_or_default() {
        let Ok(m) =
            serde_json::from_str::<provenant_projections::plugin_metrics::PluginMetrics>(&json)
        else {
            continue;
        };
        let latency = m.latency();
        let p99 = latency
            .p99_ms
            .map_or("-".to_owned(), |ms| format!("{ms:.2} ms"));
        println!(
            "  {plugin:<15} {:<10} p99 {p99:<10} {}",
            m.health_state().as_str(),
            m.health().reason
        );
    }
    Ok(())
}

/// ` (6 skipped: 6 deadline_exceeded)`, or nothing.
fn skipped_text(report: &ReplayReport) -> String {
    let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
    for p in &report.plugins {
        for (reason, n) in &p.skipped {
            *reasons.entry(reason.as_str()).or_default() += n;
        }
    }
    if reasons.is_empty() {
        return String::new();
    }
    let each: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    format!(" ({} skipped: {})", report.skipped(), each.join(", "))
}

fn summary_label(kind: &str, payload: &serde_json::Value) -> Option<&'static str> {
    Some(match kind {
        kinds::PLUGIN_CALL_FAILED if payload.get(keys::LIMIT).is_some() => "sandboxed",
        kinds::CONDITION_EVALUATED => "evaluations",
        kinds::EFFECT_APPLIED => "effects",
        kinds::EVENT_HANDLED => "handled",
        kinds::PLUGIN_CALL_FAILED => "failures",
        kinds::PLUGIN_CALL_PANICKED => "panics",
        kinds::PLUGIN_DEADLINE_EXCEEDED => "timeouts",
        kinds::PERMISSION_DENIED => "denials",
        _ => return None,
    })
}

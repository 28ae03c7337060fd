//! What a replay of a whole log must report.

use std::collections::BTreeMap;

use provenant_events::{Event, kinds};
use serde_json::Value;

use crate::cli::{json, provenant_on, stderr, stdout};

/// `provenant audit replay --json` with `args` on the log at `url`: its
/// report, after checking the exit status.
pub fn replay_json(url: &str, args: &[&str], code: i32) -> Value {
    let mut all = vec!["audit", "replay", "--json"];
    all.extend(args);
    let out = provenant_on(url, &all);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    json(&out)
}

/// The recorded plugin calls of each plugin, and how many of them overran
/// their deadline.
pub fn calls_by_plugin(events: &[Event]) -> BTreeMap<String, (u64, u64)> {
    let mut calls: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in events {
        if let Some(p) = &e.plugin_id
            && kinds::records_a_call(e.kind.as_str())
        {
            let c = calls.entry(p.to_string()).or_default();
            c.0 += 1;
            if e.kind.as_str() == kinds::PLUGIN_DEADLINE_EXCEEDED {
                c.1 += 1;
            }
        }
    }
    calls
}

/// Asserts that a `--json` replay report matched every call of the log but
/// the overruns, which it skipped.
pub fn assert_all_replayed_and_matched(report: &Value, events: &[Event]) {
    assert_eq!(report["status"], "matched", "{report}");
    assert_eq!(report["calls"]["diverged"], 0, "{report}");
    let calls = calls_by_plugin(events);
    let plugins = report["plugins"].as_array().expect("plugins");
    assert_eq!(plugins.len(), calls.len(), "{report}");
    for p in plugins {
        let id = p["plugin_id"].as_str().unwrap();
        let (recorded, overran) = calls[id];
        assert_eq!(p["version"], "1.0.0");
        assert_eq!(p["replayed"], p["matched"], "{p}");
        assert_eq!(
            p["replayed"].as_u64().unwrap(),
            recorded - overran,
            "{id}: {p}"
        );
        let skipped: u64 = p["skipped"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert_eq!(skipped, overran, "{id}: only overruns are skipped: {p}");
        if overran > 0 {
            assert_eq!(p["skipped"]["deadline_exceeded"], overran, "{p}");
        }
    }
    assert!(
        report["calls"]["replayed"].as_u64().unwrap() > 500,
        "{report}"
    );
}

/// The entry of plugin `id` in a replay's JSON report.
pub fn plugin_report<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["plugins"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["plugin_id"] == id))
        .unwrap_or_else(|| panic!("{id} not in {report}"))
}

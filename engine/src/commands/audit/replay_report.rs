//! What `provenant audit replay` found, and how it reads: the report, its
//! JSON form and its text.

use std::collections::BTreeMap;
use std::process::ExitCode;

use provenant_events::Position;
use serde::Serialize;
use serde_json::{Value, json};

use super::reading::plural;
/// Why a recorded call was not replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    PluginNotInBuild,
    ModuleNotAvailable,
    Remote,
    EndpointNotAvailable,
    VersionNotInBuild,
    DeadlineExceeded,
    ProviderCall,
    IncompleteRecord,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::PluginNotInBuild => "plugin_not_in_build",
            SkipReason::ModuleNotAvailable => "module_not_available",
            SkipReason::Remote => "remote",
            SkipReason::EndpointNotAvailable => "endpoint_not_available",
            SkipReason::VersionNotInBuild => "version_not_in_build",
            SkipReason::DeadlineExceeded => "deadline_exceeded",
            SkipReason::ProviderCall => "provider_call",
            SkipReason::IncompleteRecord => "incomplete_record",
        }
    }

    pub fn explain(self) -> &'static str {
        match self {
            SkipReason::PluginNotInBuild => "this build does not have the plugin",
            SkipReason::ModuleNotAvailable => {
                "the plugins directory holds no WebAssembly module of the plugin"
            }
            SkipReason::Remote => {
                "a remote plugin's call: not re-executed (--remote-live sends it again)"
            }
            SkipReason::EndpointNotAvailable => {
                "the plugins directory holds no remote plugin of that id to send it to"
            }
            SkipReason::VersionNotInBuild => "this build carries another version of the plugin",
            SkipReason::DeadlineExceeded => {
                "the call overran its deadline: it never returned, so no result, reads or writes of it were recorded"
            }
            SkipReason::ProviderCall => {
                "simulation config providers are recorded in the effective config, not per call"
            }
            SkipReason::IncompleteRecord => {
                "the event lacks what a replay needs (tick, call index, scene, the reads it made, or the event a handler handled)"
            }
        }
    }
}

/// One recorded call that the replay did differently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    /// The position of the event that records the call.
    pub position: Position,
    pub kind: String,
    /// `condition`, `effect` or `event_handler`.
    pub call: String,
    pub id: String,
    pub tick: Option<u64>,
    pub world_id: Option<String>,
    pub session_id: Option<String>,
    pub npc_id: Option<String>,
    /// What differs: `reads` (the call asked for something the recording
    /// does not hold), `outcome`, `result`, `error`, `panic`, `writes`,
    /// `record` (another field of the call's event), `not_registered` or
    /// `missing_context` (this build would not make the call).
    pub what: String,
    pub recorded: Value,
    pub replayed: Value,
}

/// What the replay found for one plugin at one version.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PluginReplay {
    pub plugin_id: String,
    pub version: String,
    /// The module the calls recorded (a sandboxed plugin's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_digest: Option<String>,
    /// The module they were replayed with, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed_digest: Option<String>,
    /// Calls re-executed (matched + diverged).
    pub replayed: u64,
    pub matched: u64,
    pub diverged: u64,
    pub skipped: BTreeMap<SkipReason, u64>,
    /// The first divergences, by position (at most `keep`).
    pub divergences: Vec<Divergence>,
}

/// What a replay found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplayReport {
    pub from: Position,
    pub to: Position,
    /// Events in `from..=to`.
    pub events: u64,
    /// Ticks with an event in the range.
    pub ticks: u64,
    pub seconds: f64,
    /// By plugin id, then version.
    pub plugins: Vec<PluginReplay>,
}

impl ReplayReport {
    pub fn replayed(&self) -> u64 {
        self.plugins.iter().map(|p| p.replayed).sum()
    }

    pub fn matched(&self) -> u64 {
        self.plugins.iter().map(|p| p.matched).sum()
    }

    pub fn diverged(&self) -> u64 {
        self.plugins.iter().map(|p| p.diverged).sum()
    }

    pub fn skipped(&self) -> u64 {
        self.plugins.iter().flat_map(|p| p.skipped.values()).sum()
    }

    /// Every divergence kept, by position.
    pub fn divergences(&self) -> Vec<&Divergence> {
        let mut all: Vec<&Divergence> = self.plugins.iter().flat_map(|p| &p.divergences).collect();
        all.sort_by_key(|d| d.position);
        all
    }
}

/// How `audit replay` ended.
#[derive(Debug)]
pub enum ReplayOutcome {
    Matched(ReplayReport),
    Diverged(ReplayReport),
    CouldNotRun(anyhow::Error),
}

impl ReplayOutcome {
    /// 0 every replayed call matched, 1 a divergence, 2 could not run.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ReplayOutcome::Matched(_) => ExitCode::SUCCESS,
            ReplayOutcome::Diverged(_) => ExitCode::from(1),
            ReplayOutcome::CouldNotRun(_) => ExitCode::from(2),
        }
    }
}

pub fn print_outcome(outcome: &ReplayOutcome, as_json: bool) {
    let report = match outcome {
        ReplayOutcome::Matched(r) | ReplayOutcome::Diverged(r) => r,
        ReplayOutcome::CouldNotRun(e) => {
            if as_json {
                println!(
                    "{}",
                    json!({"status": "error", "error": crate::error_text::error_text(e)})
                );
            } else {
                eprintln!("error: {}", crate::error_text::error_text(e));
            }
            return;
        }
    };
    if as_json {
        let status = if report.diverged() == 0 {
            "matched"
        } else {
            "diverged"
        };
        println!(
            "{}",
            json!({
                "status": status,
                "from": report.from,
                "to": report.to,
                "events": report.events,
                "ticks": report.ticks,
                "seconds": report.seconds,
                "calls": {
                    "replayed": report.replayed(),
                    "matched": report.matched(),
                    "diverged": report.diverged(),
                    "skipped": report.skipped(),
                },
                "plugins": report.plugins,
            })
        );
        return;
    }
    print!("{}", render(report));
}

/// The human report.
pub fn render(report: &ReplayReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if report.from > report.to {
        let _ = writeln!(
            out,
            "nothing to replay: positions {} to {} hold no events",
            report.from, report.to
        );
        return out;
    }
    let _ = writeln!(
        out,
        "replayed the plugin calls recorded at positions {} to {} ({}, {}) in {:.2} s ({:.0} events/s)",
        report.from,
        report.to,
        plural(report.events, "event"),
        plural(report.ticks, "tick"),
        report.seconds,
        report.events as f64 / report.seconds.max(1e-9)
    );
    let _ = writeln!(
        out,
        "  {:<18} {:<10} {:>9} {:>9} {:>9} {:>9}",
        "plugin", "version", "replayed", "matched", "diverged", "skipped"
    );
    for p in &report.plugins {
        let skipped: u64 = p.skipped.values().sum();
        let _ = writeln!(
            out,
            "  {:<18} {:<10} {:>9} {:>9} {:>9} {:>9}",
            p.plugin_id, p.version, p.replayed, p.matched, p.diverged, skipped
        );
    }
    for p in &report.plugins {
        let Some(recorded) = &p.recorded_digest else {
            continue;
        };
        match &p.replayed_digest {
            Some(replayed) if replayed == recorded => {
                let _ = writeln!(
                    out,
                    "{} {}: replayed with the module it recorded, {recorded}",
                    p.plugin_id, p.version
                );
            }
            Some(replayed) => {
                let _ = writeln!(
                    out,
                    "{} {}: recorded with {recorded}, replayed with another module, {replayed}: divergences are what the new module does differently",
                    p.plugin_id, p.version
                );
            }
            None => {}
        }
    }
    for p in &report.plugins {
        for (reason, n) in &p.skipped {
            let _ = writeln!(
                out,
                "skipped {n} of {} {}: {}: {}",
                p.plugin_id,
                p.version,
                reason.as_str(),
                reason.explain()
            );
        }
    }
    for p in report.plugins.iter().filter(|p| p.diverged > 0) {
        let shown = if p.divergences.len() as u64 == p.diverged {
            String::new()
        } else {
            format!("; the first {}", p.divergences.len())
        };
        let _ = writeln!(
            out,
            "DIVERGED: {} {}: {} of {} replayed calls{shown}:",
            p.plugin_id, p.version, p.diverged, p.replayed,
        );
        for d in &p.divergences {
            let npc = d
                .npc_id
                .as_deref()
                .map(|n| format!(", {n}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  position {}: {} {} (tick {} of {}/{}{npc}): {} not as recorded",
                d.position,
                d.call,
                d.id,
                d.tick.map_or("?".into(), |t| t.to_string()),
                d.world_id.as_deref().unwrap_or("?"),
                d.session_id.as_deref().unwrap_or("?"),
                d.what
            );
            let _ = writeln!(out, "    recorded: {}", d.recorded);
            let _ = writeln!(out, "    replayed: {}", d.replayed);
        }
    }
    let (replayed, diverged) = (report.replayed(), report.diverged());
    if replayed == 0 && report.skipped() == 0 {
        let _ = writeln!(out, "no recorded plugin call in the range matches");
    } else if diverged == 0 {
        let _ = writeln!(
            out,
            "all {} matched what was recorded ({} skipped)",
            plural(replayed, "replayed call"),
            report.skipped()
        );
    } else {
        let _ = writeln!(
            out,
            "{diverged} of {replayed} replayed calls diverged from what was recorded ({} skipped)",
            report.skipped()
        );
    }
    out
}

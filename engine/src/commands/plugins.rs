//! `provenant plugins list`.

use std::process::ExitCode;

use clap::Subcommand;
use provenant_host::{HostConfig, PluginHost};
use serde_json::json;

use crate::error_text::report;

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Each plugin with its version, kind, granted permissions and what it
    /// registered.
    List {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

impl PluginsCommand {
    /// Runs the command; its exit code.
    pub fn run(self) -> ExitCode {
        match self {
            PluginsCommand::List { json } => report(list(json)),
        }
    }
}

/// Prints each plugin of the build: version, kind, granted permissions and
/// what it registered (text, or one JSON object with `--json`).
pub fn list(as_json: bool) -> anyhow::Result<()> {
    let host = PluginHost::start(provenant_plugins::builtin(), HostConfig::default())?;
    let registry = host.registry();
    if as_json {
        let loaded: Vec<_> = host
            .plugins()
            .iter()
            .map(|p| {
                json!({
                    "id": p.info.id,
                    "name": p.manifest.name,
                    "version": p.manifest.version,
                    "kind": p.manifest.kind,
                    "description": p.manifest.description,
                    "dependencies": p.manifest.dependencies,
                    "granted": p.info.granted,
                    "registered": registry.registered_by(p.info.id.as_str()),
                })
            })
            .collect();
        let skipped: Vec<_> = host
            .skipped()
            .iter()
            .map(|(id, reason)| json!({"id": id, "reason": reason}))
            .collect();
        println!(
            "{}",
            json!({"plugins": loaded, "skipped": skipped, "registry_locked": registry.is_locked()})
        );
        return Ok(());
    }
    for p in host.plugins() {
        println!(
            "{} {} ({}): {}",
            p.info.id, p.manifest.version, p.manifest.kind, p.manifest.description
        );
        let granted: Vec<&str> = p.info.granted.iter().map(|g| g.as_str()).collect();
        println!("  permissions: {}", granted.join(", "));
        let registered = registry.registered_by(p.info.id.as_str());
        for (label, key) in [
            ("conditions", "conditions"),
            ("effects", "effects"),
            ("simulation config", "simulation_configs"),
            ("subscribes to", "event_subscriptions"),
        ] {
            let ids: Vec<&str> = registered[key]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            if !ids.is_empty() {
                println!("  {label}: {}", ids.join(", "));
            }
        }
    }
    for (id, reason) in host.skipped() {
        println!("{id}: not loaded ({reason})");
    }
    Ok(())
}

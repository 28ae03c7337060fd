//! `provenant plugins list`.

use std::process::ExitCode;

use clap::Subcommand;
use provenant_host::{HostConfig, PluginHost};
use serde_json::json;

use super::args::PluginsDirArgs;
use crate::error_text::report;
use crate::plugin_source::PluginSource;

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Each plugin with its version, kind, granted permissions and what it
    /// registered.
    List {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        plugins: PluginsDirArgs,
    },
}

impl PluginsCommand {
    /// Runs the command; its exit code.
    pub fn run(self) -> ExitCode {
        match self {
            PluginsCommand::List { json, plugins } => report(list(&plugins.source(), json)),
        }
    }
}

/// Prints each plugin (the built-in ones and those of the plugins
/// directory): version, kind, runtime (and a sandboxed one's digest, a remote one's endpoint),
/// granted permissions and what it registered (text, or one JSON object
/// with `--json`).
pub fn list(source: &PluginSource, as_json: bool) -> anyhow::Result<()> {
    let host = PluginHost::start(source.load()?, HostConfig::default())?;
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
                    "runtime": p.info.runtime.as_str(),
                    "digest": p.info.runtime.digest(),
                    "endpoint": p.info.runtime.endpoint(),
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
            "{} {} ({}, {}): {}",
            p.info.id,
            p.manifest.version,
            p.manifest.kind,
            p.info.runtime.as_str(),
            p.manifest.description
        );
        if let Some(endpoint) = p.info.runtime.endpoint() {
            println!("  endpoint: {endpoint}");
        }
        if let Some(digest) = p.info.runtime.digest() {
            println!("  digest: {digest}");
        }
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

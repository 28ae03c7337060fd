//! Where a command's plugins come from: the built-in ones, and those of a
//! plugins directory: sandboxed (WebAssembly) plugins, and remote plugins
//! (manifest kind `remote_feature`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use provenant_host::Plugin;
use provenant_remote::{RemoteConfig, RemoteRuntime};
use provenant_wasm::{WasmConfig, WasmRuntime};

/// The plugins directory used when none is given, if it exists.
pub const DEFAULT_PLUGINS_DIR: &str = "plugins";
/// The NATS server remote plugins' `nats:<subject>` endpoints are reached
/// through, when none is given.
pub const DEFAULT_PLUGINS_NATS_URL: &str = "nats://127.0.0.1:4222";

/// Where plugins are loaded from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginSource {
    /// A directory of plugins (`None`: the built-in ones only).
    pub dir: Option<PathBuf>,
    /// Plugin folders loaded besides the directory's (the demo's example
    /// remote plugin), after them.
    pub folders: Vec<PathBuf>,
    /// The NATS server of remote plugins served on NATS (`None`: the
    /// default).
    pub nats_url: Option<String>,
    /// Where compiled plugins are cached between runs (`None`: compiled at
    /// every start).
    pub cache: Option<PathBuf>,
    /// Also the example WebAssembly plugins the binary carries (the demo
    /// loads them, and `audit replay` to replay the demo's calls); a plugin
    /// of the directory with the same id takes an example's place.
    pub examples: bool,
    /// The shortest wall-clock deadline a WebAssembly plugin's call gets,
    /// whatever its manifest says (`audit replay`: its own deadline).
    pub min_wasm_timeout_ms: Option<u64>,
}

impl PluginSource {
    /// The built-in plugins only.
    pub fn builtin() -> Self {
        PluginSource::default()
    }

    /// The built-in plugins, then those of the directory (in folder name
    /// order); a plugin the directory holds that cannot load is an error
    /// naming it and the problem.
    pub fn load(&self) -> anyhow::Result<Vec<Arc<dyn Plugin>>> {
        let mut plugins = provenant_plugins::builtin();
        if self.dir.is_none() && !self.examples && self.folders.is_empty() {
            return Ok(plugins);
        }
        let mut folders = match &self.dir {
            Some(dir) => folders(dir)
                .with_context(|| format!("the plugins of {} do not load", dir.display()))?,
            None => Vec::new(),
        };
        folders.extend(self.folders.iter().cloned());
        let manifests: Vec<(PathBuf, bool)> = folders
            .into_iter()
            .map(|f| {
                let text = std::fs::read_to_string(f.join(provenant_wasm::load::MANIFEST_FILE));
                let remote = text.is_ok_and(|t| provenant_remote::is_remote(&t));
                (f, remote)
            })
            .collect();
        let runtime = if self.examples || manifests.iter().any(|(_, remote)| !remote) {
            Some(
                WasmRuntime::new(&WasmConfig {
                    cache_dir: self.cache.clone(),
                    min_timeout_ms: self.min_wasm_timeout_ms,
                })
                .map_err(anyhow::Error::msg)
                .context("the WebAssembly runtime does not start")?,
            )
        } else {
            None
        };
        let remote_runtime = if manifests.iter().any(|(_, remote)| *remote) {
            Some(Arc::new(
                RemoteRuntime::new().context("the remote plugins' client does not start")?,
            ))
        } else {
            None
        };
        let remote_config = RemoteConfig {
            nats_url: self
                .nats_url
                .clone()
                .unwrap_or_else(|| DEFAULT_PLUGINS_NATS_URL.to_owned()),
        };
        let mut sandboxed = Vec::new();
        let mut remote: Vec<Arc<dyn Plugin>> = Vec::new();
        for (folder, is_remote) in &manifests {
            let loaded = match (is_remote, &runtime, &remote_runtime) {
                (true, _, Some(rt)) => provenant_remote::load_plugin(folder, rt, &remote_config)
                    .map(|p| remote.push(Arc::new(p)))
                    .map_err(anyhow::Error::from),
                (false, Some(rt), _) => provenant_wasm::load_plugin(folder, rt)
                    .map(|p| sandboxed.push(p))
                    .map_err(anyhow::Error::from),
                _ => Err(anyhow::anyhow!("no runtime for {}", folder.display())),
            };
            loaded.with_context(|| {
                let dir = folder.parent().unwrap_or(folder);
                format!("the plugins of {} do not load", dir.display())
            })?;
        }
        if let (true, Some(runtime)) = (self.examples, &runtime) {
            let examples = provenant_wasm::examples::examples(runtime)
                .context("the example WebAssembly plugins do not load")?;
            let mine: Vec<String> = sandboxed
                .iter()
                .map(|p| p.manifest().id)
                .chain(remote.iter().map(|p| p.manifest().id))
                .collect();
            sandboxed.extend(
                examples
                    .into_iter()
                    .filter(|e| !mine.contains(&e.manifest().id)),
            );
        }
        plugins.extend(
            sandboxed
                .into_iter()
                .map(|p| Arc::new(p) as Arc<dyn Plugin>),
        );
        plugins.extend(remote);
        Ok(plugins)
    }
}

/// The plugin folders of `dir` (each holding a `manifest.json`; folders
/// whose name starts with `.` are left alone), in name order.
fn folders(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.path().is_dir() {
            folders.push(entry.path());
        }
    }
    folders.sort();
    Ok(folders)
}

/// The default cache of compiled plugins: `$XDG_CACHE_HOME/provenant/wasm`,
/// or `~/.cache/provenant/wasm`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("provenant").join("wasm"))
}

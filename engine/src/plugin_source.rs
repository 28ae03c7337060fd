//! Where a command's plugins come from: the built-in ones, and the
//! sandboxed (WebAssembly) plugins of a plugins directory.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use provenant_host::Plugin;
use provenant_wasm::{WasmConfig, WasmRuntime};

/// The plugins directory used when none is given, if it exists.
pub const DEFAULT_PLUGINS_DIR: &str = "plugins";

/// Where plugins are loaded from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginSource {
    /// A directory of WebAssembly plugins (`None`: the built-in ones only).
    pub dir: Option<PathBuf>,
    /// Where compiled plugins are cached between runs (`None`: compiled at
    /// every start).
    pub cache: Option<PathBuf>,
    /// Also the example WebAssembly plugins the binary carries (the demo
    /// loads them, and `audit replay` to replay the demo's calls); a plugin
    /// of the directory with the same id takes an example's place.
    pub examples: bool,
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
        if self.dir.is_none() && !self.examples {
            return Ok(plugins);
        }
        let runtime = WasmRuntime::new(&WasmConfig {
            cache_dir: self.cache.clone(),
        })
        .map_err(anyhow::Error::msg)
        .context("the WebAssembly runtime does not start")?;
        let mut sandboxed = match &self.dir {
            Some(dir) => provenant_wasm::load_dir(dir, &runtime)
                .with_context(|| format!("the plugins of {} do not load", dir.display()))?,
            None => Vec::new(),
        };
        if self.examples {
            let examples = provenant_wasm::examples::examples(&runtime)
                .context("the example WebAssembly plugins do not load")?;
            let mine: Vec<String> = sandboxed.iter().map(|p| p.manifest().id).collect();
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
        Ok(plugins)
    }
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

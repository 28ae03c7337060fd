//! How a plugin's code runs: compiled into the binary, or sandboxed.

use provenant_events::Text;

/// How a plugin's code runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Runtime {
    /// Rust compiled into the binary: trusted with the process, and not
    /// pre-emptible (its calls run where the host's isolation puts them).
    #[default]
    Native,
    /// A WebAssembly component run in a sandbox that pre-empts it (fuel,
    /// epoch deadline, memory cap): its calls run on the caller's thread, and
    /// the events they cause carry `digest` in their provenance.
    Wasm {
        /// `sha256:<hex>` of the module.
        digest: Text,
    },
    /// A service in another process (a `remote_feature`), called over HTTP
    /// or NATS by a client that enforces the call's deadline itself: its
    /// calls run on the caller's thread, and the events they cause carry
    /// `endpoint` in their provenance.
    Remote {
        /// `http://…`, `https://…` or `nats:<subject>`.
        endpoint: Text,
    },
}

impl Runtime {
    /// `native` or `wasm`, as `plugins list` and `PluginLoaded` say it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Runtime::Native => "native",
            Runtime::Wasm { .. } => "wasm",
            Runtime::Remote { .. } => "remote",
        }
    }

    /// The module's digest, for a sandboxed plugin.
    pub fn digest(&self) -> Option<&Text> {
        match self {
            Runtime::Wasm { digest } => Some(digest),
            Runtime::Native | Runtime::Remote { .. } => None,
        }
    }

    /// The service's endpoint, for a remote plugin.
    pub fn endpoint(&self) -> Option<&Text> {
        match self {
            Runtime::Remote { endpoint } => Some(endpoint),
            Runtime::Native | Runtime::Wasm { .. } => None,
        }
    }

    /// Whether the runtime stops the plugin's calls at their deadline itself
    /// (so the host runs them inline, without a worker thread).
    pub fn preempts(&self) -> bool {
        !matches!(self, Runtime::Native)
    }
}

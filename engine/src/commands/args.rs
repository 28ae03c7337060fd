//! Arguments more than one command takes.

use clap::Args;
use provenant_log::DEFAULT_DATABASE_URL;

/// Where the log is.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// The log: postgres://… or sqlite://… (a file, created if missing).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
}

/// The plugin health window. Changing it applies from then on; rebuild
/// `plugin_metrics` to apply it to the whole log.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// A plugin's health is judged over its calls of the last this many
    /// seconds of game time (each world's own clock)…
    #[arg(long, env = "PROVENANT_HEALTH_WINDOW_SECONDS", default_value_t = 300)]
    pub health_window_seconds: u32,
    /// …and at most this many of its latest calls.
    #[arg(long, env = "PROVENANT_HEALTH_WINDOW_CALLS", default_value_t = 200)]
    pub health_window_calls: usize,
}

impl HealthArgs {
    pub fn config(&self) -> provenant_projections::ProjectionsConfig {
        provenant_projections::ProjectionsConfig {
            health: provenant_projections::plugin_metrics::HealthConfig {
                window: chrono::Duration::seconds(i64::from(self.health_window_seconds)),
                window_calls: self.health_window_calls.max(1),
                ..Default::default()
            },
        }
    }
}

/// Where the plugins a user brings are, for `serve`, `demo`, `plugins list`
/// and `audit replay`.
#[derive(Debug, Clone, Args)]
pub struct PluginsDirArgs {
    /// A directory of plugins, one folder each holding its manifest.json:
    /// WebAssembly plugins with their component (docs/plugin-authoring.md)
    /// and remote plugins (docs/remote-plugins.md). Default: ./plugins when
    /// that folder exists.
    #[arg(long, env = "PROVENANT_PLUGINS_DIR", value_name = "DIR")]
    pub plugins_dir: Option<std::path::PathBuf>,
    /// Where compiled plugins are kept between runs, by digest, so that an
    /// unchanged plugin is not compiled again at start-up; `off` for none.
    /// Default: $XDG_CACHE_HOME/provenant/wasm (or ~/.cache/provenant/wasm).
    #[arg(long, env = "PROVENANT_PLUGIN_CACHE", value_name = "DIR")]
    pub plugin_cache: Option<String>,
    /// The NATS server through which remote plugins with a nats:<subject>
    /// endpoint are called. Default: nats://127.0.0.1:4222.
    #[arg(long, env = "PROVENANT_PLUGINS_NATS_URL", value_name = "URL")]
    pub plugins_nats_url: Option<String>,
}

impl PluginsDirArgs {
    pub fn source(&self) -> crate::plugin_source::PluginSource {
        let default = std::path::Path::new(crate::plugin_source::DEFAULT_PLUGINS_DIR);
        let dir = self
            .plugins_dir
            .clone()
            .or_else(|| default.is_dir().then(|| default.to_owned()));
        let cache = match self.plugin_cache.as_deref() {
            Some("off") => None,
            Some(dir) => Some(dir.into()),
            None => crate::plugin_source::default_cache_dir(),
        };
        crate::plugin_source::PluginSource {
            dir,
            cache,
            examples: false,
            folders: Vec::new(),
            nats_url: self.plugins_nats_url.clone().filter(|u| !u.is_empty()),
            min_wasm_timeout_ms: None,
        }
    }
}

/// Where plugin calls run, for `serve` and `audit replay`.
pub fn isolation(name: &str) -> provenant_host::runner::Isolation {
    match name {
        "inline" => provenant_host::runner::Isolation::Inline,
        _ => provenant_host::runner::Isolation::Thread,
    }
}

/// Which part of the log an audit looks at: what matches every one given.
#[derive(Debug, Clone, Args)]
pub struct AuditScope {
    /// Only this world's.
    #[arg(long)]
    pub world: Option<provenant_events::WorldId>,
    /// Only this session's.
    #[arg(long)]
    pub session: Option<provenant_events::SessionId>,
    /// Only this plugin's.
    #[arg(long)]
    pub plugin: Option<String>,
}

/// How a command authenticates to NATS and checks its TLS: for `serve`,
/// `sim` and `audit anchors`.
#[derive(Debug, Clone, Default, Args)]
pub struct NatsAuthArgs {
    /// A NATS credentials file (a user JWT and its nkey seed, as nsc
    /// writes).
    #[arg(long, value_name = "FILE", env = "PROVENANT_NATS_CREDS")]
    pub nats_creds: Option<std::path::PathBuf>,
    /// A file holding a NATS user nkey seed (SU…).
    #[arg(long, value_name = "FILE", env = "PROVENANT_NATS_NKEY_FILE")]
    pub nats_nkey_file: Option<std::path::PathBuf>,
    /// A NATS user (with --nats-password), when the URL carries none.
    #[arg(long, value_name = "USER", env = "PROVENANT_NATS_USER")]
    pub nats_user: Option<String>,
    /// The NATS user's password.
    #[arg(long, value_name = "PASSWORD", env = "PROVENANT_NATS_PASSWORD", hide_env_values = true, value_parser = crate::secret::parse_secret)]
    pub nats_password: Option<crate::secret::SecretArg>,
    /// A NATS token, when the URL carries none.
    #[arg(long, value_name = "TOKEN", env = "PROVENANT_NATS_TOKEN", hide_env_values = true, value_parser = crate::secret::parse_secret)]
    pub nats_token: Option<crate::secret::SecretArg>,
    /// A CA certificate (PEM) the NATS server's certificate must chain to;
    /// TLS is then required.
    #[arg(long, value_name = "FILE", env = "PROVENANT_NATS_TLS_CA")]
    pub nats_tls_ca: Option<std::path::PathBuf>,
    /// A client certificate (PEM) for a NATS server that verifies clients.
    #[arg(long, value_name = "FILE", env = "PROVENANT_NATS_TLS_CERT")]
    pub nats_tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", env = "PROVENANT_NATS_TLS_KEY")]
    pub nats_tls_key: Option<std::path::PathBuf>,
}

impl NatsAuthArgs {
    pub fn auth(&self) -> crate::nats_connect::NatsAuth {
        crate::nats_connect::NatsAuth {
            creds: self.nats_creds.clone(),
            nkey_file: self.nats_nkey_file.clone(),
            user: self.nats_user.clone().filter(|u| !u.is_empty()),
            password: self.nats_password.clone().and_then(|a| a.0),
            token: self.nats_token.clone().and_then(|a| a.0),
            tls_ca: self.nats_tls_ca.clone(),
            tls_cert: self.nats_tls_cert.clone(),
            tls_key: self.nats_tls_key.clone(),
        }
    }
}

//! A plugin folder whose manifest is a `remote_feature`, turned into a
//! plugin. Nothing is sent at load: a service that is down is found by the
//! calls (and their circuit), not by refusing to start.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::endpoint::Endpoint;
use crate::error::{LoadError, Problem};
use crate::manifest::RemoteManifest;
use crate::plugin::RemotePlugin;
use crate::transport::{RemoteRuntime, Secret, Transport};

/// The file every plugin folder has.
pub const MANIFEST_FILE: &str = "manifest.json";

/// How remote plugins are reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The NATS server `nats:<subject>` endpoints are requested through.
    pub nats_url: String,
}

/// Whether a manifest's text declares a remote plugin (kind
/// `remote_feature`); a manifest that does not parse is not one.
pub fn is_remote(manifest: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(manifest).is_ok_and(|m| m["kind"] == "remote_feature")
}

/// Loads the remote plugin in `folder`.
pub fn load_plugin(
    folder: &Path,
    runtime: &Arc<RemoteRuntime>,
    config: &RemoteConfig,
) -> Result<RemotePlugin, LoadError> {
    let named = folder.file_name().map_or_else(
        || folder.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let fail = |plugin: &str, problem| LoadError {
        plugin: plugin.to_owned(),
        folder: folder.to_owned(),
        problem,
    };
    let text = std::fs::read_to_string(folder.join(MANIFEST_FILE))
        .map_err(|e| fail(&named, Problem::UnreadableManifest(e)))?;
    let manifest =
        RemoteManifest::parse(&text).map_err(|e| fail(&named, Problem::InvalidManifest(e)))?;
    let id = manifest.plugin.id.clone();
    let token = match &manifest.token_env {
        None => None,
        Some(name) => match std::env::var(name) {
            Ok(v) if !v.is_empty() => Some(Secret::new(v)),
            _ => return Err(fail(&id, Problem::MissingToken(name.clone()))),
        },
    };
    let transport = transport(&manifest.endpoint, token, runtime, config)
        .map_err(|e| fail(&id, Problem::Client(e)))?;
    Ok(RemotePlugin::new(manifest, transport, runtime.clone()))
}

fn transport(
    endpoint: &Endpoint,
    token: Option<Secret>,
    runtime: &RemoteRuntime,
    config: &RemoteConfig,
) -> Result<Transport, String> {
    match endpoint {
        Endpoint::Http(base) => Ok(Transport::Http {
            client: crate::transport::http_client(base)?,
            base: base.clone(),
            token,
        }),
        Endpoint::Nats(subject) => {
            let url = config.nats_url.clone();
            // Connects in the background and reconnects on its own: a
            // server that is down fails calls, not the engine's start.
            let connect = async move {
                async_nats::ConnectOptions::new()
                    .retry_on_initial_connect()
                    .request_timeout(None)
                    .connect(url)
                    .await
            };
            let client = runtime
                .wait(connect, Duration::from_secs(10))
                .ok_or("the NATS client did not start in 10 s")?
                .map_err(|e| format!("cannot use NATS at {}: {e}", config.nats_url))?;
            Ok(Transport::Nats {
                client,
                subject: subject.clone(),
                token,
            })
        }
    }
}

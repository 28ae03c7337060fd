//! Why a remote plugin is refused at load. Each names the plugin (its
//! folder) and the problem.

use std::path::PathBuf;

/// Why loading a remote plugin failed.
#[derive(Debug, thiserror::Error)]
#[error("plugin {plugin} ({}): {problem}", folder.display())]
pub struct LoadError {
    /// The manifest's id, or the folder's name when there is none yet.
    pub plugin: String,
    pub folder: PathBuf,
    /// (In the message, not its source: said once.)
    pub problem: Problem,
}

/// What is wrong with one remote plugin.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("cannot read manifest.json: {0}")]
    UnreadableManifest(#[source] std::io::Error),
    #[error("invalid manifest.json: {0}")]
    InvalidManifest(String),
    #[error("token_env names {0}, which is not set (or empty) in the engine's environment")]
    MissingToken(String),
    #[error("its client does not start: {0}")]
    Client(String),
}

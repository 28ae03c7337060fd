//! Why a plugins directory, or one plugin in it, is refused. Each names the
//! plugin (its folder) and the problem.

use std::path::PathBuf;

/// Why loading the plugins directory failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the plugins directory {}: {source}", dir.display())]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin {plugin} ({}): {problem}", folder.display())]
    Plugin {
        /// The manifest's id, or the folder's name when there is none yet.
        plugin: String,
        folder: PathBuf,
        #[source]
        problem: Problem,
    },
}

/// What is wrong with one plugin.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("cannot read manifest.json: {0}")]
    UnreadableManifest(#[source] std::io::Error),
    #[error("invalid manifest.json: {0}")]
    InvalidManifest(String),
    #[error("its module {module} is missing")]
    MissingModule { module: String },
    #[error("cannot read its module {module}: {source}")]
    UnreadableModule {
        module: String,
        #[source]
        source: std::io::Error,
    },
    #[error("digest mismatch: the manifest says {expected}, but {module} is {actual}")]
    DigestMismatch {
        module: String,
        expected: String,
        actual: String,
    },
    #[error("{module} is not a valid component: {reason}")]
    NotAComponent { module: String, reason: String },
    #[error("it imports {interface}, which needs {needs}, and its permissions grant none of that")]
    ImportNotGranted { interface: String, needs: String },
    #[error("it imports {name}, which provenant does not provide: {why}")]
    UnknownImport { name: String, why: String },
    #[error("its manifest registers {what}, but it does not export {export} as {signature}")]
    MissingExport {
        what: String,
        export: String,
        signature: &'static str,
    },
    #[error("it does not start: {0}")]
    DoesNotStart(String),
    #[error("the WebAssembly runtime cannot compile it: {0}")]
    Runtime(String),
}

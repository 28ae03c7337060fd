//! `provenant demo --remote-example`: the example remote plugin (the tavern
//! oracle, a Python service using only its standard library) started as a
//! process of its own on a free port, and its plugin folder written beside
//! it with that endpoint. Stopped when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context as _;
use provenant_remote::examples::{ORACLE_ID, ORACLE_MANIFEST, ORACLE_SERVER};
use serde_json::Value;

/// How long the oracle may take to say where it listens.
const START: Duration = Duration::from_secs(10);

/// The running oracle.
pub struct Oracle {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// Its plugin folder (manifest.json), for the demo's plugin source.
    pub folder: PathBuf,
    _dir: tempfile::TempDir,
}

impl Oracle {
    /// Writes the service and its plugin folder to a temporary directory
    /// and starts `python3 server.py --port 0`.
    pub fn start() -> anyhow::Result<Oracle> {
        let dir = tempfile::tempdir().context("cannot make a directory for the oracle")?;
        let script = dir.path().join("server.py");
        std::fs::write(&script, ORACLE_SERVER).context("cannot write the oracle's server.py")?;
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(&script)
            .args(["--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context(
                "--remote-example starts the example remote plugin with python3, which did not start (is Python 3 installed?)",
            )?;
        let stdout = child.stdout.take().context("the oracle's stdout")?;
        let (said, line) = mpsc::channel();
        std::thread::spawn(move || {
            let mut first = String::new();
            let _ = BufReader::new(stdout).read_line(&mut first);
            let _ = said.send(first);
        });
        let first = line.recv_timeout(START);
        let endpoint = first
            .ok()
            .and_then(|l| l.trim().strip_prefix("listening on ").map(str::to_owned));
        let Some(endpoint) = endpoint else {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!(
                "the example remote plugin did not say where it listens within {START:?}"
            );
        };
        let mut manifest: Value =
            serde_json::from_str(ORACLE_MANIFEST).context("the oracle's manifest")?;
        manifest["endpoint"] = Value::String(endpoint.clone());
        let folder = dir.path().join(ORACLE_ID);
        std::fs::create_dir(&folder).context("cannot make the oracle's plugin folder")?;
        std::fs::write(
            folder.join("manifest.json"),
            serde_json::to_vec_pretty(&manifest)?,
        )
        .context("cannot write the oracle's manifest")?;
        Ok(Oracle {
            child,
            endpoint,
            folder,
            _dir: dir,
        })
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

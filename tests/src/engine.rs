//! The real engine as a process (`provenant serve` built as
//! `provenant-under-test`), killed on drop, with its stderr kept for the
//! test to wait on and to show when the test fails.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::http::http;
use crate::nats::TestNats;

/// How to start the engine.
#[derive(Default, Clone)]
pub struct EngineOptions {
    pub database_url: String,
    pub nats: Option<(String, String)>,
    pub admin_token: Option<String>,
    pub http_addr: Option<String>,
    /// More arguments of `provenant serve`.
    pub args: Vec<String>,
    /// More environment variables of the engine.
    pub env: Vec<(String, String)>,
    /// The engine's instance name. Default: one derived from the log's URL
    /// and the NATS prefix, the same at every start, so an engine started
    /// again after a kill takes its leases back at once, as an operator's
    /// engine with a stable `--instance` does. Engines sharing a log need
    /// names of their own.
    pub instance: Option<String>,
}

impl EngineOptions {
    /// The log at `database_url`, ticks and events on `nats`.
    pub fn with_nats(database_url: &str, nats: &TestNats) -> Self {
        EngineOptions {
            database_url: database_url.to_owned(),
            nats: Some((nats.url.clone(), nats.prefix.clone())),
            ..Default::default()
        }
    }
}

/// `provenant serve`, running; killed on drop.
pub struct EngineProcess {
    pub addr: SocketAddr,
    /// The token `get`, `post` and `put` send: the admin token, when set.
    pub bearer: Option<String>,
    child: Option<Child>,
    /// What the engine wrote on stderr so far, and a signal for each write.
    stderr: std::sync::Arc<(std::sync::Mutex<String>, std::sync::Condvar)>,
}

impl EngineProcess {
    pub fn start(options: &EngineOptions) -> Self {
        Self::try_start(options).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the engine and waits for the line that says where it listens.
    pub fn try_start(options: &EngineOptions) -> Result<Self, String> {
        let mut cmd = Command::new(crate::binary());
        cmd.arg("serve")
            .args(&options.args)
            .env_remove("DATABASE_URL")
            .env_remove("NATS_URL")
            .env_remove("PROVENANT_ADMIN_TOKEN")
            .env_remove("PROVENANT_GAME_TOKEN")
            .env_remove("PROVENANT_READER_TOKEN")
            .env("DATABASE_URL", &options.database_url)
            .env(
                "PROVENANT_HTTP_ADDR",
                options.http_addr.as_deref().unwrap_or("127.0.0.1:0"),
            )
            .env(
                "RUST_LOG",
                "warn,provenant_engine::service=info,provenant_log::lease_sql=info",
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((url, prefix)) = &options.nats {
            cmd.env("NATS_URL", url)
                .env("PROVENANT_NATS_PREFIX", prefix);
        }
        if let Some(token) = &options.admin_token {
            cmd.env("PROVENANT_ADMIN_TOKEN", token);
        }
        let instance = options.instance.clone().unwrap_or_else(|| {
            let key = format!(
                "{}|{}",
                options.database_url,
                options.nats.as_ref().map_or("", |(_, p)| p.as_str())
            );
            format!(
                "test-engine-{:08x}",
                provenant_events::partition::fnv1a_32(key.as_bytes())
            )
        });
        cmd.env("PROVENANT_INSTANCE", instance);
        cmd.envs(options.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the engine: {e}"))?;
        let stderr = std::sync::Arc::new((
            std::sync::Mutex::new(String::new()),
            std::sync::Condvar::new(),
        ));
        let mut reader = None;
        if let Some(mut err) = child.stderr.take() {
            let sink = stderr.clone();
            reader = Some(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.0
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                    sink.1.notify_all();
                }
            }));
        }
        let stdout = child.stdout.take().expect("piped stdout");
        // The first line is awaited at most two minutes: an engine that
        // hangs before it listens fails the test with what it said.
        let (first_line, first_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = first_line.send(first);
            // Keep draining stdout so the engine never blocks on it.
            for _ in lines {}
        });
        let first = match first_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(first) => first,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the engine did not listen within 120 s; it said:\n{}",
                    stderr.0.lock().unwrap()
                ));
            }
        };
        let Some(Ok(first)) = first else {
            let status = child.wait().map_err(|e| e.to_string())?;
            // The reader ends at the end of stderr.
            if let Some(reader) = reader {
                let _ = reader.join();
            }
            return Err(format!(
                "the engine exited ({status}) before listening: {}",
                stderr.0.lock().unwrap()
            ));
        };
        let addr = first
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("unexpected first line: {first}"))?;
        Ok(EngineProcess {
            addr,
            bearer: options.admin_token.clone(),
            child: Some(child),
            stderr,
        })
    }

    /// Freezes the engine (SIGSTOP), as a long GC pause or a stalled
    /// machine would: its connections stay open, it does nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused engine go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the engine is running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY-free: the `kill` command sends SIGTERM.
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        // A stop that hangs fails the test with what the engine said,
        // instead of hanging it.
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = child.try_wait().expect("wait for the engine") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the engine did not stop within 90 s of SIGTERM; it said:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.0.lock().unwrap().clone()
    }

    /// Waits (at most `timeout`) until the engine has written `needle` on
    /// stderr; whether it did.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> bool {
        let (text, written) = &*self.stderr;
        let guard = text.lock().unwrap();
        let (guard, _) = written
            .wait_timeout_while(guard, timeout, |t| !t.contains(needle))
            .unwrap();
        guard.contains(needle)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        http(self.addr, "GET", path, None, self.bearer.as_deref()).await
    }

    pub async fn post(&self, path: &str, body: &[u8]) -> (u16, Value) {
        http(self.addr, "POST", path, Some(body), self.bearer.as_deref()).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        http(
            self.addr,
            "PUT",
            path,
            Some(body.to_string().as_bytes()),
            self.bearer.as_deref(),
        )
        .await
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- engine stderr ---\n{}", self.stderr());
        }
    }
}

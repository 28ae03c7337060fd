//! What the service tests start: the real engine as a process, NATS names of
//! their own (or a private nats-server), and a small HTTP client. Everything
//! is stopped and removed in `Drop`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use serde_json::Value;

pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// The NATS server tests use (`NATS_URL`, default 127.0.0.1:4222).
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_owned())
}

/// A prefix of its own, so that its streams, subjects and consumer are the
/// test's alone; its streams are deleted on drop.
pub struct TestNats {
    pub url: String,
    pub prefix: String,
}

impl TestNats {
    pub fn new() -> Self {
        Self::on(nats_url())
    }

    pub fn on(url: String) -> Self {
        let prefix = format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[16..]);
        TestNats { url, prefix }
    }

    pub fn ticks_subject(&self, world: &str) -> String {
        format!("{}.ticks.{world}", self.prefix)
    }

    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.prefix.to_ascii_uppercase())
    }

    pub fn ticks_stream(&self) -> String {
        format!("{}_TICKS", self.prefix.to_ascii_uppercase())
    }

    pub fn anchors_stream(&self) -> String {
        format!("{}_ANCHORS", self.prefix.to_ascii_uppercase())
    }

    /// Asserts that the engine's consumer has every tick acknowledged or
    /// terminated: nothing pending, nothing waiting for redelivery.
    pub async fn assert_all_ticks_answered(&self, js: &jetstream::Context) {
        let mut consumer: jetstream::consumer::PullConsumer = js
            .get_stream(self.ticks_stream())
            .await
            .unwrap()
            .get_consumer(&format!("{}-engine", self.prefix))
            .await
            .unwrap();
        let info = consumer.info().await.unwrap();
        assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "{info:?}");
    }

    pub async fn jetstream(&self) -> jetstream::Context {
        let client = async_nats::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach NATS at {}: {e}", self.url));
        jetstream::new(client)
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        let (url, streams) = (
            self.url.clone(),
            [
                self.ticks_stream(),
                self.events_stream(),
                self.anchors_stream(),
            ],
        );
        provenant_tests::on_own_runtime(async move {
            let client = tokio::time::timeout(Duration::from_secs(2), async_nats::connect(&url))
                .await
                .ok()?
                .ok()?;
            let js = jetstream::new(client);
            for s in streams {
                let _ = js.delete_stream(&s).await;
            }
            Some(())
        });
    }
}

/// A nats-server of the test's own (to stop and start during a test),
/// on a free port with its own store; killed on drop.
pub struct PrivateNats {
    pub port: u16,
    pub store: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateNats {
    pub fn start() -> Self {
        let port = free_port();
        let store = tempfile::tempdir().expect("temp dir");
        let mut nats = PrivateNats {
            port,
            store,
            child: None,
        };
        nats.restart();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again), and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nats-server");
        let child = Command::new(binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        // nats-server logs "Server is ready" once it accepts clients (and
        // JetStream has recovered its streams).
        let mut child = child;
        let err = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(err).lines();
        let mut seen = String::new();
        loop {
            match lines.next() {
                Some(Ok(line)) => {
                    let ready = line.contains("Server is ready");
                    seen.push_str(&line);
                    seen.push('\n');
                    if ready {
                        break;
                    }
                }
                _ => panic!("nats-server stopped before it was ready:\n{seen}"),
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    /// Stops the server as an operator would (SIGTERM: it flushes its
    /// store), and waits for it to exit. (A SIGKILLed nats-server may lose
    /// messages it acknowledged but had not written out yet.)
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How to start the engine.
#[derive(Default, Clone)]
pub struct EngineOptions {
    pub database_url: String,
    pub nats: Option<(String, String)>,
    pub admin_token: Option<String>,
    pub http_addr: Option<String>,
    /// More arguments of `provenant serve`.
    pub args: Vec<String>,
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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_provenant-under-test"));
        cmd.arg("serve")
            .args(&options.args)
            .env_remove("DATABASE_URL")
            .env_remove("NATS_URL")
            .env_remove("PROVENANT_ADMIN_TOKEN")
            .env("DATABASE_URL", &options.database_url)
            .env(
                "PROVENANT_HTTP_ADDR",
                options.http_addr.as_deref().unwrap_or("127.0.0.1:0"),
            )
            .env("RUST_LOG", "warn,provenant_engine::service=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((url, prefix)) = &options.nats {
            cmd.env("NATS_URL", url)
                .env("PROVENANT_NATS_PREFIX", prefix);
        }
        if let Some(token) = &options.admin_token {
            cmd.env("PROVENANT_ADMIN_TOKEN", token);
        }
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
        let mut lines = BufReader::new(stdout).lines();
        let Some(Ok(first)) = lines.next() else {
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
        // Keep draining stdout so the engine never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        let addr = first
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("unexpected first line: {first}"))?;
        Ok(EngineProcess {
            addr,
            child: Some(child),
            stderr,
        })
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
        child.wait().expect("wait for the engine")
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

    pub fn get(&self, path: &str) -> (u16, Value) {
        http(self.addr, "GET", path, None, None)
    }

    pub fn post(&self, path: &str, body: &[u8]) -> (u16, Value) {
        http(self.addr, "POST", path, Some(body), None)
    }

    pub fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        http(
            self.addr,
            "PUT",
            path,
            Some(body.to_string().as_bytes()),
            None,
        )
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

/// One HTTP/1.1 request (Connection: close); the status and the JSON body
/// (Null when the body is empty or not JSON).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    bearer: Option<&str>,
) -> (u16, Value) {
    let (status, body) = http_text(addr, method, path, body, bearer);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// One HTTP/1.1 request (Connection: close); the status and the body.
pub fn http_text(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    bearer: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = body.unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = bearer {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading a large body.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A tick as the game sends it; NPCs wear a disguise on even ticks.
pub fn tick(world: &str, session: &str, n: u64, npcs: &[&str]) -> Value {
    serde_json::json!({
        "tick_id": uuid::Uuid::now_v7(),
        "world_id": world,
        "session_id": session,
        "tick": n,
        "at": format!("2026-01-01T{:02}:{:02}:{:02}Z", (n / 3600) % 24, (n / 60) % 60, n % 60),
        "npcs": npcs.iter().map(|id| serde_json::json!({"npc_id": id, "location_id": "bar", "state": {"disguise": n.is_multiple_of(2)}})).collect::<Vec<_>>(),
    })
}

/// A world using the stealth and romance plugins.
pub fn tavern() -> Value {
    serde_json::json!({
        "name": "The Tavern",
        "meta": {"behavior": {
            "enabledPlugins": ["game-stealth", "game-romance"],
            "activities": [
                {"id": "sneak",
                 "conditions": [{"id": "plugin:game-stealth:has_disguise"}],
                 "effects": [{"id": "effect:plugin:game-stealth:raise_suspicion", "params": {"amount": 1}}]},
                {"id": "chat",
                 "conditions": [{"id": "plugin:game-romance:is_attracted", "params": {"threshold": 0}}],
                 "effects": [{"id": "effect:plugin:game-romance:affinity_boost", "params": {"amount": 2}}]}
            ]
        }}
    })
}

//! NATS for the tests: names of their own on the shared server (streams
//! deleted on drop), or a private nats-server to stop and start.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use provenant_engine::nats_names::NatsNames;

pub use provenant_bench::scratch::DEFAULT_NATS_URL;

/// The NATS server tests use (`NATS_URL`, default 127.0.0.1:4222).
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_owned())
}

/// A prefix of its own, so that its streams, subjects and consumer are the
/// test's alone; its streams are deleted on drop.
pub struct TestNats {
    pub url: String,
    pub prefix: String,
    /// The engine's names under that prefix.
    pub names: NatsNames,
}

impl Default for TestNats {
    /// On the shared server (`NATS_URL`).
    fn default() -> Self {
        Self::new()
    }
}

impl TestNats {
    pub fn new() -> Self {
        Self::on(nats_url())
    }

    pub fn on(url: String) -> Self {
        let prefix = format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[16..]);
        let names = NatsNames::new(&prefix).expect("a valid NATS prefix");
        TestNats { url, prefix, names }
    }

    pub fn ticks_subject(&self, world: &str) -> String {
        self.names.ticks_subject(world)
    }

    pub fn events_stream(&self) -> String {
        self.names.events_stream()
    }

    pub fn ticks_stream(&self) -> String {
        self.names.ticks_stream()
    }

    pub fn anchors_stream(&self) -> String {
        self.names.anchors_stream()
    }

    /// Ticks the engines' consumers (every partition's) have not answered:
    /// not yet delivered, and delivered but not acknowledged.
    pub async fn ticks_unanswered(&self, js: &jetstream::Context) -> (u64, u64) {
        use futures_util::StreamExt as _;
        let stream = js.get_stream(self.ticks_stream()).await.unwrap();
        let mut names = stream.consumer_names();
        let mut total = (0, 0);
        while let Some(name) = names.next().await {
            let name = name.unwrap();
            if !name.starts_with(&self.names.consumer()) {
                continue;
            }
            let mut consumer: jetstream::consumer::PullConsumer =
                stream.get_consumer(&name).await.unwrap();
            let info = consumer.info().await.unwrap();
            total.0 += info.num_pending;
            total.1 += info.num_ack_pending as u64;
        }
        total
    }

    /// Asserts that the engines' consumers have every tick acknowledged or
    /// terminated: nothing pending, nothing waiting for redelivery.
    pub async fn assert_all_ticks_answered(&self, js: &jetstream::Context) {
        assert_eq!(self.ticks_unanswered(js).await, (0, 0));
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
        crate::log::on_own_runtime(async move {
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
    binary: String,
    /// More arguments (a cluster's routes).
    args: Vec<String>,
    child: Option<Child>,
    /// What the server logged so far, and a signal for each line.
    log: std::sync::Arc<(std::sync::Mutex<String>, std::sync::Condvar)>,
}

/// Debian's nats-server (2.9).
fn debian_nats_server() -> String {
    ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nats-server")
        .to_owned()
}

/// The current nats-server (2.10+, for partitioned ticks):
/// `PROVENANT_TEST_NATS_SERVER`, else where `.ci/nats-server-current`
/// installs it.
pub fn current_nats_server() -> String {
    let path = std::env::var("PROVENANT_TEST_NATS_SERVER")
        .unwrap_or_else(|_| "/var/tmp/provenant-nats-server-2.15.1/nats-server".into());
    assert!(
        std::path::Path::new(&path).exists(),
        "no current nats-server at {path}: run .ci/nats-server-current (it prints the path to set as PROVENANT_TEST_NATS_SERVER)"
    );
    path
}

impl PrivateNats {
    /// Debian's nats-server (2.9).
    pub fn start() -> Self {
        Self::start_with(debian_nats_server(), Vec::new())
    }

    /// The current nats-server ([`current_nats_server`]).
    pub fn start_current() -> Self {
        Self::start_with(current_nats_server(), Vec::new())
    }

    /// Three current nats-servers clustered (JetStream replicas 3): the
    /// first one's URL takes clients.
    pub fn start_cluster() -> [Self; 3] {
        let ports = [crate::free_port(), crate::free_port(), crate::free_port()];
        let routes: Vec<u16> = ports.iter().map(|_| crate::free_port()).collect();
        let all_routes = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let binary = current_nats_server();
        let mut servers: Vec<PrivateNats> = (0..3)
            .map(|i| PrivateNats {
                port: ports[i],
                store: tempfile::tempdir().expect("temp dir"),
                binary: binary.clone(),
                args: vec![
                    "--name".into(),
                    format!("n{i}"),
                    "--cluster_name".into(),
                    "provenant-test".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", routes[i]),
                    "--routes".into(),
                    all_routes.clone(),
                ],
                child: None,
                log: Default::default(),
            })
            .collect();
        // Each waits for "Server is ready", which comes before JetStream
        // has a meta leader; start all, then wait for them.
        for s in &mut servers {
            s.spawn();
        }
        for s in &mut servers {
            s.wait_ready();
        }
        let [a, b, c] = <[PrivateNats; 3]>::try_from(servers).unwrap_or_else(|_| unreachable!());
        [a, b, c]
    }

    /// Waits until the JetStream cluster of [`start_cluster`](Self::start_cluster)
    /// takes a replicated stream (its meta leader is elected after the
    /// servers say they are ready).
    pub async fn wait_for_jetstream_cluster(url: &str) {
        let client = async_nats::connect(url).await.expect("connect");
        let js = jetstream::new(client);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let made = js
                .create_stream(jetstream::stream::Config {
                    name: "PROVENANT_TEST_READY".into(),
                    subjects: vec!["provenant-test-ready".into()],
                    num_replicas: 3,
                    ..Default::default()
                })
                .await;
            if made.is_ok() {
                let _ = js.delete_stream("PROVENANT_TEST_READY").await;
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the JetStream cluster is not ready: {made:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn start_with(binary: String, args: Vec<String>) -> Self {
        let port = crate::free_port();
        let store = tempfile::tempdir().expect("temp dir");
        let mut nats = PrivateNats {
            port,
            store,
            binary,
            args,
            child: None,
            log: Default::default(),
        };
        nats.restart();
        nats
    }

    /// Debian's nats-server with a configuration file of this text (users,
    /// permissions, TLS) beside the flags that give its address and store.
    pub fn start_with_config(config: &str) -> Self {
        let store = tempfile::tempdir().expect("temp dir");
        // Beside JetStream's own directory in the store, kept as long.
        let path = store.path().join("nats.conf");
        std::fs::write(&path, config).expect("write nats.conf");
        let mut nats = PrivateNats {
            port: crate::free_port(),
            store,
            binary: debian_nats_server(),
            args: vec!["-c".into(), path.display().to_string()],
            child: None,
            log: Default::default(),
        };
        nats.restart();
        nats
    }

    /// What the server logged so far (after it was ready).
    pub fn log(&self) -> String {
        self.log.0.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits (at most `timeout`) until the server has logged `needle`;
    /// whether it did.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let (text, written) = &*self.log;
        let guard = text.lock().unwrap();
        let (guard, _) = written
            .wait_timeout_while(guard, timeout, |t| !t.contains(needle))
            .unwrap();
        guard.contains(needle)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again), and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.spawn();
        self.wait_ready();
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(&self.binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary));
        self.child = Some(child);
    }

    fn wait_ready(&mut self) {
        let child = self.child.as_mut().expect("spawned");
        // nats-server logs "Server is ready" once it accepts clients (and
        // JetStream has recovered its streams).
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
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(mut text) = log.0.lock() {
                    text.push_str(&line);
                    text.push('\n');
                }
                log.1.notify_all();
            }
        });
    }

    /// Kills the server (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is
    /// answered, until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server is running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
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

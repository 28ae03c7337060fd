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

    /// Asserts that the engine's consumer has every tick acknowledged or
    /// terminated: nothing pending, nothing waiting for redelivery.
    pub async fn assert_all_ticks_answered(&self, js: &jetstream::Context) {
        let mut consumer: jetstream::consumer::PullConsumer = js
            .get_stream(self.ticks_stream())
            .await
            .unwrap()
            .get_consumer(&self.names.consumer())
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
    child: Option<Child>,
}

impl PrivateNats {
    pub fn start() -> Self {
        let port = crate::free_port();
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

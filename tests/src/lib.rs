//! The one home of the end-to-end tests' helpers (the tests themselves are
//! in `tests/e2e`):
//!
//! - [`log`]: a fresh log per test, in a database of its own on the real
//!   PostgreSQL server or in a temporary SQLite file, removed in `Drop`;
//! - [`nats`]: NATS names of the test's own, or a private nats-server;
//! - [`cli`]: the real `provenant` binary run as a command;
//! - [`engine`]: the real `provenant serve` as a process;
//! - [`http`]: requests through a real HTTP client;
//! - [`fixtures`]: ticks and worlds as a game sends them;
//! - [`replay`]: what a replay of a whole log must report;
//! - [`remote`]: remote plugin services whose answers a test scripts.
//!
//! PostgreSQL is found through `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), NATS through `NATS_URL`
//! (default `nats://127.0.0.1:4222`); every test isolates itself, so the
//! suite runs in parallel.

pub mod cli;
pub mod engine;
pub mod fixtures;
pub mod http;
pub mod log;
pub mod nats;
pub mod postgres_server;
pub mod remote;
pub mod replay;
pub mod tls;

pub use engine::{EngineOptions, EngineProcess};
pub use fixtures::{free_port, tavern, tick};
pub use http::{http, http_text, try_http_text};
pub use log::{Backend, TestLog, all_events, on_own_runtime, postgres_server_url, stream};
pub use nats::{PrivateNats, TestNats, nats_url};

/// The binary under test, `provenant-under-test` (the `provenant` command,
/// built by this crate from the binary's own `main.rs`): beside the test
/// executable's `deps/` folder, where cargo puts a package's binaries.
pub fn binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable is in <target>/<profile>/deps");
    let binary = dir.join(format!(
        "provenant-under-test{}",
        std::env::consts::EXE_SUFFIX
    ));
    assert!(
        binary.exists(),
        "{} is missing: run the tests with cargo, which builds it",
        binary.display()
    );
    binary
}

//! The real `provenant` binary run as a command, as a user would, and the
//! logs its demo writes.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::log::{Backend, TestLog};

/// `provenant <args>` in `dir`, with no `DATABASE_URL` (the default log).
pub fn provenant(dir: &Path, args: &[&str]) -> Output {
    Command::new(crate::binary())
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run provenant")
}

/// `provenant <args>` on the log at `url`.
pub fn provenant_on(url: &str, args: &[&str]) -> Output {
    provenant_on_env(url, args, &[])
}

/// `provenant <args>` on the log at `url`, with more environment variables.
pub fn provenant_on_env(url: &str, args: &[&str], env: &[(String, String)]) -> Output {
    Command::new(crate::binary())
        .args(args)
        .env("DATABASE_URL", url)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run provenant")
}

/// `provenant demo` on the embedded path (in-process ticks), whatever the
/// environment says (CI sets NATS_URL); in `dir` when given, on `url` when
/// given. (The demo over NATS has its own test, in `tests/e2e/demo.rs`.)
pub fn demo(dir: Option<&Path>, url: Option<&str>, ticks: &str) -> Output {
    let mut cmd = Command::new(crate::binary());
    cmd.args(["demo", "--ticks", ticks])
        .env_remove("DATABASE_URL")
        .env_remove("NATS_URL")
        .env_remove("PROVENANT_NATS_PREFIX");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    if let Some(url) = url {
        cmd.env("DATABASE_URL", url);
    }
    cmd.output().expect("run provenant demo")
}

/// What the command printed on stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What the command printed on stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Its stdout as one JSON value.
pub fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", stdout(o), stderr(o)))
}

/// A log the demo wrote with 40 ticks.
pub async fn demo_log(backend: Backend) -> TestLog {
    demo_log_of(backend, 40).await
}

/// A log the demo wrote with `ticks` ticks, with a plugin deadline of 5 s:
/// the logs the audit tests read must hold every kind of call the demo
/// makes (the cellar's one call to example-nosy among them), which a
/// loaded machine would otherwise turn into a timeout now and then.
pub async fn demo_log_of(backend: Backend, ticks: u64) -> TestLog {
    let t = TestLog::new(backend).await;
    let out = Command::new(crate::binary())
        .args([
            "demo",
            "--ticks",
            &ticks.to_string(),
            "--plugin-deadline-ms",
            "5000",
        ])
        .env_remove("NATS_URL")
        .env_remove("PROVENANT_NATS_PREFIX")
        .env("DATABASE_URL", &t.url)
        .output()
        .expect("run provenant demo");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    t
}

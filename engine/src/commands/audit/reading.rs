//! How the auditor's commands read the log: opened without migrating or
//! creating anything, with a progress bar.

use anyhow::Context;
use provenant_log::{EventLog, LogConfig, LogError, redact_url as redact};

/// `1 event`, `2 events`.
pub fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A progress bar on stderr (drawn only on a terminal); its length is set
/// once known.
pub fn progress_bar(what: &str) -> indicatif::ProgressBar {
    let bar = crate::progress::bar(None, "{msg} {bar:40} {pos}/{len} events ({per_sec}, {eta})");
    bar.set_message(what.to_owned());
    bar
}

/// Opens the log without migrating or creating anything: auditing only reads.
pub async fn open_read_only(database_url: &str) -> anyhow::Result<EventLog> {
    let config = LogConfig {
        migrate: false,
        ..LogConfig::new(database_url)
    };
    EventLog::open(&config)
        .await
        .with_context(|| format!("cannot open the log at {}", redact(database_url)))
}

/// A log that cannot be read (not migrated, or a database error).
pub fn cannot_read(e: LogError) -> anyhow::Error {
    anyhow::Error::new(e).context("cannot read the log")
}

//! `provenant migrate`: creates or upgrades the log.

use anyhow::Context as _;
use provenant_log::{EventLog, LogConfig, redact_url};

use super::args::DbArgs;

/// `provenant migrate`.
pub async fn run(db: &DbArgs) -> anyhow::Result<()> {
    let database_url = &db.database_url;
    let log = EventLog::open(&LogConfig::new(database_url))
        .await
        .with_context(|| format!("cannot migrate the log at {}", redact_url(database_url)))?;
    let head = log.head().await?;
    println!(
        "migrated: the log at {} is up to date (head {head})",
        redact_url(database_url)
    );
    log.close().await;
    Ok(())
}

//! `provenant audit …` and `provenant migrate`: auditing only reads the
//! log (it opens it without migrating, and never appends).

pub mod replay;
pub mod ticks;
pub mod trail;

use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use provenant_events::log::{LogConfig, Violation, redact_url as redact};
use provenant_events::{EventLog, Head, LogError, VerifyConfig, VerifyReport};
use serde_json::json;

/// Settings of `provenant audit verify`.
#[derive(Debug, Clone)]
pub struct VerifyCommandConfig {
    pub database_url: String,
    pub expect_head: Option<Head>,
    pub json: bool,
}

/// How `audit verify` ended.
#[derive(Debug)]
pub enum VerifyOutcome {
    Intact(VerifyReport),
    Tampered(VerifyReport),
    CouldNotRun(anyhow::Error),
}

impl VerifyOutcome {
    /// 0 intact, 1 tampered, 2 could not run.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            VerifyOutcome::Intact(_) => ExitCode::SUCCESS,
            VerifyOutcome::Tampered(_) => ExitCode::from(1),
            VerifyOutcome::CouldNotRun(_) => ExitCode::from(2),
        }
    }
}

/// `1 event`, `2 events`.
fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A progress bar on stderr (drawn only on a terminal); its length is set
/// once known.
fn progress_bar(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} events ({per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Opens the log without migrating or creating anything: auditing only reads.
async fn open_read_only(database_url: &str) -> anyhow::Result<EventLog> {
    let config = LogConfig {
        migrate: false,
        ..LogConfig::new(database_url)
    };
    EventLog::open(&config)
        .await
        .with_context(|| format!("cannot open the log at {}", redact(database_url)))
}

/// Walks the chain, prints the outcome (text or JSON) and returns it.
pub async fn verify_command(config: &VerifyCommandConfig) -> VerifyOutcome {
    let outcome = match verify(config).await {
        Ok(report) if report.intact() => VerifyOutcome::Intact(report),
        Ok(report) => VerifyOutcome::Tampered(report),
        Err(e) => VerifyOutcome::CouldNotRun(e),
    };
    print_outcome(&outcome, config.json);
    outcome
}

async fn verify(config: &VerifyCommandConfig) -> anyhow::Result<VerifyReport> {
    let log = open_read_only(&config.database_url).await?;
    let head = log.head().await.map_err(not_migrated_hint)?;
    let bar = ProgressBar::with_draw_target(Some(head.position), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("verifying {bar:40} {pos}/{len} events ({per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = log
        .verify(
            &VerifyConfig {
                expect_head: config.expect_head,
                chunk: None,
            },
            &mut |position| bar.set_position(position),
        )
        .await
        .map_err(not_migrated_hint)?;
    bar.finish_and_clear();
    log.close().await;
    Ok(report)
}

fn not_migrated_hint(e: LogError) -> anyhow::Error {
    anyhow::Error::new(e).context("cannot read the log")
}

fn print_outcome(outcome: &VerifyOutcome, as_json: bool) {
    if as_json {
        let value = match outcome {
            VerifyOutcome::Intact(r) | VerifyOutcome::Tampered(r) => json!({
                "status": if r.intact() { "intact" } else { "tampered" },
                "count": r.count,
                "head": {"position": r.head.position, "hash": r.head.hash},
                "violation": r.violation,
            }),
            VerifyOutcome::CouldNotRun(e) => json!({
                "status": "error",
                "error": crate::cli::error_text(e),
            }),
        };
        println!("{value}");
        return;
    }
    match outcome {
        VerifyOutcome::Intact(r) => {
            println!("intact: {} events, head {}", r.count, r.head);
        }
        VerifyOutcome::Tampered(r) => {
            if let Some(Violation {
                position,
                fault,
                detail,
            }) = &r.violation
            {
                println!("TAMPERED at position {position}: {fault}: {detail}");
            }
            println!(
                "the chain is intact up to head {} ({} events)",
                r.head, r.count
            );
        }
        VerifyOutcome::CouldNotRun(e) => {
            eprintln!("error: {}", crate::cli::error_text(e));
        }
    }
}

/// `provenant audit head`.
pub async fn head_command(database_url: &str, as_json: bool) -> anyhow::Result<()> {
    let log = open_read_only(database_url).await?;
    let head = log.head().await.map_err(not_migrated_hint)?;
    if as_json {
        println!("{}", json!({"position": head.position, "hash": head.hash}));
    } else {
        println!("{head}");
    }
    log.close().await;
    Ok(())
}

/// `provenant migrate`.
pub async fn migrate_command(database_url: &str) -> anyhow::Result<()> {
    let log = EventLog::open(&LogConfig::new(database_url))
        .await
        .with_context(|| format!("cannot migrate the log at {}", redact(database_url)))?;
    let head = log.head().await?;
    println!(
        "migrated: the log at {} is up to date (head {head})",
        redact(database_url)
    );
    log.close().await;
    Ok(())
}

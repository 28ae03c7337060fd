//! `provenant audit verify`: walks the hash chain from the first event.

use std::process::ExitCode;

use clap::Args;
use provenant_events::Head;
use provenant_log::{VerifyConfig, VerifyReport, Violation};
use serde_json::json;

use super::reading::{cannot_read, open_read_only};
use crate::commands::args::DbArgs;
use crate::error_text::error_text;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// A head recorded earlier, POSITION:HASH, that must still be in the
    /// chain: this is how a truncated tail is caught.
    #[arg(long, value_name = "POSITION:HASH")]
    pub expect_head: Option<Head>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

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
    let head = log.head().await.map_err(cannot_read)?;
    let bar = crate::progress::bar(
        Some(head.position),
        "verifying {bar:40} {pos}/{len} events ({per_sec}, {eta})",
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
        .map_err(cannot_read)?;
    bar.finish_and_clear();
    log.close().await;
    Ok(report)
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
                "error": error_text(e),
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
            eprintln!("error: {}", error_text(e));
        }
    }
}

/// `provenant audit verify`: 0 intact, 1 tampered, 2 could not run.
pub async fn run(args: VerifyArgs) -> ExitCode {
    verify_command(&VerifyCommandConfig {
        database_url: args.db.database_url,
        expect_head: args.expect_head,
        json: args.json,
    })
    .await
    .exit_code()
}

//! `provenant audit verify`: walks the hash chain from the first event.

use std::process::ExitCode;

use anyhow::Context as _;
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
    /// A head recorded earlier that must still be in the chain: this is
    /// how a truncated tail is caught. POSITION:HASH, or an anchor the
    /// engine published (its JSON, or @FILE holding it), whose signature
    /// is checked against --anchor-public-key.
    #[arg(long, value_name = "POSITION:HASH|ANCHOR|@FILE")]
    pub expect_head: Option<String>,
    /// The public key (PEM, `provenant keys generate`'s FILE.pub) the
    /// anchor given to --expect-head must be signed with. With it, only a
    /// signed anchor is accepted.
    #[arg(long, value_name = "FILE")]
    pub anchor_public_key: Option<std::path::PathBuf>,
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

/// Walks the chain; the report, printed by nobody.
pub async fn verify(config: &VerifyCommandConfig) -> anyhow::Result<VerifyReport> {
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

/// Prints an outcome as `audit verify` does: text or one JSON object.
pub fn print_outcome(outcome: &VerifyOutcome, as_json: bool) {
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
    let expect_head = match expected_head(&args) {
        Ok(head) => head,
        Err(e) => {
            let outcome = VerifyOutcome::CouldNotRun(e);
            print_outcome(&outcome, args.json);
            return outcome.exit_code();
        }
    };
    verify_command(&VerifyCommandConfig {
        database_url: args.db.database_url,
        expect_head,
        json: args.json,
    })
    .await
    .exit_code()
}

/// The head `--expect-head` pins: given as is, or read from an anchor
/// whose signature verifies.
fn expected_head(args: &VerifyArgs) -> anyhow::Result<Option<Head>> {
    let Some(given) = args.expect_head.as_deref() else {
        anyhow::ensure!(
            args.anchor_public_key.is_none(),
            "--anchor-public-key checks the anchor given to --expect-head: give one"
        );
        return Ok(None);
    };
    let text = match given.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("--expect-head: cannot read {path}"))?,
        None => given.to_owned(),
    };
    let text = text.trim();
    if !text.starts_with('{') {
        anyhow::ensure!(
            args.anchor_public_key.is_none(),
            "--anchor-public-key needs a signed anchor in --expect-head, not POSITION:HASH"
        );
        return text
            .parse()
            .map(Some)
            .map_err(|e| anyhow::anyhow!("--expect-head: {e}"));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).context("--expect-head: the anchor is not JSON")?;
    let anchor = match &args.anchor_public_key {
        Some(path) => {
            let key = crate::anchor::read_verifying_key(path)?;
            crate::anchor::verify(&value, &key).context("--expect-head: refused")?
        }
        None => anyhow::bail!(
            "--expect-head: an anchor is trusted only with the key that signed it: give --anchor-public-key (or pin its head, POSITION:HASH)"
        ),
    };
    Ok(Some(anchor.head))
}

//! `provenant audit …`: auditing only reads the log (it opens it without
//! migrating, and never appends).

pub mod anchors;
pub mod head;
pub mod reading;
pub mod replay;
pub mod replay_report;
pub mod ticks;
pub mod trail;
pub mod verify;

use std::process::ExitCode;

use clap::Subcommand;

use crate::error_text::report;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain from the first event. Exit status: 0 intact,
    /// 1 tampered (the first bad position and what is wrong: edited, missing,
    /// inserted, reordered, or the pinned head is gone), 2 could not run.
    Verify(verify::VerifyArgs),
    /// Print the current head (POSITION:HASH), to store somewhere else and
    /// pass to `audit verify --expect-head` later.
    Head(head::HeadArgs),
    /// List the head anchors on NATS with their signatures checked
    /// (--anchor-public-key), then verify the log against the newest one
    /// the key signed. Exit status: 0 the log holds it and every anchor
    /// checks, 1 the log does not hold it (cut or changed) or an anchor is
    /// forged or replayed, 2 could not run.
    Anchors(anchors::AnchorsArgs),
    /// Re-execute recorded condition evaluations, effect applications and
    /// event handler calls with the plugins of this build, each fed what its
    /// event recorded (game time, NPC and tick context, params, RNG seed,
    /// the results of its reads), and compare the result and the writes with
    /// what was recorded. Reads only. Exit status: 0 every replayed call
    /// matched, 1 a call diverged, 2 could not run.
    Replay(replay::ReplayArgs),
    /// The plugin actions that match, oldest first, each with its
    /// provenance and its causal chain (the tick, the call, the activity,
    /// the condition results that led to an effect, the event a handler
    /// handled): a table, or JSON lines with --json.
    Trail(trail::TrailArgs),
}

impl AuditCommand {
    /// Runs the audit; its exit code.
    pub async fn run(self) -> ExitCode {
        match self {
            AuditCommand::Verify(args) => verify::run(args).await,
            AuditCommand::Head(args) => report(head::run(&args).await),
            AuditCommand::Anchors(args) => anchors::run(args).await,
            AuditCommand::Replay(args) => replay::run(args).await,
            AuditCommand::Trail(args) => report(trail::run(args).await),
        }
    }
}

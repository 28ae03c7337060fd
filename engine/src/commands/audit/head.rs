//! `provenant audit head`: the log's current head, to pin later.

use clap::Args;
use serde_json::json;

use super::reading::{cannot_read, open_read_only};
use crate::commands::args::DbArgs;

#[derive(Debug, Args)]
pub struct HeadArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `provenant audit head`.
pub async fn run(args: &HeadArgs) -> anyhow::Result<()> {
    let log = open_read_only(&args.db.database_url).await?;
    let head = log.head().await.map_err(cannot_read)?;
    if args.json {
        println!("{}", json!({"position": head.position, "hash": head.hash}));
    } else {
        println!("{head}");
    }
    log.close().await;
    Ok(())
}

//! `provenant cluster status`: the engines sharing a log, and who works
//! what ([`crate::service::cluster_status`]).

use std::process::ExitCode;

use clap::Subcommand;
use provenant_log::{EventLog, LogConfig};

use super::args::DbArgs;
use crate::error_text::report;
use crate::nats_names::NatsNames;
use crate::service::cluster_status;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The instances, who holds each partition, the relay and the
    /// projections (owner, lease epoch, expiry), and how far behind the
    /// log's head the relay and the projections are.
    Status {
        #[command(flatten)]
        db: DbArgs,
        /// The engines' --nats-prefix (names the relay's checkpoint).
        #[arg(long, env = "PROVENANT_NATS_PREFIX", default_value = "provenant")]
        nats_prefix: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

impl ClusterCommand {
    /// Runs the command; its exit code.
    pub async fn run(self) -> ExitCode {
        report(match self {
            ClusterCommand::Status {
                db,
                nats_prefix,
                json,
            } => status(&db.database_url, &nats_prefix, json).await,
        })
    }
}

async fn status(database_url: &str, prefix: &str, json: bool) -> anyhow::Result<()> {
    let names = NatsNames::new(prefix)?;
    let log = EventLog::open(&LogConfig {
        migrate: false,
        ..LogConfig::new(database_url)
    })
    .await?;
    let status = cluster_status::read(&log, &names.relay_checkpoint()).await?;
    if json {
        println!("{}", serde_json::to_string(&status)?);
    } else {
        print!("{}", status.text());
    }
    Ok(())
}

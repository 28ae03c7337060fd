//! `provenant sim`: a game simulation and the engine's load generator.
//! (Being written.)

/// `provenant sim` arguments.
#[derive(Debug, clap::Args)]
pub struct SimArgs {}

pub async fn command(_args: SimArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}

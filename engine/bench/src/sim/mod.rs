//! `provenant sim`: a game simulation and the engine's load generator.
//!
//! It configures `--worlds` worlds on a running engine (`PUT
//! /v1/worlds/{world_id}`), then sends ticks at a steady rate, round-robin
//! over (world, session), and measures each tick from just before it is sent
//! to its acknowledgment:
//!
//! - with NATS, ticks are published with JetStream to
//!   `<prefix>.ticks.<world_id>` (header `Nats-Msg-Id: <tick_id>`), and the
//!   acknowledgment is the engine's notice on `<prefix>.acked.<world_id>`;
//! - without, each tick is a `POST /v1/ticks`, whose answer comes when the
//!   tick is durable.
//!
//! Sending holds the rate asked for and never bursts a backlog: when it
//! cannot keep up, the report says what rate it achieved. After sending it
//! waits up to `--drain` seconds for outstanding acknowledgments; ticks still
//! unacknowledged then are reported as missing, not as an error. [`run`] is
//! what other commands (benchmarks) call; [`command`] is `provenant sim`.

mod args;
mod config;
mod pacing;
mod report;
mod run;
mod schedule;
mod sender;
mod tracker;

pub use args::SimArgs;
pub use config::{SimConfig, default_engine_url};
pub use report::{FailureCount, LatencyMs, SimReport};
pub use run::{command, run, world_config};

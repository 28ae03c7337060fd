//! Clients of a running engine, as a game (or a test, or a benchmark) talks
//! to it from the outside: its HTTP API ([`http`]) and its NATS subjects
//! ([`nats`]). The demo and the load generator (`provenant sim`) send their
//! ticks through these; both read the engine's answers as
//! [`provenant_events::TickAck`].

pub mod http;
pub mod nats;

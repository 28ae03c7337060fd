//! The engine service (`provenant serve`): ticks in over NATS JetStream and
//! HTTP, events durable in the log, the log relayed out to NATS (or to an
//! in-process bus on the embedded default).
//!
//! The parts, each its own task: the tick consumer ([`nats`]), one worker
//! per world in play ([`worlds`], their state kept as snapshots by
//! [`world_state`]), the group committer ([`commit`]), the relay
//! ([`relay`]), the head anchors ([`anchors`]) and the HTTP API ([`http`],
//! with [`admin`] and [`prometheus`]). [`run`] starts and stops them around
//! the shared [`engine::Engine`]. A tick is acknowledged only after its
//! events are durable; its `TickProcessed` event, with an id derived from
//! the tick id, makes a second delivery add nothing.

pub mod access;
pub mod admin;
pub mod anchors;
pub mod api_error;
pub mod api_schemas;
pub mod cluster;
pub mod cluster_status;
pub mod commit;
pub mod engine;
pub mod events_stream;
pub mod health;
pub mod http;
pub mod nats;
pub mod nats_applied;
pub mod ownership;
pub mod prometheus;
pub mod relay;
pub mod run;
pub mod signals;
pub mod ticks;
pub mod world_state;
pub mod worlds;

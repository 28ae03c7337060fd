//! `provenant demo`: the whole story through the real engine service, in one
//! process. The engine starts on the embedded default (a SQLite log, ticks
//! handed to it in-process) or on PostgreSQL and NATS JetStream when their
//! URLs are given; two worlds are configured through it and a few thousand
//! ticks sent, each answered once its events are durable. Then the service's
//! guarantees (a malformed tick recorded as `TickRejected`, a tick sent
//! twice recognised as a duplicate), the log's own (idempotent appends,
//! optimistic concurrency), and, after a graceful stop, what each plugin did
//! as counted from the log, the throughput and the verified head.

mod args;
mod limits;
mod nats;
mod oracle;
mod run;
mod story;
mod summary;
mod ticks;

pub use args::{DemoArgs, DemoConfig};
pub use run::run;

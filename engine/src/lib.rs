//! provenant's engine: the service, the clients of a running engine, and
//! the commands. The binary (crate `provenant-cli`) parses the command line
//! and calls one module of [`commands`].
//!
//! The layers inside, each importing only from those below it
//! (ARCHITECTURE.md; the architecture test keeps it):
//!
//! - [`commands`]: one module per command, its arguments beside it;
//! - [`service`] (`provenant serve`'s I/O edge around the plugin host) and
//!   [`client`] (a running engine's HTTP API and NATS subjects, from the
//!   outside);
//! - leaves: [`anchor`] (head anchors and their signatures), [`error_text`] (how an error reads on one line, and a failed
//!   command's exit code), [`nats_names`] (the subjects, streams and headers
//!   the service and its clients share), [`plugin_source`] (the built-in
//!   plugins and a plugins directory's WebAssembly ones), [`progress`] (the
//!   progress bars), [`secret`] (secrets never shown), [`nats_connect`] (how
//!   every command reaches NATS: credentials and TLS).

pub mod anchor;
pub mod client;
pub mod commands;
pub mod error_text;
pub mod nats_connect;
pub mod nats_names;
pub mod plugin_source;
pub mod progress;
pub mod secret;
pub mod service;

pub use provenant_host::ENGINE_VERSION;

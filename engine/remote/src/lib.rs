//! Remote plugins (manifest kind `remote_feature`): behaviour services that
//! run in other processes, in any language, called over HTTP
//! (`POST {endpoint}/evaluate-condition`, …) or NATS (a request to a
//! subject). The original system designed them and never built them.
//!
//! A remote plugin is a folder of the plugins directory with a
//! `manifest.json` ([`manifest`]). Each call ([`plugin`]) sends the context
//! its permissions allow ([`context`]: each part read through the call's
//! `Ctx`, so recorded as the call's inputs), params and the ids an auditor
//! needs ([`protocol`]), waits at most the plugin's deadline
//! ([`transport`]: from any thread; over HTTP the calling thread drives the
//! request itself),
//! and turns the reply's `writes` into capability requests that go through
//! the same permission checks as a native plugin's. A rate limit and a
//! circuit breaker ([`breaker`]) keep a failing service from costing every
//! tick its deadline.
//!
//! Invariant: a remote plugin sees nothing its permissions do not grant
//! and changes nothing but through `Ctx`; what it was sent and what it
//! answered are in its call's event; no reply, however malformed, slow or
//! large, panics the engine or holds a call past its deadline.

pub mod breaker;
pub mod context;
pub mod endpoint;
pub mod error;
pub mod examples;
pub mod load;
pub mod manifest;
pub mod plugin;
pub mod protocol;
pub mod transport;

pub use error::{LoadError, Problem};
pub use load::{RemoteConfig, is_remote, load_plugin};
pub use plugin::RemotePlugin;
pub use transport::RemoteRuntime;

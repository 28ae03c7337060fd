//! A remote plugin as the host sees it: a [`Plugin`] whose registrations
//! come from its manifest and whose calls are requests to its service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::DefaultDirectRateLimiter;
use provenant_events::keys;
use provenant_events::kinds;
use provenant_host::context::Ctx;
use provenant_host::declared::{self, Calls};
use provenant_host::manifest::Manifest;
use provenant_host::registry::{PluginError, RegisterError, Registrar};
use provenant_host::{Plugin, Runtime};
use serde_json::{Value, json};

use crate::breaker::{Admit, Breaker, Transition};
use crate::context::{call_ids, filtered};
use crate::manifest::RemoteManifest;
use crate::protocol::{Operation, Reply, parse_reply, request_body};
use crate::transport::{Failure, RemoteRuntime, Transport};

/// A loaded remote plugin.
pub struct RemotePlugin {
    manifest: RemoteManifest,
    client: Arc<Client>,
}

/// What every call of one plugin shares: its transport, deadline, rate
/// limit and circuit.
pub struct Client {
    runtime: Arc<RemoteRuntime>,
    transport: Transport,
    endpoint: String,
    timeout: Duration,
    max_reply_bytes: u64,
    /// The rate limit (calls/s) and its bucket.
    limiter: Option<(u32, DefaultDirectRateLimiter)>,
    breaker: Breaker,
}

impl RemotePlugin {
    pub fn new(
        manifest: RemoteManifest,
        transport: Transport,
        runtime: Arc<RemoteRuntime>,
    ) -> Self {
        let client = Client {
            runtime,
            transport,
            endpoint: manifest.endpoint.to_string(),
            timeout: Duration::from_millis(manifest.timeout_ms),
            max_reply_bytes: manifest.max_reply_bytes,
            limiter: manifest
                .rate_limit_per_s
                .and_then(|r| Some((r, crate::breaker::rate_limiter(r)?))),
            breaker: Breaker::new(manifest.circuit),
        };
        RemotePlugin {
            manifest,
            client: Arc::new(client),
        }
    }
}

impl Plugin for RemotePlugin {
    fn manifest(&self) -> Manifest {
        self.manifest.plugin.clone()
    }

    fn runtime(&self) -> Runtime {
        Runtime::Remote {
            endpoint: self.client.endpoint.clone().into(),
        }
    }

    /// Registers what the manifest declares; the registrar checks each
    /// against the plugin's permissions. Nothing is sent here.
    fn register(&self, registrar: &mut Registrar<'_>) -> Result<(), RegisterError> {
        declared::register(&self.manifest.registrations, &self.client, registrar)
    }
}

impl Calls for Client {
    fn condition(&self, ctx: &mut Ctx, name: &str, params: &Value) -> Result<bool, PluginError> {
        let id = ctx.call_id().to_owned();
        let reply = self.call(ctx, Operation::EvaluateCondition, &id, params, None, name)?;
        Ok(reply.result.as_bool().unwrap_or(false))
    }

    fn effect(&self, ctx: &mut Ctx, name: &str, params: &Value) -> Result<Value, PluginError> {
        let id = ctx.call_id().to_owned();
        Ok(self
            .call(ctx, Operation::ApplyEffect, &id, params, None, name)?
            .result)
    }

    fn handle(&self, ctx: &mut Ctx, event: &Value) -> Result<(), PluginError> {
        let id = ctx.plugin_id().to_string();
        let kind = event["kind"].as_str().unwrap_or_default().to_owned();
        let params = json!({keys::EVENT_ID: event["event_id"], "kind": kind});
        self.call(
            ctx,
            Operation::HandleEvent,
            &id,
            &params,
            Some(event),
            &kind,
        )?;
        Ok(())
    }

    fn provide(&self, ctx: &mut Ctx, name: &str) -> Result<Value, PluginError> {
        let id = ctx.call_id().to_owned();
        Ok(self
            .call(
                ctx,
                Operation::SimulationConfig,
                &id,
                &Value::Null,
                None,
                name,
            )?
            .result)
    }
}

impl Client {
    /// One request: admitted by the circuit and the rate limit, sent with
    /// the filtered context, its reply checked, recorded and its writes
    /// made through `ctx`.
    fn call(
        &self,
        ctx: &mut Ctx,
        op: Operation,
        id: &str,
        params: &Value,
        event: Option<&Value>,
        name: &str,
    ) -> Result<Reply, PluginError> {
        // The rate limit first: a call it refuses must not take the
        // circuit's one probe.
        if let Some((rate, limiter)) = &self.limiter
            && limiter.check().is_err()
        {
            return Err(PluginError::Remote {
                reason: "rate_limited",
                message: format!(
                    "not sent: the rate limit of {} calls/s to {} is reached",
                    rate, self.endpoint
                ),
            });
        }
        if let Admit::Open { remaining } = self.breaker.admit(Instant::now()) {
            return Err(PluginError::Remote {
                reason: "circuit_open",
                message: format!(
                    "not sent: the circuit of {} is open after repeated failures{}",
                    self.endpoint,
                    if remaining.is_zero() {
                        "; a probe is out".to_owned()
                    } else {
                        format!("; next probe in {} ms", remaining.as_millis())
                    }
                ),
            });
        }
        let timeout_ms = self.timeout.as_millis() as u64;
        let body = request_body(
            op,
            id,
            filtered(ctx),
            params,
            timeout_ms,
            call_ids(ctx),
            event,
        );
        let (transport, max, timeout) =
            (self.transport.clone(), self.max_reply_bytes, self.timeout);
        let send = async move { transport.send(op, body, max).await };
        let sent = match &self.transport {
            Transport::Http { .. } => self.runtime.wait_local(send, timeout),
            Transport::Nats { .. } => self.runtime.wait(send, timeout),
        };
        let outcome = match sent {
            Some(Ok(bytes)) => parse_reply(op, &bytes).map_err(|message| Failure {
                reason: "bad_reply",
                message: format!("{} of {name} at {}: {message}", op.as_str(), self.endpoint),
            }),
            Some(Err(failure)) => Err(failure),
            None => Err(Failure {
                reason: "deadline",
                message: String::new(),
            }),
        };
        let transition = self.breaker.record(
            Instant::now(),
            outcome.as_ref().err().map(|f| match f.reason {
                "deadline" => "no reply before the deadline",
                _ => f.message.as_str(),
            }),
        );
        if let Some(t) = transition {
            self.record_transition(ctx, t);
        }
        let reply = match outcome {
            Ok(reply) => reply,
            Err(f) if f.reason == "deadline" => {
                return Err(PluginError::DeadlineExceeded {
                    deadline_ms: timeout_ms,
                });
            }
            Err(f) => {
                return Err(PluginError::Remote {
                    reason: f.reason,
                    message: f.message,
                });
            }
        };
        ctx.record_reply(reply.body.clone());
        for write in &reply.writes {
            ctx.call(write.clone())?;
        }
        Ok(reply)
    }

    fn record_transition(&self, ctx: &mut Ctx, t: Transition) {
        match t {
            Transition::Opened {
                failures,
                cool_down_ms,
                error,
            } => {
                tracing::warn!(plugin = %ctx.plugin_id(), endpoint = %self.endpoint,
                    failures, cool_down_ms, "circuit opened: {error}");
                ctx.record_runtime_event(
                    kinds::PLUGIN_CIRCUIT_OPENED,
                    json!({keys::ENDPOINT: self.endpoint, "failures": failures,
                        "cool_down_ms": cool_down_ms, keys::ERROR: error}),
                );
            }
            Transition::Closed { open_ms, skipped } => {
                tracing::info!(plugin = %ctx.plugin_id(), endpoint = %self.endpoint,
                    open_ms, skipped, "circuit closed");
                ctx.record_runtime_event(
                    kinds::PLUGIN_CIRCUIT_CLOSED,
                    json!({keys::ENDPOINT: self.endpoint, "open_ms": open_ms, "skipped": skipped}),
                );
            }
        }
    }
}

//! One call of a sandboxed plugin: a fresh instance of its pre-instantiated
//! component in a store of its own, the call's context lent to it, fuel and
//! an epoch deadline set, and whatever stops it turned into the
//! [`PluginError`] the host records.
//!
//! A fresh instance per call means a plugin keeps nothing between calls but
//! what it writes through its capabilities (its storage, session flags):
//! every call is a function of what its event records, so it can be
//! replayed. With pooled instances and copy-on-write memory images this
//! costs a few microseconds.

use provenant_events::canonical;
use provenant_host::context::Ctx;
use provenant_host::declared::Calls;
use provenant_host::registry::PluginError;
use serde_json::Value;
use wasmtime::component::{ComponentExportIndex, Instance, InstancePre};
use wasmtime::{Engine, Store, Trap};

use crate::limits::Limits;
use crate::runtime::deadline_ticks;
use crate::state::{CallState, GuestFault};

/// A plugin's component, ready to be called.
pub struct Sandbox {
    pub engine: Engine,
    pub pre: InstancePre<CallState>,
    pub limits: Limits,
    pub exports: Exports,
}

/// The exported functions the manifest's registrations call.
#[derive(Debug, Clone, Default)]
pub struct Exports {
    /// `conditions.evaluate`
    pub evaluate: Option<ComponentExportIndex>,
    /// `effects.apply`
    pub apply: Option<ComponentExportIndex>,
    /// `handlers.handle`
    pub handle: Option<ComponentExportIndex>,
    /// `providers.provide`
    pub provide: Option<ComponentExportIndex>,
}

/// What a call returns, for the cap on its size.
pub trait Returned {
    fn bytes(&self) -> usize;
}

impl Returned for bool {
    fn bytes(&self) -> usize {
        0
    }
}

impl Returned for () {
    fn bytes(&self) -> usize {
        0
    }
}

impl Returned for String {
    fn bytes(&self) -> usize {
        self.len()
    }
}

impl Calls for Sandbox {
    /// Evaluates condition `name`.
    fn condition(&self, ctx: &mut Ctx, name: &str, params: &Value) -> Result<bool, PluginError> {
        let params = canonical::to_canonical_string(params);
        self.run(ctx, |store, instance| {
            let f = instance.get_typed_func::<(&str, &str), (Result<bool, String>,)>(
                &mut *store,
                export(&self.exports.evaluate, "conditions.evaluate")?,
            )?;
            Ok(f.call(store, (name, &params))?.0)
        })
    }

    /// Applies effect `name`: its result is JSON.
    fn effect(&self, ctx: &mut Ctx, name: &str, params: &Value) -> Result<Value, PluginError> {
        let params = canonical::to_canonical_string(params);
        let text = self.run(ctx, |store, instance| {
            let f = instance.get_typed_func::<(&str, &str), (Result<String, String>,)>(
                &mut *store,
                export(&self.exports.apply, "effects.apply")?,
            )?;
            Ok(f.call(store, (name, &params))?.0)
        })?;
        json(&text, "effect")
    }

    /// Handles `event` (its JSON form).
    fn handle(&self, ctx: &mut Ctx, event: &Value) -> Result<(), PluginError> {
        let event = canonical::to_canonical_string(event);
        self.run(ctx, |store, instance| {
            let f = instance.get_typed_func::<(&str,), (Result<(), String>,)>(
                &mut *store,
                export(&self.exports.handle, "handlers.handle")?,
            )?;
            Ok(f.call(store, (&event,))?.0)
        })
    }

    /// Provider `name`'s simulation config: JSON.
    fn provide(&self, ctx: &mut Ctx, name: &str) -> Result<Value, PluginError> {
        let text = self.run(ctx, |store, instance| {
            let f = instance.get_typed_func::<(&str,), (Result<String, String>,)>(
                &mut *store,
                export(&self.exports.provide, "providers.provide")?,
            )?;
            Ok(f.call(store, (name,))?.0)
        })?;
        json(&text, "simulation config provider")
    }
}

impl Sandbox {
    /// Runs `call` in a fresh instance under the plugin's limits, with the
    /// call's context lent to it.
    fn run<R: Returned>(
        &self,
        ctx: &mut Ctx,
        call: impl FnOnce(&mut Store<CallState>, &Instance) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, PluginError> {
        let fuel = self.limits.fuel_per_call;
        let state = CallState::new(ctx.lend(), self.limits.memory_max_bytes);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let outcome = (|| {
            store.set_fuel(fuel)?;
            store.set_epoch_deadline(deadline_ticks(self.limits.timeout_ms));
            store.epoch_deadline_trap();
            let instance = self.pre.instantiate(&mut store)?;
            call(&mut store, &instance)
        })();
        let used = fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let state = store.into_data();
        *ctx = state.ctx;
        ctx.record_fuel_used(used);
        match outcome {
            Ok(Ok(value)) => {
                self.check_size(value.bytes())?;
                Ok(value)
            }
            Ok(Err(message)) => {
                self.check_size(message.len())?;
                Err(match state.raised {
                    Some(denied) => PluginError::Denied(denied),
                    None => PluginError::Failed(message),
                })
            }
            Err(e) => Err(self.stopped(&e, state.limiter.refused)),
        }
    }

    fn check_size(&self, bytes: usize) -> Result<(), PluginError> {
        let max = self.limits.result_max_bytes;
        if bytes as u64 > max {
            return Err(PluginError::LimitExceeded {
                limit: "result_bytes",
                message: format!("returned {bytes} bytes; a call may return {max}"),
            });
        }
        Ok(())
    }

    /// What stopped a call: its fuel, its deadline, its memory cap, a trap
    /// of its own, or something it passed the host.
    fn stopped(&self, e: &wasmtime::Error, refused: Option<usize>) -> PluginError {
        let memory = |desired: usize| PluginError::LimitExceeded {
            limit: "memory",
            message: format!(
                "was refused memory: it asked for {desired} bytes; a call may use {}",
                self.limits.memory_max_bytes
            ),
        };
        match (e.downcast_ref::<Trap>(), refused) {
            (Some(Trap::OutOfFuel), _) => PluginError::LimitExceeded {
                limit: "fuel",
                message: format!(
                    "ran out of fuel: a call may use {} units",
                    self.limits.fuel_per_call
                ),
            },
            (Some(Trap::Interrupt), _) => PluginError::DeadlineExceeded {
                deadline_ms: self.limits.timeout_ms,
            },
            (_, Some(desired)) => memory(desired),
            (Some(trap), None) => PluginError::Panicked(format!("trap: {trap}")),
            (None, None) => match e.downcast_ref::<GuestFault>() {
                Some(fault) => PluginError::Failed(fault.0.clone()),
                None => PluginError::Failed(format!("the sandbox refused the call: {e}")),
            },
        }
    }
}

fn export<'a>(
    index: &'a Option<ComponentExportIndex>,
    name: &str,
) -> wasmtime::Result<&'a ComponentExportIndex> {
    index.as_ref().ok_or_else(|| {
        wasmtime::Error::new(GuestFault(format!("the plugin does not export {name}")))
    })
}

fn json(text: &str, what: &str) -> Result<Value, PluginError> {
    serde_json::from_str(text)
        .map_err(|e| PluginError::Failed(format!("the {what} returned text that is not JSON: {e}")))
}

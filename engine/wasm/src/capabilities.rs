//! The capability interfaces of `provenant:plugin@0.1.0`, implemented on a
//! call's state: every call goes through the call's `Ctx`, as a built-in
//! plugin's does (permission check, failure mode, namespacing, reads
//! recorded, writes turned into events). JSON goes to the plugin as
//! canonical text, so a replay hands it the same bytes.

use provenant_events::canonical;
use provenant_host::capability::{Denied, LogLevel};
use provenant_host::permissions::FailureMode;
use serde_json::Value;

use crate::bindings::provenant::plugin::{
    call, events, log, npc, session_read, session_write, storage, types, world_read,
};
use crate::state::{CallState, GuestFault};

type Answer<T> = wasmtime::Result<Result<T, types::Denied>>;

fn text(v: &Value) -> String {
    canonical::to_canonical_string(v)
}

/// The JSON a plugin passed as `what`.
fn parse(what: &str, json: &str) -> wasmtime::Result<Value> {
    serde_json::from_str(json)
        .map_err(|e| wasmtime::Error::new(GuestFault(format!("{what} is not JSON: {e}"))))
}

impl CallState {
    /// A capability's answer as the interface gives it; a refusal that
    /// reached the plugin is remembered.
    fn answer<T, U>(&mut self, r: Result<T, Denied>, f: impl FnOnce(T) -> U) -> Answer<U> {
        match r {
            Ok(v) => Ok(Ok(f(v))),
            Err(denied) => {
                let wit = types::Denied {
                    capability: denied.capability.clone(),
                    permission: denied.permission.clone().unwrap_or_default(),
                    reason: denied.reason.clone(),
                };
                self.raised = Some(denied);
                Ok(Err(wit))
            }
        }
    }

    fn read(&mut self, r: Result<Option<Value>, Denied>) -> Answer<Option<String>> {
        self.answer(r, |v| v.as_ref().map(text))
    }
}

impl types::Host for CallState {}

impl call::Host for CallState {
    fn now_micros(&mut self) -> wasmtime::Result<i64> {
        Ok(self.ctx.now().timestamp_micros())
    }

    fn tick(&mut self) -> wasmtime::Result<u64> {
        Ok(self.ctx.tick())
    }

    fn world_id(&mut self) -> wasmtime::Result<String> {
        Ok(self.ctx.world_id().to_string())
    }

    fn session_id(&mut self) -> wasmtime::Result<String> {
        Ok(self.ctx.session_id().to_string())
    }

    fn npc(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self
            .ctx
            .npc()
            .and_then(|n| serde_json::to_value(n).ok())
            .as_ref()
            .map(text))
    }

    fn tick_context(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.ctx.tick_context(&key).map(text))
    }

    fn random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.ctx.rng().next_u64())
    }

    fn replaying(&mut self) -> wasmtime::Result<bool> {
        Ok(self.ctx.replaying())
    }

    fn set_failure_mode(&mut self, mode: Option<types::FailureMode>) -> wasmtime::Result<()> {
        self.ctx.set_failure_mode(mode.map(|m| match m {
            types::FailureMode::Raise => FailureMode::Raise,
            types::FailureMode::Warn => FailureMode::Warn,
            types::FailureMode::Silent => FailureMode::Silent,
        }));
        Ok(())
    }
}

impl world_read::Host for CallState {
    fn get_world(&mut self) -> Answer<Option<String>> {
        let r = self.ctx.get_world();
        self.read(r)
    }

    fn get_world_config(&mut self, path: String) -> Answer<Option<String>> {
        let r = self.ctx.get_world_config(&path);
        self.read(r)
    }

    fn list_world_locations(&mut self) -> Answer<Vec<String>> {
        let r = self.ctx.list_world_locations();
        self.answer(r, |list| list.iter().map(text).collect())
    }

    fn list_world_npcs(&mut self) -> Answer<Vec<String>> {
        let r = self.ctx.list_world_npcs();
        self.answer(r, |list| list.iter().map(text).collect())
    }
}

impl session_read::Host for CallState {
    fn get_session(&mut self) -> Answer<Option<String>> {
        let r = self.ctx.get_session();
        self.read(r)
    }

    fn get_session_flag(&mut self, key: String) -> Answer<Option<String>> {
        let r = self.ctx.get_session_flag(key);
        self.read(r)
    }

    fn get_relationship(&mut self, npc_key: String) -> Answer<Option<String>> {
        let r = self.ctx.get_relationship(&npc_key);
        self.read(r)
    }
}

impl session_write::Host for CallState {
    fn set_session_flag(&mut self, key: String, value: String) -> Answer<bool> {
        let value = parse("set-session-flag's value", &value)?;
        let r = self.ctx.set_session_flag(&key, value);
        self.answer(r, |ok| ok)
    }

    fn update_relationship(&mut self, npc_key: String, updates: String) -> Answer<bool> {
        let updates = parse("update-relationship's updates", &updates)?;
        let r = self.ctx.update_relationship(&npc_key, updates);
        self.answer(r, |ok| ok)
    }
}

impl npc::Host for CallState {
    fn get_npc(&mut self, npc_id: String) -> Answer<Option<String>> {
        let r = self.ctx.get_npc(&npc_id);
        self.read(r)
    }

    fn set_npc_state(&mut self, npc_id: String, state: String) -> Answer<bool> {
        let state = parse("set-npc-state's state", &state)?;
        let r = self.ctx.set_npc_state(&npc_id, state);
        self.answer(r, |ok| ok)
    }
}

impl storage::Host for CallState {
    fn get(&mut self, key: String) -> Answer<Option<String>> {
        let r = self.ctx.storage_get(&key);
        self.read(r)
    }

    fn set(&mut self, key: String, value: String) -> Answer<bool> {
        let value = parse("storage set's value", &value)?;
        let r = self.ctx.storage_set(&key, value);
        self.answer(r, |ok| ok)
    }
}

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warning => LogLevel::Warning,
            log::Level::Error => LogLevel::Error,
        };
        self.ctx.log(level, &message);
        Ok(())
    }
}

impl events::Host for CallState {
    fn emit(&mut self, name: String, payload: String) -> Answer<bool> {
        let payload = parse("emit's payload", &payload)?;
        let r = self.ctx.emit(&name, payload);
        self.answer(r, |ok| ok)
    }
}

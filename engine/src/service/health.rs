//! What `/readyz` reports: the log reachable, the plugins loaded, the tick
//! consumer running. Each part records why it is not ready.

use std::sync::Mutex;

use serde::Serialize;

/// The engine's readiness, updated by the parts that know.
#[derive(Debug, Default)]
pub struct Health {
    inner: Mutex<Parts>,
}

#[derive(Debug, Default, Clone)]
struct Parts {
    /// Why the log is not usable (None: the last append or probe worked).
    log: Option<String>,
    plugins_loaded: bool,
    /// Why the consumer is not running; None when it runs or there is none.
    consumer: Option<String>,
    /// Why NATS is not usable; None when connected or not used.
    nats: Option<String>,
    /// Why the relay is not relaying; None when it is.
    relay: Option<String>,
    shutting_down: bool,
}

/// The answer of `/readyz`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    /// Why not, one line per part (empty when ready).
    pub reasons: Vec<String>,
}

impl Health {
    /// A new engine: nothing is ready until told.
    pub fn starting() -> Self {
        Health {
            inner: Mutex::new(Parts {
                log: Some("the log has not been opened yet".into()),
                plugins_loaded: false,
                consumer: None,
                nats: None,
                relay: None,
                shutting_down: false,
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Parts) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn log_ok(&self) {
        self.with(|p| p.log = None);
    }

    pub fn log_failed(&self, error: &dyn std::fmt::Display) {
        let reason = format!("log unreachable: {error}");
        self.with(|p| p.log = Some(reason));
    }

    pub fn plugins_loaded(&self) {
        self.with(|p| p.plugins_loaded = true);
    }

    pub fn consumer(&self, problem: Option<String>) {
        self.with(|p| p.consumer = problem);
    }

    pub fn nats(&self, problem: Option<String>) {
        self.with(|p| p.nats = problem);
    }

    pub fn relay(&self, problem: Option<String>) {
        self.with(|p| p.relay = problem);
    }

    pub fn shutting_down(&self) {
        self.with(|p| p.shutting_down = true);
    }

    pub fn readiness(&self) -> Readiness {
        let parts = self.with(|p| p.clone());
        let mut reasons = Vec::new();
        if parts.shutting_down {
            reasons.push("shutting down".to_owned());
        }
        reasons.extend(parts.log);
        if !parts.plugins_loaded {
            reasons.push("plugins not loaded yet".to_owned());
        }
        reasons.extend(parts.nats);
        reasons.extend(parts.consumer);
        reasons.extend(parts.relay);
        Readiness {
            ready: reasons.is_empty(),
            reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_part_is() {
        let h = Health::starting();
        assert!(!h.readiness().ready);
        h.log_ok();
        assert_eq!(h.readiness().reasons, vec!["plugins not loaded yet"]);
        h.plugins_loaded();
        assert!(h.readiness().ready);
        h.log_failed(&"connection refused");
        let r = h.readiness();
        assert!(!r.ready);
        assert_eq!(r.reasons, vec!["log unreachable: connection refused"]);
        h.log_ok();
        h.consumer(Some("NATS unreachable".into()));
        assert_eq!(h.readiness().reasons, vec!["NATS unreachable"]);
        h.consumer(None);
        h.shutting_down();
        assert_eq!(h.readiness().reasons, vec!["shutting down"]);
    }
}

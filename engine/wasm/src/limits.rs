//! What one call of a sandboxed plugin may use, from its manifest's
//! `limits`, with defaults and the most the engine allows.

use serde::{Deserialize, Serialize};

/// The most memory a plugin's instance may have: the size of the engine's
/// pooled memory slots.
pub const MAX_MEMORY_BYTES: u64 = 256 << 20;
/// The longest deadline a plugin may ask for.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// Limits on one call, each enforced by the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// WebAssembly fuel (about one unit per instruction) per call,
    /// instantiation included. Deterministic: a call that runs out fails the
    /// same way when replayed.
    #[serde(default = "default_fuel")]
    pub fuel_per_call: u64,
    /// The most linear memory the instance may grow to.
    #[serde(default = "default_memory")]
    pub memory_max_bytes: u64,
    /// The wall-clock deadline of a call (epoch interruption).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// The most bytes a call may return (its result or its error text).
    #[serde(default = "default_result")]
    pub result_max_bytes: u64,
}

fn default_fuel() -> u64 {
    10_000_000
}

fn default_memory() -> u64 {
    16 << 20
}

fn default_timeout() -> u64 {
    50
}

fn default_result() -> u64 {
    1 << 20
}

impl Default for Limits {
    /// 10 million units of fuel, 16 MiB of memory, 50 ms (the built-in
    /// plugins' deadline) and 1 MiB of result per call.
    fn default() -> Self {
        Limits {
            fuel_per_call: default_fuel(),
            memory_max_bytes: default_memory(),
            timeout_ms: default_timeout(),
            result_max_bytes: default_result(),
        }
    }
}

impl Limits {
    /// Why these limits cannot be used, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.fuel_per_call == 0 {
            return Err("limits.fuel_per_call must be at least 1".into());
        }
        if !(64 << 10..=MAX_MEMORY_BYTES).contains(&self.memory_max_bytes) {
            return Err(format!(
                "limits.memory_max_bytes must be between 65536 (one page) and {MAX_MEMORY_BYTES}, not {}",
                self.memory_max_bytes
            ));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(format!(
                "limits.timeout_ms must be between 1 and {MAX_TIMEOUT_MS}, not {}",
                self.timeout_ms
            ));
        }
        if self.result_max_bytes == 0 || self.result_max_bytes > self.memory_max_bytes {
            return Err(format!(
                "limits.result_max_bytes must be between 1 and memory_max_bytes ({}), not {}",
                self.memory_max_bytes, self.result_max_bytes
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_a_manifest_leaves_out_and_bad_limits_are_named() {
        let l: Limits = serde_json::from_str(r#"{"timeout_ms": 20}"#).unwrap();
        assert_eq!(l.timeout_ms, 20);
        assert_eq!(l.fuel_per_call, Limits::default().fuel_per_call);
        assert!(l.check().is_ok());
        let huge = Limits {
            memory_max_bytes: MAX_MEMORY_BYTES + 1,
            ..Limits::default()
        };
        assert!(huge.check().unwrap_err().contains("memory_max_bytes"));
        let none = Limits {
            fuel_per_call: 0,
            ..Limits::default()
        };
        assert!(none.check().unwrap_err().contains("fuel_per_call"));
        assert!(serde_json::from_str::<Limits>(r#"{"fuel": 1}"#).is_err());
    }
}

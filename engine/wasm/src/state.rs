//! What one call's store holds: the call's context (lent by the host for
//! the call), the memory limiter, and what the capabilities saw.

use provenant_host::capability::Denied;
use provenant_host::context::Ctx;
use wasmtime::ResourceLimiter;

/// Tables a plugin's instance may grow to (elements).
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The data of one call's store.
pub struct CallState {
    pub ctx: Ctx,
    pub limiter: Limiter,
    /// The last refusal the plugin got as an error (RAISE mode): if the call
    /// then fails, it failed because of it, as a built-in plugin's `?` would.
    pub raised: Option<Denied>,
}

impl CallState {
    pub fn new(ctx: Ctx, memory_max_bytes: u64) -> Self {
        CallState {
            ctx,
            limiter: Limiter {
                memory_max: usize::try_from(memory_max_bytes).unwrap_or(usize::MAX),
                refused: None,
            },
            raised: None,
        }
    }
}

/// Caps the instance's memory, and remembers a refusal so that the trap
/// that usually follows is reported as the memory limit.
pub struct Limiter {
    memory_max: usize,
    /// The size the plugin asked for and was refused.
    pub refused: Option<usize>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_max {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        32
    }

    fn tables(&self) -> usize {
        32
    }

    fn memories(&self) -> usize {
        4
    }
}

/// Something the plugin passed the host that is not what the interface
/// says: the call stops and fails with this.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GuestFault(pub String);

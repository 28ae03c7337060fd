//! The WebAssembly engine every sandboxed plugin runs in: its configuration
//! (component model, fuel, epoch interruption, deterministic floats, pooled
//! instances), the compiled-component cache, and the ticker that moves the
//! epoch on.

use std::path::PathBuf;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::limits::MAX_MEMORY_BYTES;

/// How often the epoch moves on: the granularity of a call's deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Calls that may run at once (instances in the pool). A call beyond them
/// fails with an error event.
pub const MAX_CONCURRENT_CALLS: u32 = 128;

/// Memory (and table) bytes of a pooled slot kept resident between calls.
const KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// How the runtime is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WasmConfig {
    /// Where compiled components are kept between runs, by the digest of
    /// their bytes and the engine's settings (`None`: compiled at every
    /// start).
    pub cache_dir: Option<PathBuf>,
    /// The shortest wall-clock deadline a call gets, whatever its manifest
    /// says (`None`: the manifest's). `audit replay` sets its own deadline
    /// here: a replay asks what a plugin does, not how fast the auditor's
    /// machine is, and fuel still bounds the work of every call. (Calls the
    /// engine recorded as overrunning are skipped by the replay.)
    pub min_timeout_ms: Option<u64>,
}

/// The engine, shared by every sandboxed plugin.
#[derive(Clone)]
pub struct WasmRuntime {
    engine: Engine,
    min_timeout_ms: u64,
}

impl WasmRuntime {
    /// Starts the engine (and its epoch ticker, which lives as long as the
    /// engine does).
    pub fn new(config: &WasmConfig) -> Result<WasmRuntime, String> {
        let mut c = Config::new();
        c.wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            // Replay needs the same results on every machine.
            .cranelift_nan_canonicalization(true)
            .relaxed_simd_deterministic(true)
            // Trap messages name the trap, not the frames: they are recorded
            // in events and compared at replay.
            .wasm_backtrace_max_frames(None);
        c.shared_memory(false);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(MAX_CONCURRENT_CALLS)
            .total_core_instances(MAX_CONCURRENT_CALLS * 8)
            .total_memories(MAX_CONCURRENT_CALLS * 2)
            .total_tables(MAX_CONCURRENT_CALLS * 8)
            .max_memory_size(MAX_MEMORY_BYTES as usize)
            // A fresh instance per call: a slot given back is reset with
            // memset up to these sizes instead of madvise, so the next call
            // takes no page faults and no system call for a small plugin.
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Data segments copied at instantiation rather than mapped
        // copy-on-write: with slots kept resident, a copy is cheaper than the
        // page faults of a fresh mapping, for plugins of a few pages.
        c.memory_init_cow(false);
        // Slots of the largest memory a plugin may have, not 4 GiB each.
        c.memory_reservation(MAX_MEMORY_BYTES);
        if let Some(dir) = &config.cache_dir {
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir);
            let cache = wasmtime::Cache::new(cache).map_err(|e| {
                format!(
                    "cannot use {} as the compiled-plugin cache: {e}",
                    dir.display()
                )
            })?;
            c.cache(Some(cache));
        }
        let engine = Engine::new(&c).map_err(|e| e.to_string())?;
        start_ticker(&engine)?;
        Ok(WasmRuntime {
            engine,
            min_timeout_ms: config.min_timeout_ms.unwrap_or(0),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A call's wall-clock deadline under this runtime: the manifest's, or
    /// the runtime's floor when that is longer.
    pub fn timeout_ms(&self, manifest_ms: u64) -> u64 {
        manifest_ms.max(self.min_timeout_ms)
    }
}

/// Moves the engine's epoch on every [`EPOCH_TICK`] until the engine is
/// dropped: a call's deadline is a number of ticks.
fn start_ticker(engine: &Engine) -> Result<(), String> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("provenant-wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the epoch ticker thread: {e}"))
}

/// The epoch ticks a deadline of `timeout_ms` needs (one more than it
/// spans, since the current tick may be about to end).
pub fn deadline_ticks(timeout_ms: u64) -> u64 {
    (Duration::from_millis(timeout_ms).as_micros() / EPOCH_TICK.as_micros()) as u64 + 1
}

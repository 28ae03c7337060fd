//! The cost of one in-process condition evaluation through the plugin host
//! (permission check, dispatch, event construction; no log I/O), beside the
//! bare function call as its baseline: the built-in condition inline and on
//! a worker thread, and the same condition (one read of the plugin's own
//! session flag) as a sandboxed WebAssembly plugin, each call in a fresh
//! instance under fuel and an epoch deadline.
//!
//! cargo bench -p provenant-bench --bench host
//!
//!
//! It runs with the allocator the `provenant` binary uses (mimalloc);
//! `--features system-alloc` runs both with the system allocator instead.

#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use provenant_bench::wasm_fixtures as fx;
use provenant_host::runner::Isolation;
use provenant_host::{HostConfig, Plugin, PluginHost};
use provenant_plugins as plugins;
use provenant_wasm::{WasmConfig, WasmRuntime};
use serde_json::{Value, json};

/// The condition's logic as a plain function on plain data.
fn has_disguise_bare(npc_state: &Value) -> bool {
    npc_state
        .get("disguise")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn bench(c: &mut Criterion) {
    let (state, scene) = provenant_bench::sample::guard_scene().unwrap();
    let npc_state = json!({"disguise": true});

    let mut group = c.benchmark_group("condition");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("bare function call", |b| {
        b.iter(|| has_disguise_bare(black_box(&npc_state)))
    });
    for (label, isolation) in [
        ("through the host, inline", Isolation::Inline),
        ("through the host, worker thread", Isolation::Thread),
    ] {
        let host = PluginHost::start(
            plugins::builtin(),
            HostConfig {
                isolation,
                ..HostConfig::default()
            },
        )
        .unwrap();
        group.bench_function(label, |b| {
            b.iter(|| {
                let d = host.evaluate_condition(
                    &state,
                    &scene,
                    "sneak",
                    black_box("plugin:game-stealth:has_disguise"),
                    &Value::Null,
                    0,
                );
                assert!(d.value);
                d
            })
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let manifest = fx::manifest("wasm-bench", &["group:behavior"], json!({}));
    fx::write_plugin(dir.path(), "bench", &manifest, &fx::one_read().unwrap()).unwrap();
    let runtime = WasmRuntime::new(&WasmConfig::default()).unwrap();
    let mut with_wasm = plugins::builtin();
    with_wasm.extend(
        provenant_wasm::load_dir(dir.path(), &runtime)
            .unwrap()
            .into_iter()
            .map(|p| Arc::new(p) as Arc<dyn Plugin>),
    );
    let host = PluginHost::start(with_wasm, HostConfig::default()).unwrap();
    group.bench_function("through the host, wasm sandbox", |b| {
        b.iter(|| {
            let d = host.evaluate_condition(
                &state,
                &scene,
                "sneak",
                black_box("plugin:wasm-bench:c"),
                &Value::Null,
                0,
            );
            assert!(d.value, "{:?}", d.events);
            d
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

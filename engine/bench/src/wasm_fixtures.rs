//! Sandboxed test plugins, built at test time: core WebAssembly written in
//! WAT, made into components for the published WIT world
//! (`engine/wasm/wit/plugin.wit`) with `wit-component`, and written into a
//! plugins directory with their manifests. The tests and the benchmarks
//! share them.
//!
//! Each module speaks the component model's canonical ABI by hand: a bump
//! allocator as `cabi_realloc`, strings in data segments, results written to
//! a return area.

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

/// The published interface.
pub const PLUGIN_WIT: &str = include_str!("../../wasm/wit/plugin.wit");

/// Memory, a bump allocator from 4096 up (growing memory as it goes), and
/// the strings the fixtures use:
/// 16 `mood` (4), 32 `"cheerful"` (10), 64 `{"cheered":true}` (16),
/// 96 `refused` (7), 112 `not json` (8), 128 `guard` (5), 144 `{}` (2).
/// Return areas: 1024 (exports), 1100 (imports).
const PRELUDE: &str = r#"
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func $realloc (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32) (local $end i32)
    (local.set $p (i32.and
      (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
      (i32.sub (i32.const 0) (local.get 2))))
    (local.set $end (i32.add (local.get $p) (local.get 3)))
    (block $ok
      (loop $grow
        (br_if $ok (i32.le_u (local.get $end) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow)))
    (global.set $heap (local.get $end))
    (local.get $p))
  (data (i32.const 16) "mood")
  (data (i32.const 32) "\"cheerful\"")
  (data (i32.const 64) "{\"cheered\":true}")
  (data (i32.const 96) "refused")
  (data (i32.const 112) "not json")
  (data (i32.const 128) "guard")
  (data (i32.const 144) "{}")
"#;

/// `ok(bool)` of a condition, from the value on the stack, at 1024.
const RETURN_BOOL: &str = r#"
    (local.set 4)
    (i32.store8 (i32.const 1024) (i32.const 0))
    (i32.store8 (i32.const 1028) (local.get 4))
    (i32.const 1024)
"#;

/// A well-behaved plugin: condition `likes_player` holds when its own
/// session flag `mood` is set (it draws a random number first, unused);
/// effect `cheer` sets `mood` to `"cheerful"` (`mood_value` replaces those
/// ten bytes: a changed module) and returns `{"cheered":true}`.
pub fn greeter(mood_value: &str) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(mood_value.len() == 10, "the mood is ten bytes");
    let wat = format!(
        r#"(module
  (import "provenant:plugin/call@0.1.0" "random-u64" (func $random (result i64)))
  (import "provenant:plugin/session-read@0.1.0" "get-session-flag" (func $get_flag (param i32 i32 i32)))
  (import "provenant:plugin/session-write@0.1.0" "set-session-flag" (func $set_flag (param i32 i32 i32 i32 i32)))
  {PRELUDE}
  (data (i32.const 32) "{mood}")
  (func (export "provenant:plugin/conditions@0.1.0#evaluate") (param i32 i32 i32 i32) (result i32) (local i32)
    (drop (call $random))
    (call $get_flag (i32.const 16) (i32.const 4) (i32.const 1100))
    (i32.and (i32.eqz (i32.load8_u (i32.const 1100)))
             (i32.eq (i32.load8_u (i32.const 1104)) (i32.const 1)))
    {RETURN_BOOL})
  (func (export "provenant:plugin/effects@0.1.0#apply") (param i32 i32 i32 i32) (result i32)
    (call $set_flag (i32.const 16) (i32.const 4) (i32.const 32) (i32.const 10) (i32.const 1100))
    (i32.store8 (i32.const 1024) (i32.const 0))
    (i32.store (i32.const 1028) (i32.const 64))
    (i32.store (i32.const 1032) (i32.const 16))
    (i32.const 1024)))"#,
        mood = mood_value.replace('"', "\\\"")
    );
    component(
        "import provenant:plugin/call@0.1.0;
         import provenant:plugin/session-read@0.1.0;
         import provenant:plugin/session-write@0.1.0;
         export provenant:plugin/conditions@0.1.0;
         export provenant:plugin/effects@0.1.0;",
        &wat,
    )
}

/// A condition whose body is `body` (which leaves an i32 on the stack, or
/// never returns), importing nothing.
pub fn condition(body: &str) -> anyhow::Result<Vec<u8>> {
    let wat = format!(
        r#"(module {PRELUDE}
  (func (export "provenant:plugin/conditions@0.1.0#evaluate") (param i32 i32 i32 i32) (result i32) (local i32)
    {body}
    {RETURN_BOOL}))"#
    );
    component("export provenant:plugin/conditions@0.1.0;", &wat)
}

/// An endless loop.
pub fn endless_loop() -> anyhow::Result<Vec<u8>> {
    condition("(loop $l (br $l)) (unreachable)")
}

/// Grows its memory until refused, then traps.
pub fn memory_bomb() -> anyhow::Result<Vec<u8>> {
    condition(
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (unreachable)",
    )
}

/// Traps at once.
pub fn trap() -> anyhow::Result<Vec<u8>> {
    condition("(unreachable)")
}

/// A condition that holds, cheaply: the benchmark's plugin. Reads its own
/// session flag `mood` once, as the native benchmark condition does.
pub fn one_read() -> anyhow::Result<Vec<u8>> {
    let wat = format!(
        r#"(module
  (import "provenant:plugin/session-read@0.1.0" "get-session-flag" (func $get_flag (param i32 i32 i32)))
  {PRELUDE}
  (func (export "provenant:plugin/conditions@0.1.0#evaluate") (param i32 i32 i32 i32) (result i32) (local i32)
    (call $get_flag (i32.const 16) (i32.const 4) (i32.const 1100))
    (i32.eqz (i32.load8_u (i32.const 1100)))
    {RETURN_BOOL}))"#
    );
    component(
        "import provenant:plugin/session-read@0.1.0;
         export provenant:plugin/conditions@0.1.0;",
        &wat,
    )
}

/// An effect that returns 2 MiB (zero bytes: valid UTF-8).
pub fn huge_result() -> anyhow::Result<Vec<u8>> {
    let wat = format!(
        r#"(module {PRELUDE}
  (func (export "provenant:plugin/effects@0.1.0#apply") (param i32 i32 i32 i32) (result i32)
    (drop (memory.grow (i32.const 40)))
    (i32.store8 (i32.const 1024) (i32.const 0))
    (i32.store (i32.const 1028) (i32.const 65536))
    (i32.store (i32.const 1032) (i32.const 2097152))
    (i32.const 1024)))"#
    );
    component("export provenant:plugin/effects@0.1.0;", &wat)
}

/// A condition that sets NPC `guard`'s state, and holds if that worked.
/// Called `raise` or `silent` (by the name's length), it first asks for that
/// failure mode; in RAISE mode a refusal makes it fail with `refused`.
pub fn nosy() -> anyhow::Result<Vec<u8>> {
    let wat = format!(
        r#"(module
  (import "provenant:plugin/call@0.1.0" "set-failure-mode" (func $mode (param i32 i32)))
  (import "provenant:plugin/npc@0.1.0" "set-npc-state" (func $set_state (param i32 i32 i32 i32 i32)))
  {PRELUDE}
  (func (export "provenant:plugin/conditions@0.1.0#evaluate") (param i32 i32 i32 i32) (result i32) (local i32)
    (if (i32.eq (local.get 1) (i32.const 5)) (then (call $mode (i32.const 1) (i32.const 0))))
    (if (i32.eq (local.get 1) (i32.const 6)) (then (call $mode (i32.const 1) (i32.const 2))))
    (call $set_state (i32.const 128) (i32.const 5) (i32.const 144) (i32.const 2) (i32.const 1100))
    (if (i32.load8_u (i32.const 1100))
      (then
        (i32.store8 (i32.const 1024) (i32.const 1))
        (i32.store (i32.const 1028) (i32.const 96))
        (i32.store (i32.const 1032) (i32.const 7))
        (return (i32.const 1024))))
    (i32.load8_u (i32.const 1104))
    {RETURN_BOOL}))"#
    );
    component(
        "import provenant:plugin/call@0.1.0;
         import provenant:plugin/npc@0.1.0;
         export provenant:plugin/conditions@0.1.0;",
        &wat,
    )
}

/// An effect that hands the host a flag value that is not JSON.
pub fn bad_json() -> anyhow::Result<Vec<u8>> {
    let wat = format!(
        r#"(module
  (import "provenant:plugin/session-write@0.1.0" "set-session-flag" (func $set_flag (param i32 i32 i32 i32 i32)))
  {PRELUDE}
  (func (export "provenant:plugin/effects@0.1.0#apply") (param i32 i32 i32 i32) (result i32)
    (call $set_flag (i32.const 16) (i32.const 4) (i32.const 112) (i32.const 8) (i32.const 1100))
    (i32.store8 (i32.const 1024) (i32.const 0))
    (i32.store (i32.const 1028) (i32.const 144))
    (i32.store (i32.const 1032) (i32.const 2))
    (i32.const 1024)))"#
    );
    component(
        "import provenant:plugin/session-write@0.1.0;
         export provenant:plugin/effects@0.1.0;",
        &wat,
    )
}

/// An event handler that accepts every event, and simulation config
/// provider that suggests `{"wasm":{"speed":2}}`; importing nothing.
pub fn watcher() -> anyhow::Result<Vec<u8>> {
    let wat = format!(
        r#"(module {PRELUDE}
  (data (i32.const 160) "{{\"wasm\":{{\"speed\":2}}}}")
  (func (export "provenant:plugin/handlers@0.1.0#handle") (param i32 i32) (result i32)
    (i32.store8 (i32.const 1024) (i32.const 0))
    (i32.const 1024))
  (func (export "provenant:plugin/providers@0.1.0#provide") (param i32 i32) (result i32)
    (i32.store8 (i32.const 1024) (i32.const 0))
    (i32.store (i32.const 1028) (i32.const 160))
    (i32.store (i32.const 1032) (i32.const 20))
    (i32.const 1024)))"#
    );
    component(
        "export provenant:plugin/handlers@0.1.0;
         export provenant:plugin/providers@0.1.0;",
        &wat,
    )
}

/// A component that imports WASI's environment.
pub fn wasi() -> anyhow::Result<Vec<u8>> {
    wat::parse_str(
        r#"(component
  (import "wasi:cli/environment@0.2.0" (instance
    (export "get-arguments" (func (result (list string)))))))"#,
    )
    .context("the WASI component's WAT")
}

/// A core module: not a component.
pub fn core_module() -> anyhow::Result<Vec<u8>> {
    wat::parse_str("(module)").context("the core module's WAT")
}

/// A component of the world made of `items` (imports and exports of
/// `provenant:plugin@0.1.0`), from the core module `wat`.
pub fn component(items: &str, wat: &str) -> anyhow::Result<Vec<u8>> {
    let mut resolve = wit_parser::Resolve::default();
    resolve
        .push_str("plugin.wit", PLUGIN_WIT)
        .context("the published WIT")?;
    let fixture = resolve
        .push_str(
            "fixture.wit",
            &format!("package test:fixture;\nworld fixture {{\n{items}\n}}\n"),
        )
        .context("the fixture's world")?;
    let world = resolve
        .select_world(&[fixture], Some("fixture"))
        .context("the fixture's world")?;
    let mut module = wat::parse_str(wat).context("the fixture's WAT")?;
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .context("embedding the world")?;
    wit_component::ComponentEncoder::default()
        .module(&module)
        .context("the fixture's module")?
        .validate(true)
        .encode()
        .context("making the component")
}

/// The manifest of a test plugin `id` whose module is `plugin.wasm`, with
/// `extra` fields merged over the defaults (conditions `c`, no limits).
pub fn manifest(id: &str, permissions: &[&str], extra: Value) -> Value {
    let mut m = json!({
        "id": id,
        "name": id,
        "version": "1.0.0",
        "kind": "feature",
        "permissions": permissions,
        "module": "plugin.wasm",
        "registrations": {"conditions": [{"name": "c"}]},
    });
    if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            m.insert(k.clone(), v.clone());
        }
    }
    m
}

/// Writes plugin folder `dir/<folder>` with `manifest` and `module`.
pub fn write_plugin(
    dir: &Path,
    folder: &str,
    manifest: &Value,
    module: &[u8],
) -> anyhow::Result<()> {
    let folder = dir.join(folder);
    std::fs::create_dir_all(&folder)?;
    std::fs::write(
        folder.join("manifest.json"),
        serde_json::to_vec_pretty(manifest)?,
    )?;
    std::fs::write(folder.join("plugin.wasm"), module)?;
    Ok(())
}

/// Writes plugin folder `dir/loop`: `wasm-loop`, the endless loop, with a
/// small fuel budget and the longest deadline, so that fuel, not the
/// clock of a loaded machine, stops it.
pub fn write_endless_loop(dir: &Path) -> anyhow::Result<()> {
    let manifest = manifest(
        "wasm-loop",
        &["group:behavior"],
        json!({"limits": {"fuel_per_call": 1_000_000, "timeout_ms": 60_000}}),
    );
    write_plugin(dir, "loop", &manifest, &endless_loop()?)
}

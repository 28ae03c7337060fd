//! The filtered context: what a remote plugin is sent about the game, only
//! what its permissions allow (the original's design). Each part is read
//! through the call's `Ctx`, so it is recorded in the call's `inputs`
//! exactly as sent, and a replay (`audit replay --remote-live`) rebuilds
//! the same request from the recording.
//!
//! - always: the call's recorded `context` (the tick's own context, and for
//!   a condition or effect `npc_id`, `location_id`, `npc_state`), with
//!   `world_id`, `session_id` and the tick's game time `now`;
//! - `world:read`: the world (`world`);
//! - `session:read`: the session with the game's flags and this plugin's
//!   own, and relationships (`session`);
//! - `npc:read`: the NPC's stored state (`npc`);
//! - `db:read`: this plugin's storage (`storage`).
//!
//! The keys named here win over tick context keys of the same name.
//! Nothing of another plugin's namespace is ever sent: the reads are the
//! capability API's, which never return it.

use provenant_host::context::Ctx;
use provenant_host::permissions::Permission;
use serde_json::{Map, Value, json};

/// The context of the call `ctx` is for.
pub fn filtered(ctx: &mut Ctx) -> Value {
    let mut context: Map<String, Value> =
        serde_json::from_str(ctx.recorded_context().as_str()).unwrap_or_default();
    context.insert("world_id".into(), json!(ctx.world_id()));
    context.insert("session_id".into(), json!(ctx.session_id()));
    context.insert("now".into(), json!(ctx.now()));
    if ctx.has_permission(Permission::WorldRead)
        && let Ok(Some(world)) = ctx.get_world()
    {
        context.insert("world".into(), world);
    }
    if ctx.has_permission(Permission::SessionRead)
        && let Ok(Some(session)) = ctx.get_session()
    {
        context.insert("session".into(), session);
    }
    let npc_id = ctx.npc().map(|n| n.npc_id.clone());
    if ctx.has_permission(Permission::NpcRead)
        && let Some(npc_id) = npc_id
        && let Ok(Some(npc)) = ctx.get_npc(&npc_id)
    {
        context.insert("npc".into(), npc);
    }
    if ctx.has_permission(Permission::DbRead)
        && let Ok(Some(storage)) = ctx.list_storage()
    {
        context.insert("storage".into(), storage);
    }
    Value::Object(context)
}

/// The ids an auditor needs to find the call in the log.
pub fn call_ids(ctx: &Ctx) -> Value {
    json!({
        "tick_id": ctx.tick_id(),
        "tick": ctx.tick(),
        "world_id": ctx.world_id(),
        "session_id": ctx.session_id(),
        "call_index": ctx.call_index(),
        "id": ctx.call_id(),
        "plugin_id": ctx.plugin_id(),
    })
}

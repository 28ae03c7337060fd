//! What tests send: ticks, a world, a free port.

use serde_json::Value;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A tick as the game sends it; NPCs wear a disguise on even ticks.
pub fn tick(world: &str, session: &str, n: u64, npcs: &[&str]) -> Value {
    serde_json::json!({
        "tick_id": uuid::Uuid::now_v7(),
        "world_id": world,
        "session_id": session,
        "tick": n,
        "at": format!("2026-01-01T{:02}:{:02}:{:02}Z", (n / 3600) % 24, (n / 60) % 60, n % 60),
        "npcs": npcs.iter().map(|id| serde_json::json!({"npc_id": id, "location_id": "bar", "state": {"disguise": n.is_multiple_of(2)}})).collect::<Vec<_>>(),
    })
}

/// A world using the stealth and romance plugins.
pub fn tavern() -> Value {
    serde_json::json!({
        "name": "The Tavern",
        "meta": {"behavior": {
            "enabledPlugins": ["game-stealth", "game-romance"],
            "activities": [
                {"id": "sneak",
                 "conditions": [{"id": "plugin:game-stealth:has_disguise"}],
                 "effects": [{"id": "effect:plugin:game-stealth:raise_suspicion", "params": {"amount": 1}}]},
                {"id": "chat",
                 "conditions": [{"id": "plugin:game-romance:is_attracted", "params": {"threshold": 0}}],
                 "effects": [{"id": "effect:plugin:game-romance:affinity_boost", "params": {"amount": 2}}]}
            ]
        }}
    })
}

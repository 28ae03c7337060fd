//! Realistic synthetic plugin actions, for the append, relay and projection
//! benchmarks: the same shapes and sizes (about 500
//! bytes of JSON each, provenance included), from a seeded generator so runs
//! are repeatable.

use chrono::{DateTime, Duration, Utc};
use provenant_events::{
    EventKind, IdError, NewEvent, PluginId, Provenance, SessionId, StreamName, WorldId, keys, kinds,
};
use serde_json::json;
use uuid::Uuid;

/// The example plugins and what they do.
pub const PLUGINS: [(&str, &str, &str); 4] = [
    (
        "game-stealth",
        "plugin:game-stealth:is_hidden",
        "effect:plugin:game-stealth:raise_suspicion",
    ),
    (
        "game-romance",
        "plugin:game-romance:is_smitten",
        "effect:plugin:game-romance:increase_affinity",
    ),
    (
        "game-schedules",
        "plugin:game-schedules:is_on_shift",
        "effect:plugin:game-schedules:move_npc",
    ),
    (
        "game-trade",
        "plugin:game-trade:can_afford",
        "effect:plugin:game-trade:adjust_price",
    ),
];

const LOCATIONS: [&str; 5] = ["tavern-hall", "tavern-cellar", "market", "chapel", "docks"];

pub use provenant_host::rng::Rng;

/// Where and when an action happens.
#[derive(Debug, Clone)]
pub struct Scene {
    pub world: WorldId,
    pub session: SessionId,
    pub tick: u64,
    pub tick_id: Uuid,
    pub at: DateTime<Utc>,
}

impl Scene {
    pub fn new(world: &WorldId, session: &SessionId, tick: u64, start: DateTime<Utc>) -> Self {
        Scene {
            world: world.clone(),
            session: session.clone(),
            tick,
            tick_id: Uuid::now_v7(),
            at: start + Duration::seconds(tick as i64),
        }
    }
}

/// One plugin action: a condition evaluation or an effect application by one
/// of the example plugins, with full provenance.
pub fn plugin_action(scene: &Scene, rng: &mut Rng) -> Result<NewEvent, IdError> {
    let (plugin, condition, effect) = PLUGINS[rng.below(PLUGINS.len() as u64) as usize];
    let plugin_id = PluginId::new(plugin)?;
    let npc = format!("npc-{:03}", rng.below(40));
    let location = LOCATIONS[rng.below(LOCATIONS.len() as u64) as usize];
    let is_effect = rng.below(3) == 0;
    let (kind, capability, permission, payload) = if is_effect {
        let amount = (rng.unit() * 10.0).round() / 2.0;
        (
            kinds::EFFECT_APPLIED,
            "behavior.apply_effect",
            "behavior:extend_effects",
            json!({
                keys::EFFECT_ID: effect,
                keys::NPC_ID: npc,
                keys::LOCATION_ID: location,
                keys::PARAMS: {"amount": amount, "reason": "tick"},
                keys::RESULT: {"applied": true, "new_value": (rng.unit() * 100.0).round()},
                keys::INPUTS: {"relationship": {"affinity": rng.below(100), "trust": rng.below(100)}},
                keys::DURATION_US: 20 + rng.below(400),
            }),
        )
    } else {
        (
            kinds::CONDITION_EVALUATED,
            "behavior.evaluate_condition",
            "behavior:extend_conditions",
            json!({
                keys::CONDITION_ID: condition,
                keys::NPC_ID: npc,
                keys::LOCATION_ID: location,
                keys::RESULT: rng.below(2) == 0,
                keys::INPUTS: {"flags": {format!("plugin:{plugin}:seen"): rng.below(2) == 0}, "light": rng.unit()},
                keys::DURATION_US: 5 + rng.below(200),
            }),
        )
    };
    let mut event = NewEvent::new(
        StreamName::session(&scene.world, &scene.session),
        EventKind::from_static(kind)?,
        payload,
    );
    event.plugin_id = Some(plugin_id.clone());
    event.world_id = Some(scene.world.clone());
    event.session_id = Some(scene.session.clone());
    event.occurred_at = scene.at;
    event.provenance = Provenance {
        plugin_id: Some(plugin_id),
        plugin_version: Some("1.0.0".into()),
        capability: Some(capability.into()),
        permission: Some(permission.into()),
        tick_id: Some(scene.tick_id),
        tick: Some(scene.tick),
        causation_id: Some(scene.tick_id),
        correlation_id: Some(scene.tick_id),
        engine_version: Some(provenant_host::ENGINE_VERSION.into()),
        engine_instance: Some("sample".into()),
        ..Provenance::default()
    };
    Ok(event)
}

/// `total` realistic plugin actions in batches of `batch`, from a fixed seed.
pub fn generate(total: usize, batch: usize) -> anyhow::Result<Vec<Vec<NewEvent>>> {
    let mut rng = Rng::new(42);
    let world = WorldId::new("bench")?;
    let sessions: Vec<SessionId> = (0..8)
        .map(|i| SessionId::new(format!("s{i}")))
        .collect::<Result<_, _>>()?;
    let start = provenant_events::event::now();
    let events: Vec<NewEvent> = (0..total)
        .map(|i| {
            let scene = Scene::new(
                &world,
                &sessions[i % sessions.len()],
                (i / 16) as u64,
                start,
            );
            plugin_action(&scene, &mut rng)
        })
        .collect::<Result<_, _>>()?;
    Ok(events.chunks(batch).map(|c| c.to_vec()).collect())
}

/// One NPC, `guard`, in world `w1` and session `s1` (`{"disguise": true}`),
/// and an empty game state: where the one-call benchmarks make their call.
pub fn guard_scene() -> Result<
    (
        std::sync::Arc<provenant_host::state::GameState>,
        std::sync::Arc<provenant_host::context::Scene>,
    ),
    IdError,
> {
    use provenant_host::context::{Scene, TickNpc};
    let scene = Scene {
        world: WorldId::new("w1")?,
        session: SessionId::new("s1")?,
        tick_id: Uuid::now_v7(),
        tick: 1,
        at: Utc::now(),
        npcs: std::sync::Arc::new(vec![TickNpc {
            npc_id: "guard".into(),
            location_id: Some("hall".into()),
            state: json!({"disguise": true}),
        }]),
        npc: Some(0),
        context: serde_json::Value::Null,
        memo: Default::default(),
    };
    Ok((std::sync::Arc::default(), std::sync::Arc::new(scene)))
}

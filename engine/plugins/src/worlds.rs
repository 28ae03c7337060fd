//! The demo's worlds, as a game would configure and tick them: the tavern
//! (stealth, romance and flaky; nosy disabled) and the cellar (only nosy),
//! and the ticks `provenant demo` sends, in order. Also used by the audit
//! benchmark and the tests, so that they exercise what the demo shows.

use chrono::{DateTime, Utc};
use provenant_events::{SessionId, WorldId};
use provenant_host::context::TickNpc;
use provenant_host::tick::Tick;
use serde_json::{Value, json};
use uuid::Uuid;

/// NPCs in each tavern tick.
pub const NPCS: usize = 3;

/// The tavern's configuration: stealth, romance and flaky; nosy disabled.
pub fn tavern_config() -> Value {
    json!({"name": "The Tavern", "meta": {"behavior": tavern_behavior()}})
}

/// The cellar's configuration: only nosy.
pub fn cellar_config() -> Value {
    json!({"name": "The Cellar", "meta": {"behavior": {
        "enabledPlugins": ["example-nosy"],
        "activities": [{"id": "snoop", "effects": [{"id": "effect:plugin:example-nosy:peek"}]}],
    }}})
}

pub fn tavern_behavior() -> Value {
    json!({
        "disabledPlugins": ["example-nosy"],
        "simulationConfig": {"tickSeconds": 1},
        "activities": [
            {"id": "sneak",
             "conditions": [{"id": "plugin:game-stealth:has_disguise"}],
             "effects": [{"id": "effect:plugin:game-stealth:raise_suspicion", "params": {"amount": 1}}]},
            {"id": "chat",
             "effects": [{"id": "effect:plugin:game-romance:affinity_boost", "params": {"amount": 1}}]},
            {"id": "flirt",
             "conditions": [{"id": "plugin:game-romance:is_attracted", "params": {"threshold": 100}}],
             "effects": [{"id": "effect:plugin:game-romance:affinity_boost", "params": {"amount": 3}}]},
            {"id": "gamble",
             "conditions": [{"id": "plugin:example-flaky:coin_flip",
                             "params": {"fail_rate": 0.02, "panic_rate": 0.005, "overrun_rate": 0.001, "overrun_ms": 80}}],
             "effects": [{"id": "effect:plugin:game-stealth:raise_suspicion", "params": {"amount": 0.5}}]}
        ]
    })
}

/// How many ticks `--ticks n` sends: the tavern's for two sessions, and the
/// cellar's every 100th.
pub fn total_ticks(n: u64) -> u64 {
    n * 2 + n / 100
}

/// The ticks, in the order they are sent: for each game tick, the tavern's
/// two sessions, then (every 100th) the cellar.
#[derive(Clone)]
pub struct TickPlan {
    tavern: WorldId,
    cellar: WorldId,
    sessions: [SessionId; 2],
    ticks: u64,
    game_start: DateTime<Utc>,
    /// The next game tick, and which of its ticks comes next (0, 1: the
    /// tavern's sessions; 2: the cellar).
    n: u64,
    step: u8,
}

impl TickPlan {
    pub fn new(tavern: &WorldId, cellar: &WorldId, sessions: &[SessionId; 2], ticks: u64) -> Self {
        TickPlan {
            tavern: tavern.clone(),
            cellar: cellar.clone(),
            sessions: sessions.clone(),
            ticks,
            game_start: provenant_events::event::now(),
            n: 1,
            step: 0,
        }
    }
}

impl Iterator for TickPlan {
    type Item = Tick;

    fn next(&mut self) -> Option<Tick> {
        while self.n <= self.ticks {
            let (n, step) = (self.n, self.step);
            if step >= 2 {
                (self.n, self.step) = (n + 1, 0);
            } else {
                self.step += 1;
            }
            let at = self.game_start + chrono::Duration::seconds(i64::try_from(n).ok()?);
            match step {
                0 | 1 => {
                    return Some(tavern_tick(
                        &self.tavern,
                        &self.sessions[step as usize],
                        n,
                        at,
                    ));
                }
                _ if n.is_multiple_of(100) => {
                    return Some(cellar_tick(&self.cellar, &self.sessions[0], n, at));
                }
                _ => {}
            }
        }
        None
    }
}

/// A tick of a tavern session: three NPCs, every seventh (by tick and NPC)
/// in disguise.
pub fn tavern_tick(world: &WorldId, session: &SessionId, n: u64, at: DateTime<Utc>) -> Tick {
    let npcs = (0..NPCS)
        .map(|i| TickNpc {
            npc_id: format!("npc-{i}"),
            location_id: Some(["hall", "bar", "stairs"][i % 3].into()),
            state: json!({"disguise": (n + i as u64).is_multiple_of(7)}),
        })
        .collect();
    Tick {
        tick_id: Uuid::now_v7(),
        world_id: world.clone(),
        session_id: session.clone(),
        tick: n,
        at,
        npcs,
        session_updates: None,
        context: None,
    }
}

/// A tick of the cellar: the rat.
pub fn cellar_tick(world: &WorldId, session: &SessionId, n: u64, at: DateTime<Utc>) -> Tick {
    Tick {
        tick_id: Uuid::now_v7(),
        world_id: world.clone(),
        session_id: session.clone(),
        tick: n,
        at,
        npcs: vec![TickNpc {
            npc_id: "rat".into(),
            location_id: Some("cellar".into()),
            state: json!({}),
        }],
        session_updates: None,
        context: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use provenant_host::intake;

    #[test]
    fn the_plan_sends_both_tavern_sessions_per_tick_and_the_cellar_every_100th() {
        let tavern = WorldId::new("tavern").unwrap();
        let cellar = WorldId::new("cellar").unwrap();
        let sessions = [SessionId::new("s1").unwrap(), SessionId::new("s2").unwrap()];
        for n in [1, 99, 100, 250] {
            let ticks: Vec<Tick> = TickPlan::new(&tavern, &cellar, &sessions, n).collect();
            assert_eq!(ticks.len() as u64, total_ticks(n), "{n}");
        }
        let ticks: Vec<Tick> = TickPlan::new(&tavern, &cellar, &sessions, 100).collect();
        let order: Vec<(&str, &str, u64)> = ticks
            .iter()
            .map(|t| (t.world_id.as_str(), t.session_id.as_str(), t.tick))
            .collect();
        assert_eq!(
            order[..3],
            [
                ("tavern", "s1", 1),
                ("tavern", "s2", 1),
                ("tavern", "s1", 2)
            ]
        );
        assert_eq!(order[order.len() - 1], ("cellar", "s1", 100));
        // Every tick reads back as the engine reads it from NATS.
        for t in &ticks {
            let body = serde_json::to_vec(t).unwrap();
            assert_eq!(&intake::parse_tick(&body).unwrap(), t);
        }
    }
}

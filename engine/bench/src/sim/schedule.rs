//! The ticks to send, in order, as the JSON the engine reads.

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::config::SimConfig;

/// The ticks to send, in order: round-robin over (world, session), tick
/// numbers counting up per (world, session) from 1.
pub struct Schedule {
    worlds: Vec<String>,
    sessions: Vec<String>,
    npcs: Vec<String>,
    /// The last tick number of each (world, session).
    ticks: Vec<u64>,
    cursor: usize,
    game_start: DateTime<Utc>,
}

impl Schedule {
    pub fn new(config: &SimConfig, worlds: Vec<String>) -> Self {
        let pairs = worlds.len() * config.sessions as usize;
        Schedule {
            worlds,
            sessions: (1..=config.sessions)
                .map(|s| format!("session-{s}"))
                .collect(),
            npcs: (1..=config.npcs).map(|k| format!("npc-{k}")).collect(),
            ticks: vec![0; pairs],
            cursor: 0,
            game_start: Utc
                .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
        }
    }

    /// The next tick: its world's index, its id and its JSON.
    pub fn next(&mut self) -> (usize, Uuid, Bytes) {
        let pair = self.cursor % self.ticks.len();
        self.cursor = self.cursor.wrapping_add(1);
        let world = pair % self.worlds.len();
        let session = pair / self.worlds.len();
        self.ticks[pair] += 1;
        let tick = self.ticks[pair];
        let tick_id = Uuid::now_v7();
        let seconds = i64::try_from(tick).unwrap_or(i64::MAX);
        let at = self.game_start + chrono::TimeDelta::try_seconds(seconds).unwrap_or_default();
        let body = TickBody {
            tick_id,
            world_id: &self.worlds[world],
            session_id: &self.sessions[session],
            tick,
            at: at.to_rfc3339_opts(SecondsFormat::Secs, true),
            npcs: self
                .npcs
                .iter()
                .zip(1u64..)
                .map(|(npc_id, k)| NpcBody {
                    npc_id,
                    location_id: "hall",
                    state: NpcState {
                        disguise: (tick + k).is_multiple_of(3),
                    },
                })
                .collect(),
        };
        // Serializing these plain structs cannot fail.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        (world, tick_id, Bytes::from(body))
    }
}

#[derive(Serialize)]
struct TickBody<'a> {
    tick_id: Uuid,
    world_id: &'a str,
    session_id: &'a str,
    tick: u64,
    at: String,
    npcs: Vec<NpcBody<'a>>,
}

#[derive(Serialize)]
struct NpcBody<'a> {
    npc_id: &'a str,
    location_id: &'static str,
    state: NpcState,
}

#[derive(Serialize)]
struct NpcState {
    disguise: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_schedule_goes_round_robin_and_counts_per_session() {
        let config = SimConfig {
            worlds: 2,
            sessions: 2,
            npcs: 3,
            ..SimConfig::default()
        };
        let mut schedule = Schedule::new(&config, config.world_ids().unwrap());
        let ticks: Vec<Value> = (0..8)
            .map(|_| serde_json::from_slice(&schedule.next().2).unwrap())
            .collect();
        let seen: Vec<(&str, &str, u64)> = ticks
            .iter()
            .map(|t| {
                (
                    t["world_id"].as_str().unwrap(),
                    t["session_id"].as_str().unwrap(),
                    t["tick"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen[..5],
            [
                ("sim-1", "session-1", 1),
                ("sim-2", "session-1", 1),
                ("sim-1", "session-2", 1),
                ("sim-2", "session-2", 1),
                ("sim-1", "session-1", 2),
            ]
        );
        assert_eq!(ticks[4]["at"], "2026-01-01T00:00:02Z");
        assert_eq!(ticks[4]["npcs"].as_array().unwrap().len(), 3);
        // (tick 2 + k 1) % 3 == 0.
        assert_eq!(ticks[4]["npcs"][0]["state"]["disguise"], true);
        assert_eq!(ticks[4]["npcs"][1]["state"]["disguise"], false);
        // Every tick parses as the engine's.
        for t in &ticks {
            provenant_host::intake::parse_tick(t.to_string().as_bytes()).unwrap();
        }
    }
}

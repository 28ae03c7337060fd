//! A world's game state kept beside the log, so that nothing at start-up
//! folds the whole log and an idle world can leave memory: a snapshot of
//! the state (`world:<id>`, with the position of the last event it
//! includes) is saved when the world goes idle, every so many of its events
//! and when the engine stops; loading a world reads its snapshot and folds
//! only the world's events after it.
//!
//! A snapshot is never the truth: one that is missing, unreadable or of
//! another format is ignored and the world is folded from the start of the
//! log, so loading always gives the state folded from position 0.

use provenant_events::{Position, WorldId};
use provenant_host::state::GameState;
use provenant_log::{EventFilter, EventLog, LogError};
use serde::{Deserialize, Serialize};

/// The format of a world's snapshot. Raise it whenever what
/// `GameState::apply` folds, or how the state is encoded, changes: older
/// snapshots are then ignored (and replaced as worlds are saved).
pub const FORMAT: u32 = 1;

/// Events read per page while folding a world.
const PAGE: usize = 2048;

#[derive(Serialize, Deserialize)]
struct Stored<S> {
    format: u32,
    state: S,
}

/// The snapshot name of `world`.
pub fn snapshot_name(world: &WorldId) -> String {
    format!("world:{world}")
}

/// A world's state as the log holds it now, and the position of the last
/// event of the world it includes (0 for a world without events).
pub async fn load(log: &EventLog, world: &WorldId) -> Result<(GameState, Position), LogError> {
    let name = snapshot_name(world);
    let (mut state, mut position) = match log.load_snapshot(&name).await? {
        Some(stored) => match serde_json::from_str::<Stored<GameState>>(&stored.state) {
            Ok(s) if s.format == FORMAT => (s.state, stored.position),
            Ok(s) => {
                tracing::info!(%world, format = s.format, current = FORMAT, "the world's snapshot is of another format; folding the world from the start of the log");
                Default::default()
            }
            Err(e) => {
                tracing::warn!(%world, error = %e, "the world's snapshot does not read; folding the world from the start of the log");
                Default::default()
            }
        },
        None => Default::default(),
    };
    let filter = EventFilter {
        world: Some(world.clone()),
        ..EventFilter::default()
    };
    loop {
        let page = log.read_filtered(position, PAGE, &filter).await?;
        let Some(last) = page.last() else { break };
        position = last.position;
        for event in &page {
            state.apply(event);
        }
        if page.len() < PAGE {
            break;
        }
    }
    Ok((state, position))
}

/// Saves `state`, which includes every event of `world` up to `position`,
/// as the world's snapshot (unless one of a higher position is stored).
pub async fn save(
    log: &EventLog,
    world: &WorldId,
    position: Position,
    state: &GameState,
) -> Result<(), LogError> {
    let text = serde_json::to_string(&Stored {
        format: FORMAT,
        state,
    })
    .map_err(|e| LogError::Invalid(format!("cannot encode the state of world {world}: {e}")))?;
    log.save_snapshot(&snapshot_name(world), position, &text)
        .await
}

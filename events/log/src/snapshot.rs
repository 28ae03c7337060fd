//! Snapshots: state folded from the log up to a position, saved under a
//! name so that a reader loads it and folds only the events after it (the
//! engine keeps one per world). Not events: not hash-chained, replaced by a
//! save of a higher position, and rebuilt from the log when missing.

use provenant_events::event::Position;

use crate::error::LogError;
use crate::log::{Backend, EventLog};

/// A stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The position of the last event the state includes.
    pub position: Position,
    /// The state, as its writer encoded it.
    pub state: String,
}

impl EventLog {
    /// Saves `state` as the snapshot `name` at `position`, unless a snapshot
    /// of a higher position is stored (then nothing changes).
    pub async fn save_snapshot(
        &self,
        name: &str,
        position: Position,
        state: &str,
    ) -> Result<(), LogError> {
        let stored = i64::try_from(position).map_err(|_| {
            LogError::Invalid(format!(
                "snapshot {name:?}: position {position} is above the largest a log has"
            ))
        })?;
        match &self.backend {
            Backend::Postgres(b) => b.save_snapshot(name, stored, state).await,
            Backend::Sqlite(b) => b.save_snapshot(name, stored, state).await,
        }
    }

    /// The snapshot saved as `name`, if any.
    pub async fn load_snapshot(&self, name: &str) -> Result<Option<Snapshot>, LogError> {
        let stored = match &self.backend {
            Backend::Postgres(b) => b.load_snapshot(name).await?,
            Backend::Sqlite(b) => b.load_snapshot(name).await?,
        };
        stored
            .map(|(position, state)| {
                let position = Position::try_from(position).map_err(|_| LogError::Corrupt {
                    position: 0,
                    reason: format!("snapshot {name:?} has the negative position {position}"),
                })?;
                Ok(Snapshot { position, state })
            })
            .transpose()
    }
}

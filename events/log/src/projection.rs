//! What the log stores for projections: their rows and checkpoints, and
//! the fence on a commit.

use provenant_events::event::Position;

use crate::error::LogError;

/// A projection as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProjection {
    /// The position of the last event its rows include.
    pub position: Position,
    /// The version of the projection's row format.
    pub version: u32,
    /// Its rows, `(key, JSON text)`, ordered by key.
    pub rows: Vec<(String, String)>,
}

/// One projection's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionStatus {
    pub name: String,
    pub position: Position,
    pub version: u32,
    /// When it last committed (RFC 3339, UTC).
    pub updated_at: String,
}

/// What [`EventLog::commit_projection`] writes.
#[derive(Debug, Clone)]
pub struct ProjectionCommit<'a> {
    pub name: &'a str,
    pub version: u32,
    /// The checkpoint this commit continues from (0 for a fresh start).
    pub from: Position,
    /// The new checkpoint: the last event the rows include.
    pub to: Position,
    /// Rows to write (`Some(json)`) or delete (`None`).
    pub changes: &'a [(String, Option<String>)],
    /// The lease the runner works under: the commit is refused
    /// ([`LogError::Fenced`]) once another holder took it over.
    pub fence: Option<&'a crate::append::Fence>,
}

/// Refuses a commit whose start is not the stored checkpoint (`None`: no
/// checkpoint stored, which is position 0 of any version).
pub(crate) fn check_projection_start(
    commit: &ProjectionCommit<'_>,
    stored: Option<(i64, i32)>,
) -> Result<(), LogError> {
    let matches = match stored {
        None => commit.from == 0,
        Some((position, version)) => {
            i64::try_from(commit.from).is_ok_and(|from| from == position)
                && i64::from(version) == i64::from(commit.version)
        }
    };
    if matches {
        return Ok(());
    }
    Err(LogError::ProjectionMoved {
        name: commit.name.to_owned(),
        expected: commit.from,
        version: commit.version,
        actual: match stored {
            None => "none (reset)".to_owned(),
            Some((position, version)) => format!("{position} (version {version})"),
        },
    })
}

/// A stored projection version; the tables refuse negative ones.
pub(crate) fn projection_version(name: &str, stored: i32) -> Result<u32, LogError> {
    u32::try_from(stored).map_err(|_| LogError::Corrupt {
        position: 0,
        reason: format!("projection {name:?} has the negative version {stored}"),
    })
}

/// A stored checkpoint position; the tables refuse negative ones.
pub(crate) fn checkpoint_position(name: &str, stored: i64) -> Result<Position, LogError> {
    Position::try_from(stored).map_err(|_| {
        LogError::Database(sqlx::Error::Decode(
            format!("checkpoint {name:?} holds the negative position {stored}").into(),
        ))
    })
}

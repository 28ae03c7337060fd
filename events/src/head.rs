//! The head of a log: its last position and hash, written `POSITION:HASH`.

use crate::event::{EventHash, Position};

/// The last position and hash of the log; position 0 and the zero hash for
/// an empty log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    pub position: Position,
    pub hash: EventHash,
}

impl Head {
    pub const EMPTY: Head = Head {
        position: 0,
        hash: EventHash::ZERO,
    };
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.position, self.hash)
    }
}

/// Why a `POSITION:HASH` text is not a head.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid head {0:?}: expected POSITION:HASH, e.g. 42:<64 hex digits>")]
pub struct HeadParseError(pub String);

impl std::str::FromStr for Head {
    type Err = HeadParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || HeadParseError(s.to_owned());
        let (pos, hash) = s.split_once(':').ok_or_else(err)?;
        Ok(Head {
            position: pos.parse().map_err(|_| err())?,
            hash: hash.parse().map_err(|_| err())?,
        })
    }
}

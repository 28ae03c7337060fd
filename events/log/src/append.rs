//! What a writer asks the log to append, and what the append did.

use provenant_events::event::{NewEvent, Position};
use provenant_events::head::Head;
use provenant_events::ids::StreamName;

/// An append's claim that its writer holds `lease` at `epoch`: the append
/// is refused, inside its transaction, once the lease is at another epoch
/// ([`crate::Lease`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    pub lease: String,
    pub epoch: u64,
}

/// What a writer expects of a stream's version before its batch is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream has no events yet.
    NoStream,
    /// The stream's last event has this version.
    Exact(u64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::NoStream => f.write_str("no stream (version 0)"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

impl ExpectedVersion {
    pub(crate) fn matches(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }
}

/// A batch to append: events in order, the stream versions expected before
/// it (streams not named are not checked), and the lease epochs it is made
/// under (checked inside the append's transaction: [`Fence`]).
#[derive(Debug, Clone, Default)]
pub struct AppendBatch {
    pub events: Vec<NewEvent>,
    pub expected: Vec<(StreamName, ExpectedVersion)>,
    pub fences: Vec<Fence>,
}

impl AppendBatch {
    pub fn new(events: Vec<NewEvent>) -> Self {
        AppendBatch {
            events,
            expected: Vec::new(),
            fences: Vec::new(),
        }
    }

    /// The batch is appended only while `fence`'s lease is at its epoch.
    pub fn fenced(mut self, fence: Fence) -> Self {
        self.fences.push(fence);
        self
    }

    pub fn expect(mut self, stream: StreamName, version: ExpectedVersion) -> Self {
        self.expected.push((stream, version));
        self
    }
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The position of each event of the batch, in batch order; for an event
    /// already in the log, its original position.
    pub positions: Vec<Position>,
    /// How many events were written (0 when the whole batch was a retry).
    pub written: usize,
    /// The head after the append.
    pub head: Head,
}

//! Deciding what an append writes. Pure: no I/O.
//!
//! [`PreparedBatch::new`] validates a batch before any database work.
//! Under its append lock a backend looks up the head, the versions of the
//! batch's streams and (when it must) the events already present, and
//! [`PreparedBatch::plan`] decides: refuse (conflict, reused id), nothing to
//! write (a retry), or the events to write with their positions. The backend
//! then passes each event through [`Placer::place`], which computes its
//! canonical texts and its hash as the rows are streamed to the database.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, Utc};
use uuid::Uuid;

use crate::append::ExpectedVersion;
use crate::error::LogError;
use provenant_events::event::{
    CanonicalFields, Event, EventHash, NewEvent, Position, Provenance, chain_hash,
    truncate_timestamp,
};
use provenant_events::head::Head;
use provenant_events::ids::StreamName;

/// A validated batch.
pub(crate) struct PreparedBatch {
    events: Vec<NewEvent>,
    expected: Vec<(StreamName, ExpectedVersion)>,
    fences: Vec<crate::append::Fence>,
}

impl PreparedBatch {
    pub fn new(batch: crate::append::AppendBatch) -> Result<Self, LogError> {
        if batch.events.is_empty() {
            return Err(LogError::Invalid("a batch needs at least one event".into()));
        }
        let mut seen = HashSet::with_capacity(batch.events.len());
        let mut events = batch.events;
        for new in &mut events {
            validate(new, &mut seen)?;
            new.occurred_at = truncate_timestamp(new.occurred_at);
        }
        let mut expected_streams = HashSet::new();
        for (stream, _) in &batch.expected {
            if !expected_streams.insert(stream) {
                return Err(LogError::Invalid(format!(
                    "stream {stream} has two expected versions in one batch"
                )));
            }
        }
        let mut fenced = HashSet::new();
        for fence in &batch.fences {
            if !fenced.insert(&fence.lease) {
                return Err(LogError::Invalid(format!(
                    "lease {:?} has two epochs in one batch",
                    fence.lease
                )));
            }
        }
        Ok(PreparedBatch {
            events,
            expected: batch.expected,
            fences: batch.fences,
        })
    }

    /// The batch's events, given back after an append refused them.
    pub fn into_events(self) -> Vec<NewEvent> {
        self.events
    }

    /// The lease epochs the append must still hold.
    pub fn fences(&self) -> &[crate::append::Fence] {
        &self.fences
    }

    pub fn event_ids(&self) -> Vec<Uuid> {
        self.events.iter().map(|e| e.event_id).collect()
    }

    /// Every stream the batch writes to or expects a version of, once each.
    pub fn streams(&self) -> Vec<StreamName> {
        let mut streams: Vec<StreamName> = self
            .events
            .iter()
            .map(|e| e.stream.clone())
            .chain(self.expected.iter().map(|(s, _)| s.clone()))
            .collect();
        streams.sort();
        streams.dedup();
        streams
    }

    /// Decides what to write. `existing` holds the events of this batch
    /// already in the log (by id); `versions` the current version of each
    /// stream of [`streams`](Self::streams) that has events.
    pub fn plan<'b>(
        &'b self,
        existing: &HashMap<Uuid, Event>,
        versions: &HashMap<StreamName, u64>,
        head: Head,
        recorded_at: DateTime<Utc>,
    ) -> Result<Plan<'b>, LogError> {
        for e in &self.events {
            if let Some(stored) = existing.get(&e.event_id)
                && stored.as_new_event() != *e
            {
                return Err(LogError::IdReused {
                    event_id: e.event_id,
                    position: stored.position,
                });
            }
        }
        let all_present = self
            .events
            .iter()
            .all(|e| existing.contains_key(&e.event_id));
        if !all_present {
            for (stream, expected) in &self.expected {
                let actual = versions.get(stream).copied().unwrap_or(0);
                if !expected.matches(actual) {
                    return Err(LogError::Conflict {
                        stream: stream.clone(),
                        expected: *expected,
                        actual,
                    });
                }
            }
        }
        let mut next = head.position;
        let mut positions = Vec::with_capacity(self.events.len());
        let mut to_write = Vec::with_capacity(self.events.len());
        for e in &self.events {
            match existing.get(&e.event_id) {
                Some(stored) => positions.push(stored.position),
                None => {
                    next += 1;
                    positions.push(next);
                    to_write.push(e);
                }
            }
        }
        Ok(Plan {
            positions,
            to_write,
            placer: Placer {
                prev: head,
                versions: versions.clone(),
                recorded_at: truncate_timestamp(recorded_at),
                placed: Vec::with_capacity(self.events.len()),
            },
        })
    }
}

fn validate(new: &NewEvent, seen: &mut HashSet<Uuid>) -> Result<(), LogError> {
    let invalid = |what: String| Err(LogError::Invalid(format!("event {}: {what}", new.event_id)));
    if !seen.insert(new.event_id) {
        return invalid("the id appears twice in one batch".into());
    }
    if let (Some(event), Some(prov)) = (&new.plugin_id, &new.provenance.plugin_id)
        && event != prov
    {
        return invalid(format!(
            "plugin_id is {event} but the provenance names plugin {prov}"
        ));
    }
    if new.schema_version > i32::MAX as u32 {
        return invalid(format!(
            "schema_version {} is above the largest allowed ({})",
            new.schema_version,
            i32::MAX
        ));
    }
    if !(0..=9999).contains(&new.occurred_at.year()) {
        return invalid(format!(
            "occurred_at {} is outside the years 0000 to 9999",
            new.occurred_at
        ));
    }
    if let Some(name) = new
        .provenance
        .extra
        .keys()
        .find(|k| Provenance::FIELDS.contains(&k.as_str()))
    {
        return invalid(format!(
            "provenance field {name:?} is given twice (named and extra)"
        ));
    }
    Ok(())
}

/// What an append will write.
pub(crate) struct Plan<'b> {
    /// The position of every event of the batch, in batch order.
    pub positions: Vec<Position>,
    /// The events to write, in order (empty for a retry).
    pub to_write: Vec<&'b NewEvent>,
    pub placer: Placer,
}

/// Places events in the chain one after the other.
pub(crate) struct Placer {
    prev: Head,
    versions: HashMap<StreamName, u64>,
    recorded_at: DateTime<Utc>,
    placed: Vec<Placed>,
}

/// Where one written event was placed: what the log assigned it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placed {
    event_id: Uuid,
    position: Position,
    stream_version: u64,
    prev_hash: EventHash,
    hash: EventHash,
}

/// What an append assigned to the events it wrote, in the order written;
/// empty when it wrote nothing (a retry).
#[derive(Debug, Clone, Default)]
pub(crate) struct Placement {
    recorded_at: DateTime<Utc>,
    placed: Vec<Placed>,
}

impl PreparedBatch {
    /// The events an append of this batch wrote, as the log now holds them
    /// (events that were already in the log are left out): what the feed
    /// hands to the log's followers.
    pub fn into_committed(self, placement: Placement) -> Vec<std::sync::Arc<Event>> {
        let recorded_at = placement.recorded_at;
        let mut placed = placement.placed.into_iter().peekable();
        let mut events = Vec::with_capacity(placed.len());
        // Written events were placed in batch order; an event already in the
        // log was not placed, and is skipped.
        for new in self.events {
            let Some(at) = placed.next_if(|p| p.event_id == new.event_id) else {
                continue;
            };
            events.push(std::sync::Arc::new(Event {
                position: at.position,
                event_id: new.event_id,
                stream: new.stream,
                stream_version: at.stream_version,
                kind: new.kind,
                plugin_id: new.plugin_id,
                world_id: new.world_id,
                session_id: new.session_id,
                occurred_at: new.occurred_at,
                recorded_at,
                provenance: new.provenance,
                payload: new.payload,
                schema_version: new.schema_version,
                prev_hash: at.prev_hash,
                hash: at.hash,
            }));
        }
        events
    }
}

/// One event placed in the chain, borrowing what it can: what a backend
/// writes as a row.
pub struct EventRow<'a> {
    pub position: Position,
    pub fields: CanonicalFields<'a>,
    pub prev_hash: EventHash,
    pub hash: EventHash,
}

impl<'a> EventRow<'a> {
    /// The row of a stored event, whose canonical texts are given.
    pub fn of(event: &'a Event, provenance: &'a str, payload: &'a str) -> Self {
        EventRow {
            position: event.position,
            fields: CanonicalFields {
                event_id: &event.event_id,
                stream: &event.stream,
                stream_version: event.stream_version,
                kind: &event.kind,
                plugin_id: event.plugin_id.as_ref(),
                world_id: event.world_id.as_ref(),
                session_id: event.session_id.as_ref(),
                occurred_at: event.occurred_at,
                recorded_at: event.recorded_at,
                provenance,
                payload,
                schema_version: event.schema_version,
            },
            prev_hash: event.prev_hash,
            hash: event.hash,
        }
    }
}

/// The canonical texts of an event's JSON fields.
pub(crate) struct Texts<'a> {
    pub provenance: String,
    pub payload: &'a str,
}

impl<'a> Texts<'a> {
    pub fn of(new: &'a NewEvent) -> Self {
        Texts {
            provenance: new.provenance.canonical(),
            payload: new.payload.text(),
        }
    }
}

impl Placer {
    /// The next event of the chain: assigns its position and stream version
    /// and computes its hash. `texts` must be [`Texts::of`] `new`.
    pub fn place<'a>(&mut self, new: &'a NewEvent, texts: &'a Texts<'a>) -> EventRow<'a> {
        let version = self.versions.entry(new.stream.clone()).or_insert(0);
        *version += 1;
        let fields = CanonicalFields {
            event_id: &new.event_id,
            stream: &new.stream,
            stream_version: *version,
            kind: &new.kind,
            plugin_id: new.plugin_id.as_ref(),
            world_id: new.world_id.as_ref(),
            session_id: new.session_id.as_ref(),
            occurred_at: new.occurred_at,
            recorded_at: self.recorded_at,
            provenance: &texts.provenance,
            payload: texts.payload,
            schema_version: new.schema_version,
        };
        let hash = chain_hash(&self.prev.hash, fields.encode().as_bytes());
        let row = EventRow {
            position: self.prev.position + 1,
            fields,
            prev_hash: self.prev.hash,
            hash,
        };
        self.prev = Head {
            position: row.position,
            hash,
        };
        self.placed.push(Placed {
            event_id: new.event_id,
            position: row.position,
            stream_version: row.fields.stream_version,
            prev_hash: row.prev_hash,
            hash,
        });
        row
    }

    /// What was placed so far, for [`PreparedBatch::into_committed`].
    pub fn into_placement(self) -> Placement {
        Placement {
            recorded_at: self.recorded_at,
            placed: self.placed,
        }
    }

    /// The head after the events placed so far.
    pub fn head(&self) -> Head {
        self.prev
    }
}

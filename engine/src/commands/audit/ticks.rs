//! The log read tick by tick, and a tick's plugin calls told apart: what
//! `audit replay` and `audit trail` walk.
//!
//! The engine appends each tick's events in one batch, ended by its
//! `TickProcessed`, so the events of a tick are contiguous in the log and
//! share `provenance.tick_id`. A plugin call's events are contiguous too:
//! the writes and denials it made, then the event that records the call
//! itself (`ConditionEvaluated`, `EffectApplied`, `EventHandled`, or a
//! failure), all with the call's `provenance.call_index`.

use std::collections::{HashMap, VecDeque};

use provenant_events::{CallKind, Event, EventKind, PluginId, Position, SessionId, WorldId};
use provenant_host::tick::tick_marker_id;

use provenant_log::{EventFilter, EventLog, LogError};
use serde_json::Value;
use uuid::Uuid;

use provenant_events::{keys, kinds};

/// The events of one tick, in position order.
#[derive(Debug, Clone)]
pub struct TickEvents {
    pub tick_id: Uuid,
    pub events: Vec<Event>,
}

impl TickEvents {
    /// The tick's number.
    pub fn tick(&self) -> Option<u64> {
        self.events.iter().find_map(|e| e.provenance.tick)
    }

    /// The world of the tick.
    pub fn world(&self) -> Option<&str> {
        self.events
            .iter()
            .find_map(|e| e.world_id.as_ref().map(|w| w.as_str()))
    }

    /// The session of the tick.
    pub fn session(&self) -> Option<&str> {
        self.events
            .iter()
            .find_map(|e| e.session_id.as_ref().map(|s| s.as_str()))
    }

    /// The tick's `TickProcessed`, its last event.
    pub fn processed(&self) -> Option<&Event> {
        self.events
            .iter()
            .rev()
            .find(|e| e.kind.as_str() == kinds::TICK_PROCESSED)
    }

    /// The event of this tick with `event_id`.
    pub fn event(&self, event_id: &str) -> Option<&Event> {
        let id = Uuid::parse_str(event_id).ok()?;
        self.events.iter().find(|e| e.event_id == id)
    }

    /// The plugin calls of the tick, in order.
    pub fn calls(&self) -> Vec<CallEvents<'_>> {
        let mut pending: HashMap<(&str, u64), Vec<&Event>> = HashMap::new();
        let mut calls = Vec::new();
        for e in &self.events {
            let (Some(plugin), Some(index)) = (&e.plugin_id, e.provenance.call_index) else {
                continue;
            };
            let key = (plugin.as_str(), index);
            if kinds::records_a_call(e.kind.as_str()) {
                calls.push(CallEvents {
                    event: e,
                    produced: pending.remove(&key).unwrap_or_default(),
                });
            } else {
                pending.entry(key).or_default().push(e);
            }
        }
        calls
    }
}

/// One plugin call as the log records it.
#[derive(Debug, Clone)]
pub struct CallEvents<'t> {
    /// The event that records the call and how it ended.
    pub event: &'t Event,
    /// The events the call produced (writes, emitted events, denials), in
    /// order; they come right before `event`.
    pub produced: Vec<&'t Event>,
}

impl<'t> CallEvents<'t> {
    /// `condition`, `effect`, `event_handler` or `simulation_config`.
    pub fn call(&self) -> &'t str {
        self.field(keys::CALL).unwrap_or("")
    }

    /// What the call was ([`CallKind::Other`] when its event does not say).
    pub fn kind(&self) -> CallKind {
        CallKind::from_call(self.call())
    }

    /// The condition, effect, handler or provider id.
    pub fn id(&self) -> &'t str {
        let payload = self.event.payload.value();
        [
            keys::CONDITION_ID,
            keys::EFFECT_ID,
            keys::HANDLER,
            keys::PROVIDER_ID,
        ]
        .into_iter()
        .find_map(|k| payload.get(k).and_then(Value::as_str))
        .unwrap_or("")
    }

    /// The activity a condition or effect was evaluated for (recorded
    /// since provenant 0.1 recorded activities; `None` before).
    pub fn activity(&self) -> Option<&'t str> {
        self.field(keys::ACTIVITY)
    }

    /// The NPC the call was about.
    pub fn npc(&self) -> Option<&'t str> {
        self.event.payload.value()[keys::CONTEXT][keys::NPC_ID].as_str()
    }

    pub fn call_index(&self) -> Option<u64> {
        self.event.provenance.call_index
    }

    fn field(&self, key: &str) -> Option<&'t str> {
        self.event.payload.value().get(key).and_then(Value::as_str)
    }
}

/// Events read per query.
const PAGE: usize = 5_000;

/// Which ticks a [`TickReader`] reads: those of a world, a session, a
/// plugin's calls (every field given), or every tick.
#[derive(Debug, Clone, Default)]
pub struct TickScope {
    pub world: Option<WorldId>,
    pub session: Option<SessionId>,
    pub plugin: Option<String>,
}

/// Reads the log as whole ticks: every tick with an event in `from..=to`,
/// from its first event to its last (before `from` and after `to` if it
/// crosses them). Events outside ticks (world configurations, rejected
/// ticks, plugin loads) are passed over.
///
/// A scoped reader finds its ticks through the log's indexes and reads
/// only them (at least the ticks in scope; callers still filter what they
/// show): a world's ticks from the world index; a session's from its
/// `TickProcessed` markers (each says how many events its tick has), a
/// plugin's from its events and their ticks' markers. So a question about
/// one world, session or plugin costs what it returns, not the log's length.
pub struct TickReader<'l> {
    log: &'l EventLog,
    /// The last position read.
    after: Position,
    to: Position,
    /// Read, not yet grouped.
    pending: VecDeque<Event>,
    /// The log has no more events (after the last read).
    exhausted: bool,
    source: Source,
}

enum Source {
    /// Pages of the log, or of the events the filter selects (a world's:
    /// every event of a tick carries its world).
    Pages(EventFilter),
    /// Whole ticks found through an index.
    Ticks(Found),
}

/// Ticks found through an index, read one by one.
struct Found {
    scope: TickScope,
    /// The last position of the index read.
    index_after: Position,
    index_done: bool,
    /// Ticks to read: their markers' positions and event counts.
    ticks: VecDeque<(Position, u64)>,
    /// The marker of the last tick found (a tick is found once).
    last_marker: Position,
}

impl<'l> TickReader<'l> {
    /// A reader of the ticks with an event in `from..=to` (`from` at least
    /// 1). A tick that `from` cuts is read from its start.
    pub async fn new(log: &'l EventLog, from: Position, to: Position) -> Result<Self, LogError> {
        Self::scoped(log, from, to, &TickScope::default()).await
    }

    /// A reader of the ticks in `scope` with an event in `from..=to`.
    pub async fn scoped(
        log: &'l EventLog,
        from: Position,
        to: Position,
        scope: &TickScope,
    ) -> Result<Self, LogError> {
        let from = from.max(1);
        let start = match log.read_forward(from - 1, 1).await?.first() {
            Some(e) => match e.provenance.tick_id {
                Some(tick_id) => tick_start(log, from, tick_id).await?,
                None => from,
            },
            None => from,
        };
        let source = if scope.session.is_some() || scope.plugin.is_some() {
            Source::Ticks(Found {
                scope: scope.clone(),
                // From the first event of the tick `from` cuts: a tick's
                // marker is its last event, after the plugin's events.
                index_after: start - 1,
                index_done: false,
                ticks: VecDeque::new(),
                last_marker: 0,
            })
        } else {
            Source::Pages(EventFilter {
                world: scope.world.clone(),
                ..EventFilter::default()
            })
        };
        Ok(TickReader {
            log,
            after: start - 1,
            to,
            pending: VecDeque::new(),
            exhausted: false,
            source,
        })
    }

    /// The next tick, or `None` after the last tick that starts at or
    /// before `to`.
    pub async fn next(&mut self) -> Result<Option<TickEvents>, LogError> {
        if let Source::Ticks(_) = self.source {
            return self.next_found().await;
        }
        // The first event of the next tick.
        let tick_id = loop {
            self.fill().await?;
            let Some(first) = self.pending.front() else {
                return Ok(None);
            };
            if first.position > self.to {
                return Ok(None);
            }
            match first.provenance.tick_id {
                Some(id) => break id,
                None => {
                    self.pending.pop_front();
                }
            }
        };
        let mut events = Vec::new();
        loop {
            self.fill().await?;
            match self.pending.front() {
                Some(e) if e.provenance.tick_id == Some(tick_id) => {}
                _ => break,
            }
            events.extend(self.pending.pop_front());
        }
        Ok(Some(TickEvents { tick_id, events }))
    }

    /// The last position grouped or passed over.
    pub fn position(&self) -> Position {
        self.pending
            .front()
            .map_or(self.after, |e| e.position.saturating_sub(1))
    }

    /// Reads the next page when nothing read is left.
    async fn fill(&mut self) -> Result<(), LogError> {
        if self.pending.is_empty() && !self.exhausted {
            let page = match &self.source {
                Source::Pages(filter) => self.log.read_filtered(self.after, PAGE, filter).await?,
                Source::Ticks(_) => Vec::new(),
            };
            match page.last() {
                Some(last) => self.after = last.position,
                None => self.exhausted = true,
            }
            self.pending.extend(page);
        }
        Ok(())
    }

    /// The next tick found through an index, read whole.
    async fn next_found(&mut self) -> Result<Option<TickEvents>, LogError> {
        let Source::Ticks(found) = &mut self.source else {
            return Ok(None);
        };
        loop {
            if found.ticks.is_empty() && !found.index_done {
                found.find(self.log).await?;
            }
            let Some((marker, count)) = found.ticks.pop_front() else {
                return Ok(None);
            };
            let first = (marker + 1).saturating_sub(count.max(1));
            if first > self.to {
                found.ticks.clear();
                found.index_done = true;
                return Ok(None);
            }
            self.after = marker;
            let events = self
                .log
                .read_forward(first - 1, usize::try_from(count).unwrap_or(usize::MAX))
                .await?;
            let Some(tick_id) = events.last().and_then(|e| e.provenance.tick_id) else {
                continue;
            };
            let events: Vec<Event> = events
                .into_iter()
                .filter(|e| e.provenance.tick_id == Some(tick_id))
                .collect();
            return Ok(Some(TickEvents { tick_id, events }));
        }
    }
}

impl Found {
    /// Reads the next page of the index: the ticks it names, in order.
    async fn find(&mut self, log: &EventLog) -> Result<(), LogError> {
        let plugin = match self.scope.plugin.as_deref().map(PluginId::new) {
            Some(Ok(p)) => Some(p),
            // No event has a plugin id that is not one.
            Some(Err(_)) => {
                self.index_done = true;
                return Ok(());
            }
            None => None,
        };
        // A session's ticks are its markers; a plugin's, its calls'. Both
        // have a partial index of their own (migration 0005).
        let filter = EventFilter {
            world: self.scope.world.clone(),
            session: self.scope.session.clone(),
            plugin: plugin.clone(),
            kind: plugin
                .is_none()
                .then(|| EventKind::known(kinds::TICK_PROCESSED)),
            kinds: if plugin.is_some() {
                kinds::CALLS.iter().map(|k| EventKind::known(k)).collect()
            } else {
                Vec::new()
            },
        };
        let page = log.read_filtered(self.index_after, PAGE, &filter).await?;
        let Some(last) = page.last() else {
            self.index_done = true;
            return Ok(());
        };
        self.index_after = last.position;
        let mut markers: Vec<(Position, u64)> = if plugin.is_none() {
            page.iter()
                .map(|m| {
                    (
                        m.position,
                        m.payload.value()[keys::EVENTS].as_u64().unwrap_or(1),
                    )
                })
                .collect()
        } else {
            // The plugin's events name their ticks; a tick's marker has an
            // id derived from the tick's, and says how many events it has.
            let mut ids: Vec<Uuid> = page
                .iter()
                .filter_map(|e| e.provenance.tick_id)
                .map(tick_marker_id)
                .collect();
            ids.dedup();
            let positions = log.positions_of(&ids).await?;
            let mut at: Vec<Position> = positions.into_values().collect();
            at.sort_unstable();
            let mut markers = Vec::with_capacity(at.len());
            for p in at {
                if let Some(m) = log.read_forward(p - 1, 1).await?.first() {
                    markers.push((
                        m.position,
                        m.payload.value()[keys::EVENTS].as_u64().unwrap_or(1),
                    ));
                }
            }
            markers
        };
        markers.retain(|(p, _)| *p > self.last_marker);
        if let Some((p, _)) = markers.last() {
            self.last_marker = *p;
        }
        self.ticks.extend(markers);
        Ok(())
    }
}

/// The first position of the tick `tick_id` that has an event at `position`.
async fn tick_start(
    log: &EventLog,
    position: Position,
    tick_id: Uuid,
) -> Result<Position, LogError> {
    let mut start = position;
    while start > 1 {
        let low = start.saturating_sub(PAGE as u64).max(1);
        let mut before = log.read_forward(low - 1, (start - low) as usize).await?;
        // (Positions are dense but for tampering: never look past `start`.)
        before.retain(|e| e.position < start);
        match before
            .iter()
            .rposition(|e| e.provenance.tick_id != Some(tick_id))
        {
            Some(i) => return Ok(before[i].position + 1),
            None => match before.first() {
                Some(first) => start = first.position,
                None => break,
            },
        }
    }
    Ok(start)
}

//! Walking the chain: what `provenant audit verify` runs.
//!
//! Each row is checked in position order against three rules: positions are
//! dense from 1, the stored hash is the hash of the row's own fields, and
//! `prev_hash` is the stored hash of the row before. The first row that
//! breaks a rule is classified with at most two extra look-ups:
//!
//! - a position is absent, or a row chains from an event that is nowhere in
//!   the log: **missing** (a deleted row);
//! - a row's fields do not hash to its stored hash: **edited** (or
//!   **inserted**, when the next row chains over it to the row before);
//! - a row chains from an event earlier than its predecessor: the rows in
//!   between were **inserted**;
//! - a row chains from an event at a later position: **reordered**;
//! - `--expect-head` names a position the log no longer has, or a different
//!   hash there: **pinned head gone** (truncation of the tail, or a rewrite).
//!
//! A hash chain cannot tell a forger who recomputes every hash after the
//! last pinned head from an honest writer: pin heads elsewhere to bound that.

use serde::Serialize;

use crate::decode::Link;
use crate::error::LogError;
use crate::log::EventLog;
use provenant_events::event::{EventHash, Position};
use provenant_events::head::Head;

/// Options of a verification walk.
#[derive(Debug, Clone, Default)]
pub struct VerifyConfig {
    /// A head recorded earlier (`POSITION:HASH`) that must still be in the
    /// chain: how truncation of the tail is caught.
    pub expect_head: Option<Head>,
    /// Rows read per query.
    pub chunk: Option<usize>,
}

/// What is wrong with the first bad position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    Edited,
    Missing,
    Inserted,
    Reordered,
    PinnedHeadGone,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fault::Edited => "edited",
            Fault::Missing => "missing",
            Fault::Inserted => "inserted",
            Fault::Reordered => "reordered",
            Fault::PinnedHeadGone => "pinned head gone",
        })
    }
}

/// The first bad position and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub position: Position,
    pub fault: Fault,
    pub detail: String,
}

/// The outcome of a walk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Rows walked.
    pub count: u64,
    /// The last row walked (the log's head when intact).
    pub head: Head,
    /// `None` when the chain is intact.
    pub violation: Option<Violation>,
}

impl VerifyReport {
    pub fn intact(&self) -> bool {
        self.violation.is_none()
    }
}

const DEFAULT_CHUNK: usize = 5_000;

/// Chunks read ahead of the one being checked.
const READ_AHEAD: u64 = 2;

pub(super) async fn run(
    log: &EventLog,
    config: &VerifyConfig,
    progress: &mut (dyn FnMut(Position) + Send),
) -> Result<VerifyReport, LogError> {
    let chunk = config.chunk.unwrap_or(DEFAULT_CHUNK).max(1);
    let mut last = Head::EMPTY;
    let mut count = 0u64;
    let mut pinned_seen = false;
    let report = |count, head, violation| VerifyReport {
        count,
        head,
        violation,
    };
    // Each row's hash is computed over its fields as stored (payload and
    // provenance text as they are, never parsed) as the rows are read, on
    // tasks of their own, two chunks ahead of the one being checked: the
    // database reads one while the other is decoded and hashed. Positions
    // are dense (or the walk stops at the first gap), so each chunk's start
    // is known before the one before it arrives. A chunk that comes back
    // short was the end of the log when it was read: the walk ends there,
    // whatever later reads saw of a log that has grown since.
    let read_after = |after: Position| {
        let log = log.clone();
        tokio::spawn(async move { log.read_links(after, chunk).await })
    };
    let mut ahead: std::collections::VecDeque<_> = (0..READ_AHEAD)
        .map(|i| read_after(i * chunk as u64))
        .collect();
    let mut next_start = READ_AHEAD * chunk as u64;
    // (Reads still in flight when the walk ends early finish on their own.)
    while let Some(task) = ahead.pop_front() {
        let rows = task
            .await
            .map_err(|e| LogError::Invalid(format!("the reading task failed: {e}")))??;
        if rows.is_empty() {
            break;
        }
        let end_of_log = rows.len() < chunk;
        ahead.push_back(read_after(next_start));
        next_start += chunk as u64;
        for (index, (position, row)) in rows.iter().enumerate() {
            let expected = last.position + 1;
            if *position != expected {
                let detail = if *position == expected + 1 {
                    format!("position {expected} is absent")
                } else {
                    format!("positions {expected} to {} are absent", position - 1)
                };
                return Ok(report(
                    count,
                    last,
                    Some(violation(expected, Fault::Missing, detail)),
                ));
            }
            let link = match row {
                Ok(link) => link,
                Err(reason) => {
                    let detail = format!("the row cannot be read as an event: {reason}");
                    return Ok(report(
                        count,
                        last,
                        Some(violation(*position, Fault::Edited, detail)),
                    ));
                }
            };
            if link.computed != link.hash {
                let next = match rows.get(index + 1) {
                    Some((_, next)) => next.as_ref().ok().copied(),
                    None => next_link(log, *position).await?,
                };
                let v = if next.is_some_and(|n| n.prev_hash == last.hash) {
                    violation(
                        *position,
                        Fault::Inserted,
                        format!(
                            "this row is not part of the chain: position {} chains directly from position {}",
                            position + 1,
                            last.position
                        ),
                    )
                } else {
                    let detail = match unreadable(log, *position).await? {
                        Some(reason) => format!("the row cannot be read as an event: {reason}"),
                        None => format!(
                            "the fields hash to {} but the stored hash is {}",
                            link.computed, link.hash
                        ),
                    };
                    violation(*position, Fault::Edited, detail)
                };
                return Ok(report(count, last, Some(v)));
            }
            if link.prev_hash != last.hash {
                let v = classify_broken_link(log, link, last).await?;
                return Ok(report(count, last, Some(v)));
            }
            if let Some(pin) = config.expect_head
                && pin.position == link.position
            {
                if pin.hash != link.hash {
                    let detail = format!(
                        "the pinned head {pin} is gone: position {} now has hash {}",
                        pin.position, link.hash
                    );
                    return Ok(report(
                        count,
                        last,
                        Some(violation(pin.position, Fault::PinnedHeadGone, detail)),
                    ));
                }
                pinned_seen = true;
            }
            last = Head {
                position: link.position,
                hash: link.hash,
            };
            count += 1;
        }
        progress(last.position);
        if end_of_log {
            break;
        }
    }
    if let Some(pin) = config.expect_head
        && !pinned_seen
        && pin.position > 0
    {
        let detail = format!(
            "the pinned head {pin} is gone: the log ends at position {} (truncated?)",
            last.position
        );
        return Ok(report(
            count,
            last,
            Some(violation(pin.position, Fault::PinnedHeadGone, detail)),
        ));
    }
    Ok(report(count, last, None))
}

fn violation(position: Position, fault: Fault, detail: String) -> Violation {
    Violation {
        position,
        fault,
        detail,
    }
}

async fn next_link(log: &EventLog, position: Position) -> Result<Option<Link>, LogError> {
    Ok(log
        .read_links(position, 1)
        .await?
        .into_iter()
        .next()
        .and_then(|(_, row)| row.ok()))
}

/// Why the row at `position` cannot be read as an event (its payload or
/// provenance is not JSON, say), if it cannot.
async fn unreadable(log: &EventLog, position: Position) -> Result<Option<String>, LogError> {
    Ok(log
        .read_rows(position - 1, 1)
        .await?
        .into_iter()
        .next()
        .and_then(|(_, row)| row.err()))
}

/// `event` hashes correctly but does not chain from the row before it.
async fn classify_broken_link(
    log: &EventLog,
    link: &Link,
    before: Head,
) -> Result<Violation, LogError> {
    let claimed: Option<Position> = if link.prev_hash == EventHash::ZERO {
        Some(0)
    } else {
        log.position_of_hash(&link.prev_hash).await?
    };
    let position = link.position;
    Ok(match claimed {
        Some(q) if q < before.position => violation(
            q + 1,
            Fault::Inserted,
            if q + 1 == before.position {
                format!(
                    "position {} is not part of the chain: position {position} chains from position {q}",
                    q + 1
                )
            } else {
                format!(
                    "positions {} to {} are not part of the chain: position {position} chains from position {q}",
                    q + 1,
                    before.position
                )
            },
        ),
        Some(q) if q > position => violation(
            position,
            Fault::Reordered,
            format!(
                "position {position} chains from the event now at position {q}: rows are out of order"
            ),
        ),
        Some(q) => violation(
            position,
            Fault::Edited,
            format!(
                "prev_hash names position {q}, but position {} has a different hash",
                before.position
            ),
        ),
        None => violation(
            position,
            Fault::Missing,
            format!(
                "the event position {position} chains from ({}) is not in the log: an event before it was removed",
                link.prev_hash
            ),
        ),
    })
}

impl EventLog {
    /// Walks the whole chain; see [`verify`](VerifyReport).
    pub async fn verify(
        &self,
        config: &VerifyConfig,
        progress: &mut (dyn FnMut(Position) + Send),
    ) -> Result<VerifyReport, LogError> {
        run(self, config, progress).await
    }
}

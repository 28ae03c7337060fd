//! The demo's ticks handed to the engine in-process, and what came back.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use indicatif::ProgressBar;
use provenant_events::{SessionId, TickAck, WorldId};
use provenant_host::tick::Tick;

use super::limits::{IN_FLIGHT, SOURCE, WAIT};
use crate::service::engine::Engine;
use crate::service::worlds::Answer;

/// Ticks and what came back.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub sent: u64,
    pub acknowledged: u64,
    /// Events the ticks added.
    pub events: u64,
    /// From the first tick sent to the last acknowledgment.
    pub seconds: f64,
}

impl Tally {
    pub fn answered(&mut self, a: &TickAck) {
        self.acknowledged += 1;
        self.events += a.events;
    }
}

/// A tick, as the messages name it.
#[derive(Debug, Clone)]
pub struct TickRef {
    world: WorldId,
    session: SessionId,
    tick: u64,
}

impl From<&Tick> for TickRef {
    fn from(t: &Tick) -> Self {
        TickRef {
            world: t.world_id.clone(),
            session: t.session_id.clone(),
            tick: t.tick,
        }
    }
}

impl fmt::Display for TickRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tick {} of {}/{}", self.tick, self.world, self.session)
    }
}

/// Queues each tick behind its world's with the engine, keeping at most
/// [`IN_FLIGHT`] answers pending (a world's answers come in order).
pub async fn send_in_process(
    engine: &Engine,
    ticks: impl Iterator<Item = Tick>,
    bar: &ProgressBar,
) -> anyhow::Result<Tally> {
    let source: Arc<str> = SOURCE.into();
    let mut tally = Tally::default();
    let mut pending: VecDeque<(TickRef, Answer<TickAck>)> = VecDeque::new();
    let started = Instant::now();
    for tick in ticks {
        if pending.len() >= IN_FLIGHT
            && let Some((which, answer)) = pending.pop_front()
        {
            tally.answered(&answer_of(which, answer).await?);
            bar.inc(1);
        }
        let which = TickRef::from(&tick);
        let answer = engine
            .worlds
            .enqueue_tick(tick, source.clone(), None)
            .await
            .with_context(|| format!("the engine did not take {which}"))?;
        tally.sent += 1;
        pending.push_back((which, answer));
    }
    while let Some((which, answer)) = pending.pop_front() {
        tally.answered(&answer_of(which, answer).await?);
        bar.inc(1);
    }
    tally.seconds = started.elapsed().as_secs_f64();
    Ok(tally)
}

async fn answer_of(which: TickRef, answer: Answer<TickAck>) -> anyhow::Result<TickAck> {
    match answer.await {
        Ok(Ok(ack)) => Ok(ack),
        Ok(Err(failure)) => Err(failure).with_context(|| format!("{which} was not processed")),
        Err(_) => anyhow::bail!("the engine stopped before answering {which}"),
    }
}

pub async fn resend_in_process(engine: &Engine, tick: &Tick) -> anyhow::Result<TickAck> {
    let which = TickRef::from(tick);
    let answer = engine
        .worlds
        .enqueue_tick(tick.clone(), SOURCE.into(), None)
        .await
        .with_context(|| format!("the engine did not take {which} again"))?;
    tokio::time::timeout(WAIT, answer_of(which.clone(), answer))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "no answer to {which}, sent again, within {}s",
                WAIT.as_secs()
            )
        })?
}

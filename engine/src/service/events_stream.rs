//! The events stream's last message: where the relay resumes, whether a
//! stream relays this log, how far the relay has got.

use anyhow::Context as _;
use async_nats::jetstream;
use provenant_events::Position;

use crate::nats_names::POSITION_HEADER;

/// The last message of an events stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastMessage {
    /// Messages the stream holds.
    pub messages: u64,
    /// Its `Provenant-Position`: the log position of its event.
    pub position: Position,
    /// Its `Nats-Msg-Id`: the event id.
    pub id: Option<String>,
}

/// The last message of `stream` (the events stream called `name`); None
/// when the stream is empty. A last message without a position is an
/// error: something other than provenant published it.
pub async fn last_message(
    stream: &mut jetstream::stream::Stream,
    name: &str,
) -> anyhow::Result<Option<LastMessage>> {
    let state = stream
        .info()
        .await
        .with_context(|| format!("cannot read the stream {name}"))?
        .state
        .clone();
    if state.messages == 0 {
        return Ok(None);
    }
    let last = stream
        .get_raw_message(state.last_sequence)
        .await
        .with_context(|| format!("cannot read the last message of {name}"))?;
    let position = last
        .headers
        .get(POSITION_HEADER)
        .and_then(|v| v.as_str().parse::<Position>().ok())
        .filter(|p| *p > 0)
        .with_context(|| {
            format!(
                "the last message of {name} has no {POSITION_HEADER} header: is something other than provenant publishing to it?"
            )
        })?;
    Ok(Some(LastMessage {
        messages: state.messages,
        position,
        id: last
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str().to_owned()),
    }))
}

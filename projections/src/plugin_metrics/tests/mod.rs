//! The projection's tests, by topic: [`fixtures`] (events and helpers),
//! [`judging`] (health and the window), [`recording`] (what a call, a
//! denial or a load records) and [`rows`] (resets, changes, restoring and
//! malformed input).

mod fixtures;
mod judging;
mod recording;
mod rows;

//! provenant's projections: state derived from the log (per-plugin metrics,
//! health, session state), each with a checkpoint that commits in the same
//! transaction as its state, so a crash neither loses nor double-counts an
//! event.
//!
//! Invariant: a projection reads the log and writes only its own state and
//! checkpoint; it never appends to the log. Rebuilding from position 0 gives
//! the same state as catching up.
//!
//! The projections themselves arrive with the projections issue; this crate
//! holds their place in the workspace and depends only on `provenant-events`.

-- Snapshots: state folded from the log (a world's game state), each saved
-- with the position of the last event it includes, so a reader loads one
-- and folds only the events after it instead of the whole log.
--
-- Snapshots are not events: they are not hash-chained, a save replaces the
-- state (never with one of a lower position; see events/log/src/postgres.rs),
-- and losing them loses nothing: the log alone rebuilds them.
CREATE TABLE provenant.snapshots (
    name        text        PRIMARY KEY,
    position    bigint      NOT NULL CHECK (position >= 0),
    state       text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE provenant.snapshots IS
    'provenant snapshots: state folded from the log up to a position (a world''s game state); not events, not hash-chained, rebuilt from the log when missing';

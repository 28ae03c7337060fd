-- Named checkpoints: how far a reader of the log (the relay, later the
-- projections) has got, saved as it goes so it resumes there after a restart.
--
-- Checkpoints are not events: they are not hash-chained, and a save replaces
-- the position (never with a lower one; see events/src/log/postgres.rs).
CREATE TABLE provenant.checkpoints (
    name        text        PRIMARY KEY,
    position    bigint      NOT NULL CHECK (position >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE provenant.checkpoints IS
    'provenant named checkpoints: the position each reader of the log has reached; not events, not hash-chained, never moved backwards';

-- Named checkpoints (embedded SQLite): how far a reader of the log (the
-- relay, later the projections) has got, saved as it goes so it resumes
-- there after a restart.
--
-- Same columns as PostgreSQL's provenant.checkpoints; updated_at is TEXT in
-- the one canonical timestamp form (RFC 3339, UTC, microseconds). Checkpoints
-- are not events: they are not hash-chained, and a save replaces the position
-- (never with a lower one; see events/src/log/sqlite.rs).
CREATE TABLE checkpoints (
    name        TEXT    PRIMARY KEY NOT NULL,
    position    INTEGER NOT NULL CHECK (position >= 0),
    updated_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);

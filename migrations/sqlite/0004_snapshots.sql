-- Snapshots (embedded SQLite): state folded from the log (a world's game
-- state), each saved with the position of the last event it includes, so a
-- reader loads one and folds only the events after it.
--
-- Same columns as PostgreSQL's provenant.snapshots; updated_at is TEXT in the
-- one canonical timestamp form. Snapshots are not events: they are not
-- hash-chained, a save never replaces one of a higher position, and the log
-- alone rebuilds them.
CREATE TABLE snapshots (
    name        TEXT    PRIMARY KEY NOT NULL,
    position    INTEGER NOT NULL CHECK (position >= 0),
    state       TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);

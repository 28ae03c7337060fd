-- The append-only, hash-chained event log (embedded SQLite).
--
-- Same columns as PostgreSQL's provenant.events. Timestamps are TEXT in the
-- one canonical form (RFC 3339, UTC, microseconds); payload and provenance
-- are their canonical JSON text. Writers append under BEGIN IMMEDIATE, which
-- serialises them, so positions are dense and commit in order.
CREATE TABLE events (
    position        INTEGER PRIMARY KEY CHECK (position > 0),
    event_id        TEXT    NOT NULL UNIQUE,
    stream          TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version > 0),
    kind            TEXT    NOT NULL,
    plugin_id       TEXT,
    world_id        TEXT,
    session_id      TEXT,
    occurred_at     TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,
    provenance      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL CHECK (schema_version >= 0),
    prev_hash       BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash            BLOB    NOT NULL CHECK (length(hash) = 32),
    UNIQUE (stream, stream_version)
);

-- SQLite has no TRUNCATE: a DELETE without WHERE fires the delete trigger too.
CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'provenant events are append-only: UPDATE refused');
END;

CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'provenant events are append-only: DELETE refused');
END;

-- Questions about one world, session or plugin cost what they return, not
-- the log's length (see the PostgreSQL migration of the same name). The
-- embedded log indexes every event of a session and of a plugin: SQLite
-- does not match a partial index against a bound kind.
CREATE INDEX events_world_position ON events (world_id, position)
    WHERE world_id IS NOT NULL;
CREATE INDEX events_session_position ON events (session_id, position)
    WHERE session_id IS NOT NULL;
CREATE INDEX events_plugin_position ON events (plugin_id, position)
    WHERE plugin_id IS NOT NULL;

-- Questions about one world, session or plugin cost what they return, not
-- the log's length (see the PostgreSQL migration of the same name).
CREATE INDEX events_world_position ON events (world_id, position)
    WHERE world_id IS NOT NULL;
CREATE INDEX events_session_position ON events (session_id, position)
    WHERE session_id IS NOT NULL;
CREATE INDEX events_plugin_position ON events (plugin_id, position)
    WHERE plugin_id IS NOT NULL;

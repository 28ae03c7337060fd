-- Questions about one world, session or plugin cost what they return, not
-- the log's length: `GET /v1/events?world=…`, `audit trail --session …`,
-- `audit replay --world/--session/--plugin` and loading a world's state
-- (its events after its snapshot) walk these indexes instead of every
-- position. Partial: events without the column (engine events, ticks
-- rejected before their world was known) are not indexed.
--
-- Creating them on a long log takes a while (a few seconds per million
-- events) and holds appends meanwhile: migrate (`provenant migrate`) before
-- starting the new engine.
CREATE INDEX events_world_position ON provenant.events (world_id, position)
    WHERE world_id IS NOT NULL;
CREATE INDEX events_session_position ON provenant.events (session_id, position)
    WHERE session_id IS NOT NULL;
CREATE INDEX events_plugin_position ON provenant.events (plugin_id, position)
    WHERE plugin_id IS NOT NULL;

-- Questions about one world, session or plugin cost what they return, not
-- the log's length. Every index is written by every append, so each is as
-- small as its question allows (docs/log.md, docs/performance.md):
--
-- - a world's events (`GET /v1/events?world=…`, `audit … --world`, loading
--   a world's state after its snapshot): every event of the world;
-- - a session's ticks (`audit … --session`): only the `TickProcessed`
--   markers (one per tick; each says how many events its tick has, and a
--   tick's events are contiguous);
-- - a plugin's ticks (`audit … --plugin`): only the events that record its
--   calls.
--
-- Creating them on a long log takes a while (seconds per million events)
-- and holds appends meanwhile: run `provenant migrate` before starting the
-- new engine.
CREATE INDEX events_world_position ON provenant.events (world_id, position)
    WHERE world_id IS NOT NULL;
CREATE INDEX events_session_ticks ON provenant.events (session_id, position)
    WHERE kind = 'TickProcessed';
CREATE INDEX events_plugin_calls ON provenant.events (plugin_id, position)
    WHERE kind IN ('ConditionEvaluated', 'EffectApplied', 'EventHandled',
                   'PluginCallFailed', 'PluginCallPanicked', 'PluginDeadlineExceeded');

-- The append-only, hash-chained event log.
--
-- payload and provenance are `json`, not `jsonb`: `json` keeps the canonical
-- text the hash was computed over byte for byte, where `jsonb` would reorder
-- keys and rewrite numbers. position is dense and assigned under the append
-- lock (see events/src/log/postgres.rs), so a reader moving forward by
-- position never skips an event that commits late.
CREATE SCHEMA IF NOT EXISTS provenant;

CREATE TABLE provenant.events (
    position        bigint      PRIMARY KEY CHECK (position > 0),
    event_id        uuid        NOT NULL UNIQUE,
    stream          text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version > 0),
    kind            text        NOT NULL,
    plugin_id       text,
    world_id        text,
    session_id      text,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    provenance      json        NOT NULL,
    payload         json        NOT NULL,
    schema_version  integer     NOT NULL CHECK (schema_version >= 0),
    prev_hash       bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash            bytea       NOT NULL CHECK (length(hash) = 32),
    UNIQUE (stream, stream_version)
);

COMMENT ON TABLE provenant.events IS
    'provenant event log: append-only (UPDATE, DELETE and TRUNCATE are refused by triggers), hash-chained';

CREATE FUNCTION provenant.refuse_event_mutation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'provenant.events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'events are immutable; record a new event instead';
END;
$$;

CREATE TRIGGER events_refuse_update_delete
    BEFORE UPDATE OR DELETE ON provenant.events
    FOR EACH ROW EXECUTE FUNCTION provenant.refuse_event_mutation();

CREATE TRIGGER events_refuse_truncate
    BEFORE TRUNCATE ON provenant.events
    FOR EACH STATEMENT EXECUTE FUNCTION provenant.refuse_event_mutation();

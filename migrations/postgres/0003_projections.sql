-- Projections: state derived from the log (plugin metrics and health,
-- session state, engine totals), rebuilt from it at any time.
--
-- A projection's rows and its checkpoint commit in one transaction, so a
-- crash neither loses nor double-counts an event. A commit names the
-- position it started from and fails if the stored one differs (another
-- runner, or a rebuild, moved it), so two runners never both apply an event.
-- Like checkpoints, projections are not events and are not hash-chained.
CREATE TABLE provenant.projections (
    name        text        PRIMARY KEY,
    position    bigint      NOT NULL CHECK (position >= 0),
    version     integer     NOT NULL CHECK (version >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE provenant.projection_rows (
    projection  text NOT NULL REFERENCES provenant.projections (name) ON DELETE CASCADE,
    key         text NOT NULL,
    value       json NOT NULL,
    PRIMARY KEY (projection, key)
);

COMMENT ON TABLE provenant.projections IS
    'provenant projections: how far each has folded the log; committed with its rows';
COMMENT ON TABLE provenant.projection_rows IS
    'provenant projection state: one JSON value per key, derived from the log and rebuildable from it';

-- Projections (embedded SQLite): state derived from the log, rebuilt from
-- it at any time. Same tables as PostgreSQL's provenant.projections and
-- provenant.projection_rows; see migrations/postgres/0003_projections.sql.
CREATE TABLE projections (
    name        TEXT    PRIMARY KEY NOT NULL,
    position    INTEGER NOT NULL CHECK (position >= 0),
    version     INTEGER NOT NULL CHECK (version >= 0),
    updated_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);

CREATE TABLE projection_rows (
    projection  TEXT NOT NULL REFERENCES projections (name) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (projection, key)
);

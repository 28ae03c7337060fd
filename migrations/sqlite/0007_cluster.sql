-- The cluster's settings, one row: how many partitions the worlds are
-- spread over (see the PostgreSQL migration of the same number).
CREATE TABLE cluster (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    partitions  INTEGER NOT NULL CHECK (partitions BETWEEN 1 AND 1024),
    created_ms  INTEGER NOT NULL
);

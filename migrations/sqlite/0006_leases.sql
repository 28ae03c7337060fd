-- Leases (embedded SQLite): which holder has a piece of work and under which
-- epoch; the same contract as PostgreSQL's provenant.leases. Appends check
-- their epochs inside their transaction (BEGIN IMMEDIATE: one writer at a
-- time). Times are milliseconds since 1970 on the database's clock.
CREATE TABLE leases (
    name         TEXT    PRIMARY KEY NOT NULL,
    owner        TEXT    NOT NULL,
    epoch        INTEGER NOT NULL CHECK (epoch >= 1),
    expires_ms   INTEGER NOT NULL,
    acquired_ms  INTEGER NOT NULL,
    renewed_ms   INTEGER NOT NULL
);

-- The least the engine's role needs on a log its owner migrated
-- (`provenant migrate` run as the owner, once per release). Run as the
-- owner, in the log's database; replace provenant_engine with your role.
-- The engine starts without changing the schema when no migration is
-- pending (it reads which are applied from _sqlx_migrations).
--
-- The log itself is append-only for the engine: no UPDATE, DELETE or
-- TRUNCATE on provenant.events (its triggers refuse those from anyone).
-- tests/tests/e2e/postgres_access.rs runs the engine under exactly these.

GRANT USAGE ON SCHEMA provenant TO provenant_engine;
GRANT SELECT ON public._sqlx_migrations TO provenant_engine;

-- The log: read and appended to, never changed.
GRANT SELECT, INSERT ON provenant.events TO provenant_engine;
-- The partition count, recorded once.
GRANT SELECT, INSERT ON provenant.cluster TO provenant_engine;
-- The relay's checkpoint and the worlds' snapshots, saved over
-- (INSERT … ON CONFLICT DO UPDATE).
GRANT SELECT, INSERT, UPDATE ON provenant.checkpoints, provenant.snapshots TO provenant_engine;
-- Leases: taken, renewed, released (read FOR SHARE by each append, which
-- needs UPDATE).
GRANT SELECT, INSERT, UPDATE ON provenant.leases TO provenant_engine;
-- The projections' state: rebuilt and reset, so also deleted.
GRANT SELECT, INSERT, UPDATE, DELETE ON provenant.projections, provenant.projection_rows TO provenant_engine;

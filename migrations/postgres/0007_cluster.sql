-- The cluster's settings, one row: how many partitions the worlds are
-- spread over (a stable hash of the world id modulo this count). The first
-- engine to start records it; every engine after it uses the recorded one
-- and refuses to start when asked for another (the NATS ticks stream files
-- ticks under partitions, and the leases are per partition).
CREATE TABLE provenant.cluster (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    partitions  integer     NOT NULL CHECK (partitions BETWEEN 1 AND 1024),
    created_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE provenant.cluster IS
    'provenant cluster settings (one row): the partition count, set once by the first engine';

-- Leases: which instance holds a piece of work (a partition of the worlds,
-- the relay, the projections) and under which epoch.
--
-- The epoch grows by one at every takeover. A holder's appends name the
-- epochs they were made under; the append checks them inside its
-- transaction (the rows read FOR SHARE, so a takeover waits for an append
-- in flight, and an append waits for a takeover in flight and then sees it),
-- so an instance that lost a lease cannot append for it once the next epoch
-- has committed, whatever the clocks say. expires_at (the database's clock)
-- only decides when a lease may be taken over: how fast failover is.
CREATE TABLE provenant.leases (
    name         text        PRIMARY KEY,
    owner        text        NOT NULL,
    epoch        bigint      NOT NULL CHECK (epoch >= 1),
    expires_at   timestamptz NOT NULL,
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    renewed_at   timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE provenant.leases IS
    'provenant leases: the owner and epoch of each piece of work; appends are fenced by epoch, expiry only sets failover time';

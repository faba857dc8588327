-- slotd schema, version 1: the portable part, valid on PostgreSQL and on
-- CockroachDB. PostgreSQL-only defence in depth (row-level security, the
-- bookings exclusion constraint) is in 0001_init.postgres.sql; the
-- CockroachDB-only multi-region statements are rendered by crdb.go.
--
-- Every tenant table has tenant_id leading its primary key and every index,
-- and every statement slotd runs on it filters by tenant_id. home_region is
-- the tenant's immutable home region (the Store's Options.HomeRegion; empty
-- when a database serves one region): on CockroachDB multi-region it decides
-- crdb_region, and so where the row lives.
--
-- Statements end with a semicolon at the end of a line: migrate.go splits
-- on that and runs them one by one. Each must be idempotent (IF NOT EXISTS):
-- on CockroachDB schema changes do not run inside the migration transaction.

-- heads holds each tenant's journal head. Updating it conditionally
-- (UPDATE ... WHERE seq = expected) is the fence between two writers.
CREATE TABLE IF NOT EXISTS heads (
    tenant_id   text   NOT NULL,
    seq         bigint NOT NULL CHECK (seq > 0),
    home_region text   NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id)
);

-- journal is append-only: slotd's role may INSERT and SELECT, nothing else.
-- data is the engine's encoded event, opaque here.
CREATE TABLE IF NOT EXISTS journal (
    tenant_id   text   NOT NULL,
    seq         bigint NOT NULL CHECK (seq > 0),
    data        bytea  NOT NULL,
    home_region text   NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, seq)
);

-- snapshots keeps the newest snapshot per tenant.
CREATE TABLE IF NOT EXISTS snapshots (
    tenant_id   text   NOT NULL,
    seq         bigint NOT NULL CHECK (seq >= 0),
    data        bytea  NOT NULL,
    home_region text   NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id)
);

-- resources and bookings are projections of the journal, maintained in the
-- append transaction (projection.go): the capacity of each resource, and
-- each booking's block with the seat (capacity_slot, 0 <= slot < capacity)
-- it occupies. On PostgreSQL an exclusion constraint forbids two confirmed
-- bookings on one seat of one resource with overlapping blocks.
CREATE TABLE IF NOT EXISTS resources (
    tenant_id   text    NOT NULL,
    resource_id text    NOT NULL,
    capacity    integer NOT NULL CHECK (capacity > 0),
    home_region text    NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, resource_id)
);

CREATE TABLE IF NOT EXISTS bookings (
    tenant_id     text        NOT NULL,
    booking_id    text        NOT NULL,
    resource_id   text        NOT NULL,
    block_start   timestamptz NOT NULL,
    block_end     timestamptz NOT NULL,
    capacity      integer     NOT NULL,
    capacity_slot integer     NOT NULL,
    status        text        NOT NULL,
    seq           bigint      NOT NULL,
    home_region   text        NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, booking_id),
    CONSTRAINT bookings_block_check CHECK (block_start < block_end),
    CONSTRAINT bookings_slot_check CHECK (capacity_slot >= 0 AND capacity_slot < capacity),
    CONSTRAINT bookings_status_check CHECK (status IN ('confirmed', 'cancelled'))
);

-- Seat lookups ask for confirmed bookings with block_end > the new block's
-- start: ordered by block_end, the scan skips a resource's past.
CREATE INDEX IF NOT EXISTS bookings_by_resource ON bookings (tenant_id, resource_id, block_end)
    WHERE status = 'confirmed';

-- directory is global lookup data (tenant list, booking links): it is read
-- before a tenant is known (a public booking link names no tenant), so it
-- has no tenant_id. It must never hold a tenant's private data.
CREATE TABLE IF NOT EXISTS directory (
    kind  text  NOT NULL,
    key   bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (kind, key)
);

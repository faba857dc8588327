-- slotd schema, version 1: PostgreSQL only. Defence in depth that does not
-- exist on CockroachDB (no range types, no EXCLUDE, no row-level security
-- there), so nothing on the correctness path may depend on it. Runs in the
-- same transaction as 0001_init.sql.

-- The bookings exclusion constraint: no two confirmed bookings on the same
-- seat of a resource with overlapping blocks ([start, end), so back-to-back
-- bookings are fine). The projection gives every confirmed booking a seat
-- below its resource's capacity, so on a capacity-1 resource (seat 0 only)
-- this is exactly "no overlap", whatever the engine decided. DEFERRABLE
-- INITIALLY IMMEDIATE makes it checked at the end of each statement rather
-- than row by row, so the projection can reassign seats in one UPDATE.
-- btree_gist (trusted, so the database owner may create it) provides the
-- gist operator classes for = on text and integer.
CREATE EXTENSION IF NOT EXISTS btree_gist;

ALTER TABLE bookings
    ADD COLUMN block tstzrange GENERATED ALWAYS AS (tstzrange(block_start, block_end, '[)')) STORED;

ALTER TABLE bookings
    ADD CONSTRAINT bookings_no_overlap
    EXCLUDE USING gist (tenant_id WITH =, resource_id WITH =, capacity_slot WITH =, block WITH &&)
    WHERE (status = 'confirmed')
    DEFERRABLE INITIALLY IMMEDIATE;

-- Row-level security on every tenant table, forced so that it applies to
-- the table owner too. slotd sets app.tenant_id with set_config(..., true)
-- at the start of each transaction; without it current_setting returns NULL
-- (or '') and no row is visible or writable.
ALTER TABLE heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON heads
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE journal ENABLE ROW LEVEL SECURITY;
ALTER TABLE journal FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON journal
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE snapshots ENABLE ROW LEVEL SECURITY;
ALTER TABLE snapshots FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON snapshots
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE resources ENABLE ROW LEVEL SECURITY;
ALTER TABLE resources FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON resources
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE bookings ENABLE ROW LEVEL SECURITY;
ALTER TABLE bookings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON bookings
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

-- directory is global lookup data with no tenant (see 0001_init.sql). RLS is
-- enabled with an explicit allow-all policy rather than left off, so that
-- "every table has row-level security" holds and the exception is visible
-- in pg_policies, where a reviewer looks.
ALTER TABLE directory ENABLE ROW LEVEL SECURITY;
ALTER TABLE directory FORCE ROW LEVEL SECURITY;
CREATE POLICY global_lookup ON directory
    USING (true)
    WITH CHECK (true);

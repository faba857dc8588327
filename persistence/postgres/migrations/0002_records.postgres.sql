-- slotd schema, version 2: PostgreSQL only. Row-level security on records,
-- forced and with the same policy as every tenant table (0001_init.postgres.sql):
-- a transaction that has not run set_config('app.tenant_id', tenant, true)
-- sees and writes no record, and one bound to tenant A none of B's.
ALTER TABLE records ENABLE ROW LEVEL SECURITY;
ALTER TABLE records FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON records
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

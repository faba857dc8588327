-- slotd schema, version 2: the portable part. records holds small
-- tenant-scoped documents (accounts, sessions, OAuth clients and tokens,
-- wrapped keys, audit entries, consent) for persistence.RecordStore.
--
-- A record changes by compare-and-swap on version: the store's UPDATE ...
-- WHERE version = expected changes no row when another writer got there
-- first, and under READ COMMITTED the second writer waits for the row lock
-- and then re-checks the condition against the committed row. version is 1
-- at creation and grows by one with every replacement.
--
-- key is bytea, like the directory's: the contract allows any bytes but
-- NUL, and bytea orders bytewise, which ListRecords promises. home_region
-- is the tenant's home region when the record was created (see
-- 0001_init.sql); replacements keep it. On CockroachDB multi-region the
-- table is REGIONAL BY ROW like the other tenant tables (crdb.go).
CREATE TABLE IF NOT EXISTS records (
    tenant_id   text   NOT NULL,
    kind        text   NOT NULL,
    key         bytea  NOT NULL,
    value       bytea  NOT NULL,
    version     bigint NOT NULL CHECK (version > 0),
    home_region text   NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, kind, key)
);

package postgres

import (
	"context"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/slotd/slotd/persistence"
)

// Records (migrations/0002_records.sql). Each operation is one statement
// in its own transaction, bound to the tenant (set_config on PostgreSQL,
// for row-level security) and filtering by tenant_id itself, so the
// application's scoping holds on CockroachDB too, where there is no
// row-level security. The compare-and-swap is the statement's condition:
//
//   - create only: INSERT ... ON CONFLICT DO NOTHING RETURNING; no row
//     returned means the record exists.
//   - replace: UPDATE ... WHERE version = expected RETURNING; a concurrent
//     writer of the same row waits for its lock and then re-checks the
//     condition on the committed row (PostgreSQL READ COMMITTED), or the
//     transaction is retried (CockroachDB SERIALIZABLE, by crdbpgx).
//   - unconditional: INSERT ... ON CONFLICT DO UPDATE SET version =
//     records.version + 1, serialized on the row lock.
//
// Error messages name the tenant and kind but never the key, which may be
// a token hash.
const (
	getRecordSQL = `SELECT value, version FROM records WHERE tenant_id = $1 AND kind = $2 AND key = $3`

	createRecordSQL = `
INSERT INTO records (tenant_id, kind, key, value, version, home_region)
VALUES ($1, $2, $3, $4, 1, $5)
ON CONFLICT (tenant_id, kind, key) DO NOTHING
RETURNING version`

	replaceRecordSQL = `
UPDATE records SET value = $4, version = version + 1
WHERE tenant_id = $1 AND kind = $2 AND key = $3 AND version = $5
RETURNING version`

	upsertRecordSQL = `
INSERT INTO records (tenant_id, kind, key, value, version, home_region)
VALUES ($1, $2, $3, $4, 1, $5)
ON CONFLICT (tenant_id, kind, key) DO UPDATE
SET value = excluded.value, version = records.version + 1
RETURNING version`

	deleteRecordSQL = `DELETE FROM records WHERE tenant_id = $1 AND kind = $2 AND key = $3`

	deleteRecordVersionSQL = `DELETE FROM records WHERE tenant_id = $1 AND kind = $2 AND key = $3 AND version = $4`

	recordExistsSQL = `SELECT EXISTS (SELECT 1 FROM records WHERE tenant_id = $1 AND kind = $2 AND key = $3)`

	// listRecordsSQL is completed by listRecordsQuery.
	listRecordsSQL = `SELECT key, value, version FROM records WHERE tenant_id = $1 AND kind = $2 AND key >= $3`

	deleteTenantRecordsSQL = `DELETE FROM records WHERE tenant_id = $1`

	deleteKindRecordsSQL = `DELETE FROM records WHERE tenant_id = $1 AND kind = $2`
)

// bytea returns s as a non-nil byte slice: pgx sends a nil slice as NULL.
func bytea(s string) []byte { return append([]byte{}, s...) }

// GetRecord implements persistence.RecordStore.
func (s *Store) GetRecord(ctx context.Context, tenant, kind, key string) (persistence.Record, error) {
	if err := persistence.CheckRecord(tenant, kind, key); err != nil {
		return persistence.Record{}, fmt.Errorf("get record: %w", err)
	}
	if err := s.begin(ctx); err != nil {
		return persistence.Record{}, fmt.Errorf("get record: %w", err)
	}
	var value []byte
	var version int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		value, version = nil, 0
		return s.query(ctx, tx, tenant, getRecordSQL, []any{tenant, kind, bytea(key)}, func(rows pgx.Rows) error {
			return rows.Scan(&value, &version)
		})
	})
	if err != nil {
		return persistence.Record{}, fmt.Errorf("get record %s/%s: %w", tenant, kind, err)
	}
	if version == 0 {
		return persistence.Record{}, fmt.Errorf("get record %s/%s: %w", tenant, kind, persistence.ErrNotFound)
	}
	if value == nil {
		value = []byte{}
	}
	return persistence.Record{Tenant: tenant, Kind: kind, Key: key, Value: value, Version: uint64(version)}, nil
}

// PutRecord implements persistence.RecordStore.
func (s *Store) PutRecord(ctx context.Context, tenant, kind, key string, value []byte, expectVersion uint64) (uint64, error) {
	if err := persistence.CheckRecord(tenant, kind, key); err != nil {
		return 0, fmt.Errorf("put record: %w", err)
	}
	if err := persistence.CheckRecordValue(value); err != nil {
		return 0, fmt.Errorf("put record: %w", err)
	}
	if err := s.begin(ctx); err != nil {
		return 0, fmt.Errorf("put record: %w", err)
	}
	if value == nil {
		value = []byte{} // nil would be NULL
	}
	var sql string
	args := []any{tenant, kind, bytea(key), value}
	switch {
	case expectVersion == persistence.AnyVersion:
		sql = upsertRecordSQL
		args = append(args, s.region(tenant))
	case expectVersion == 0:
		sql = createRecordSQL
		args = append(args, s.region(tenant))
	case expectVersion > math.MaxInt64:
		// Versions are bigints: no record has this one.
		return 0, fmt.Errorf("put record %s/%s at version %d: %w", tenant, kind, expectVersion, persistence.ErrConflict)
	default:
		sql = replaceRecordSQL
		args = append(args, int64(expectVersion))
	}
	var version int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		version = 0
		return s.query(ctx, tx, tenant, sql, args, func(rows pgx.Rows) error { return rows.Scan(&version) })
	})
	if err != nil {
		return 0, fmt.Errorf("put record %s/%s: %w", tenant, kind, err)
	}
	if version == 0 {
		return 0, fmt.Errorf("put record %s/%s at version %d: %w", tenant, kind, expectVersion, persistence.ErrConflict)
	}
	return uint64(version), nil
}

// DeleteRecord implements persistence.RecordStore.
func (s *Store) DeleteRecord(ctx context.Context, tenant, kind, key string, expectVersion uint64) error {
	if err := persistence.CheckRecord(tenant, kind, key); err != nil {
		return fmt.Errorf("delete record: %w", err)
	}
	if err := s.begin(ctx); err != nil {
		return fmt.Errorf("delete record: %w", err)
	}
	conflict := fmt.Errorf("delete record %s/%s at version %d: %w", tenant, kind, expectVersion, persistence.ErrConflict)
	switch {
	case expectVersion == persistence.AnyVersion:
		if _, err := s.execRecords(ctx, tenant, deleteRecordSQL, tenant, kind, bytea(key)); err != nil {
			return fmt.Errorf("delete record %s/%s: %w", tenant, kind, err)
		}
		return nil
	case expectVersion == 0:
		// Nothing to delete; only check that there is nothing.
		var exists bool
		err := s.inTx(ctx, func(tx pgx.Tx) error {
			return s.query(ctx, tx, tenant, recordExistsSQL, []any{tenant, kind, bytea(key)}, func(rows pgx.Rows) error {
				return rows.Scan(&exists)
			})
		})
		if err != nil {
			return fmt.Errorf("delete record %s/%s: %w", tenant, kind, err)
		}
		if exists {
			return conflict
		}
		return nil
	case expectVersion > math.MaxInt64:
		return conflict
	}
	deleted, err := s.execRecords(ctx, tenant, deleteRecordVersionSQL, tenant, kind, bytea(key), int64(expectVersion))
	if err != nil {
		return fmt.Errorf("delete record %s/%s: %w", tenant, kind, err)
	}
	if deleted == 0 {
		return conflict
	}
	return nil
}

// execRecords runs one statement bound to tenant in its own transaction
// and returns the rows it affected.
func (s *Store) execRecords(ctx context.Context, tenant, sql string, args ...any) (int64, error) {
	var affected int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		skip := s.queueTenant(b, tenant)
		b.Queue(sql, args...)
		var err error
		affected, err = execBatch(ctx, tx, b, skip)
		return err
	})
	return affected, err
}

// listRecordsQuery completes listRecordsSQL for the key range [lower,
// upper) (upper "" is unbounded) and limit.
func listRecordsQuery(tenant, kind, lower, upper string, limit int) (string, []any) {
	sql := listRecordsSQL
	args := []any{tenant, kind, bytea(lower)}
	if upper != "" {
		args = append(args, bytea(upper))
		sql += fmt.Sprintf(" AND key < $%d", len(args))
	}
	sql += " ORDER BY key"
	if limit > 0 {
		args = append(args, limit)
		sql += fmt.Sprintf(" LIMIT $%d", len(args))
	}
	return sql, args
}

// ListRecords implements persistence.RecordStore: one range scan of the
// primary key.
func (s *Store) ListRecords(ctx context.Context, tenant, kind, prefix, after string, limit int) ([]persistence.Record, error) {
	if err := persistence.CheckRecordList(tenant, kind, prefix, after); err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	if err := s.begin(ctx); err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	lower, upper := persistence.RecordBounds(prefix, after)
	if upper != "" && lower >= upper {
		return nil, nil
	}
	sql, args := listRecordsQuery(tenant, kind, lower, upper, limit)
	var out []persistence.Record
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		out = nil
		return s.query(ctx, tx, tenant, sql, args, func(rows pgx.Rows) error {
			var key, value []byte
			var version int64
			if err := rows.Scan(&key, &value, &version); err != nil {
				return err
			}
			if value == nil {
				value = []byte{}
			}
			out = append(out, persistence.Record{Tenant: tenant, Kind: kind, Key: string(key), Value: value, Version: uint64(version)})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list records %s/%s: %w", tenant, kind, err)
	}
	return out, nil
}

// DeleteTenantRecords implements persistence.RecordStore: one DELETE, so
// the erasure commits whole or not at all.
func (s *Store) DeleteTenantRecords(ctx context.Context, tenant, kind string) error {
	if err := persistence.CheckTenantRecords(tenant, kind); err != nil {
		return fmt.Errorf("delete tenant records: %w", err)
	}
	if err := s.begin(ctx); err != nil {
		return fmt.Errorf("delete tenant records: %w", err)
	}
	var err error
	if kind == "" {
		_, err = s.execRecords(ctx, tenant, deleteTenantRecordsSQL, tenant)
	} else {
		_, err = s.execRecords(ctx, tenant, deleteKindRecordsSQL, tenant, kind)
	}
	if err != nil {
		return fmt.Errorf("delete tenant records %s/%s: %w", tenant, kind, err)
	}
	return nil
}

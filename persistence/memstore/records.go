package memstore

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/slotd/slotd/persistence"
)

var _ persistence.RecordStore = (*Store)(nil)

// recordID names one record; the tenant is part of every lookup.
type recordID struct{ tenant, kind, key string }

type storedRecord struct {
	value   []byte
	version uint64
}

// GetRecord implements persistence.RecordStore.
func (s *Store) GetRecord(ctx context.Context, tenant, kind, key string) (persistence.Record, error) {
	if err := persistence.CheckRecord(tenant, kind, key); err != nil {
		return persistence.Record{}, fmt.Errorf("get record: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return persistence.Record{}, fmt.Errorf("get record: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return persistence.Record{}, ErrClosed
	}
	r, ok := s.records[recordID{tenant, kind, key}]
	if !ok {
		return persistence.Record{}, fmt.Errorf("get record %s/%s: %w", tenant, kind, persistence.ErrNotFound)
	}
	return persistence.Record{Tenant: tenant, Kind: kind, Key: key, Value: cloneNonNil(r.value), Version: r.version}, nil
}

// PutRecord implements persistence.RecordStore.
func (s *Store) PutRecord(ctx context.Context, tenant, kind, key string, value []byte, expectVersion uint64) (uint64, error) {
	if err := persistence.CheckRecord(tenant, kind, key); err != nil {
		return 0, fmt.Errorf("put record: %w", err)
	}
	if err := persistence.CheckRecordValue(value); err != nil {
		return 0, fmt.Errorf("put record: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("put record: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	id := recordID{tenant, kind, key}
	old, ok := s.records[id]
	var stored uint64 // 0: no record
	if ok {
		stored = old.version
	}
	if expectVersion != persistence.AnyVersion && expectVersion != stored {
		return 0, fmt.Errorf("put record %s/%s at version %d, stored %d: %w", tenant, kind, expectVersion, stored, persistence.ErrConflict)
	}
	// Versions stay within a bigint, as in the SQL backend.
	if stored == math.MaxInt64 {
		return 0, fmt.Errorf("put record %s/%s: version overflow: %w", tenant, kind, persistence.ErrInvalid)
	}
	s.records[id] = storedRecord{value: cloneNonNil(value), version: stored + 1}
	return stored + 1, nil
}

// DeleteRecord implements persistence.RecordStore.
func (s *Store) DeleteRecord(ctx context.Context, tenant, kind, key string, expectVersion uint64) error {
	if err := persistence.CheckRecord(tenant, kind, key); err != nil {
		return fmt.Errorf("delete record: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete record: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	id := recordID{tenant, kind, key}
	old, ok := s.records[id]
	var stored uint64
	if ok {
		stored = old.version
	}
	if expectVersion != persistence.AnyVersion && expectVersion != stored {
		return fmt.Errorf("delete record %s/%s at version %d, stored %d: %w", tenant, kind, expectVersion, stored, persistence.ErrConflict)
	}
	delete(s.records, id)
	return nil
}

// ListRecords implements persistence.RecordStore. It scans every record:
// fine for tests, which is all this store is for.
func (s *Store) ListRecords(ctx context.Context, tenant, kind, prefix, after string, limit int) ([]persistence.Record, error) {
	if err := persistence.CheckRecordList(tenant, kind, prefix, after); err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	var keys []string
	for id := range s.records {
		if id.tenant == tenant && id.kind == kind && strings.HasPrefix(id.key, prefix) && id.key > after {
			keys = append(keys, id.key)
		}
	}
	slices.Sort(keys)
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	out := make([]persistence.Record, len(keys))
	for i, key := range keys {
		r := s.records[recordID{tenant, kind, key}]
		out[i] = persistence.Record{Tenant: tenant, Kind: kind, Key: key, Value: cloneNonNil(r.value), Version: r.version}
	}
	return out, nil
}

// DeleteTenantRecords implements persistence.RecordStore.
func (s *Store) DeleteTenantRecords(ctx context.Context, tenant, kind string) error {
	if err := persistence.CheckTenantRecords(tenant, kind); err != nil {
		return fmt.Errorf("delete tenant records: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete tenant records: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	maps.DeleteFunc(s.records, func(id recordID, _ storedRecord) bool {
		return id.tenant == tenant && (kind == "" || id.kind == kind)
	})
	return nil
}

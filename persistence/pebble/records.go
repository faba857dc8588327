package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	pebbledb "github.com/cockroachdb/pebble/v2"

	"github.com/slotd/slotd/persistence"
)

// Records are stored as big-endian version ‖ value under recordKey (see
// keys.go). Writes of one tenant's records hold its recordLock from reading
// the stored version to the synced commit, which makes the version check
// and the write one compare-and-swap; a Pebble directory is locked to one
// process, so nothing else writes in between. Reads take no lock: Pebble
// gives each Get and iterator a consistent view.

// GetRecord implements persistence.RecordStore.
func (s *Store) GetRecord(ctx context.Context, tenant, kind, key string) (persistence.Record, error) {
	if err := persistence.CheckRecord(tenant, kind, key); err != nil {
		return persistence.Record{}, fmt.Errorf("get record: %w", err)
	}
	end, err := s.begin(ctx)
	if err != nil {
		return persistence.Record{}, fmt.Errorf("get record: %w", err)
	}
	defer end()
	value, version, err := s.readRecord(recordKey(tenant, kind, key), true)
	if err != nil {
		return persistence.Record{}, fmt.Errorf("get record %s/%s: %w", tenant, kind, err)
	}
	if version == 0 {
		return persistence.Record{}, fmt.Errorf("get record %s/%s: %w", tenant, kind, persistence.ErrNotFound)
	}
	return persistence.Record{Tenant: tenant, Kind: kind, Key: key, Value: value, Version: version}, nil
}

// readRecord returns the record stored at k (a copy of its value if
// withValue) and its version, 0 if there is none.
func (s *Store) readRecord(k []byte, withValue bool) ([]byte, uint64, error) {
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebbledb.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer closer.Close()
	value, version, err := decodeRecord(v)
	if err != nil {
		return nil, 0, err
	}
	if withValue {
		value = append([]byte{}, value...)
	} else {
		value = nil
	}
	return value, version, nil
}

// decodeRecord splits a stored record into its value (aliasing v) and its
// version.
func decodeRecord(v []byte) ([]byte, uint64, error) {
	if len(v) < 8 {
		return nil, 0, fmt.Errorf("corrupt record: %d bytes", len(v))
	}
	version := binary.BigEndian.Uint64(v)
	if version == 0 {
		return nil, 0, errors.New("corrupt record: version 0")
	}
	return v[8:], version, nil
}

// lockRecords takes tenant's record lock, giving up when ctx is done, and
// returns its release.
func (s *Store) lockRecords(ctx context.Context, tenant string) (func(), error) {
	ts := s.tenant(tenant)
	if err := acquire(ctx, ts.recordLock); err != nil {
		return nil, err
	}
	return func() { release(ts.recordLock) }, nil
}

// PutRecord implements persistence.RecordStore.
func (s *Store) PutRecord(ctx context.Context, tenant, kind, key string, value []byte, expectVersion uint64) (uint64, error) {
	v, err := s.putRecords(ctx, tenant, []persistence.RecordPut{{Kind: kind, Key: key, Value: value, ExpectVersion: expectVersion}}, pebbledb.Sync)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

// PutRecordsDeferred implements persistence.DeferredRecordPutter: one
// batch, committed without an fsync of its own. Journal appends and
// records share Pebble's write-ahead log, which is written in commit order
// and synced up to a commit's position before that commit returns, so a
// later synced write (an Append) makes this one durable as well. One
// commit matters beyond the fsync: Pebble publishes commits in order, so
// even an unsynced one waits for the synced commits before it.
func (s *Store) PutRecordsDeferred(ctx context.Context, tenant string, puts []persistence.RecordPut) ([]uint64, error) {
	return s.putRecords(ctx, tenant, puts, pebbledb.NoSync)
}

// putRecords checks every put's expected version and writes them all in
// one batch, or none, holding the tenant's record lock throughout.
func (s *Store) putRecords(ctx context.Context, tenant string, puts []persistence.RecordPut, durability *pebbledb.WriteOptions) ([]uint64, error) {
	if len(puts) == 0 {
		return nil, fmt.Errorf("put records: none: %w", persistence.ErrInvalid)
	}
	seen := make(map[[2]string]bool, len(puts))
	for _, p := range puts {
		if err := persistence.CheckRecord(tenant, p.Kind, p.Key); err != nil {
			return nil, fmt.Errorf("put record: %w", err)
		}
		if err := persistence.CheckRecordValue(p.Value); err != nil {
			return nil, fmt.Errorf("put record: %w", err)
		}
		if seen[[2]string{p.Kind, p.Key}] {
			return nil, fmt.Errorf("put records %s/%s: the same record twice: %w", tenant, p.Kind, persistence.ErrInvalid)
		}
		seen[[2]string{p.Kind, p.Key}] = true
	}
	end, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("put record: %w", err)
	}
	defer end()
	unlock, err := s.lockRecords(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("put record: %w", err)
	}
	defer unlock()

	b := s.db.NewBatch()
	defer b.Close()
	versions := make([]uint64, len(puts))
	for i, p := range puts {
		k := recordKey(tenant, p.Kind, p.Key)
		var stored uint64
		if !p.Unique || p.ExpectVersion != 0 {
			if _, stored, err = s.readRecord(k, false); err != nil {
				return nil, fmt.Errorf("put record %s/%s: %w", tenant, p.Kind, err)
			}
		}
		if p.ExpectVersion != persistence.AnyVersion && p.ExpectVersion != stored {
			return nil, fmt.Errorf("put record %s/%s at version %d, stored %d: %w", tenant, p.Kind, p.ExpectVersion, stored, persistence.ErrConflict)
		}
		// Versions stay within a bigint, as in the SQL backend.
		if stored >= math.MaxInt64 {
			return nil, fmt.Errorf("put record %s/%s: version overflow: %w", tenant, p.Kind, persistence.ErrInvalid)
		}
		versions[i] = stored + 1
		v := make([]byte, 8, 8+len(p.Value))
		binary.BigEndian.PutUint64(v, versions[i])
		v = append(v, p.Value...)
		if err := b.Set(k, v, nil); err != nil {
			return nil, fmt.Errorf("put record %s/%s: %w", tenant, p.Kind, err)
		}
	}
	if err := b.Commit(durability); err != nil {
		return nil, fmt.Errorf("put records %s: %w", tenant, err)
	}
	return versions, nil
}

// DeleteRecord implements persistence.RecordStore.
func (s *Store) DeleteRecord(ctx context.Context, tenant, kind, key string, expectVersion uint64) error {
	if err := persistence.CheckRecord(tenant, kind, key); err != nil {
		return fmt.Errorf("delete record: %w", err)
	}
	end, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("delete record: %w", err)
	}
	defer end()
	unlock, err := s.lockRecords(ctx, tenant)
	if err != nil {
		return fmt.Errorf("delete record: %w", err)
	}
	defer unlock()

	k := recordKey(tenant, kind, key)
	_, stored, err := s.readRecord(k, false)
	if err != nil {
		return fmt.Errorf("delete record %s/%s: %w", tenant, kind, err)
	}
	if expectVersion != persistence.AnyVersion && expectVersion != stored {
		return fmt.Errorf("delete record %s/%s at version %d, stored %d: %w", tenant, kind, expectVersion, stored, persistence.ErrConflict)
	}
	if stored == 0 {
		return nil // nothing to delete; whatever deleted it was synced
	}
	if err := s.db.Delete(k, pebbledb.Sync); err != nil {
		return fmt.Errorf("delete record %s/%s: %w", tenant, kind, err)
	}
	return nil
}

// ListRecords implements persistence.RecordStore. Keys come back in byte
// order straight from the scan.
func (s *Store) ListRecords(ctx context.Context, tenant, kind, prefix, after string, limit int) ([]persistence.Record, error) {
	if err := persistence.CheckRecordList(tenant, kind, prefix, after); err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	end, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	defer end()

	kindLower, kindUpper := recordBounds(tenant, kind)
	first, last := persistence.RecordBounds(prefix, after)
	lower := append(bytes.Clone(kindLower), first...)
	upper := kindUpper
	if last != "" {
		upper = append(bytes.Clone(kindLower), last...)
	}
	if bytes.Compare(lower, upper) >= 0 {
		return nil, nil
	}
	iter, err := s.db.NewIterWithContext(ctx, &pebbledb.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("list records %s/%s: %w", tenant, kind, err)
	}
	var out []persistence.Record
	for ok := iter.First(); ok && (limit <= 0 || len(out) < limit); ok = iter.Next() {
		if len(out)%256 == 255 {
			if err = ctx.Err(); err != nil {
				break
			}
		}
		var v []byte
		if v, err = iter.ValueAndErr(); err != nil {
			break
		}
		value, version, derr := decodeRecord(v)
		if derr != nil {
			err = derr
			break
		}
		out = append(out, persistence.Record{
			Tenant:  tenant,
			Kind:    kind,
			Key:     string(iter.Key()[len(kindLower):]),
			Value:   append([]byte{}, value...),
			Version: version,
		})
	}
	if err == nil {
		err = iter.Error()
	}
	if cerr := iter.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("list records %s/%s: %w", tenant, kind, err)
	}
	return out, nil
}

// DeleteTenantRecords implements persistence.RecordStore: one range
// deletion, committed with Sync while the tenant's record lock is held.
func (s *Store) DeleteTenantRecords(ctx context.Context, tenant, kind string) error {
	if err := persistence.CheckTenantRecords(tenant, kind); err != nil {
		return fmt.Errorf("delete tenant records: %w", err)
	}
	end, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("delete tenant records: %w", err)
	}
	defer end()
	unlock, err := s.lockRecords(ctx, tenant)
	if err != nil {
		return fmt.Errorf("delete tenant records: %w", err)
	}
	defer unlock()

	lower, upper := recordBounds(tenant, kind)
	if err := s.db.DeleteRange(lower, upper, pebbledb.Sync); err != nil {
		return fmt.Errorf("delete tenant records %s/%s: %w", tenant, kind, err)
	}
	return nil
}

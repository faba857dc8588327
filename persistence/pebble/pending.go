package pebble

import (
	"context"
	"fmt"

	pebbledb "github.com/cockroachdb/pebble/v2"
)

// Pending records. PutRecordsDeferred does not commit: it checks the puts'
// versions and keeps the records in the tenant's pending set, where
// GetRecord finds them at once. The tenant's next Append writes them in its
// own batch, so they cost no commit of their own — no WAL write, and no
// wait behind other tenants' fsyncs in Pebble's commit pipeline — and are
// durable exactly when that Append is. Every other record operation of the
// tenant (PutRecord, DeleteRecord, ListRecords, DeleteTenantRecords) first
// writes them out, so those operations see Pebble alone as before. Close
// writes them out, synced.
//
// A process crash loses what is pending, as it would lose an unsynced
// commit: the records were put for a command whose Append had not returned.

// maxPending bounds one tenant's pending records: past it, PutRecordsDeferred
// writes them out (unsynced) instead of holding more. Only records put for
// commands that were then refused (a rush of new customers) stay pending
// for long.
const maxPending = 256

// lookupTenant returns the tenant's state if it has one, without creating it.
func (s *Store) lookupTenant(tenant string) *tenantState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tenants[tenant]
}

// pendingRecord returns the stored form of tenant's pending record at k.
func (s *Store) pendingRecord(tenant string, k []byte) ([]byte, bool) {
	if s.pendingN.Load() == 0 {
		return nil, false
	}
	ts := s.lookupTenant(tenant)
	if ts == nil {
		return nil, false
	}
	ts.pmu.Lock()
	defer ts.pmu.Unlock()
	v, ok := ts.pending[string(k)]
	return v, ok
}

// hasTooMany reports whether ts holds more pending records than maxPending.
func (s *Store) hasTooMany(ts *tenantState) bool {
	ts.pmu.Lock()
	defer ts.pmu.Unlock()
	return len(ts.pending) > maxPending
}

// hasPending reports whether ts has pending records.
func (s *Store) hasPending(ts *tenantState) bool {
	if s.pendingN.Load() == 0 {
		return false
	}
	ts.pmu.Lock()
	defer ts.pmu.Unlock()
	return len(ts.pending) > 0
}

// addPending adds stored records to ts's pending set. recordLock is held.
func (s *Store) addPending(ts *tenantState, recs map[string][]byte) {
	ts.pmu.Lock()
	defer ts.pmu.Unlock()
	if ts.pending == nil {
		ts.pending = make(map[string][]byte, len(recs))
	}
	added := 0
	for k, v := range recs {
		if _, ok := ts.pending[k]; !ok {
			added++
		}
		ts.pending[k] = v
	}
	s.pendingN.Add(int64(added))
}

// takePending returns ts's pending records, which stay visible until
// dropPending. recordLock is held from here to dropPending, so they cannot
// change in between.
func takePending(ts *tenantState) map[string][]byte {
	ts.pmu.Lock()
	defer ts.pmu.Unlock()
	return ts.pending
}

// dropPending forgets the pending records, once they are in Pebble.
func (s *Store) dropPending(ts *tenantState, written map[string][]byte) {
	if len(written) == 0 {
		return
	}
	ts.pmu.Lock()
	defer ts.pmu.Unlock()
	n := 0
	for k := range written { // written may be ts.pending itself
		if _, ok := ts.pending[k]; ok {
			delete(ts.pending, k)
			n++
		}
	}
	s.pendingN.Add(-int64(n))
}

// setPending adds recs to batch b.
func setPending(b *pebbledb.Batch, recs map[string][]byte) error {
	for k, v := range recs {
		if err := b.Set([]byte(k), v, nil); err != nil {
			return err
		}
	}
	return nil
}

// writePendingLocked writes ts's pending records to Pebble with
// durability. recordLock is held.
func (s *Store) writePendingLocked(ts *tenantState, durability *pebbledb.WriteOptions) error {
	recs := takePending(ts)
	if len(recs) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := setPending(b, recs); err != nil {
		return fmt.Errorf("write pending records: %w", err)
	}
	if err := b.Commit(durability); err != nil {
		return fmt.Errorf("write pending records: %w", err)
	}
	s.dropPending(ts, recs)
	return nil
}

// writePending writes the tenant's pending records out, if it has any,
// before a record operation that reads or writes Pebble directly.
func (s *Store) writePending(ctx context.Context, tenant string) error {
	ts := s.lookupTenant(tenant)
	if ts == nil || !s.hasPending(ts) {
		return nil
	}
	if err := acquire(ctx, ts.recordLock); err != nil {
		return err
	}
	defer release(ts.recordLock)
	return s.writePendingLocked(ts, pebbledb.NoSync)
}

// flushAllPending writes every tenant's pending records, synced. Close calls
// it with no operation in flight.
func (s *Store) flushAllPending() error {
	if s.pendingN.Load() == 0 {
		return nil
	}
	s.mu.Lock()
	tenants := make([]*tenantState, 0, len(s.tenants))
	for _, ts := range s.tenants {
		tenants = append(tenants, ts)
	}
	s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	for _, ts := range tenants {
		if err := setPending(b, takePending(ts)); err != nil {
			return fmt.Errorf("write pending records: %w", err)
		}
	}
	if err := b.Commit(pebbledb.Sync); err != nil {
		return fmt.Errorf("write pending records: %w", err)
	}
	for _, ts := range tenants {
		s.dropPending(ts, takePending(ts))
	}
	return nil
}

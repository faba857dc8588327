package pebble_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/pebble"
	"github.com/slotd/slotd/persistence/storetest"
)

func TestRecords(t *testing.T) {
	var dirs sync.Map // *pebble.Store → its directory
	openIn := func(t *testing.T, dir string) persistence.RecordStore {
		t.Helper()
		s, err := pebble.Open(dir, pebble.Options{})
		if err != nil {
			t.Fatalf("Open(%s) = %v", dir, err)
		}
		dirs.Store(s, dir)
		return s
	}
	storetest.RunRecordsOpener(t, storetest.RecordOpener{
		Open: func(t *testing.T) persistence.RecordStore {
			return openIn(t, t.TempDir())
		},
		Reopen: func(t *testing.T, old persistence.RecordStore) persistence.RecordStore {
			dir, ok := dirs.Load(old)
			if !ok {
				t.Fatalf("Reopen: unknown store %p", old)
			}
			return openIn(t, dir.(string))
		},
	})
}

// TestRecordsBesideJournal: records and the journal of the same tenants
// share one database without seeing each other, and erasing a tenant's
// records leaves its journal alone.
func TestRecordsBesideJournal(t *testing.T) {
	s := MustOpen(t, t.TempDir())
	ctx := t.Context()
	for _, tenant := range []string{"a", "ab", "a-b"} {
		if _, err := s.Append(ctx, tenant, 0, [][]byte{[]byte(tenant + "/event")}); err != nil {
			t.Fatalf("Append(%s) = %v", tenant, err)
		}
		if err := s.PutDirectory(ctx, "tenant", tenant, []byte("dir")); err != nil {
			t.Fatalf("PutDirectory(tenant, %s) = %v", tenant, err)
		}
		if _, err := s.PutRecord(ctx, tenant, "account", "owner", []byte(tenant+"/record"), 0); err != nil {
			t.Fatalf("PutRecord(%s) = %v", tenant, err)
		}
	}
	if err := s.DeleteTenantRecords(ctx, "a", ""); err != nil {
		t.Fatalf("DeleteTenantRecords(a) = %v", err)
	}
	for _, tenant := range []string{"a", "ab", "a-b"} {
		snap, entries, err := s.Load(ctx, tenant)
		if err != nil || snap.Seq != 0 || len(entries) != 1 || string(entries[0].Data) != tenant+"/event" {
			t.Errorf("Load(%s) = {%d}, %v, %v; want its one event", tenant, snap.Seq, entries, err)
		}
		r, err := s.GetRecord(ctx, tenant, "account", "owner")
		if tenant == "a" {
			if err == nil {
				t.Errorf("GetRecord(a) after erasure = %q, want ErrNotFound", r.Value)
			}
			continue
		}
		if err != nil || string(r.Value) != tenant+"/record" {
			t.Errorf("GetRecord(%s) = %q, %v; want %q", tenant, r.Value, err, tenant+"/record")
		}
	}
	keys, err := s.ListDirectory(ctx, "tenant")
	if err != nil || len(keys) != 3 {
		t.Errorf("ListDirectory(tenant) = %q, %v; want 3 keys", keys, err)
	}
}

// TestRecordsPowerLoss: a record write acknowledged before the machine
// loses power survives it (the clone of a crashable in-memory file system
// keeps only what was synced), with its value and version together.
func TestRecordsPowerLoss(t *testing.T) {
	value := func(tenant string, v uint64) []byte { return fmt.Appendf(nil, "%s@%d", tenant, v) }
	for _, unsynced := range []int{0, 50, 100} {
		t.Run(fmt.Sprintf("unsynced=%d%%", unsynced), func(t *testing.T) {
			r, atCrash := powerLoss(t, unsynced, 2, func(s *pebble.Store, tenant string, v uint64) (uint64, error) {
				got, err := s.PutRecord(t.Context(), tenant, "counter", "n", value(tenant, v+1), v)
				if err != nil || got != v+1 {
					return 0, fmt.Errorf("PutRecord(%s, counter, n, %d) = %d, %v; want %d, nil", tenant, v, got, err, v+1)
				}
				return got, nil
			})
			for _, tenant := range crashTenants() {
				rec, err := r.GetRecord(t.Context(), tenant, "counter", "n")
				if err != nil || rec.Version < atCrash[tenant] || string(rec.Value) != string(value(tenant, rec.Version)) {
					t.Fatalf("GetRecord(%s) after power loss = %q v%d, %v; want version >= %d (acknowledged) with its own value",
						tenant, rec.Value, rec.Version, err, atCrash[tenant])
				}
				if got, err := r.PutRecord(t.Context(), tenant, "counter", "n", value(tenant, rec.Version+1), rec.Version); err != nil || got != rec.Version+1 {
					t.Fatalf("PutRecord(%s, %d) after power loss = %d, %v; want %d, nil", tenant, rec.Version, got, err, rec.Version+1)
				}
			}
		})
	}
}

// TestDeferredRecordsDurableWithNextAppend: records put with
// PutRecordsDeferred, then a synced journal Append (the privacy codec's
// customer records, then the booking): after a power loss, every record
// put before an acknowledged Append is there, as that Append is, whatever
// share of unsynced data the crash keeps.
func TestDeferredRecordsDurableWithNextAppend(t *testing.T) {
	var _ persistence.DeferredRecordPutter = (*pebble.Store)(nil)
	kinds := []string{"subject_index", "subject_key"}
	for _, unsynced := range []int{0, 50, 100} {
		t.Run(fmt.Sprintf("unsynced=%d%%", unsynced), func(t *testing.T) {
			r, atCrash := powerLoss(t, unsynced, 3, func(s *pebble.Store, tenant string, head uint64) (uint64, error) {
				n := head + 1
				for _, kind := range kinds {
					put := []persistence.RecordPut{{Kind: kind, Key: fmt.Sprint(n), Value: fmt.Appendf(nil, "%s/%d", kind, n)}}
					if _, err := s.PutRecordsDeferred(t.Context(), tenant, put); err != nil {
						return 0, fmt.Errorf("PutRecordsDeferred(%s, %s, %d) = %v", tenant, kind, n, err)
					}
				}
				got, err := s.Append(t.Context(), tenant, head, [][]byte{crashEvent(tenant, n)})
				if err != nil || got != n {
					return 0, fmt.Errorf("Append(%s, %d) = %d, %v", tenant, head, got, err)
				}
				return got, nil
			})
			for _, tenant := range crashTenants() {
				for n := uint64(1); n <= atCrash[tenant]; n++ {
					for _, kind := range kinds {
						rec, err := r.GetRecord(t.Context(), tenant, kind, fmt.Sprint(n))
						if err != nil || string(rec.Value) != fmt.Sprintf("%s/%d", kind, n) {
							t.Fatalf("after power loss, %s record %d of %s (put before acknowledged append %d) = %q, %v",
								kind, n, tenant, atCrash[tenant], rec.Value, err)
						}
					}
				}
			}
		})
	}
}

// TestPutRecordsDeferredAllOrNothing: several records in one write, each
// with its expected version; one that does not hold writes none.
func TestPutRecordsDeferredAllOrNothing(t *testing.T) {
	s, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if _, err := s.PutRecord(ctx, "t", "subject_key", "taken", []byte("k"), 0); err != nil {
		t.Fatal(err)
	}
	puts := []persistence.RecordPut{
		{Kind: "subject_index", Key: "h1", Value: []byte("s1"), ExpectVersion: 0},
		{Kind: "subject_key", Key: "taken", Value: []byte("k2"), ExpectVersion: 0}, // exists: conflict
	}
	if _, err := s.PutRecordsDeferred(ctx, "t", puts); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("PutRecordsDeferred with one create of an existing record = %v, want ErrConflict", err)
	}
	if _, err := s.GetRecord(ctx, "t", "subject_index", "h1"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("after a refused PutRecordsDeferred, the other record = %v, want not found", err)
	}
	puts[1] = persistence.RecordPut{Kind: "subject_key", Key: "taken", Value: []byte("k2"), ExpectVersion: 1}
	got, err := s.PutRecordsDeferred(ctx, "t", puts)
	if err != nil || len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("PutRecordsDeferred = %v, %v; want versions [1 2]", got, err)
	}
	for _, p := range puts {
		if r, err := s.GetRecord(ctx, "t", p.Kind, p.Key); err != nil || string(r.Value) != string(p.Value) {
			t.Errorf("GetRecord(%s/%s) = %q, %v; want %q", p.Kind, p.Key, r.Value, err, p.Value)
		}
	}
	// A Unique put skips create-only's read: it is written at version 1,
	// beside a create-only put that still conflicts when its record exists.
	uniq := []persistence.RecordPut{
		{Kind: "subject_index", Key: "h2", Value: []byte("s2")},
		{Kind: "subject_key", Key: "s2", Value: []byte("k3"), Unique: true},
	}
	if got, err := s.PutRecordsDeferred(ctx, "t", uniq); err != nil || len(got) != 2 || got[0] != 1 || got[1] != 1 {
		t.Fatalf("PutRecordsDeferred(unique) = %v, %v; want versions [1 1]", got, err)
	}
	if r, err := s.GetRecord(ctx, "t", "subject_key", "s2"); err != nil || string(r.Value) != "k3" || r.Version != 1 {
		t.Fatalf("GetRecord(subject_key/s2) = %+v, %v; want k3 at version 1", r, err)
	}
	uniq[1].Key = "s3"
	if _, err := s.PutRecordsDeferred(ctx, "t", uniq); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("PutRecordsDeferred with an existing create-only record beside a unique one = %v, want ErrConflict", err)
	}
	if _, err := s.GetRecord(ctx, "t", "subject_key", "s3"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("after a refused PutRecordsDeferred, its unique record = %v, want not found", err)
	}
	for name, bad := range map[string][]persistence.RecordPut{
		"none":     nil,
		"twice":    {{Kind: "k", Key: "a"}, {Kind: "k", Key: "a"}},
		"bad kind": {{Kind: "Bad Kind", Key: "a"}},
		"bad key":  {{Kind: "k", Key: ""}},
		"too big":  {{Kind: "k", Key: "a", Value: make([]byte, persistence.MaxRecordValue+1)}},
	} {
		if _, err := s.PutRecordsDeferred(ctx, "t", bad); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("PutRecordsDeferred(%s) = %v, want ErrInvalid", name, err)
		}
	}
}

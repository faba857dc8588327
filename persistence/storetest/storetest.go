// Package storetest is the conformance suite every persistence.Store backend
// passes. It pins down the contract the actors rely on, above all the
// conditional append (the fence between two writers) and tenant isolation,
// so a new backend is correct when its test calls Run or RunOpener and the
// suite is green under -race.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) persistence.Store { return memstore.New() })
//	}
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/slotd/slotd/persistence"
)

// Opener tells the suite how to get stores from a backend.
type Opener struct {
	// Open returns a fresh, empty store. It is called from parallel
	// subtests. The suite closes every store it is given.
	Open func(t *testing.T) persistence.Store
	// Reopen returns a new store on the same data as old, which the suite
	// has already closed. If nil, the durability tests are skipped (an
	// in-memory backend has nothing to reopen).
	Reopen func(t *testing.T, old persistence.Store) persistence.Store
}

// Run runs the suite without the durability tests; open returns a fresh,
// empty store per call.
func Run(t *testing.T, open func(t *testing.T) persistence.Store) {
	RunOpener(t, Opener{Open: open})
}

// RunOpener runs the whole suite, including close-and-reopen durability
// checks when o.Reopen is set.
func RunOpener(t *testing.T, o Opener) {
	if o.Open == nil {
		t.Fatal("storetest: Opener.Open is nil")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, o Opener)
	}{
		{"AppendFromZero", testAppendFromZero},
		{"DenseSeqs", testDenseSeqs},
		{"Conflict", testConflict},
		{"ZeroEventAppend", testZeroEventAppend},
		{"AtomicBatches", testAtomicBatches},
		{"ConcurrentSameTenant", testConcurrentSameTenant},
		{"ConflictRetry", testConflictRetry},
		{"ConcurrentTenants", testConcurrentTenants},
		{"Load", testLoad},
		{"SnapshotBeyondHead", testSnapshotBeyondHead},
		{"ConcurrentSnapshots", testConcurrentSnapshots},
		{"ReadFrom", testReadFrom},
		{"TenantIsolation", testTenantIsolation},
		{"InvalidTenant", testInvalidTenant},
		{"Directory", testDirectory},
		{"DirectoryList", testDirectoryList},
		{"DirectoryInvalid", testDirectoryInvalid},
		{"LargeValues", testLargeValues},
		{"Copies", testCopies},
		{"ContextCanceled", testContextCanceled},
		{"UseAfterClose", testUseAfterClose},
		{"Durability", testDurability},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, o)
		})
	}
}

// open returns a fresh store that is closed when t ends.
func open(t *testing.T, o Opener) persistence.Store {
	t.Helper()
	s := o.Open(t)
	if s == nil {
		t.Fatal("Open returned a nil store")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v, want nil", err)
		}
	})
	return s
}

// event is the deterministic payload of tenant's i-th event.
func event(tenant string, i uint64) []byte {
	return fmt.Appendf(nil, "%s/event-%d", tenant, i)
}

// events returns the payloads of seqs from+1 … from+n.
func events(tenant string, from uint64, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = event(tenant, from+uint64(i)+1)
	}
	return out
}

func snapData(tenant string, seq uint64) []byte {
	return fmt.Appendf(nil, "%s/snapshot-%d", tenant, seq)
}

// mustAppend appends n standard events after head and fails t unless the
// new head is head+n.
func mustAppend(t *testing.T, s persistence.Store, tenant string, head uint64, n int) uint64 {
	t.Helper()
	got, err := s.Append(t.Context(), tenant, head, events(tenant, head, n))
	if want := head + uint64(n); err != nil || got != want {
		t.Fatalf("Append(%q, %d, %d events) = %d, %v; want %d, nil", tenant, head, n, got, err, want)
	}
	return got
}

func mustReadAll(t *testing.T, s persistence.Store, tenant string) []persistence.Entry {
	t.Helper()
	got, err := s.ReadFrom(t.Context(), tenant, 0, 0)
	if err != nil {
		t.Fatalf("ReadFrom(%q, 0, 0) = %v", tenant, err)
	}
	return got
}

// checkJournal fails t unless entries are exactly the standard events of
// tenant with seqs first … last.
func checkJournal(t *testing.T, what, tenant string, entries []persistence.Entry, first, last uint64) {
	t.Helper()
	var want []persistence.Entry
	for seq := first; seq <= last && last > 0; seq++ {
		want = append(want, persistence.Entry{Seq: seq, Data: event(tenant, seq)})
	}
	checkEntries(t, what, entries, want)
}

func checkEntries(t *testing.T, what string, got, want []persistence.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s returned %d entries %s, want %d %s", what, len(got), describe(got), len(want), describe(want))
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("%s entry %d = {%d %.40q}, want {%d %.40q}", what, i, got[i].Seq, got[i].Data, want[i].Seq, want[i].Data)
		}
	}
}

func describe(entries []persistence.Entry) string {
	if len(entries) == 0 {
		return "[]"
	}
	return fmt.Sprintf("[%d…%d]", entries[0].Seq, entries[len(entries)-1].Seq)
}

func testAppendFromZero(t *testing.T, o Opener) {
	s := open(t, o)
	evs := [][]byte{[]byte("first"), []byte("second")}
	got, err := s.Append(t.Context(), "t1", 0, evs)
	if err != nil || got != 2 {
		t.Fatalf("Append(t1, 0, 2 events) = %d, %v; want 2, nil", got, err)
	}
	checkEntries(t, "ReadFrom(t1, 0, 0)", mustReadAll(t, s, "t1"), []persistence.Entry{
		{Seq: 1, Data: []byte("first")},
		{Seq: 2, Data: []byte("second")},
	})
	// An empty event is a valid event.
	got, err = s.Append(t.Context(), "t2", 0, [][]byte{{}})
	if err != nil || got != 1 {
		t.Fatalf("Append(t2, 0, [empty]) = %d, %v; want 1, nil", got, err)
	}
	entries := mustReadAll(t, s, "t2")
	if len(entries) != 1 || entries[0].Seq != 1 || len(entries[0].Data) != 0 {
		t.Fatalf("ReadFrom(t2, 0, 0) = %v, want one empty entry at seq 1", entries)
	}
}

func testDenseSeqs(t *testing.T, o Opener) {
	s := open(t, o)
	var head uint64
	for i, n := range []int{1, 3, 1, 5, 2, 1, 7} {
		t.Run(fmt.Sprintf("batch%d", i), func(t *testing.T) {
			head = mustAppend(t, s, "dense", head, n)
		})
	}
	checkJournal(t, "ReadFrom(dense, 0, 0)", "dense", mustReadAll(t, s, "dense"), 1, 20)
}

func testConflict(t *testing.T, o Opener) {
	s := open(t, o)
	mustAppend(t, s, "c", 0, 3)
	tests := []struct {
		name     string
		tenant   string
		expected uint64
		n        int
	}{
		{"behind", "c", 2, 1},
		{"from zero", "c", 0, 2},
		{"ahead", "c", 4, 1},
		{"far ahead", "c", 100, 3},
		{"max", "c", math.MaxUint64, 1},
		{"behind zero events", "c", 1, 0},
		{"ahead zero events", "c", 5, 0},
		{"empty tenant ahead", "c-empty", 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Append(t.Context(), tt.tenant, tt.expected, events(tt.tenant, tt.expected, tt.n))
			if !errors.Is(err, persistence.ErrConflict) {
				t.Errorf("Append(%q, %d, %d events) = %d, %v; want ErrConflict", tt.tenant, tt.expected, tt.n, got, err)
			}
		})
	}
	checkJournal(t, "ReadFrom(c) after conflicts", "c", mustReadAll(t, s, "c"), 1, 3)
	if got := mustReadAll(t, s, "c-empty"); len(got) != 0 {
		t.Errorf("ReadFrom(c-empty) after conflict = %v, want none", got)
	}
	mustAppend(t, s, "c", 3, 1) // the head really is 3
}

func testZeroEventAppend(t *testing.T, o Opener) {
	s := open(t, o)
	steps := []struct {
		name     string
		expected uint64
		n        int // events to append; 0 checks the head only
		nilSlice bool
		wantHead uint64
		wantErr  error
	}{
		{"empty journal nil", 0, 0, true, 0, nil},
		{"empty journal empty slice", 0, 0, false, 0, nil},
		{"empty journal wrong head", 1, 0, true, 0, persistence.ErrConflict},
		{"append two", 0, 2, false, 2, nil},
		{"head matches", 2, 0, true, 2, nil},
		{"head behind", 1, 0, true, 0, persistence.ErrConflict},
		{"head ahead", 3, 0, false, 0, persistence.ErrConflict},
		{"append one more", 2, 1, false, 3, nil},
		{"new head matches", 3, 0, false, 3, nil},
	}
	for _, st := range steps {
		evs := events("z", st.expected, st.n)
		if st.nilSlice {
			evs = nil
		}
		got, err := s.Append(t.Context(), "z", st.expected, evs)
		if st.wantErr != nil {
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("%s: Append(z, %d, %d events) = %d, %v; want %v", st.name, st.expected, st.n, got, err, st.wantErr)
			}
			continue
		}
		if err != nil || got != st.wantHead {
			t.Fatalf("%s: Append(z, %d, %d events) = %d, %v; want %d, nil", st.name, st.expected, st.n, got, err, st.wantHead)
		}
	}
	checkJournal(t, "ReadFrom(z, 0, 0)", "z", mustReadAll(t, s, "z"), 1, 3)
}

// testAtomicBatches checks that readers see a batch entirely or not at all.
func testAtomicBatches(t *testing.T, o Opener) {
	s := open(t, o)
	const batches, size = 30, 4
	done := make(chan error, 1)
	go func() {
		var head uint64
		for range batches {
			got, err := s.Append(context.Background(), "atomic", head, events("atomic", head, size))
			if err != nil {
				done <- fmt.Errorf("Append(atomic, %d) = %v", head, err)
				return
			}
			head = got
		}
		done <- nil
	}()
	var writerErr error
	writerDone := false
	for {
		entries, err := s.ReadFrom(t.Context(), "atomic", 0, 0)
		if err != nil {
			t.Fatalf("ReadFrom(atomic, 0, 0) = %v", err)
		}
		if len(entries)%size != 0 {
			t.Fatalf("ReadFrom(atomic, 0, 0) saw %d entries, want a multiple of %d (torn batch)", len(entries), size)
		}
		_, loaded, err := s.Load(t.Context(), "atomic")
		if err != nil {
			t.Fatalf("Load(atomic) = %v", err)
		}
		if len(loaded)%size != 0 {
			t.Fatalf("Load(atomic) saw %d entries, want a multiple of %d (torn batch)", len(loaded), size)
		}
		if writerDone {
			break
		}
		select {
		case writerErr = <-done:
			writerDone = true // one more read after the last batch
		default:
		}
	}
	if writerErr != nil {
		t.Fatal(writerErr)
	}
	checkJournal(t, "ReadFrom(atomic, 0, 0)", "atomic", mustReadAll(t, s, "atomic"), 1, batches*size)
}

// testConcurrentSameTenant races many writers with the same expectedSeq:
// exactly one may win each round.
func testConcurrentSameTenant(t *testing.T, o Opener) {
	s := open(t, o)
	const rounds, writers = 5, 16
	var head uint64
	for round := range rounds {
		start := make(chan struct{})
		errs := make([]error, writers)
		heads := make([]uint64, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				payload := [][]byte{
					fmt.Appendf(nil, "r%d-w%d-0", round, w),
					fmt.Appendf(nil, "r%d-w%d-1", round, w),
				}
				<-start
				heads[w], errs[w] = s.Append(context.Background(), "race", head, payload)
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for w, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: writers %d and %d both won Append(race, %d)", round, winner, w, head)
				}
				if heads[w] != head+2 {
					t.Fatalf("round %d: Append(race, %d) = %d, want %d", round, head, heads[w], head+2)
				}
				winner = w
			case !errors.Is(err, persistence.ErrConflict):
				t.Fatalf("round %d: Append(race, %d) = %v, want nil or ErrConflict", round, head, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer won Append(race, %d)", round, head)
		}
		got, err := s.ReadFrom(t.Context(), "race", head, 0)
		if err != nil {
			t.Fatalf("ReadFrom(race, %d, 0) = %v", head, err)
		}
		checkEntries(t, fmt.Sprintf("round %d: ReadFrom(race, %d, 0)", round, head), got, []persistence.Entry{
			{Seq: head + 1, Data: fmt.Appendf(nil, "r%d-w%d-0", round, winner)},
			{Seq: head + 2, Data: fmt.Appendf(nil, "r%d-w%d-1", round, winner)},
		})
		head += 2
	}
}

// testConflictRetry runs the reload-and-retry loop an actor runs after a
// conflict: every payload must land exactly once and the journal stay dense.
func testConflictRetry(t *testing.T, o Opener) {
	s := open(t, o)
	const writers, perWriter = 8, 10
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			var head uint64
			for i := 0; i < perWriter; {
				payload := fmt.Appendf(nil, "w%d-%d", w, i)
				got, err := s.Append(context.Background(), "retry", head, [][]byte{payload})
				switch {
				case err == nil:
					head = got
					i++
				case errors.Is(err, persistence.ErrConflict):
					tail, err := s.ReadFrom(context.Background(), "retry", head, 0)
					if err != nil {
						errc <- fmt.Errorf("ReadFrom(retry, %d, 0) = %v", head, err)
						return
					}
					if len(tail) == 0 {
						errc <- fmt.Errorf("Append(retry, %d) conflicted but ReadFrom(retry, %d, 0) is empty", head, head)
						return
					}
					head = tail[len(tail)-1].Seq
				default:
					errc <- fmt.Errorf("Append(retry, %d) = %v, want nil or ErrConflict", head, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	entries := mustReadAll(t, s, "retry")
	if len(entries) != writers*perWriter {
		t.Fatalf("ReadFrom(retry, 0, 0) returned %d entries, want %d", len(entries), writers*perWriter)
	}
	seen := make(map[string]bool)
	next := make([]int, writers)
	for i, e := range entries {
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has Seq %d, want %d", i, e.Seq, i+1)
		}
		if seen[string(e.Data)] {
			t.Fatalf("payload %q stored twice", e.Data)
		}
		seen[string(e.Data)] = true
		var w, n int
		if _, err := fmt.Sscanf(string(e.Data), "w%d-%d", &w, &n); err != nil || w < 0 || w >= writers {
			t.Fatalf("entry %d has unexpected payload %q", e.Seq, e.Data)
		}
		if n != next[w] {
			t.Fatalf("writer %d: entry %d is its event %d, want %d (order lost)", w, e.Seq, n, next[w])
		}
		next[w]++
	}
}

func testConcurrentTenants(t *testing.T, o Opener) {
	s := open(t, o)
	const tenants, appends = 16, 10
	var wg sync.WaitGroup
	errc := make(chan error, tenants)
	for i := range tenants {
		wg.Go(func() {
			tenant := fmt.Sprintf("tenant-%02d", i)
			var head uint64
			for j := range appends {
				n := 1 + j%2
				got, err := s.Append(context.Background(), tenant, head, events(tenant, head, n))
				if err != nil || got != head+uint64(n) {
					errc <- fmt.Errorf("Append(%q, %d, %d events) = %d, %v; want %d, nil", tenant, head, n, got, err, head+uint64(n))
					return
				}
				head = got
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for i := range tenants {
		tenant := fmt.Sprintf("tenant-%02d", i)
		checkJournal(t, "ReadFrom("+tenant+")", tenant, mustReadAll(t, s, tenant), 1, 15)
	}
}

func testLoad(t *testing.T, o Opener) {
	tests := []struct {
		name     string
		before   int      // events appended before the snapshots
		snaps    []uint64 // snapshots saved in this order
		after    int      // events appended after the snapshots
		wantSnap uint64
	}{
		{"unknown tenant", 0, nil, 0, 0},
		{"journal only", 5, nil, 0, 0},
		{"snapshot mid journal", 5, []uint64{3}, 0, 3},
		{"snapshot at head", 5, []uint64{5}, 0, 5},
		{"newer snapshot replaces", 5, []uint64{2, 4}, 0, 4},
		{"older snapshot ignored", 5, []uint64{4, 2}, 0, 4},
		{"same snapshot again", 5, []uint64{3, 3}, 0, 3},
		{"appends after snapshot", 3, []uint64{3}, 4, 3},
		{"snapshot only", 2, []uint64{2}, 0, 2},
	}
	s := open(t, o)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenant := fmt.Sprintf("load-%d", i)
			head := uint64(0)
			if tt.before > 0 {
				head = mustAppend(t, s, tenant, 0, tt.before)
			}
			for _, seq := range tt.snaps {
				if err := s.SaveSnapshot(t.Context(), tenant, persistence.Snapshot{Seq: seq, Data: snapData(tenant, seq)}); err != nil {
					t.Fatalf("SaveSnapshot(%q, %d) = %v, want nil", tenant, seq, err)
				}
			}
			if tt.after > 0 {
				head = mustAppend(t, s, tenant, head, tt.after)
			}
			snap, entries, err := s.Load(t.Context(), tenant)
			if err != nil {
				t.Fatalf("Load(%q) = %v", tenant, err)
			}
			var wantData []byte
			if tt.wantSnap > 0 {
				wantData = snapData(tenant, tt.wantSnap)
			}
			if snap.Seq != tt.wantSnap || !bytes.Equal(snap.Data, wantData) {
				t.Errorf("Load(%q) snapshot = {%d %q}, want {%d %q}", tenant, snap.Seq, snap.Data, tt.wantSnap, wantData)
			}
			if tt.wantSnap == 0 && snap.Data != nil {
				t.Errorf("Load(%q) without snapshot has Data %q, want nil", tenant, snap.Data)
			}
			checkJournal(t, fmt.Sprintf("Load(%q)", tenant), tenant, entries, tt.wantSnap+1, head)
		})
	}
}

func testSnapshotBeyondHead(t *testing.T, o Opener) {
	s := open(t, o)
	mustAppend(t, s, "beyond", 0, 3)
	if err := s.SaveSnapshot(t.Context(), "beyond", persistence.Snapshot{Seq: 2, Data: snapData("beyond", 2)}); err != nil {
		t.Fatalf("SaveSnapshot(beyond, 2) = %v, want nil", err)
	}
	tests := []struct {
		name   string
		tenant string
		seq    uint64
	}{
		{"empty journal", "beyond-empty", 1},
		{"one past head", "beyond", 4},
		{"far past head", "beyond", 1000},
		{"max", "beyond", math.MaxUint64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.SaveSnapshot(t.Context(), tt.tenant, persistence.Snapshot{Seq: tt.seq, Data: []byte("bad")})
			if !errors.Is(err, persistence.ErrInvalid) {
				t.Errorf("SaveSnapshot(%q, %d) = %v, want ErrInvalid", tt.tenant, tt.seq, err)
			}
		})
	}
	snap, entries, err := s.Load(t.Context(), "beyond")
	if err != nil || snap.Seq != 2 || !bytes.Equal(snap.Data, snapData("beyond", 2)) {
		t.Fatalf("Load(beyond) = {%d %q}, %v; want {2 %q}, nil", snap.Seq, snap.Data, err, snapData("beyond", 2))
	}
	checkJournal(t, "Load(beyond)", "beyond", entries, 3, 3)
	snap, entries, err = s.Load(t.Context(), "beyond-empty")
	if err != nil || snap.Seq != 0 || snap.Data != nil || len(entries) != 0 {
		t.Fatalf("Load(beyond-empty) = {%d %q}, %d entries, %v; want empty", snap.Seq, snap.Data, len(entries), err)
	}
}

// testConcurrentSnapshots saves snapshots concurrently: the newest must win.
func testConcurrentSnapshots(t *testing.T, o Opener) {
	s := open(t, o)
	const n = 16
	mustAppend(t, s, "snaps", 0, n)
	var wg sync.WaitGroup
	errs := make([]error, n+1)
	for seq := uint64(1); seq <= n; seq++ {
		wg.Go(func() {
			errs[seq] = s.SaveSnapshot(context.Background(), "snaps", persistence.Snapshot{Seq: seq, Data: snapData("snaps", seq)})
		})
	}
	wg.Wait()
	for seq, err := range errs {
		if err != nil {
			t.Errorf("SaveSnapshot(snaps, %d) = %v, want nil", seq, err)
		}
	}
	snap, entries, err := s.Load(t.Context(), "snaps")
	if err != nil || snap.Seq != n || !bytes.Equal(snap.Data, snapData("snaps", n)) || len(entries) != 0 {
		t.Fatalf("Load(snaps) = {%d %q}, %d entries, %v; want {%d %q}, 0 entries, nil", snap.Seq, snap.Data, len(entries), err, n, snapData("snaps", n))
	}
}

func testReadFrom(t *testing.T, o Opener) {
	s := open(t, o)
	mustAppend(t, s, "rf", 0, 10)
	// A snapshot must not hide journal entries from ReadFrom.
	if err := s.SaveSnapshot(t.Context(), "rf", persistence.Snapshot{Seq: 6, Data: []byte("s")}); err != nil {
		t.Fatalf("SaveSnapshot(rf, 6) = %v", err)
	}
	tests := []struct {
		after       uint64
		limit       int
		first, last uint64 // last 0: none
	}{
		{0, 0, 1, 10},
		{0, -1, 1, 10},
		{0, 3, 1, 3},
		{3, 0, 4, 10},
		{3, 4, 4, 7},
		{8, 100, 9, 10},
		{9, 5, 10, 10},
		{0, 1, 1, 1},
		{10, 0, 0, 0},
		{11, 0, 0, 0},
		{math.MaxUint64, 0, 0, 0},
		{math.MaxUint64 - 1, 1, 0, 0},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("after=%d,limit=%d", tt.after, tt.limit)
		t.Run(name, func(t *testing.T) {
			got, err := s.ReadFrom(t.Context(), "rf", tt.after, tt.limit)
			if err != nil {
				t.Fatalf("ReadFrom(rf, %d, %d) = %v", tt.after, tt.limit, err)
			}
			checkJournal(t, fmt.Sprintf("ReadFrom(rf, %d, %d)", tt.after, tt.limit), "rf", got, tt.first, tt.last)
		})
	}
	got, err := s.ReadFrom(t.Context(), "rf-unknown", 0, 0)
	if err != nil || len(got) != 0 {
		t.Fatalf("ReadFrom(rf-unknown, 0, 0) = %v, %v; want none, nil", got, err)
	}
}

// testTenantIsolation uses ids that are prefixes of each other, the classic
// way a key layout leaks one tenant's rows into another's scan.
func testTenantIsolation(t *testing.T, o Opener) {
	s := open(t, o)
	tenants := []string{"a", "ab", "a-b", "a-", "a0", "aa", "b", "a-b-c", "a1"}
	heads := make(map[string]uint64)
	// Interleave appends so every tenant's keys sit next to the others'.
	for round := range 4 {
		for i, tenant := range tenants {
			if round > i%4 {
				continue
			}
			n := 1 + (i+round)%3
			heads[tenant] = mustAppend(t, s, tenant, heads[tenant], n)
		}
	}
	snaps := make(map[string]uint64) // every other tenant gets a snapshot
	for i, tenant := range tenants {
		if seq := heads[tenant] - 1; i%2 == 1 && seq > 0 {
			if err := s.SaveSnapshot(t.Context(), tenant, persistence.Snapshot{Seq: seq, Data: snapData(tenant, seq)}); err != nil {
				t.Fatalf("SaveSnapshot(%q, %d) = %v", tenant, seq, err)
			}
			snaps[tenant] = seq
		}
	}
	for _, tenant := range tenants {
		t.Run(tenant, func(t *testing.T) {
			checkJournal(t, fmt.Sprintf("ReadFrom(%q, 0, 0)", tenant), tenant, mustReadAll(t, s, tenant), 1, heads[tenant])
			snap, entries, err := s.Load(t.Context(), tenant)
			if err != nil {
				t.Fatalf("Load(%q) = %v", tenant, err)
			}
			wantSeq := snaps[tenant]
			var wantData []byte
			if wantSeq > 0 {
				wantData = snapData(tenant, wantSeq)
			}
			if snap.Seq != wantSeq || !bytes.Equal(snap.Data, wantData) {
				t.Errorf("Load(%q) snapshot = {%d %q}, want {%d %q}", tenant, snap.Seq, snap.Data, wantSeq, wantData)
			}
			checkJournal(t, fmt.Sprintf("Load(%q)", tenant), tenant, entries, wantSeq+1, heads[tenant])
			// Each head is its own: every other tenant's head conflicts.
			for _, other := range tenants {
				if heads[other] == heads[tenant] {
					continue
				}
				if _, err := s.Append(t.Context(), tenant, heads[other], nil); !errors.Is(err, persistence.ErrConflict) {
					t.Errorf("Append(%q, %d (head of %q), nil) = %v, want ErrConflict", tenant, heads[other], other, err)
				}
			}
			if got, err := s.Append(t.Context(), tenant, heads[tenant], nil); err != nil || got != heads[tenant] {
				t.Errorf("Append(%q, %d, nil) = %d, %v; want %d, nil", tenant, heads[tenant], got, err, heads[tenant])
			}
		})
	}
}

func testInvalidTenant(t *testing.T, o Opener) {
	s := open(t, o)
	invalid := []string{"", "A", "Ab", "-a", "a_b", "a b", "a/b", "a.b", "a\x00", "a\x00b", "ä", "a\xff", strings.Repeat("a", 64)}
	for _, id := range invalid {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			ctx := t.Context()
			if _, err := s.Append(ctx, id, 0, [][]byte{[]byte("x")}); !errors.Is(err, persistence.ErrInvalid) {
				t.Errorf("Append(%q) = %v, want ErrInvalid", id, err)
			}
			if _, err := s.Append(ctx, id, 0, nil); !errors.Is(err, persistence.ErrInvalid) {
				t.Errorf("Append(%q, nil) = %v, want ErrInvalid", id, err)
			}
			if _, _, err := s.Load(ctx, id); !errors.Is(err, persistence.ErrInvalid) {
				t.Errorf("Load(%q) = %v, want ErrInvalid", id, err)
			}
			if _, err := s.ReadFrom(ctx, id, 0, 0); !errors.Is(err, persistence.ErrInvalid) {
				t.Errorf("ReadFrom(%q) = %v, want ErrInvalid", id, err)
			}
			if err := s.SaveSnapshot(ctx, id, persistence.Snapshot{}); !errors.Is(err, persistence.ErrInvalid) {
				t.Errorf("SaveSnapshot(%q) = %v, want ErrInvalid", id, err)
			}
		})
	}
	for _, id := range []string{"0", "a-", "9-9", strings.Repeat("z", 63)} {
		t.Run("valid "+id, func(t *testing.T) {
			mustAppend(t, s, id, 0, 1)
			checkJournal(t, "ReadFrom", id, mustReadAll(t, s, id), 1, 1)
		})
	}
}

func testDirectory(t *testing.T, o Opener) {
	s := open(t, o)
	ctx := t.Context()
	get := func(kind, key string) ([]byte, error) {
		t.Helper()
		return s.GetDirectory(ctx, kind, key)
	}
	if v, err := get("tenant", "acme"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("GetDirectory(tenant, acme) on empty store = %q, %v; want ErrNotFound", v, err)
	}
	steps := []struct {
		name  string
		op    string // put, delete
		kind  string
		key   string
		value string
	}{
		{"put", "put", "tenant", "acme", "v1"},
		{"put other kind same key", "put", "link", "acme", "link-v1"},
		{"overwrite", "put", "tenant", "acme", "v2"},
		{"put empty value", "put", "tenant", "empty", ""},
		{"delete missing", "delete", "tenant", "missing", ""},
		{"delete", "delete", "link", "acme", ""},
		{"delete again", "delete", "link", "acme", ""},
		{"put after delete", "put", "link", "acme", "link-v2"},
	}
	want := map[[2]string]string{}
	for _, st := range steps {
		k := [2]string{st.kind, st.key}
		switch st.op {
		case "put":
			if err := s.PutDirectory(ctx, st.kind, st.key, []byte(st.value)); err != nil {
				t.Fatalf("%s: PutDirectory(%s, %q) = %v, want nil", st.name, st.kind, st.key, err)
			}
			want[k] = st.value
		case "delete":
			if err := s.DeleteDirectory(ctx, st.kind, st.key); err != nil {
				t.Fatalf("%s: DeleteDirectory(%s, %q) = %v, want nil", st.name, st.kind, st.key, err)
			}
			delete(want, k)
		}
		for _, kind := range []string{"tenant", "link"} {
			for _, key := range []string{"acme", "empty", "missing"} {
				v, err := get(kind, key)
				w, ok := want[[2]string{kind, key}]
				if !ok {
					if !errors.Is(err, persistence.ErrNotFound) {
						t.Fatalf("%s: GetDirectory(%s, %q) = %q, %v; want ErrNotFound", st.name, kind, key, v, err)
					}
					continue
				}
				if err != nil || string(v) != w {
					t.Fatalf("%s: GetDirectory(%s, %q) = %q, %v; want %q, nil", st.name, kind, key, v, err, w)
				}
			}
		}
	}
}

func testDirectoryList(t *testing.T, o Opener) {
	s := open(t, o)
	ctx := t.Context()
	if keys, err := s.ListDirectory(ctx, "link"); err != nil || len(keys) != 0 {
		t.Fatalf("ListDirectory(link) on empty store = %q, %v; want none, nil", keys, err)
	}
	// Kinds that are prefixes of each other, keys in every byte range.
	put := map[string][]string{
		"link":   {"b", "a", "a\xff", "a/b", "A", "ab", " ", "\x01", "a", "z\x7f", strings.Repeat("k", 256)},
		"links":  {"a", "c"},
		"lin":    {"k"},
		"link_2": {"a"},
		"l":      {"inka"},
	}
	for kind, keys := range put {
		for _, key := range keys {
			if err := s.PutDirectory(ctx, kind, key, []byte(kind+"="+key)); err != nil {
				t.Fatalf("PutDirectory(%s, %q) = %v", kind, key, err)
			}
		}
	}
	if err := s.DeleteDirectory(ctx, "link", "ab"); err != nil {
		t.Fatalf("DeleteDirectory(link, ab) = %v", err)
	}
	for kind, keys := range put {
		t.Run(kind, func(t *testing.T) {
			want := slices.Clone(keys)
			if kind == "link" {
				want = slices.DeleteFunc(want, func(k string) bool { return k == "ab" })
			}
			slices.Sort(want)
			want = slices.Compact(want)
			got, err := s.ListDirectory(ctx, kind)
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("ListDirectory(%s) = %q, %v; want %q, nil", kind, got, err, want)
			}
			for _, key := range got {
				v, err := s.GetDirectory(ctx, kind, key)
				if err != nil || string(v) != kind+"="+key {
					t.Errorf("GetDirectory(%s, %q) = %q, %v; want %q", kind, key, v, err, kind+"="+key)
				}
			}
		})
	}
}

func testDirectoryInvalid(t *testing.T, o Opener) {
	s := open(t, o)
	ctx := t.Context()
	tests := []struct{ kind, key string }{
		{"", "k"},
		{"Link", "k"},
		{"1link", "k"},
		{"li-nk", "k"},
		{"li\x00nk", "k"},
		{strings.Repeat("a", 33), "k"},
		{"link", ""},
		{"link", "a\x00b"},
		{"link", "\x00"},
		{"link", strings.Repeat("k", 257)},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q/%.20q", tt.kind, tt.key), func(t *testing.T) {
			if err := s.PutDirectory(ctx, tt.kind, tt.key, []byte("v")); !errors.Is(err, persistence.ErrInvalid) {
				t.Errorf("PutDirectory(%q, %q) = %v, want ErrInvalid", tt.kind, tt.key, err)
			}
			if _, err := s.GetDirectory(ctx, tt.kind, tt.key); !errors.Is(err, persistence.ErrInvalid) {
				t.Errorf("GetDirectory(%q, %q) = %v, want ErrInvalid", tt.kind, tt.key, err)
			}
			if err := s.DeleteDirectory(ctx, tt.kind, tt.key); !errors.Is(err, persistence.ErrInvalid) {
				t.Errorf("DeleteDirectory(%q, %q) = %v, want ErrInvalid", tt.kind, tt.key, err)
			}
			if persistence.CheckKind(tt.kind) != nil {
				if _, err := s.ListDirectory(ctx, tt.kind); !errors.Is(err, persistence.ErrInvalid) {
					t.Errorf("ListDirectory(%q) = %v, want ErrInvalid", tt.kind, err)
				}
			}
		})
	}
	// The longest valid kind and key work.
	kind, key := "k"+strings.Repeat("_", 31), strings.Repeat("\xff", 256)
	if err := s.PutDirectory(ctx, kind, key, []byte("v")); err != nil {
		t.Fatalf("PutDirectory(%q, 256×0xff) = %v, want nil", kind, err)
	}
	if keys, err := s.ListDirectory(ctx, kind); err != nil || !slices.Equal(keys, []string{key}) {
		t.Fatalf("ListDirectory(%q) = %d keys, %v; want the one key", kind, len(keys), err)
	}
}

func testLargeValues(t *testing.T, o Opener) {
	s := open(t, o)
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	evs := [][]byte{[]byte("small"), big, {0}}
	if got, err := s.Append(ctx, "large", 0, evs); err != nil || got != 3 {
		t.Fatalf("Append(large, 0, [small, 1 MiB, 1 byte]) = %d, %v; want 3, nil", got, err)
	}
	want := []persistence.Entry{{Seq: 1, Data: evs[0]}, {Seq: 2, Data: big}, {Seq: 3, Data: evs[2]}}
	checkEntries(t, "ReadFrom(large, 0, 0)", mustReadAll(t, s, "large"), want)
	if err := s.SaveSnapshot(ctx, "large", persistence.Snapshot{Seq: 2, Data: big}); err != nil {
		t.Fatalf("SaveSnapshot(large, 2, 1 MiB) = %v", err)
	}
	snap, entries, err := s.Load(ctx, "large")
	if err != nil || snap.Seq != 2 || !bytes.Equal(snap.Data, big) {
		t.Fatalf("Load(large) = snapshot %d (%d bytes), %v; want 2 (1 MiB), nil", snap.Seq, len(snap.Data), err)
	}
	checkEntries(t, "Load(large)", entries, want[2:])
	value := big[:64<<10]
	if err := s.PutDirectory(ctx, "blob", "k", value); err != nil {
		t.Fatalf("PutDirectory(blob, k, 64 KiB) = %v", err)
	}
	if got, err := s.GetDirectory(ctx, "blob", "k"); err != nil || !bytes.Equal(got, value) {
		t.Fatalf("GetDirectory(blob, k) = %d bytes, %v; want 64 KiB, nil", len(got), err)
	}
}

// testCopies checks that the store neither keeps nor hands out caller-owned
// buffers.
func testCopies(t *testing.T, o Opener) {
	s := open(t, o)
	ctx := t.Context()
	ev := []byte("original")
	if _, err := s.Append(ctx, "copy", 0, [][]byte{ev}); err != nil {
		t.Fatalf("Append(copy) = %v", err)
	}
	copy(ev, "CLOBBER!")
	snap := []byte("snapshot")
	if err := s.SaveSnapshot(ctx, "copy", persistence.Snapshot{Seq: 1, Data: snap}); err != nil {
		t.Fatalf("SaveSnapshot(copy) = %v", err)
	}
	copy(snap, "CLOBBER!")
	val := []byte("value")
	if err := s.PutDirectory(ctx, "kind", "key", val); err != nil {
		t.Fatalf("PutDirectory = %v", err)
	}
	copy(val, "XXXXX")

	for range 2 { // the second pass sees what the first pass scribbled on
		entries := mustReadAll(t, s, "copy")
		if len(entries) != 1 || string(entries[0].Data) != "original" {
			t.Fatalf("ReadFrom(copy) = %v, want [original]", entries)
		}
		clear(entries[0].Data)
		got, _, err := s.Load(ctx, "copy")
		if err != nil || string(got.Data) != "snapshot" {
			t.Fatalf("Load(copy) snapshot = %q, %v; want %q", got.Data, err, "snapshot")
		}
		clear(got.Data)
		v, err := s.GetDirectory(ctx, "kind", "key")
		if err != nil || string(v) != "value" {
			t.Fatalf("GetDirectory(kind, key) = %q, %v; want %q", v, err, "value")
		}
		clear(v)
	}
}

func testContextCanceled(t *testing.T, o Opener) {
	s := open(t, o)
	mustAppend(t, s, "ctx", 0, 1)
	if err := s.PutDirectory(t.Context(), "kind", "key", []byte("v")); err != nil {
		t.Fatalf("PutDirectory = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	checks := []struct {
		name string
		call func() error
	}{
		{"Append", func() error { _, err := s.Append(ctx, "ctx", 1, events("ctx", 1, 1)); return err }},
		{"Append new tenant", func() error { _, err := s.Append(ctx, "ctx-new", 0, events("ctx-new", 0, 1)); return err }},
		{"Load", func() error { _, _, err := s.Load(ctx, "ctx"); return err }},
		{"ReadFrom", func() error { _, err := s.ReadFrom(ctx, "ctx", 0, 0); return err }},
		{"SaveSnapshot", func() error { return s.SaveSnapshot(ctx, "ctx", persistence.Snapshot{Seq: 1}) }},
		{"PutDirectory", func() error { return s.PutDirectory(ctx, "kind", "key", []byte("changed")) }},
		{"GetDirectory", func() error { _, err := s.GetDirectory(ctx, "kind", "key"); return err }},
		{"DeleteDirectory", func() error { return s.DeleteDirectory(ctx, "kind", "key") }},
		{"ListDirectory", func() error { _, err := s.ListDirectory(ctx, "kind"); return err }},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s(canceled ctx) = %v, want context.Canceled", c.name, err)
			}
		})
	}
	// Nothing was written.
	snap, entries, err := s.Load(t.Context(), "ctx")
	if err != nil || snap.Seq != 0 {
		t.Fatalf("Load(ctx) = snapshot %d, %v; want 0, nil", snap.Seq, err)
	}
	checkJournal(t, "Load(ctx)", "ctx", entries, 1, 1)
	if got := mustReadAll(t, s, "ctx-new"); len(got) != 0 {
		t.Fatalf("ReadFrom(ctx-new) = %v, want none", got)
	}
	if v, err := s.GetDirectory(t.Context(), "kind", "key"); err != nil || string(v) != "v" {
		t.Fatalf("GetDirectory(kind, key) = %q, %v; want %q, nil", v, err, "v")
	}
}

func testUseAfterClose(t *testing.T, o Opener) {
	s := o.Open(t)
	if s == nil {
		t.Fatal("Open returned a nil store")
	}
	mustAppend(t, s, "closed", 0, 1)
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	ctx := t.Context()
	if _, err := s.Append(ctx, "closed", 1, events("closed", 1, 1)); err == nil {
		t.Errorf("Append after Close = nil error, want an error")
	}
	if _, _, err := s.Load(ctx, "closed"); err == nil {
		t.Errorf("Load after Close = nil error, want an error")
	}
	if _, err := s.ReadFrom(ctx, "closed", 0, 0); err == nil {
		t.Errorf("ReadFrom after Close = nil error, want an error")
	}
	if err := s.PutDirectory(ctx, "kind", "key", nil); err == nil {
		t.Errorf("PutDirectory after Close = nil error, want an error")
	}
}

// testDurability closes the store and reopens it on the same data: journal,
// heads, snapshots and the directory must all come back.
func testDurability(t *testing.T, o Opener) {
	if o.Reopen == nil {
		t.Skip("backend has no Reopen: nothing outlives Close")
	}
	cur := o.Open(t)
	if cur == nil {
		t.Fatal("Open returned a nil store")
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			if err := cur.Close(); err != nil {
				t.Errorf("Close() = %v, want nil", err)
			}
		}
	})
	reopen := func() {
		t.Helper()
		closed = true
		if err := cur.Close(); err != nil {
			t.Fatalf("Close() = %v, want nil", err)
		}
		cur = o.Reopen(t, cur)
		if cur == nil {
			t.Fatal("Reopen returned a nil store")
		}
		closed = false
	}
	ctx := t.Context()
	heads := map[string]uint64{"a": 3, "ab": 5, "a-b": 1}
	for tenant, n := range heads {
		mustAppend(t, cur, tenant, 0, int(n))
	}
	if err := cur.SaveSnapshot(ctx, "ab", persistence.Snapshot{Seq: 4, Data: snapData("ab", 4)}); err != nil {
		t.Fatalf("SaveSnapshot(ab, 4) = %v", err)
	}
	for _, key := range []string{"x", "y", "z"} {
		if err := cur.PutDirectory(ctx, "tenant", key, []byte("v-"+key)); err != nil {
			t.Fatalf("PutDirectory(tenant, %s) = %v", key, err)
		}
	}

	reopen()
	check := func(when string) {
		t.Helper()
		for tenant, head := range heads {
			checkJournal(t, fmt.Sprintf("%s: ReadFrom(%q)", when, tenant), tenant, mustReadAll(t, cur, tenant), 1, head)
		}
		snap, entries, err := cur.Load(ctx, "ab")
		if err != nil || snap.Seq != 4 || !bytes.Equal(snap.Data, snapData("ab", 4)) {
			t.Fatalf("%s: Load(ab) = {%d %q}, %v; want {4 %q}, nil", when, snap.Seq, snap.Data, err, snapData("ab", 4))
		}
		checkJournal(t, when+": Load(ab)", "ab", entries, 5, heads["ab"])
	}
	check("after reopen")
	if keys, err := cur.ListDirectory(ctx, "tenant"); err != nil || !slices.Equal(keys, []string{"x", "y", "z"}) {
		t.Fatalf("after reopen: ListDirectory(tenant) = %q, %v; want [x y z]", keys, err)
	}
	if v, err := cur.GetDirectory(ctx, "tenant", "y"); err != nil || string(v) != "v-y" {
		t.Fatalf("after reopen: GetDirectory(tenant, y) = %q, %v; want v-y", v, err)
	}
	// The heads came back too: stale expectations conflict, current ones append.
	if _, err := cur.Append(ctx, "a", 0, events("a", 0, 1)); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("after reopen: Append(a, 0) = %v, want ErrConflict", err)
	}
	if err := cur.SaveSnapshot(ctx, "a", persistence.Snapshot{Seq: 4, Data: []byte("x")}); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("after reopen: SaveSnapshot(a, 4) beyond head 3 = %v, want ErrInvalid", err)
	}
	heads["a"] = mustAppend(t, cur, "a", heads["a"], 2)
	if err := cur.DeleteDirectory(ctx, "tenant", "y"); err != nil {
		t.Fatalf("DeleteDirectory(tenant, y) = %v", err)
	}

	reopen()
	check("after second reopen")
	if keys, err := cur.ListDirectory(ctx, "tenant"); err != nil || !slices.Equal(keys, []string{"x", "z"}) {
		t.Fatalf("after second reopen: ListDirectory(tenant) = %q, %v; want [x z]", keys, err)
	}
}

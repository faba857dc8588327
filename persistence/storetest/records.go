package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/slotd/slotd/persistence"
)

// RecordOpener tells the records suite how to get record stores from a
// backend.
type RecordOpener struct {
	// Open returns a fresh, empty store. It is called from parallel
	// subtests. The suite closes every store it is given that has a Close
	// method (io.Closer).
	Open func(t *testing.T) persistence.RecordStore
	// Reopen returns a new store on the same data as old, which the suite
	// has already closed (old must be an io.Closer). If nil, the durability
	// test is skipped.
	Reopen func(t *testing.T, old persistence.RecordStore) persistence.RecordStore
}

// RunRecords runs the records suite without the durability test; open
// returns a fresh, empty store per call.
//
//	func TestRecords(t *testing.T) {
//		storetest.RunRecords(t, func(t *testing.T) persistence.RecordStore { return memstore.New() })
//	}
func RunRecords(t *testing.T, open func(t *testing.T) persistence.RecordStore) {
	RunRecordsOpener(t, RecordOpener{Open: open})
}

// RunRecordsOpener runs the whole records suite, including close-and-reopen
// durability when o.Reopen is set.
func RunRecordsOpener(t *testing.T, o RecordOpener) {
	if o.Open == nil {
		t.Fatal("storetest: RecordOpener.Open is nil")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, o RecordOpener)
	}{
		{"CreateGet", testRecordCreateGet},
		{"CompareAndSwap", testRecordCAS},
		{"Delete", testRecordDelete},
		{"ConcurrentCAS", testRecordConcurrentCAS},
		{"ConcurrentCreate", testRecordConcurrentCreate},
		{"ConcurrentDelete", testRecordConcurrentDelete},
		{"ConcurrentCounter", testRecordConcurrentCounter},
		{"TenantIsolation", testRecordTenantIsolation},
		{"KindIsolation", testRecordKindIsolation},
		{"List", testRecordList},
		{"ListPaging", testRecordListPaging},
		{"DeleteTenantRecords", testRecordDeleteTenant},
		{"Invalid", testRecordInvalid},
		{"LargeValues", testRecordLargeValues},
		{"Copies", testRecordCopies},
		{"ContextCanceled", testRecordContextCanceled},
		{"Durability", testRecordDurability},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, o)
		})
	}
}

// openRecords returns a fresh store that is closed when t ends.
func openRecords(t *testing.T, o RecordOpener) persistence.RecordStore {
	t.Helper()
	s := o.Open(t)
	if s == nil {
		t.Fatal("Open returned a nil store")
	}
	if c, ok := s.(io.Closer); ok {
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Errorf("Close() = %v, want nil", err)
			}
		})
	}
	return s
}

// rec is a record as the suite expects to read it.
type rec struct {
	key     string
	value   string
	version uint64
}

func (r rec) String() string { return fmt.Sprintf("{%.40q %.20q v%d}", r.key, r.value, r.version) }

func mustPut(t *testing.T, s persistence.RecordStore, tenant, kind, key, value string, expect, want uint64) {
	t.Helper()
	got, err := s.PutRecord(t.Context(), tenant, kind, key, []byte(value), expect)
	if err != nil || got != want {
		t.Fatalf("PutRecord(%s, %s, %.40q, %.20q, %s) = %d, %v; want %d, nil", tenant, kind, key, value, version(expect), got, err, want)
	}
}

// version formats an expectVersion.
func version(v uint64) string {
	if v == persistence.AnyVersion {
		return "AnyVersion"
	}
	return fmt.Sprint(v)
}

// checkRecord fails t unless tenant's record kind/key is value at version.
func checkRecord(t *testing.T, s persistence.RecordStore, tenant, kind, key, value string, version uint64) {
	t.Helper()
	r, err := s.GetRecord(t.Context(), tenant, kind, key)
	if err != nil {
		t.Fatalf("GetRecord(%s, %s, %.40q) = %v; want %.20q at version %d", tenant, kind, key, err, value, version)
	}
	if r.Tenant != tenant || r.Kind != kind || r.Key != key || string(r.Value) != value || r.Version != version {
		t.Fatalf("GetRecord(%s, %s, %.40q) = {%s %s %.40q %.20q v%d}; want {%s %s %.40q %.20q v%d}",
			tenant, kind, key, r.Tenant, r.Kind, r.Key, r.Value, r.Version, tenant, kind, key, value, version)
	}
}

// checkAbsent fails t unless tenant's record kind/key is missing.
func checkAbsent(t *testing.T, s persistence.RecordStore, tenant, kind, key string) {
	t.Helper()
	r, err := s.GetRecord(t.Context(), tenant, kind, key)
	if !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("GetRecord(%s, %s, %.40q) = {%.20q v%d}, %v; want ErrNotFound", tenant, kind, key, r.Value, r.Version, err)
	}
}

// mustList lists and checks the result is sorted and entirely tenant's
// and kind's.
func mustList(t *testing.T, s persistence.RecordStore, tenant, kind, prefix, after string, limit int) []rec {
	t.Helper()
	got, err := s.ListRecords(t.Context(), tenant, kind, prefix, after, limit)
	if err != nil {
		t.Fatalf("ListRecords(%s, %s, %q, %q, %d) = %v", tenant, kind, prefix, after, limit, err)
	}
	out := make([]rec, len(got))
	for i, r := range got {
		if r.Tenant != tenant || r.Kind != kind {
			t.Fatalf("ListRecords(%s, %s, %q, %q, %d) returned a record of %s/%s", tenant, kind, prefix, after, limit, r.Tenant, r.Kind)
		}
		if i > 0 && got[i-1].Key >= r.Key {
			t.Fatalf("ListRecords(%s, %s, %q, %q, %d): key %q after %q, want strictly increasing", tenant, kind, prefix, after, limit, r.Key, got[i-1].Key)
		}
		if r.Value == nil {
			t.Fatalf("ListRecords(%s, %s, %q, %q, %d): record %q has a nil Value", tenant, kind, prefix, after, limit, r.Key)
		}
		out[i] = rec{r.Key, string(r.Value), r.Version}
	}
	return out
}

func checkRecs(t *testing.T, what string, got, want []rec) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s =\n\t%v\nwant\n\t%v", what, got, want)
	}
}

func testRecordCreateGet(t *testing.T, o RecordOpener) {
	s := openRecords(t, o)
	checkAbsent(t, s, "acme", "account", "alice")
	if recs := mustList(t, s, "acme", "account", "", "", 0); len(recs) != 0 {
		t.Fatalf("ListRecords on an empty store = %v, want none", recs)
	}
	mustPut(t, s, "acme", "account", "alice", "v1", 0, 1)
	checkRecord(t, s, "acme", "account", "alice", "v1", 1)
	// Create-only refuses an existing record and leaves it as it was.
	if got, err := s.PutRecord(t.Context(), "acme", "account", "alice", []byte("v2"), 0); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("PutRecord(acme, account, alice, create only) over an existing record = %d, %v; want ErrConflict", got, err)
	}
	checkRecord(t, s, "acme", "account", "alice", "v1", 1)
	// Empty and nil values are values: the record exists.
	mustPut(t, s, "acme", "account", "empty", "", 0, 1)
	if _, err := s.PutRecord(t.Context(), "acme", "account", "nil", nil, 0); err != nil {
		t.Fatalf("PutRecord(acme, account, nil, nil value) = %v", err)
	}
	for _, key := range []string{"empty", "nil"} {
		r, err := s.GetRecord(t.Context(), "acme", "account", key)
		if err != nil || r.Value == nil || len(r.Value) != 0 || r.Version != 1 {
			t.Fatalf("GetRecord(acme, account, %s) = {%q (nil %v) v%d}, %v; want an empty non-nil value at version 1", key, r.Value, r.Value == nil, r.Version, err)
		}
	}
	checkRecs(t, "ListRecords(acme, account)", mustList(t, s, "acme", "account", "", "", 0),
		[]rec{{"alice", "v1", 1}, {"empty", "", 1}, {"nil", "", 1}})
}

// testRecordCAS walks one record through every expectVersion case; after
// each step the stored record must be exactly what the step says.
func testRecordCAS(t *testing.T, o RecordOpener) {
	s := openRecords(t, o)
	steps := []struct {
		name    string
		expect  uint64
		value   string
		wantErr bool   // ErrConflict, and nothing written
		want    uint64 // the new version (and stored version) on success
	}{
		{"replace missing", 1, "x", true, 0},
		{"replace missing far", 7, "x", true, 0},
		{"create", 0, "v1", false, 1},
		{"create again", 0, "x", true, 0},
		{"replace", 1, "v2", false, 2},
		{"replace stale", 1, "x", true, 0},
		{"replace ahead", 3, "x", true, 0},
		{"replace far ahead", 1 << 40, "x", true, 0},
		{"replace beyond bigint", math.MaxInt64 + 1, "x", true, 0},
		{"replace max below any", persistence.AnyVersion - 1, "x", true, 0},
		{"replace current", 2, "v3", false, 3},
		{"unconditional", persistence.AnyVersion, "v4", false, 4},
		{"replace after unconditional", 4, "v5", false, 5},
		{"stale after unconditional", 4, "x", true, 0},
	}
	var stored uint64
	value := ""
	for _, st := range steps {
		got, err := s.PutRecord(t.Context(), "cas", "token", "k", []byte(st.value), st.expect)
		if st.wantErr {
			if !errors.Is(err, persistence.ErrConflict) {
				t.Fatalf("%s: PutRecord(cas, token, k, %s) = %d, %v; want ErrConflict", st.name, version(st.expect), got, err)
			}
		} else {
			if err != nil || got != st.want {
				t.Fatalf("%s: PutRecord(cas, token, k, %s) = %d, %v; want %d, nil", st.name, version(st.expect), got, err, st.want)
			}
			stored, value = st.want, st.value
		}
		if stored == 0 {
			checkAbsent(t, s, "cas", "token", "k")
		} else {
			checkRecord(t, s, "cas", "token", "k", value, stored)
		}
	}
	// Unconditional on a missing record creates it at version 1.
	mustPut(t, s, "cas", "token", "other", "o1", persistence.AnyVersion, 1)
	checkRecord(t, s, "cas", "token", "other", "o1", 1)
}

func testRecordDelete(t *testing.T, o RecordOpener) {
	s := openRecords(t, o)
	ctx := t.Context()
	del := func(key string, expect uint64, wantConflict bool) {
		t.Helper()
		err := s.DeleteRecord(ctx, "del", "session", key, expect)
		if wantConflict && !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("DeleteRecord(del, session, %s, %s) = %v, want ErrConflict", key, version(expect), err)
		}
		if !wantConflict && err != nil {
			t.Fatalf("DeleteRecord(del, session, %s, %s) = %v, want nil", key, version(expect), err)
		}
	}
	// Missing records: unconditional and expect-absent deletes succeed,
	// versioned ones conflict.
	del("missing", persistence.AnyVersion, false)
	del("missing", persistence.AnyVersion, false)
	del("missing", 0, false)
	del("missing", 1, true)
	checkAbsent(t, s, "del", "session", "missing")

	mustPut(t, s, "del", "session", "k", "v1", 0, 1)
	mustPut(t, s, "del", "session", "k", "v2", 1, 2)
	del("k", 0, true) // expects absent
	del("k", 1, true) // stale
	del("k", 3, true) // ahead
	del("k", 1<<62, true)
	checkRecord(t, s, "del", "session", "k", "v2", 2)
	del("k", 2, false)
	checkAbsent(t, s, "del", "session", "k")
	// A second delete with the same version finds nothing to consume.
	del("k", 2, true)
	del("k", persistence.AnyVersion, false)
	// Recreated, the record starts again at version 1.
	mustPut(t, s, "del", "session", "k", "again", 0, 1)
	checkRecord(t, s, "del", "session", "k", "again", 1)
	del("k", persistence.AnyVersion, false)
	checkAbsent(t, s, "del", "session", "k")
	if recs := mustList(t, s, "del", "session", "", "", 0); len(recs) != 0 {
		t.Fatalf("ListRecords(del, session) after deletes = %v, want none", recs)
	}
}

// race runs fn(w) for w in [0, n) at once and returns their errors.
func race(n int, fn func(w int) error) []error {
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			<-start
			errs[w] = fn(w)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner fails t unless exactly one of errs is nil and the others wrap
// ErrConflict; it returns the winner.
func oneWinner(t *testing.T, what string, errs []error) int {
	t.Helper()
	winner := -1
	for w, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("%s: writers %d and %d both won", what, winner, w)
			}
			winner = w
		case !errors.Is(err, persistence.ErrConflict):
			t.Fatalf("%s: writer %d = %v, want nil or ErrConflict", what, w, err)
		}
	}
	if winner < 0 {
		t.Fatalf("%s: no writer won", what)
	}
	return winner
}

// testRecordConcurrentCAS races many writers expecting the same version:
// exactly one wins each round, and its value is the one stored.
func testRecordConcurrentCAS(t *testing.T, o RecordOpener) {
	s := openRecords(t, o)
	const rounds, writers = 6, 16
	mustPut(t, s, "race", "token", "k", "initial", 0, 1)
	for round := range rounds {
		v := uint64(round + 1)
		versions := make([]uint64, writers)
		errs := race(writers, func(w int) error {
			var err error
			versions[w], err = s.PutRecord(context.Background(), "race", "token", "k", fmt.Appendf(nil, "r%d-w%d", round, w), v)
			return err
		})
		what := fmt.Sprintf("round %d: PutRecord(race, token, k, %d)", round, v)
		winner := oneWinner(t, what, errs)
		if versions[winner] != v+1 {
			t.Fatalf("%s = %d, want %d", what, versions[winner], v+1)
		}
		checkRecord(t, s, "race", "token", "k", fmt.Sprintf("r%d-w%d", round, winner), v+1)
	}
}

// testRecordConcurrentCreate races create-only writers: one creates, the
// rest conflict.
func testRecordConcurrentCreate(t *testing.T, o RecordOpener) {
	s := openRecords(t, o)
	const keys, writers = 4, 16
	for k := range keys {
		key := fmt.Sprintf("code-%d", k)
		errs := race(writers, func(w int) error {
			_, err := s.PutRecord(context.Background(), "create", "totp_used", key, fmt.Appendf(nil, "w%d", w), 0)
			return err
		})
		winner := oneWinner(t, "PutRecord(create, totp_used, "+key+", create only)", errs)
		checkRecord(t, s, "create", "totp_used", key, fmt.Sprintf("w%d", winner), 1)
	}
}

// testRecordConcurrentDelete races versioned deletes, the way a single-use
// code is consumed: exactly one consumer succeeds.
func testRecordConcurrentDelete(t *testing.T, o RecordOpener) {
	s := openRecords(t, o)
	const keys, writers = 4, 16
	for k := range keys {
		key := fmt.Sprintf("code-%d", k)
		mustPut(t, s, "consume", "recovery_code", key, "unused", 0, 1)
		mustPut(t, s, "consume", "recovery_code", key, "unused", 1, 2)
		errs := race(writers, func(int) error {
			return s.DeleteRecord(context.Background(), "consume", "recovery_code", key, 2)
		})
		oneWinner(t, "DeleteRecord(consume, recovery_code, "+key+", 2)", errs)
		checkAbsent(t, s, "consume", "recovery_code", key)
	}
}

// testRecordConcurrentCounter runs the read-modify-write loop callers run
// on a conflict: no increment may be lost or applied twice.
func testRecordConcurrentCounter(t *testing.T, o RecordOpener) {
	s := openRecords(t, o)
	const writers, perWriter = 8, 10
	var conflicts atomic.Int64
	errs := race(writers, func(int) error {
		ctx := context.Background()
		for i := 0; i < perWriter; {
			var n int
			expect := uint64(0)
			r, err := s.GetRecord(ctx, "counter", "count", "n")
			switch {
			case errors.Is(err, persistence.ErrNotFound):
			case err != nil:
				return fmt.Errorf("GetRecord(counter, count, n) = %v", err)
			default:
				if _, err := fmt.Sscan(string(r.Value), &n); err != nil {
					return fmt.Errorf("counter value %q: %v", r.Value, err)
				}
				expect = r.Version
			}
			got, err := s.PutRecord(ctx, "counter", "count", "n", fmt.Append(nil, n+1), expect)
			switch {
			case err == nil:
				if got != expect+1 {
					return fmt.Errorf("PutRecord(counter, count, n, %d) = %d, want %d", expect, got, expect+1)
				}
				i++
			case errors.Is(err, persistence.ErrConflict):
				conflicts.Add(1)
			default:
				return fmt.Errorf("PutRecord(counter, count, n, %d) = %v, want nil or ErrConflict", expect, err)
			}
		}
		return nil
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	const total = writers * perWriter
	checkRecord(t, s, "counter", "count", "n", fmt.Sprint(total), total)
	t.Logf("%d increments, %d conflicts retried", total, conflicts.Load())
}

// isolationTenants are ids that are prefixes of each other, the classic way
// a key layout leaks one tenant's rows into another's scan.
var isolationTenants = []string{"a", "ab", "a-b", "a-", "a0", "aa", "b", "a-b-c"}

// isolationKeys include keys that spell other tenants' ids and separators.
var isolationKeys = []string{"a", "ab", "b", "a-b", "b/x", "\x01", "\xff", "session/a", "session/ab"}

func isolationValue(tenant, kind, key string) string { return tenant + "|" + kind + "|" + key }

func seedIsolation(t *testing.T, s persistence.RecordStore, kinds []string) {
	t.Helper()
	// Interleave the writes so every tenant's keys sit next to the others'.
	for _, key := range isolationKeys {
		for _, kind := range kinds {
			for _, tenant := range isolationTenants {
				mustPut(t, s, tenant, kind, key, isolationValue(tenant, kind, key), 0, 1)
			}
		}
	}
}

// wantIsolated is what ListRecords(tenant, kind, prefix) returns when the
// tenant holds every isolation key.
func wantIsolated(tenant, kind, prefix string) []rec {
	var want []rec
	for _, key := range isolationKeys {
		if strings.HasPrefix(key, prefix) {
			want = append(want, rec{key, isolationValue(tenant, kind, key), 1})
		}
	}
	slices.SortFunc(want, func(a, b rec) int { return strings.Compare(a.key, b.key) })
	return want
}

func testRecordTenantIsolation(t *testing.T, o RecordOpener) {
	s := openRecords(t, o)
	kinds := []string{"account", "session"}
	seedIsolation(t, s, kinds)
	// A CAS in one tenant moves only that tenant's version.
	mustPut(t, s, "a", "account", "ab", "changed", 1, 2)
	if _, err := s.PutRecord(t.Context(), "ab", "account", "ab", []byte("x"), 2); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("PutRecord(ab, account, ab, 2) after a's version moved = %v, want ErrConflict", err)
	}
	if err := s.DeleteRecord(t.Context(), "a-b", "account", "ab", 2); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("DeleteRecord(a-b, account, ab, 2) after a's version moved = %v, want ErrConflict", err)
	}
	mustPut(t, s, "a", "account", "ab", isolationValue("a", "account", "ab"), 2, 3)
	mustPut(t, s, "a", "account", "ab", isolationValue("a", "account", "ab"), persistence.AnyVersion, 4)
	for _, tenant := range isolationTenants {
		t.Run(tenant, func(t *testing.T) {
			for _, kind := range kinds {
				for _, key := range isolationKeys {
					v := uint64(1)
					if tenant == "a" && kind == "account" && key == "ab" {
						v = 4
					}
					checkRecord(t, s, tenant, kind, key, isolationValue(tenant, kind, key), v)
				}
				for _, prefix := range []string{"", "a", "ab", "b", "session/", "session/a", "\xff", "c"} {
					got := mustList(t, s, tenant, kind, prefix, "", 0)
					want := wantIsolated(tenant, kind, prefix)
					for i := range want {
						if tenant == "a" && kind == "account" && want[i].key == "ab" {
							want[i].version = 4
						}
					}
					checkRecs(t, fmt.Sprintf("ListRecords(%s, %s, %q)", tenant, kind, prefix), got, want)
				}
			}
		})
	}
	// Erasing "a" and one kind of "ab" leaves every other tenant whole.
	if err := s.DeleteTenantRecords(t.Context(), "a", ""); err != nil {
		t.Fatalf("DeleteTenantRecords(a, all kinds) = %v", err)
	}
	if err := s.DeleteTenantRecords(t.Context(), "ab", "session"); err != nil {
		t.Fatalf("DeleteTenantRecords(ab, session) = %v", err)
	}
	for _, tenant := range isolationTenants {
		for _, kind := range kinds {
			got := mustList(t, s, tenant, kind, "", "", 0)
			want := wantIsolated(tenant, kind, "")
			if tenant == "a" || (tenant == "ab" && kind == "session") {
				want = nil
			}
			checkRecs(t, fmt.Sprintf("after erasure: ListRecords(%s, %s)", tenant, kind), got, want)
			for _, key := range isolationKeys {
				if want == nil {
					checkAbsent(t, s, tenant, kind, key)
				} else {
					checkRecord(t, s, tenant, kind, key, isolationValue(tenant, kind, key), 1)
				}
			}
		}
	}
}

// testRecordKindIsolation uses kinds that are prefixes of each other.
func testRecordKindIsolation(t *testing.T, o RecordOpener) {
	s := openRecords(t, o)
	kinds := []string{"s", "sess", "session", "session_2", "sessions", "t"}
	for _, key := range isolationKeys {
		for _, kind := range kinds {
			mustPut(t, s, "kinds", kind, key, isolationValue("kinds", kind, key), 0, 1)
		}
	}
	for _, kind := range kinds {
		for _, prefix := range []string{"", "a", "session/"} {
			checkRecs(t, fmt.Sprintf("ListRecords(kinds, %s, %q)", kind, prefix),
				mustList(t, s, "kinds", kind, prefix, "", 0), wantIsolated("kinds", kind, prefix))
		}
	}
	if err := s.DeleteTenantRecords(t.Context(), "kinds", "session"); err != nil {
		t.Fatalf("DeleteTenantRecords(kinds, session) = %v", err)
	}
	for _, kind := range kinds {
		want := wantIsolated("kinds", kind, "")
		if kind == "session" {
			want = nil
		}
		checkRecs(t, fmt.Sprintf("after DeleteTenantRecords(kinds, session): ListRecords(kinds, %s)", kind),
			mustList(t, s, "kinds", kind, "", "", 0), want)
	}
	checkAbsent(t, s, "kinds", "session", "a")
	checkRecord(t, s, "kinds", "sessions", "a", isolationValue("kinds", "sessions", "a"), 1)
}

// listKeys are keys in every byte range.
var listKeys = []string{
	"\x01", " ", "A", "a", "a\x01", "a/", "a/b", "a/b/c", "a/c", "a\x7f", "a\xff", "a\xff\xff", "ab",
	"b", "b\xff", "z\x7f", "\xfe", "\xff", "\xff\xff", "\xff\xff\x01", strings.Repeat("k", persistence.MaxRecordKey),
}

func testRecordList(t *testing.T, o RecordOpener) {
	s := openRecords(t, o)
	keys := slices.Clone(listKeys)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for _, key := range keys {
		mustPut(t, s, "list", "audit", key, "v:"+key, 0, 1)
	}
	mustPut(t, s, "list", "audit", "a/b", "v:a/b", 1, 2)
	// Neighbours that must never show up.
	mustPut(t, s, "list", "audi", "a", "other kind", 0, 1)
	mustPut(t, s, "list", "audit_2", "a", "other kind", 0, 1)
	mustPut(t, s, "list-2", "audit", "a", "other tenant", 0, 1)
	mustPut(t, s, "lis", "audit", "a", "other tenant", 0, 1)

	sorted := slices.Sorted(slices.Values(listKeys))
	tests := []struct {
		prefix, after string
		limit         int
	}{
		{"", "", 0},
		{"", "", -1},
		{"", "", 1},
		{"", "", 5},
		{"", "a", 0},
		{"", "a/b", 3},
		{"", "\xff", 0},
		{"", "\xff\xff\xff", 0},
		{"", "\x01", 0},
		{"a", "", 0},
		{"a", "", 2},
		{"a/", "", 0},
		{"a/", "a/b", 0},
		{"a/", "a/", 0},
		{"a/", "a", 0},
		{"a/", "0", 0},
		{"a/", "b", 0},
		{"a/b", "", 0},
		{"a\xff", "", 0},
		{"a\xff", "a\xff", 0},
		{"\xff", "", 0},
		{"\xff\xff", "", 0},
		{"\xff", "\xff\xff", 0},
		{"b", "", 1},
		{"c", "", 0},
		{"kkk", "", 0},
		{strings.Repeat("k", persistence.MaxRecordKey), "", 0},
		{"", strings.Repeat("k", persistence.MaxRecordKey), 0},
	}
	for _, tt := range tests {
		what := fmt.Sprintf("ListRecords(list, audit, %q, %q, %d)", tt.prefix, tt.after, tt.limit)
		t.Run(what, func(t *testing.T) {
			var want []rec
			for _, key := range sorted {
				if strings.HasPrefix(key, tt.prefix) && key > tt.after && (tt.limit <= 0 || len(want) < tt.limit) {
					v := uint64(1)
					if key == "a/b" {
						v = 2
					}
					want = append(want, rec{key, "v:" + key, v})
				}
			}
			checkRecs(t, what, mustList(t, s, "list", "audit", tt.prefix, tt.after, tt.limit), want)
		})
	}
}

// testRecordListPaging pages through a kind with every page size: the pages
// together are the whole list, in order, each key once.
func testRecordListPaging(t *testing.T, o RecordOpener) {
	s := openRecords(t, o)
	const n = 23
	var all []rec
	for i := range n {
		key := fmt.Sprintf("grant/%03d", i)
		mustPut(t, s, "pages", "oauth_token", key, "t"+key, 0, 1)
		all = append(all, rec{key, "t" + key, 1})
	}
	mustPut(t, s, "pages", "oauth_token", "other/1", "x", 0, 1)
	for size := 1; size <= n+1; size++ {
		var got []rec
		after := ""
		for pages := 0; ; pages++ {
			if pages > n+1 {
				t.Fatalf("page size %d: more than %d pages", size, n+1)
			}
			page := mustList(t, s, "pages", "oauth_token", "grant/", after, size)
			if len(page) > size {
				t.Fatalf("page size %d: got %d records", size, len(page))
			}
			got = append(got, page...)
			if len(page) < size {
				break
			}
			after = page[len(page)-1].key
		}
		checkRecs(t, fmt.Sprintf("pages of %d", size), got, all)
	}
}

func testRecordDeleteTenant(t *testing.T, o RecordOpener) {
	s := openRecords(t, o)
	ctx := t.Context()
	// Erasing a tenant with nothing stored is not an error.
	for _, kind := range []string{"", "account"} {
		if err := s.DeleteTenantRecords(ctx, "nobody", kind); err != nil {
			t.Fatalf("DeleteTenantRecords(nobody, %q) = %v, want nil", kind, err)
		}
	}
	kinds := []string{"account", "session", "oauth_token", "wrapped_key"}
	for _, tenant := range []string{"gone", "gone-2", "gon"} {
		for _, kind := range kinds {
			for i := range 5 {
				mustPut(t, s, tenant, kind, fmt.Sprintf("k%d", i), "v", 0, 1)
			}
		}
	}
	mustPut(t, s, "gone", "session", "k0", "v2", 1, 2)
	if err := s.DeleteTenantRecords(ctx, "gone", "session"); err != nil {
		t.Fatalf("DeleteTenantRecords(gone, session) = %v", err)
	}
	if recs := mustList(t, s, "gone", "session", "", "", 0); len(recs) != 0 {
		t.Fatalf("ListRecords(gone, session) after deleting the kind = %v, want none", recs)
	}
	if recs := mustList(t, s, "gone", "account", "", "", 0); len(recs) != 5 {
		t.Fatalf("ListRecords(gone, account) after deleting sessions = %d records, want 5", len(recs))
	}
	// A stale CAS on an erased record conflicts; a create starts over.
	if _, err := s.PutRecord(ctx, "gone", "session", "k0", []byte("x"), 2); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("PutRecord(gone, session, k0, 2) after erasure = %v, want ErrConflict", err)
	}
	mustPut(t, s, "gone", "session", "k0", "new", 0, 1)

	if err := s.DeleteTenantRecords(ctx, "gone", ""); err != nil {
		t.Fatalf("DeleteTenantRecords(gone, all kinds) = %v", err)
	}
	if err := s.DeleteTenantRecords(ctx, "gone", ""); err != nil {
		t.Fatalf("DeleteTenantRecords(gone, all kinds) again = %v", err)
	}
	for _, kind := range kinds {
		if recs := mustList(t, s, "gone", kind, "", "", 0); len(recs) != 0 {
			t.Fatalf("ListRecords(gone, %s) after erasure = %v, want none", kind, recs)
		}
		checkAbsent(t, s, "gone", kind, "k1")
		for _, other := range []string{"gone-2", "gon"} {
			if recs := mustList(t, s, other, kind, "", "", 0); len(recs) != 5 {
				t.Fatalf("ListRecords(%s, %s) after erasing gone = %d records, want 5", other, kind, len(recs))
			}
		}
	}
}

func testRecordInvalid(t *testing.T, o RecordOpener) {
	s := openRecords(t, o)
	ctx := t.Context()
	long := strings.Repeat("k", persistence.MaxRecordKey+1)
	tests := []struct {
		name              string
		tenant, kind, key string
	}{
		{"empty tenant", "", "account", "k"},
		{"upper-case tenant", "Acme", "account", "k"},
		{"tenant with slash", "a/b", "account", "k"},
		{"tenant with NUL", "a\x00", "account", "k"},
		{"long tenant", strings.Repeat("a", 64), "account", "k"},
		{"empty kind", "acme", "", "k"},
		{"upper-case kind", "acme", "Account", "k"},
		{"kind with hyphen", "acme", "acc-ount", "k"},
		{"kind with NUL", "acme", "acc\x00", "k"},
		{"long kind", "acme", strings.Repeat("a", 33), "k"},
		{"empty key", "acme", "account", ""},
		{"key with NUL", "acme", "account", "a\x00b"},
		{"NUL key", "acme", "account", "\x00"},
		{"long key", "acme", "account", long},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.GetRecord(ctx, tt.tenant, tt.kind, tt.key); !errors.Is(err, persistence.ErrInvalid) {
				t.Errorf("GetRecord(%q, %q, %.20q) = %v, want ErrInvalid", tt.tenant, tt.kind, tt.key, err)
			}
			for _, expect := range []uint64{0, 1, persistence.AnyVersion} {
				if _, err := s.PutRecord(ctx, tt.tenant, tt.kind, tt.key, []byte("v"), expect); !errors.Is(err, persistence.ErrInvalid) {
					t.Errorf("PutRecord(%q, %q, %.20q, %s) = %v, want ErrInvalid", tt.tenant, tt.kind, tt.key, version(expect), err)
				}
				if err := s.DeleteRecord(ctx, tt.tenant, tt.kind, tt.key, expect); !errors.Is(err, persistence.ErrInvalid) {
					t.Errorf("DeleteRecord(%q, %q, %.20q, %s) = %v, want ErrInvalid", tt.tenant, tt.kind, tt.key, version(expect), err)
				}
			}
			if persistence.CheckTenant(tt.tenant) != nil || persistence.CheckKind(tt.kind) != nil {
				if _, err := s.ListRecords(ctx, tt.tenant, tt.kind, "", "", 0); !errors.Is(err, persistence.ErrInvalid) {
					t.Errorf("ListRecords(%q, %q) = %v, want ErrInvalid", tt.tenant, tt.kind, err)
				}
				if tt.kind != "" {
					if err := s.DeleteTenantRecords(ctx, tt.tenant, tt.kind); !errors.Is(err, persistence.ErrInvalid) {
						t.Errorf("DeleteTenantRecords(%q, %q) = %v, want ErrInvalid", tt.tenant, tt.kind, err)
					}
				}
			}
		})
	}
	for _, tenant := range []string{"", "A", "a_b", strings.Repeat("a", 64)} {
		if err := s.DeleteTenantRecords(ctx, tenant, ""); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("DeleteTenantRecords(%q, all kinds) = %v, want ErrInvalid", tenant, err)
		}
	}
	for _, bad := range [][2]string{{"a\x00", ""}, {"", "a\x00"}, {long, ""}, {"", long}} {
		if _, err := s.ListRecords(ctx, "acme", "account", bad[0], bad[1], 0); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("ListRecords(acme, account, %.20q, %.20q) = %v, want ErrInvalid", bad[0], bad[1], err)
		}
	}
	tooBig := make([]byte, persistence.MaxRecordValue+1)
	for _, expect := range []uint64{0, 1, persistence.AnyVersion} {
		if _, err := s.PutRecord(ctx, "acme", "account", "big", tooBig, expect); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("PutRecord(acme, account, big, MaxRecordValue+1 bytes, %s) = %v, want ErrInvalid", version(expect), err)
		}
	}
	// Nothing was written by any refused call.
	for _, kind := range []string{"account", "acc"} {
		if recs := mustList(t, s, "acme", kind, "", "", 0); len(recs) != 0 {
			t.Fatalf("ListRecords(acme, %s) after refused writes = %v, want none", kind, recs)
		}
	}
	// The longest valid tenant, kind and key work.
	tenant, kind, key := strings.Repeat("z", 63), "k"+strings.Repeat("_", 31), strings.Repeat("\xff", persistence.MaxRecordKey)
	mustPut(t, s, tenant, kind, key, "v", 0, 1)
	checkRecord(t, s, tenant, kind, key, "v", 1)
	checkRecs(t, "ListRecords(longest)", mustList(t, s, tenant, kind, key, "", 0), []rec{{key, "v", 1}})
}

func testRecordLargeValues(t *testing.T, o RecordOpener) {
	s := openRecords(t, o)
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(5, 6))
	big := make([]byte, persistence.MaxRecordValue)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	if v, err := s.PutRecord(ctx, "large", "blob", "big", big, 0); err != nil || v != 1 {
		t.Fatalf("PutRecord(large, blob, big, 1 MiB) = %d, %v; want 1, nil", v, err)
	}
	r, err := s.GetRecord(ctx, "large", "blob", "big")
	if err != nil || r.Version != 1 || !bytes.Equal(r.Value, big) {
		t.Fatalf("GetRecord(large, blob, big) = %d bytes v%d, %v; want the 1 MiB value at v1", len(r.Value), r.Version, err)
	}
	mustPut(t, s, "large", "blob", "small", "s", 0, 1)
	recs, err := s.ListRecords(ctx, "large", "blob", "", "", 0)
	if err != nil || len(recs) != 2 || !bytes.Equal(recs[0].Value, big) || string(recs[1].Value) != "s" {
		t.Fatalf("ListRecords(large, blob) = %d records, %v; want [big, small]", len(recs), err)
	}
	// Replacing a large value with a small one leaves nothing of the old.
	mustPut(t, s, "large", "blob", "big", "tiny", 1, 2)
	checkRecord(t, s, "large", "blob", "big", "tiny", 2)
	if v, err := s.PutRecord(ctx, "large", "blob", "big", big[:persistence.MaxRecordValue/2], 2); err != nil || v != 3 {
		t.Fatalf("PutRecord(large, blob, big, 512 KiB, 2) = %d, %v; want 3, nil", v, err)
	}
	r, err = s.GetRecord(ctx, "large", "blob", "big")
	if err != nil || r.Version != 3 || !bytes.Equal(r.Value, big[:persistence.MaxRecordValue/2]) {
		t.Fatalf("GetRecord(large, blob, big) = %d bytes v%d, %v; want 512 KiB at v3", len(r.Value), r.Version, err)
	}
}

// testRecordCopies checks that the store neither keeps nor hands out
// caller-owned buffers.
func testRecordCopies(t *testing.T, o RecordOpener) {
	s := openRecords(t, o)
	ctx := t.Context()
	val := []byte("value")
	if _, err := s.PutRecord(ctx, "copy", "kind", "key", val, 0); err != nil {
		t.Fatalf("PutRecord = %v", err)
	}
	copy(val, "XXXXX")
	for range 2 { // the second pass sees what the first pass scribbled on
		r, err := s.GetRecord(ctx, "copy", "kind", "key")
		if err != nil || string(r.Value) != "value" {
			t.Fatalf("GetRecord(copy, kind, key) = %q, %v; want %q", r.Value, err, "value")
		}
		clear(r.Value)
		recs, err := s.ListRecords(ctx, "copy", "kind", "", "", 0)
		if err != nil || len(recs) != 1 || string(recs[0].Value) != "value" {
			t.Fatalf("ListRecords(copy, kind) = %v, %v; want [value]", recs, err)
		}
		clear(recs[0].Value)
	}
}

func testRecordContextCanceled(t *testing.T, o RecordOpener) {
	s := openRecords(t, o)
	mustPut(t, s, "ctx", "kind", "key", "v", 0, 1)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	checks := []struct {
		name string
		call func() error
	}{
		{"GetRecord", func() error { _, err := s.GetRecord(ctx, "ctx", "kind", "key"); return err }},
		{"PutRecord replace", func() error { _, err := s.PutRecord(ctx, "ctx", "kind", "key", []byte("changed"), 1); return err }},
		{"PutRecord any", func() error {
			_, err := s.PutRecord(ctx, "ctx", "kind", "key", []byte("changed"), persistence.AnyVersion)
			return err
		}},
		{"PutRecord create", func() error { _, err := s.PutRecord(ctx, "ctx", "kind", "new", []byte("new"), 0); return err }},
		{"DeleteRecord", func() error { return s.DeleteRecord(ctx, "ctx", "kind", "key", 1) }},
		{"DeleteRecord any", func() error { return s.DeleteRecord(ctx, "ctx", "kind", "key", persistence.AnyVersion) }},
		{"ListRecords", func() error { _, err := s.ListRecords(ctx, "ctx", "kind", "", "", 0); return err }},
		{"DeleteTenantRecords kind", func() error { return s.DeleteTenantRecords(ctx, "ctx", "kind") }},
		{"DeleteTenantRecords all", func() error { return s.DeleteTenantRecords(ctx, "ctx", "") }},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s(canceled ctx) = %v, want context.Canceled", c.name, err)
			}
		})
	}
	// Nothing was written.
	checkRecord(t, s, "ctx", "kind", "key", "v", 1)
	checkAbsent(t, s, "ctx", "kind", "new")
}

// testRecordDurability closes the store and reopens it on the same data:
// values, versions, deletions and erasures must all come back.
func testRecordDurability(t *testing.T, o RecordOpener) {
	if o.Reopen == nil {
		t.Skip("backend has no Reopen: nothing outlives Close")
	}
	cur := o.Open(t)
	if cur == nil {
		t.Fatal("Open returned a nil store")
	}
	closer := func() io.Closer {
		c, ok := cur.(io.Closer)
		if !ok {
			t.Fatalf("store %T has no Close method: Reopen needs one", cur)
		}
		return c
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			if err := closer().Close(); err != nil {
				t.Errorf("Close() = %v, want nil", err)
			}
		}
	})
	reopen := func() {
		t.Helper()
		closed = true
		if err := closer().Close(); err != nil {
			t.Fatalf("Close() = %v, want nil", err)
		}
		cur = o.Reopen(t, cur)
		if cur == nil {
			t.Fatal("Reopen returned a nil store")
		}
		closed = false
	}
	for _, tenant := range []string{"a", "ab", "a-b"} {
		for _, key := range []string{"x", "y", "z"} {
			mustPut(t, cur, tenant, "account", key, tenant+"/"+key, 0, 1)
			mustPut(t, cur, tenant, "session", key, "s", 0, 1)
		}
	}
	mustPut(t, cur, "a", "account", "x", "a/x v2", 1, 2)
	mustPut(t, cur, "a", "account", "x", "a/x v3", persistence.AnyVersion, 3)
	if err := cur.DeleteRecord(t.Context(), "ab", "account", "y", 1); err != nil {
		t.Fatalf("DeleteRecord(ab, account, y, 1) = %v", err)
	}
	if err := cur.DeleteTenantRecords(t.Context(), "a-b", "session"); err != nil {
		t.Fatalf("DeleteTenantRecords(a-b, session) = %v", err)
	}

	reopen()
	check := func(when string) {
		t.Helper()
		checkRecs(t, when+": ListRecords(a, account)", mustList(t, cur, "a", "account", "", "", 0),
			[]rec{{"x", "a/x v3", 3}, {"y", "a/y", 1}, {"z", "a/z", 1}})
		checkRecs(t, when+": ListRecords(ab, account)", mustList(t, cur, "ab", "account", "", "", 0),
			[]rec{{"x", "ab/x", 1}, {"z", "ab/z", 1}})
		checkRecs(t, when+": ListRecords(a-b, session)", mustList(t, cur, "a-b", "session", "", "", 0), nil)
		checkRecs(t, when+": ListRecords(ab, session)", mustList(t, cur, "ab", "session", "", "", 0),
			[]rec{{"x", "s", 1}, {"y", "s", 1}, {"z", "s", 1}})
	}
	check("after reopen")
	// The versions came back too: stale expectations conflict, current ones
	// replace.
	if _, err := cur.PutRecord(t.Context(), "a", "account", "x", []byte("stale"), 2); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("after reopen: PutRecord(a, account, x, 2) = %v, want ErrConflict", err)
	}
	if _, err := cur.PutRecord(t.Context(), "ab", "account", "x", []byte("stale"), 0); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("after reopen: PutRecord(ab, account, x, create only) = %v, want ErrConflict", err)
	}
	mustPut(t, cur, "a", "account", "x", "a/x v4", 3, 4)
	if err := cur.DeleteTenantRecords(t.Context(), "ab", ""); err != nil {
		t.Fatalf("DeleteTenantRecords(ab, all kinds) = %v", err)
	}

	reopen()
	checkRecord(t, cur, "a", "account", "x", "a/x v4", 4)
	for _, kind := range []string{"account", "session"} {
		checkRecs(t, "after second reopen: ListRecords(ab, "+kind+")", mustList(t, cur, "ab", kind, "", "", 0), nil)
	}
	checkRecs(t, "after second reopen: ListRecords(a-b, account)", mustList(t, cur, "a-b", "account", "", "", 0),
		[]rec{{"x", "a-b/x", 1}, {"y", "a-b/y", 1}, {"z", "a-b/z", 1}})
}

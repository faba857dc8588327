package auditstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/slotd/slotd/internal/pgtest"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/persistence/pebble"
	"github.com/slotd/slotd/persistence/postgres"
	"github.com/slotd/slotd/security/audit"
	"github.com/slotd/slotd/security/auditstore"
)

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// backend opens an empty record store.
type backend struct {
	name string
	open func(t *testing.T) persistence.RecordStore
}

// shared is this package's one PostgreSQL cluster (started by the first test that needs it).
var shared pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := shared.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

var migrated struct {
	mu   sync.Mutex // guards name
	name string
}

// migratedTemplate returns a database on the shared cluster migrated once, for cloning.
func migratedTemplate(t *testing.T) string {
	t.Helper()
	migrated.mu.Lock()
	defer migrated.mu.Unlock()
	if migrated.name == "" {
		db := shared.Cluster(t).CreateDatabase(t)
		if err := postgres.Migrate(context.Background(), db.OwnerDSN, postgres.MigrateOptions{AppRole: pgtest.AppRole}); err != nil {
			t.Fatalf("Migrate = %v", err)
		}
		migrated.name = db.Name
	}
	return migrated.name
}

func backends(t *testing.T) []backend {
	bs := []backend{
		{"memstore", func(t *testing.T) persistence.RecordStore { return memstore.New() }},
		{"pebble", func(t *testing.T) persistence.RecordStore {
			s, err := pebble.Open(t.TempDir(), pebble.Options{})
			if err != nil {
				t.Fatalf("pebble.Open = %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
	}
	if testing.Short() {
		return bs
	}
	return append(bs, backend{"postgres", func(t *testing.T) persistence.RecordStore {
		db := shared.Cluster(t).CloneDatabase(t, migratedTemplate(t))
		s, err := postgres.Open(context.Background(), db.AppDSN, postgres.Options{NoNotify: true})
		if err != nil {
			t.Fatalf("postgres.Open = %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}})
}

// MustKeys returns a fresh checkpoint signer and verifier.
func MustKeys(tb testing.TB) (note.Signer, note.Verifier) {
	tb.Helper()
	skey, vkey, err := audit.GenerateKey("slotd-audit-test")
	if err != nil {
		tb.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	return s, v
}

// MustLog returns a Log over store with the given keys.
func MustLog(tb testing.TB, store audit.Store, s note.Signer, v note.Verifier) *audit.Log {
	tb.Helper()
	now := t0
	var mu sync.Mutex
	l, err := audit.New(store, audit.Options{Signer: s, Verifier: v, Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Minute)
		return now
	}})
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

func appendN(tb testing.TB, l *audit.Log, tenant string, n int) audit.Checkpoint {
	tb.Helper()
	var cp audit.Checkpoint
	acts := []audit.Action{audit.ActionSignIn, audit.ActionSignInFailed, audit.ActionTokenGranted, audit.ActionRoleChanged, audit.ActionExport}
	for i := 0; i < n; i++ {
		var err error
		_, cp, err = l.Append(context.Background(), tenant, audit.Entry{
			Actor:  fmt.Sprintf("account:%d", i%7),
			Action: acts[i%len(acts)],
			Target: fmt.Sprintf("account:%d", i%3),
			Detail: map[string]string{"ip": "192.0.2.7", "n": fmt.Sprint(i)},
		})
		if err != nil {
			tb.Fatalf("Append %d: %v", i, err)
		}
	}
	return cp
}

func lister(ts ...string) auditstore.TenantLister {
	return func(context.Context) ([]string, error) { return ts, nil }
}

// TestAppendVerifyRead: entries appended through the record store read back, verify, and
// hashes come back from the records exactly as a flat array would hold them.
func TestAppendVerifyRead(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			rs := b.open(t)
			st := auditstore.New(rs, lister("tenant-0", "tenant-1", "tenant-37", "idle"))
			s, v := MustKeys(t)
			l := MustLog(t, st, s, v)
			for _, n := range []int{0, 1, 37} {
				tenant := fmt.Sprint("tenant-", n)
				cp := appendN(t, l, tenant, n)
				rep, err := l.Verify(ctx, tenant, nil)
				if err != nil {
					t.Fatalf("Verify(%d entries) = %v", n, err)
				}
				if rep.Checkpoint.Size != int64(n) || rep.Bodies != int64(n) || (n > 0 && rep.Checkpoint.Root != cp.Root) {
					t.Fatalf("Verify(%d entries) = %+v, want size %d and the last Append's root", n, rep, n)
				}
				if got, err := st.Len(ctx, tenant); err != nil || got != int64(n) {
					t.Fatalf("Len(%s) = %d, %v; want %d", tenant, got, err, n)
				}
			}
			es, err := l.Entries(ctx, "tenant-37", 0, 37)
			if err != nil || len(es) != 37 {
				t.Fatalf("Entries = %d, %v", len(es), err)
			}
			for i, e := range es {
				if e.Seq != int64(i) || e.Detail["n"] != fmt.Sprint(i) {
					t.Fatalf("entry %d = %+v", i, e)
				}
			}
			// Every stored hash, read in one call and one by one, matches tlog's recomputation.
			bodies, err := st.ReadBodies(ctx, "tenant-37", 0, 37)
			if err != nil {
				t.Fatal(err)
			}
			want := rebuild(t, bodies)
			all := make([]int64, len(want))
			for i := range all {
				all[i] = int64(i)
			}
			got, err := st.ReadHashes(ctx, "tenant-37", all)
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("ReadHashes(all) = %d hashes, %v; want the %d recomputed", len(got), err, len(want))
			}
			for _, x := range []int64{70, 3, 0, 50} {
				got, err := st.ReadHashes(ctx, "tenant-37", []int64{x})
				if err != nil || got[0] != want[x] {
					t.Fatalf("ReadHashes(%d) = %v, %v; want %v", x, got, err, want[x])
				}
			}
			if _, err := st.ReadHashes(ctx, "tenant-37", []int64{int64(len(want))}); err == nil {
				t.Fatalf("ReadHashes(%d), past the end = nil error", len(want))
			}
			if ts, err := st.Tenants(ctx); err != nil || !slices.Equal(ts, []string{"tenant-1", "tenant-37"}) {
				t.Fatalf("Tenants = %v, %v; want tenant-1 tenant-37", ts, err)
			}
			if _, err := st.ReadBodies(ctx, "tenant-37", 5, 4); err == nil {
				t.Fatal("ReadBodies(5, 4) = nil error")
			}
		})
	}
}

// rebuild recomputes every stored hash from bodies.
func rebuild(t *testing.T, bodies [][]byte) []tlog.Hash {
	t.Helper()
	var hs []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = hs[x]
		}
		return out, nil
	})
	for i, b := range bodies {
		h, err := tlog.StoredHashes(int64(i), b, r)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h...)
	}
	return hs
}

// TestConcurrentAppends: several Logs (several slotd instances) appending to one tenant's log
// through one record store all succeed, and the log holds each entry once.
func TestConcurrentAppends(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			st := auditstore.New(b.open(t), lister("t"))
			s, v := MustKeys(t)
			const writers, each = 4, 8
			var wg sync.WaitGroup
			errs := make(chan error, writers*each)
			for w := range writers {
				l := MustLog(t, st, s, v)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						_, _, err := l.Append(ctx, "t", audit.Entry{Actor: fmt.Sprintf("account:%d", w), Action: audit.ActionSignIn,
							Detail: map[string]string{"n": fmt.Sprint(i)}})
						if err != nil {
							errs <- err
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("Append = %v", err)
			}
			l := MustLog(t, st, s, v)
			rep, err := l.Verify(ctx, "t", nil)
			if err != nil || rep.Checkpoint.Size != writers*each {
				t.Fatalf("Verify = %+v, %v; want %d entries", rep, err, writers*each)
			}
			es, err := l.Entries(ctx, "t", 0, writers*each)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, e := range es {
				k := e.Actor + "/" + e.Detail["n"]
				if seen[k] {
					t.Fatalf("entry %s logged twice", k)
				}
				seen[k] = true
			}
		})
	}
}

// crashing is a record store that fails every write after the first failAfter of kind.
type crashing struct {
	persistence.RecordStore
	mu        sync.Mutex // guards the fields below
	kind      string
	failAfter int
}

var errCrash = errors.New("crash")

func (c *crashing) PutRecord(ctx context.Context, tenant, kind, key string, value []byte, expect uint64) (uint64, error) {
	c.mu.Lock()
	if kind == c.kind {
		if c.failAfter == 0 {
			c.mu.Unlock()
			return 0, errCrash
		}
		c.failAfter--
	}
	c.mu.Unlock()
	return c.RecordStore.PutRecord(ctx, tenant, kind, key, value, expect)
}

// TestCrashedAppendIsRolledForward: an appender that dies at any step after its claim leaves
// an intent the next appender commits, and the log verifies with every entry in it; an
// appender that dies before its claim leaves nothing.
func TestCrashedAppendIsRolledForward(t *testing.T) {
	tests := []struct {
		kind      string
		failAfter int  // writes of kind that succeed before the crash
		committed bool // by the crashed Append, which then returns nil
		rolled    bool // by the next Append
	}{
		{auditstore.KindIntent, 0, false, false}, // the claim itself fails
		{auditstore.KindBody, 0, false, true},
		{auditstore.KindHash, 0, false, true},
		{auditstore.KindHead, 0, false, true},
		{auditstore.KindIntent, 1, true, false}, // crashed before settling: committed already
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s after %d", tt.kind, tt.failAfter), func(t *testing.T) {
			ctx := context.Background()
			rs := memstore.New()
			s, v := MustKeys(t)
			l := MustLog(t, auditstore.New(rs, nil), s, v)
			appendN(t, l, "t", 3)
			c := &crashing{RecordStore: rs, kind: tt.kind, failAfter: tt.failAfter}
			crashed := MustLog(t, auditstore.New(c, nil), s, v)
			_, _, err := crashed.Append(ctx, "t", audit.Entry{Actor: "account:1", Action: audit.ActionExport})
			if tt.committed && err != nil || !tt.committed && !errors.Is(err, errCrash) {
				t.Fatalf("Append through the crashing store = %v, want the crash (or nil if committed: %v)", err, tt.committed)
			}
			// Until the next append, the log verifies at the size of its head.
			if rep, err := l.Verify(ctx, "t", nil); err != nil || rep.Checkpoint.Size != 3+b2i(tt.committed) {
				t.Fatalf("Verify after the crash = %+v, %v", rep, err)
			}
			appendN(t, l, "t", 1)
			rep, err := l.Verify(ctx, "t", nil)
			want := 4 + b2i(tt.committed || tt.rolled)
			if err != nil || rep.Checkpoint.Size != want {
				t.Fatalf("Verify after the next append = %+v, %v; want %d entries", rep, err, want)
			}
			es, err := l.Entries(ctx, "t", 0, want)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range es {
				if e.Action == audit.ActionExport {
					n++
				}
			}
			if n != int(b2i(tt.committed || tt.rolled)) {
				t.Fatalf("the crashed append's entry is in the log %d times, want %d", n, b2i(tt.committed || tt.rolled))
			}
			if in, err := rs.GetRecord(ctx, "t", auditstore.KindIntent, "next"); err != nil || string(in.Value) != `{"pending":false}` {
				t.Fatalf("intent after the next append = %s, %v; want settled", in.Value, err)
			}
		})
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// TestPrune: pruning through the record store deletes old bodies, keeps the hashes, and the
// log still verifies.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	rs := memstore.New()
	st := auditstore.New(rs, nil)
	s, v := MustKeys(t)
	now := t0
	l, err := audit.New(st, audit.Options{Signer: s, Verifier: v, Retention: 24 * time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, _, err := l.Append(ctx, "t", audit.Entry{Actor: "account:1", Action: audit.ActionSignIn}); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Hour)
	}
	now = t0.Add(24*time.Hour + 5*time.Hour + time.Minute) // entries 0..5 are older than a day
	n, err := l.Prune(ctx, "t")
	if err != nil || n != 6 {
		t.Fatalf("Prune = %d, %v; want 6", n, err)
	}
	bodies, err := rs.ListRecords(ctx, "t", auditstore.KindBody, "", "", 0)
	if err != nil || len(bodies) != 5 || bodies[0].Key != auditstore.Key(6) {
		t.Fatalf("body records after Prune: %d from %q, %v; want 5 from entry 6", len(bodies), bodies[0].Key, err)
	}
	if rep, err := l.Verify(ctx, "t", nil); err != nil || rep.Pruned != 6 || rep.Checkpoint.Size != 11 {
		t.Fatalf("Verify after Prune = %+v, %v", rep, err)
	}
}

package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// clock is an injected clock tests move by hand.
type clock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// MustKeys returns a fresh checkpoint signer and verifier.
func MustKeys(tb testing.TB) (note.Signer, note.Verifier) {
	tb.Helper()
	skey, vkey, err := GenerateKey("slotd-audit-test")
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

// MustLog returns a Log over store with fresh keys and the given clock.
func MustLog(tb testing.TB, store Store, c *clock) *Log {
	tb.Helper()
	s, v := MustKeys(tb)
	l, err := New(store, Options{Signer: s, Verifier: v, Now: c.Now})
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// appendN appends n ordinary entries, one minute apart, and returns the last checkpoint.
func appendN(tb testing.TB, l *Log, c *clock, tenant string, n int) Checkpoint {
	tb.Helper()
	ctx := context.Background()
	var cp Checkpoint
	acts := []Action{ActionSignIn, ActionSignInFailed, ActionTokenGranted, ActionRoleChanged, ActionExport}
	for i := 0; i < n; i++ {
		var err error
		_, cp, err = l.Append(ctx, tenant, Entry{
			Actor:  fmt.Sprintf("account:%d", i%7),
			Action: acts[i%len(acts)],
			Target: fmt.Sprintf("account:%d", i%3),
			Detail: map[string]string{"ip": "192.0.2.7", "n": fmt.Sprint(i)},
		})
		if err != nil {
			tb.Fatalf("Append %d: %v", i, err)
		}
		c.Advance(time.Minute)
	}
	return cp
}

func wantProblem(tb testing.TB, err error, index int64, p Problem) {
	tb.Helper()
	var ve *VerifyError
	if !errors.As(err, &ve) || !errors.Is(err, ErrTampered) {
		tb.Fatalf("Verify = %v, want a *VerifyError %s at %d", err, p, index)
	}
	if ve.Problem != p || ve.Index != index {
		tb.Fatalf("Verify = %s at %d (%v), want %s at %d", ve.Problem, ve.Index, ve, p, index)
	}
}

func TestAppendAndVerify(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: t0}
	store := NewMemoryStore()
	l := MustLog(t, store, c)
	for _, n := range []int{0, 1, 2, 3, 37} {
		tenant := fmt.Sprint("tenant-", n)
		cp := appendN(t, l, c, tenant, n)
		rep, err := l.Verify(ctx, tenant, nil)
		if err != nil {
			t.Fatalf("Verify(%d entries): %v", n, err)
		}
		if rep.Checkpoint.Size != int64(n) || rep.Bodies != int64(n) || (n > 0 && rep.Checkpoint.Root != cp.Root) {
			t.Fatalf("Verify(%d entries) = %+v, want size %d and the last Append's root", n, rep, n)
		}
	}
	es, err := l.Entries(ctx, "tenant-37", 0, 37)
	if err != nil || len(es) != 37 {
		t.Fatalf("Entries = %d, %v", len(es), err)
	}
	for i, e := range es {
		if e.Seq != int64(i) || e.Tenant != "tenant-37" || e.Detail["n"] != fmt.Sprint(i) || e.Time.Location() != time.UTC {
			t.Fatalf("entry %d = %+v", i, e)
		}
	}
	if ts, _ := store.Tenants(ctx); !slices.Equal(ts, []string{"tenant-1", "tenant-2", "tenant-3", "tenant-37"}) {
		t.Fatalf("Tenants = %v", ts)
	}
}

// TestVerifyDetectsTampering plays an attacker with write access to the store (not to the
// signing key) and expects Verify to name the first index that was touched.
func TestVerifyDetectsTampering(t *testing.T) {
	const n = 37
	tests := []struct {
		name   string
		tamper func(t *testing.T, l *memLog, other *memLog)
		index  int64
		want   Problem
	}{
		{"modify bytes of one entry", func(t *testing.T, l, _ *memLog) {
			l.bodies[10] = []byte(strings.Replace(string(l.bodies[10]), `"account:3"`, `"account:0"`, 1))
		}, 10, ProblemAltered},
		{"flip one byte", func(t *testing.T, l, _ *memLog) { l.bodies[20][len(l.bodies[20])/2] ^= 0x01 }, 20, ProblemAltered},
		{"modify an entry and its leaf hash", func(t *testing.T, l, _ *memLog) {
			l.bodies[10] = []byte(strings.Replace(string(l.bodies[10]), `"192.0.2.7"`, `"203.0.113.9"`, 1))
			l.hashes[tlog.StoredHashIndex(0, 10)] = tlog.RecordHash(l.bodies[10])
		}, 11, ProblemHashAltered},
		{"modify an interior hash", func(t *testing.T, l, _ *memLog) {
			l.hashes[tlog.StoredHashIndex(2, 1)][0] ^= 1 // the subtree of entries 4..7, stored with 7
		}, 7, ProblemHashAltered},
		{"rebuild the whole tree around a modified entry", func(t *testing.T, l, _ *memLog) {
			l.bodies[10] = []byte(strings.Replace(string(l.bodies[10]), `"192.0.2.7"`, `"203.0.113.9"`, 1))
			l.hashes = rebuild(t, l.bodies)
		}, -1, ProblemRootMismatch},
		{"delete one entry", func(t *testing.T, l, _ *memLog) { l.bodies[12] = nil }, 12, ProblemRemoved},
		{"delete one entry and close the gap", func(t *testing.T, l, _ *memLog) {
			l.bodies = slices.Delete(l.bodies, 12, 13)
		}, 12, ProblemMisplaced},
		{"swap two entries", func(t *testing.T, l, _ *memLog) {
			l.bodies[5], l.bodies[30] = l.bodies[30], l.bodies[5]
		}, 5, ProblemMisplaced},
		{"insert one entry", func(t *testing.T, l, _ *memLog) {
			forged := forge(t, "tenant-a", 15, ActionRoleChanged)
			l.bodies = slices.Insert(l.bodies, 15, forged)
		}, 15, ProblemAltered},
		{"insert one entry with a wrong seq", func(t *testing.T, l, _ *memLog) {
			l.bodies = slices.Insert(l.bodies, 15, forge(t, "tenant-a", 99, ActionRoleChanged))
		}, 15, ProblemMisplaced},
		{"append one entry past the checkpoint", func(t *testing.T, l, _ *memLog) {
			l.bodies = append(l.bodies, forge(t, "tenant-a", n, ActionSignIn))
		}, n, ProblemUnsigned},
		{"truncate the tail", func(t *testing.T, l, _ *memLog) {
			l.bodies = l.bodies[:n-3]
			l.hashes = l.hashes[:tlog.StoredHashIndex(0, n-3)]
		}, n - 3, ProblemTruncated},
		{"truncate the tail, keep the hashes", func(t *testing.T, l, _ *memLog) { l.bodies = l.bodies[:n-3] }, n - 3, ProblemTruncated},
		{"copy another tenant's entry", func(t *testing.T, l, other *memLog) { l.bodies[3] = other.bodies[3] }, 3, ProblemMisplaced},
		{"replace the checkpoint", func(t *testing.T, l, _ *memLog) {
			s, _ := MustKeys(t)
			msg, err := note.Sign(&note.Note{Text: checkpointText("tenant-a", n, tlog.Hash{})}, s)
			if err != nil {
				t.Fatal(err)
			}
			l.head = msg
		}, -1, ProblemBadCheckpoint},
		{"checkpoint of another tenant", func(t *testing.T, l, other *memLog) { l.head = other.head }, -1, ProblemBadCheckpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c := &clock{now: t0}
			store := NewMemoryStore()
			l := MustLog(t, store, c)
			appendN(t, l, c, "tenant-a", n)
			appendN(t, l, c, "tenant-b", n)
			if _, err := l.Verify(ctx, "tenant-a", nil); err != nil {
				t.Fatalf("Verify before tampering: %v", err)
			}
			store.mu.Lock()
			tt.tamper(t, store.logs["tenant-a"], store.logs["tenant-b"])
			store.mu.Unlock()
			_, err := l.Verify(ctx, "tenant-a", nil)
			wantProblem(t, err, tt.index, tt.want)
			if _, err := l.Verify(ctx, "tenant-b", nil); err != nil {
				t.Fatalf("Verify(tenant-b) after tampering with tenant-a: %v", err)
			}
		})
	}
}

// rebuild recomputes every stored hash from bodies, as an attacker without the signing key can.
func rebuild(t *testing.T, bodies [][]byte) []tlog.Hash {
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

// forge makes a well-formed entry an attacker could write.
func forge(t *testing.T, tenant string, seq int64, a Action) []byte {
	e, err := prepare(Entry{Seq: seq, Time: t0, Tenant: tenant, Actor: "account:0", Action: a, Target: "account:666"})
	if err != nil {
		t.Fatal(err)
	}
	e.salt = make([]byte, saltSize)
	b, err := encode(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRollbackNeedsATrustedCheckpoint: an attacker who truncates the log and puts back an
// older signed checkpoint leaves a log that is consistent in itself; only a checkpoint kept
// outside the database reveals it.
func TestRollbackNeedsATrustedCheckpoint(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: t0}
	store := NewMemoryStore()
	l := MustLog(t, store, c)
	old := appendN(t, l, c, "tenant-a", 20)
	latest := appendN(t, l, c, "tenant-a", 5)

	// A trusted checkpoint from before, and the current one, both pass on the honest log.
	for _, tc := range [][]byte{old.Note, latest.Note} {
		if _, err := l.Verify(ctx, "tenant-a", tc); err != nil {
			t.Fatalf("Verify(trusted size %d): %v", len(tc), err)
		}
	}

	store.mu.Lock()
	ml := store.logs["tenant-a"]
	ml.bodies, ml.hashes, ml.head = ml.bodies[:20], ml.hashes[:tlog.StoredHashCount(20)], old.Note
	store.mu.Unlock()
	if _, err := l.Verify(ctx, "tenant-a", nil); err != nil {
		t.Fatalf("Verify without a trusted checkpoint = %v; a full rollback is expected to pass", err)
	}
	_, err := l.Verify(ctx, "tenant-a", latest.Note)
	wantProblem(t, err, 20, ProblemTruncated)
}

// TestTrustedCheckpointDetectsRewrittenHistory: someone holding the signing key rewrites an
// old entry and re-signs; a checkpoint kept from before shows the history changed.
func TestTrustedCheckpointDetectsRewrittenHistory(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: t0}
	store := NewMemoryStore()
	l := MustLog(t, store, c)
	before := appendN(t, l, c, "tenant-a", 10)

	store.mu.Lock()
	ml := store.logs["tenant-a"]
	ml.bodies[3] = []byte(strings.Replace(string(ml.bodies[3]), `"192.0.2.7"`, `"203.0.113.9"`, 1))
	ml.hashes = rebuild(t, ml.bodies)
	root, err := tlog.TreeHash(10, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = ml.hashes[x]
		}
		return out, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := l.sign("tenant-a", 10, root) // the insider has the key
	if err != nil {
		t.Fatal(err)
	}
	ml.head = cp.Note
	store.mu.Unlock()

	if _, err := l.Verify(ctx, "tenant-a", nil); err != nil {
		t.Fatalf("Verify of a re-signed log = %v; expected to pass without a trusted checkpoint", err)
	}
	_, err = l.Verify(ctx, "tenant-a", before.Note)
	wantProblem(t, err, -1, ProblemInconsistent)
}

func TestAppendRefusesToSignOverTampering(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: t0}
	store := NewMemoryStore()
	l := MustLog(t, store, c)
	appendN(t, l, c, "tenant-a", 12)
	store.mu.Lock()
	ml := store.logs["tenant-a"]
	ml.bodies[2] = []byte(strings.Replace(string(ml.bodies[2]), `"192.0.2.7"`, `"203.0.113.9"`, 1))
	ml.hashes = rebuild(t, ml.bodies)
	store.mu.Unlock()
	_, _, err := l.Append(ctx, "tenant-a", Entry{Actor: "account:1", Action: ActionSignIn})
	if !errors.Is(err, ErrTampered) {
		t.Fatalf("Append onto a tampered log = %v, want ErrTampered", err)
	}
	if n, _ := store.Len(ctx, "tenant-a"); n != 12 {
		t.Fatalf("Len = %d after a refused append, want 12", n)
	}
}

func TestProveEntry(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: t0}
	l := MustLog(t, NewMemoryStore(), c)
	appendN(t, l, c, "tenant-a", 21)
	for _, i := range []int64{0, 7, 20} {
		body, proof, cp, err := l.ProveEntry(ctx, "tenant-a", i)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckEntry(cp, i, body, proof); err != nil {
			t.Fatalf("CheckEntry(%d): %v", i, err)
		}
		forged := []byte(strings.Replace(string(body), "account:", "account:9", 1))
		if err := CheckEntry(cp, i, forged, proof); err == nil {
			t.Fatalf("CheckEntry(forged %d) = nil", i)
		}
	}
	if _, _, _, err := l.ProveEntry(ctx, "tenant-a", 21); err == nil {
		t.Fatal("ProveEntry(past the end) = nil error")
	}
}

func TestRetention(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: t0}
	store := NewMemoryStore()
	s, v := MustKeys(t)
	l, err := New(store, Options{Signer: s, Verifier: v, Now: c.Now}) // default retention
	if err != nil {
		t.Fatal(err)
	}
	// 100 entries, one every 2 days.
	var early Checkpoint
	for i := 0; i < 100; i++ {
		_, cp, err := l.Append(ctx, "tenant-a", Entry{Actor: "account:1", Action: ActionSignIn})
		if err != nil {
			t.Fatal(err)
		}
		if i == 9 {
			early = cp
		}
		c.Advance(48 * time.Hour)
	}
	// Now is t0+200d: entries from before t0+20d (indexes 0..9) are past 180 days.
	pruned, err := l.Prune(ctx, "tenant-a")
	if err != nil || pruned != 10 {
		t.Fatalf("Prune = %d, %v, want 10", pruned, err)
	}
	if again, err := l.Prune(ctx, "tenant-a"); again != 0 || err != nil {
		t.Fatalf("second Prune = %d, %v, want 0", again, err)
	}
	rep, err := l.Verify(ctx, "tenant-a", early.Note)
	if err != nil {
		t.Fatalf("Verify after pruning: %v", err)
	}
	if rep.Pruned != 10 || rep.Checkpoint.Size != 101 || rep.Bodies != 91 {
		t.Fatalf("Verify after pruning = %+v, want pruned 10, size 101, 91 bodies", rep)
	}
	bs, _ := store.ReadBodies(ctx, "tenant-a", 0, 101)
	for i, b := range bs {
		if (i < 10) != (b == nil) {
			t.Fatalf("body %d present = %v after pruning below 10", i, b != nil)
		}
	}
	es, err := l.Entries(ctx, "tenant-a", 100, 101)
	if err != nil || len(es) != 1 || es[0].Action != ActionRetentionPrune || es[0].Detail["pruned_before"] != "10" {
		t.Fatalf("last entry = %+v, %v, want the retention_prune record", es, err)
	}
	if _, _, _, err := l.ProveEntry(ctx, "tenant-a", 3); err == nil {
		t.Fatal("ProveEntry(pruned) = nil error")
	}

	// Appending, pruning again later, and verifying all keep working.
	c.Advance(30*24*time.Hour - 3*time.Minute) // appendN advances 3 minutes: now is t0+230d
	appendN(t, l, c, "tenant-a", 3)
	if pruned, err := l.Prune(ctx, "tenant-a"); err != nil || pruned != 15 {
		t.Fatalf("later Prune = %d, %v, want 15", pruned, err)
	}
	rep, err = l.Verify(ctx, "tenant-a", nil)
	if err != nil || rep.Pruned != 25 {
		t.Fatalf("Verify after the second prune = %+v, %v, want pruned 25", rep, err)
	}

	// Deleting bodies beyond what retention recorded is still caught, even right after the
	// pruned range, where it might pass for retention.
	store.mu.Lock()
	for i := 25; i < 30; i++ {
		store.logs["tenant-a"].bodies[i] = nil
	}
	store.mu.Unlock()
	_, err = l.Verify(ctx, "tenant-a", nil)
	wantProblem(t, err, 25, ProblemRemoved)
}

func TestRetentionRecordCannotBeDropped(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: t0}
	store := NewMemoryStore()
	l := MustLog(t, store, c)
	appendN(t, l, c, "tenant-a", 5)
	c.Advance(200 * 24 * time.Hour)
	appendN(t, l, c, "tenant-a", 5)
	if n, err := l.Prune(ctx, "tenant-a"); n != 5 || err != nil {
		t.Fatalf("Prune = %d, %v", n, err)
	}
	// Without the retention record, the gap is unexplained.
	store.mu.Lock()
	store.logs["tenant-a"].bodies[10] = nil
	store.mu.Unlock()
	_, err := l.Verify(ctx, "tenant-a", nil)
	wantProblem(t, err, 0, ProblemRemoved)
}

func TestConcurrentAppendsFromTwoInstances(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: t0}
	store := NewMemoryStore()
	s, v := MustKeys(t)
	var logs []*Log
	for range 2 {
		l, err := New(store, Options{Signer: s, Verifier: v, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, l)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int64]bool{}
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				idx, _, err := logs[g%2].Append(ctx, "tenant-a", Entry{Actor: fmt.Sprint("account:", g), Action: ActionSignIn, Detail: map[string]string{"i": fmt.Sprint(i)}})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[idx] {
					t.Errorf("index %d returned twice", idx)
				}
				seen[idx] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	rep, err := logs[0].Verify(ctx, "tenant-a", nil)
	if err != nil || rep.Checkpoint.Size != 100 {
		t.Fatalf("Verify = %+v, %v, want 100 entries", rep, err)
	}
}

func TestNewChecksKeys(t *testing.T) {
	s, _ := MustKeys(t)
	_, v := MustKeys(t)
	if _, err := New(NewMemoryStore(), Options{Signer: s, Verifier: v}); err == nil {
		t.Fatal("New with mismatched signer and verifier = nil error")
	}
	if _, err := New(NewMemoryStore(), Options{}); err == nil {
		t.Fatal("New without a verifier = nil error")
	}
	ro, err := New(NewMemoryStore(), Options{Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ro.Append(context.Background(), "t", Entry{Actor: "a", Action: ActionSignIn}); err == nil {
		t.Fatal("Append on a verify-only Log = nil error")
	}
}

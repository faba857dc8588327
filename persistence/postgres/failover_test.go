package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/slotd/slotd/internal/pgtest"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/postgres"
)

// TestFailover loses the primary under append load: a synchronous standby
// is promoted, the store (one multi-host DSN with
// target_session_attrs=read-write) finds the new primary by itself, and
// every acknowledged append is there. It logs the outage window.
func TestFailover(t *testing.T) {
	t.Parallel()
	primary := pgtest.Start(t)
	db := migratedDB(t, primary)
	standby := primary.StartStandby(t)
	primary.Configure(t, "synchronous_standby_names", "*") // an ack means on both
	dsn := fmt.Sprintf("postgres://%s@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable&target_session_attrs=read-write&connect_timeout=2",
		pgtest.AppRole, primary.Port(), standby.Port(), db.Name)
	s := mustOpen(t, dsn, postgres.Options{MaxConns: 16})

	const tenants = 4
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex // guards the fields below
	acked := make([]uint64, tenants)
	var killedAt time.Time
	firstAfter := make([]time.Time, tenants) // first ack after the kill
	var wg sync.WaitGroup
	for i := range tenants {
		wg.Go(func() {
			tenant := fmt.Sprintf("t%d", i)
			var head uint64
			for ctx.Err() == nil {
				_, err := s.Append(ctx, tenant, head, [][]byte{payload(tenant, head+1)})
				switch {
				case err == nil:
					head++
					mu.Lock()
					acked[i] = head
					if !killedAt.IsZero() && firstAfter[i].IsZero() {
						firstAfter[i] = time.Now()
					}
					mu.Unlock()
				case errors.Is(err, persistence.ErrConflict):
					// An earlier append whose outcome was lost with the
					// connection did commit: it is ours, move past it.
					tail, rerr := s.ReadFrom(ctx, tenant, head, 0)
					if rerr == nil && len(tail) > 0 {
						head = tail[len(tail)-1].Seq
					}
				default:
					time.Sleep(5 * time.Millisecond) // the database is away: retry
				}
			}
		})
	}
	waitAcked := func(n uint64) {
		t.Helper()
		checkFor(t, 60*time.Second, 5*time.Millisecond, func() error {
			mu.Lock()
			defer mu.Unlock()
			for i, a := range acked {
				if a < n {
					return fmt.Errorf("tenant %d has %d acknowledged appends, want %d", i, a, n)
				}
			}
			return nil
		})
	}
	waitAcked(20)

	primary.Kill(t)
	// From here on an acknowledgement can only come from the new primary.
	mu.Lock()
	killedAt = time.Now()
	before := append([]uint64(nil), acked...)
	mu.Unlock()
	standby.Promote(t)
	promotedAfter := time.Since(killedAt)
	checkFor(t, 60*time.Second, 5*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		for i := range firstAfter {
			if firstAfter[i].IsZero() {
				return fmt.Errorf("tenant %d has not appended since the primary died", i)
			}
		}
		return nil
	})
	cancel()
	wg.Wait()

	var worst time.Duration
	for _, at := range firstAfter {
		worst = max(worst, at.Sub(killedAt))
	}
	t.Logf("outage: primary killed; pg_promote on the standby returned after %v; every tenant appending again %v after the kill", promotedAfter.Round(time.Millisecond), worst.Round(time.Millisecond))

	// Everything acknowledged, before the crash and after, is on the new
	// primary.
	for i := range tenants {
		tenant := fmt.Sprintf("t%d", i)
		entries, err := s.ReadFrom(t.Context(), tenant, 0, 0)
		if err != nil {
			t.Fatalf("ReadFrom(%s) on the new primary = %v", tenant, err)
		}
		if uint64(len(entries)) < acked[i] || acked[i] <= before[i] {
			t.Fatalf("%s: %d entries on the new primary; %d acknowledged (%d before the failover)", tenant, len(entries), acked[i], before[i])
		}
		for k, e := range entries {
			if e.Seq != uint64(k+1) || string(e.Data) != string(payload(tenant, e.Seq)) {
				t.Fatalf("%s: entry %d = {%d %q}, want {%d %q}", tenant, k, e.Seq, e.Data, k+1, payload(tenant, uint64(k+1)))
			}
		}
	}
}

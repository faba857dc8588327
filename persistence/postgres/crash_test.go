package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/slotd/slotd/internal/pgtest"
	"github.com/slotd/slotd/persistence/postgres"
)

// TestCrashKeepsAckedAppends kills the database server (SIGKILL, no
// shutdown checkpoint) while tenants append: after crash recovery every
// acknowledged append is there, the journals are dense, and the same store
// carries on once the server is back, without being reopened.
func TestCrashKeepsAckedAppends(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t) // its own cluster: the shared one must not die
	db := migratedDB(t, c)
	s := mustOpen(t, db.AppDSN, postgres.Options{MaxConns: 16})

	const tenants = 8
	var mu sync.Mutex // guards acked
	acked := make([]uint64, tenants)
	var wg sync.WaitGroup
	for i := range tenants {
		wg.Go(func() {
			tenant := fmt.Sprintf("t%d", i)
			for head := uint64(0); ; head++ {
				if _, err := s.Append(context.Background(), tenant, head, [][]byte{payload(tenant, head+1)}); err != nil {
					return // the server is gone
				}
				mu.Lock()
				acked[i] = head + 1
				mu.Unlock()
			}
		})
	}
	checkFor(t, 30*time.Second, 5*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		for i, n := range acked {
			if n < 20 {
				return fmt.Errorf("tenant %d has %d acknowledged appends, want 20 before the crash", i, n)
			}
		}
		return nil
	})
	c.Kill(t)
	wg.Wait()
	c.Restart(t)

	for i := range tenants {
		tenant := fmt.Sprintf("t%d", i)
		// The pool's old connections are dead; the first calls may fail
		// until it has made new ones.
		checkFor(t, 30*time.Second, 10*time.Millisecond, func() error {
			entries, err := s.ReadFrom(t.Context(), tenant, 0, 0)
			if err != nil {
				return err
			}
			if uint64(len(entries)) < acked[i] {
				return fmt.Errorf("%s: %d entries after recovery, %d were acknowledged", tenant, len(entries), acked[i])
			}
			for k, e := range entries {
				if e.Seq != uint64(k+1) || string(e.Data) != string(payload(tenant, e.Seq)) {
					t.Fatalf("%s: entry %d = {%d %q}, want {%d %q}", tenant, k, e.Seq, e.Data, k+1, payload(tenant, uint64(k+1)))
				}
			}
			head := uint64(len(entries))
			if _, err := s.Append(t.Context(), tenant, head, [][]byte{payload(tenant, head+1)}); err != nil {
				return fmt.Errorf("%s: Append after recovery: %w", tenant, err)
			}
			return nil
		})
	}
}

func payload(tenant string, seq uint64) []byte { return fmt.Appendf(nil, "%s/%d", tenant, seq) }

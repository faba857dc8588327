package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/postgres"
)

// TestTwoInstancesRace plays two slotd instances, each with its own store
// (its own connection pool) on one database, whose actors both accepted a
// booking for the same slot and append it at the same head. Exactly one
// append wins each round; the loser's reload sees the winner's booking.
func TestTwoInstancesRace(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	instances := []*postgres.Store{mustOpen(t, db.AppDSN, postgres.Options{}), mustOpen(t, db.AppDSN, postgres.Options{})}
	const tenant = "salon"
	head, err := instances[0].Append(t.Context(), tenant, 0, [][]byte{configured(t, resource("chair", 1))})
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 20
	for round := range rounds {
		start := make(chan struct{})
		errs := make([]error, len(instances))
		heads := make([]uint64, len(instances))
		var wg sync.WaitGroup
		for i, s := range instances {
			ev := confirmed(t, fmt.Sprintf("r%d-i%d", round, i), "chair", at(float64(round)), at(float64(round)+1))
			wg.Go(func() {
				<-start
				heads[i], errs[i] = s.Append(context.Background(), tenant, head, [][]byte{ev})
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: instances %d and %d both appended at %d", round, winner, i, head)
				}
				winner = i
			case !errors.Is(err, persistence.ErrConflict):
				t.Fatalf("round %d: instance %d: Append = %v, want nil or ErrConflict", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no instance won", round)
		}
		// The loser reloads the tail and finds the winner's booking; a
		// retry of its own booking for the slot (an engine that failed to
		// re-validate) is refused by the projection.
		loser := instances[1-winner]
		tail, err := loser.ReadFrom(t.Context(), tenant, head, 0)
		if err != nil || len(tail) != 1 || tail[0].Seq != head+1 {
			t.Fatalf("round %d: loser's ReadFrom(%d) = %v, %v; want the winner's entry %d", round, head, tail, err, head+1)
		}
		head = heads[winner]
		retry := confirmed(t, fmt.Sprintf("r%d-i%d", round, 1-winner), "chair", at(float64(round)), at(float64(round)+1))
		if _, err := loser.Append(t.Context(), tenant, head, [][]byte{retry}); !errors.Is(err, postgres.ErrOverlap) {
			t.Fatalf("round %d: loser's retry of the same slot = %v, want ErrOverlap", round, err)
		}
	}
	if got := seats(t, db.AppDSN, tenant, "chair"); len(got) != rounds {
		t.Fatalf("%d confirmed bookings on the chair, want %d (one per round)", len(got), rounds)
	}
}

// follower runs Store.Follow in a goroutine and records what it hears.
type follower struct {
	mu    sync.Mutex // guards heard
	heard []string
	stop  context.CancelFunc
	done  chan error
}

func follow(t *testing.T, s *postgres.Store) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{stop: cancel, done: make(chan error, 1)}
	go func() {
		f.done <- s.Follow(ctx, func(tenant string) {
			f.mu.Lock()
			f.heard = append(f.heard, tenant)
			f.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-f.done
	})
	return f
}

// count returns how many times the follower heard tenant ("" is a
// re-listen).
func (f *follower) count(tenant string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, h := range f.heard {
		if h == tenant {
			n++
		}
	}
	return n
}

// waitFor waits until the follower heard tenant at least n times.
func (f *follower) waitFor(t *testing.T, tenant string, n int) {
	t.Helper()
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if got := f.count(tenant); got < n {
			return fmt.Errorf("follower heard %q %d times, want %d", tenant, got, n)
		}
		return nil
	})
}

// TestFollowAcrossInstances: an append on instance B wakes instance A,
// which then reads the tail; after A's listening connection is killed it
// reconnects by itself, says so, and keeps hearing appends.
func TestFollowAcrossInstances(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	a := mustOpen(t, db.AppDSN, postgres.Options{})
	b := mustOpen(t, db.AppDSN, postgres.Options{})
	f := follow(t, a)
	f.waitFor(t, "", 1) // listening

	if _, err := b.Append(t.Context(), "acme", 0, [][]byte{[]byte("e1")}); err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "acme", 1)
	if tail, err := a.ReadFrom(t.Context(), "acme", 0, 0); err != nil || len(tail) != 1 || string(tail[0].Data) != "e1" {
		t.Fatalf("A: ReadFrom(acme) after the wake-up = %v, %v; want [e1]", tail, err)
	}
	// A conflicting append rolls back, and its notification with it; the
	// next real append is heard.
	if _, err := b.Append(t.Context(), "acme", 0, [][]byte{[]byte("stale")}); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("stale Append = %v, want ErrConflict", err)
	}
	if _, err := b.Append(t.Context(), "other", 0, [][]byte{[]byte("o1")}); err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "other", 1)
	if n := f.count("acme"); n != 1 {
		t.Errorf("follower heard acme %d times, want 1 (the conflicting append must not notify)", n)
	}

	// Kill A's listening connection from the server side.
	super := connect(t, shared.Cluster(t).SuperuserDSN())
	tag, err := super.Exec(t.Context(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'", db.Name)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("terminate the listener: %v, %v; want one backend", tag, err)
	}
	f.waitFor(t, "", 2) // listening again
	if _, err := b.Append(t.Context(), "acme", 1, [][]byte{[]byte("e2")}); err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "acme", 2)

	// Follow ends with the store.
	a.Close()
	select {
	case err := <-f.done:
		f.done <- err // for the cleanup
		if !errors.Is(err, postgres.ErrClosed) {
			t.Errorf("Follow after Close = %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not return after Close")
	}
}

// TestNoNotify: with NoNotify an append wakes nobody.
func TestNoNotify(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	quiet := mustOpen(t, db.AppDSN, postgres.Options{NoNotify: true})
	loud := mustOpen(t, db.AppDSN, postgres.Options{})
	f := follow(t, mustOpen(t, db.AppDSN, postgres.Options{}))
	f.waitFor(t, "", 1)
	if _, err := quiet.Append(t.Context(), "quiet", 0, [][]byte{[]byte("q")}); err != nil {
		t.Fatal(err)
	}
	// Close sends whatever a store has pending, and notifications arrive in
	// commit order: once the loud append is heard, a notification of the
	// quiet one would have been heard before it.
	quiet.Close()
	if _, err := loud.Append(t.Context(), "loud", 0, [][]byte{[]byte("l")}); err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, "loud", 1)
	if n := f.count("quiet"); n != 0 {
		t.Errorf("follower heard a NoNotify append %d times, want 0", n)
	}
}

// TestNotifyBurst: a burst of appends from many goroutines is heard,
// every tenant at least once (coalesced: not necessarily once per append).
func TestNotifyBurst(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	s := mustOpen(t, db.AppDSN, postgres.Options{MaxConns: 16})
	f := follow(t, mustOpen(t, db.AppDSN, postgres.Options{}))
	f.waitFor(t, "", 1)
	const tenants, appends = 16, 10
	var wg sync.WaitGroup
	for i := range tenants {
		wg.Go(func() {
			tenant := fmt.Sprintf("t%d", i)
			for seq := range uint64(appends) {
				if _, err := s.Append(context.Background(), tenant, seq, [][]byte{[]byte("x")}); err != nil {
					t.Errorf("Append(%s, %d) = %v", tenant, seq, err)
					return
				}
			}
		})
	}
	wg.Wait()
	// The last append of each tenant is followed by a notification.
	for i := range tenants {
		f.waitFor(t, fmt.Sprintf("t%d", i), 1)
	}
	total := 0
	for i := range tenants {
		total += f.count(fmt.Sprintf("t%d", i))
	}
	t.Logf("%d appends, %d notifications", tenants*appends, total)
}

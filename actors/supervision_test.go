package actors_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/persistence/memstore"
)

// TestPanicRestartsActor: a panic while committing a command is answered
// with internal, the actor restarts from stored state, other tenants are
// untouched, and the tenant works again.
func TestPanicRestartsActor(t *testing.T) {
	var armed atomic.Bool
	st := &panicStore{Store: memstore.New(), appendPanics: func(tenant string) bool {
		return tenant == "boom" && armed.CompareAndSwap(true, false)
	}}
	m := actors.NewMetrics(nil)
	r := mustRegistry(t, actors.Config{Store: st, Metrics: m})
	mustConfigure(t, r, "boom")
	mustConfigure(t, r, "calm")
	sub := mustSubscribe(t, r, "boom", dayQuery(), 0)
	nextUpdate(t, sub)
	start := slotAt(t, "alice", 1, 14)

	armed.Store(true)
	_, err := r.Do(context.Background(), "boom", bookCut("b1", "alice", start))
	if codeOf(err) != engine.CodeInternal {
		t.Fatalf("Do(boom, Book) with a panicking store = %v, want %s", err, engine.CodeInternal)
	}
	// The reply goes out before the supervisor counts the restart.
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if n := metricValue(t, m.Restarts); n != 1 {
			return fmt.Errorf("restarts = %v, want 1", n)
		}
		return nil
	})
	mustDo(t, r, "calm", bookCut("c1", "alice", start))
	// The panicked booking was not applied: the slot is still free.
	if got := confirmed(t, r, "boom"); len(got) != 0 {
		t.Errorf("boom's bookings after the panic: %v, want none", got)
	}
	mustDo(t, r, "boom", bookCut("b1", "alice", start))
	if got := confirmed(t, r, "boom"); len(got) != 1 {
		t.Errorf("boom's bookings: %v, want [b1]", got)
	}
	// The subscription survived the restart and sees the booking.
	if u := nextUpdate(t, sub); u.Kind != actors.UpdateDelta || !hasTime(u.Removed, start) {
		t.Errorf("update after restart %+v, want a delta removing %v", u, start)
	}
}

// TestPanicRestartBound: with an Append that always panics, the actor
// restarts MaxRestarts times, then gives up: the commands still queued are
// answered unavailable and the actor exits rather than spinning.
func TestPanicRestartBound(t *testing.T) {
	st := &panicStore{Store: memstore.New(), appendPanics: func(tenant string) bool { return tenant == "boom" }}
	const maxRestarts = 2
	r := mustRegistry(t, actors.Config{Store: st, MaxRestarts: maxRestarts, BatchMax: 1, MailboxSize: 8})
	if _, err := r.Do(context.Background(), "boom", engine.Configure{Config: mustConfig(t)}); codeOf(err) != engine.CodeInternal {
		t.Fatalf("Do(Configure) = %v, want %s", err, engine.CodeInternal)
	}
	// Park the actor in a read, queue six commands behind it, let go.
	parked, unpark := make(chan struct{}), make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		readDone <- r.Read(context.Background(), "boom", func(*engine.State, uint64) error {
			close(parked)
			<-unpark
			return nil
		})
	}()
	<-parked
	const n = 6
	errs := make(chan error, n)
	configure := engine.Configure{Config: mustConfig(t)}
	for range n {
		go func() {
			_, err := r.Do(context.Background(), "boom", configure)
			errs <- err
		}()
	}
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if q := r.MailboxLen("boom"); q != n {
			return fmt.Errorf("mailbox holds %d, want %d", q, n)
		}
		return nil
	})
	close(unpark)
	if err := <-readDone; err != nil {
		t.Fatalf("Read = %v", err)
	}
	codes := map[engine.Code]int{}
	for range n {
		codes[codeOf(<-errs)]++
	}
	// One panic before parking, then maxRestarts more are tolerated.
	if codes[engine.CodeInternal] != maxRestarts || codes[engine.CodeUnavailable] != n-maxRestarts {
		t.Errorf("results by code %v, want %d %s then %d %s", codes, maxRestarts, engine.CodeInternal, n-maxRestarts, engine.CodeUnavailable)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := r.Live(); n != 0 {
			return fmt.Errorf("%d live actors, want the crashed one gone", n)
		}
		return nil
	})
	if p := st.panics.Load(); p != maxRestarts+1 {
		t.Errorf("Append panicked %d times, want %d", p, maxRestarts+1)
	}
	// Other tenants are unaffected.
	mustConfigure(t, r, "calm")
}

// TestLoadPanics: a store whose Load always panics makes the tenant answer
// unavailable after the restart bound, without spinning.
func TestLoadPanics(t *testing.T) {
	st := &panicStore{Store: memstore.New(), loadPanics: func(tenant string) bool { return tenant == "boom" }}
	const maxRestarts = 3
	r := mustRegistry(t, actors.Config{Store: st, MaxRestarts: maxRestarts})
	_, err := r.Do(context.Background(), "boom", engine.Configure{Config: mustConfig(t)})
	if codeOf(err) != engine.CodeUnavailable {
		t.Errorf("Do(boom) with a panicking Load = %v, want %s", err, engine.CodeUnavailable)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := r.Live(); n != 0 {
			return fmt.Errorf("%d live actors, want the crashed one gone", n)
		}
		return nil
	})
	// Each actor gives up after maxRestarts+1 panics. If one gave up before
	// the request reached its mailbox, the registry tried a fresh actor
	// (at most five in all).
	if p := st.panics.Load(); p%(maxRestarts+1) != 0 || p == 0 || p > 5*(maxRestarts+1) {
		t.Errorf("Load panicked %d times, want a multiple of %d, at most %d", p, maxRestarts+1, 5*(maxRestarts+1))
	}
	mustConfigure(t, r, "calm")
}

// TestLoadFailure: a tenant whose state cannot be loaded answers
// unavailable, and works once the store does.
func TestLoadFailure(t *testing.T) {
	st := memstore.New()
	var failing atomic.Bool
	failing.Store(true)
	st.FailLoad = func(string) error {
		if failing.Load() {
			return errors.New("disk unreadable")
		}
		return nil
	}
	r := mustRegistry(t, actors.Config{Store: st})
	if _, err := r.Do(context.Background(), "salon", engine.Configure{Config: mustConfig(t)}); codeOf(err) != engine.CodeUnavailable {
		t.Errorf("Do with a failing Load = %v, want %s", err, engine.CodeUnavailable)
	}
	failing.Store(false)
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		_, err := r.Do(context.Background(), "salon", engine.Configure{Config: mustConfig(t)})
		return err
	})
}

// TestPanicMidBatchAnswersEveryone: a panic while handling one message of a
// batch must still answer every message taken from the mailbox with it,
// the panicking one included; nobody is left waiting forever.
func TestPanicMidBatchAnswersEveryone(t *testing.T) {
	r := mustRegistry(t, actors.Config{})
	mustConfigure(t, r, "salon")
	parked, unpark := make(chan struct{}), make(chan struct{})
	go r.Read(context.Background(), "salon", func(*engine.State, uint64) error {
		close(parked)
		<-unpark
		return nil
	})
	<-parked
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	readErr := make(chan error, 1)
	go func() {
		readErr <- r.Read(ctx, "salon", func(*engine.State, uint64) error { panic("bug in a read") })
	}()
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if q := r.MailboxLen("salon"); q != 1 {
			return fmt.Errorf("mailbox holds %d, want 1", q)
		}
		return nil
	})
	bookErr := make(chan error, 1)
	book := bookCut("b1", "alice", slotAt(t, "alice", 1, 9))
	go func() {
		_, err := r.Do(ctx, "salon", book)
		bookErr <- err
	}()
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if q := r.MailboxLen("salon"); q != 2 {
			return fmt.Errorf("mailbox holds %d, want 2", q)
		}
		return nil
	})
	close(unpark)
	if err := <-readErr; codeOf(err) != engine.CodeInternal {
		t.Errorf("Read whose function panics = %v, want %s", err, engine.CodeInternal)
	}
	if err := <-bookErr; err != nil && codeOf(err) != engine.CodeInternal {
		t.Errorf("Do(Book) batched after the panicking read = %v, want success or %s", err, engine.CodeInternal)
	}
	// The tenant works on.
	mustDo(t, r, "salon", bookCut("b2", "alice", slotAt(t, "alice", 1, 10)))
}

// TestStorageErrorMidBatch: when a failed append cannot even reload the
// tenant, the actor stops; every message of its batch and mailbox is
// answered unavailable, and a fresh actor serves the tenant later.
func TestStorageErrorMidBatch(t *testing.T) {
	st, broken := breakableStore()
	r := mustRegistry(t, actors.Config{Store: st})
	mustConfigure(t, r, "salon")

	parked, unpark := make(chan struct{}), make(chan struct{})
	go r.Read(context.Background(), "salon", func(*engine.State, uint64) error {
		close(parked)
		<-unpark
		return nil
	})
	<-parked
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Queue book, read, book, in that order, to form one batch.
	errs := make([]chan error, 3)
	for i := range errs {
		errs[i] = make(chan error, 1)
		book := bookCut(fmt.Sprintf("b%d", i), "alice", slotAt(t, "alice", 1, 9+i))
		go func() {
			if i == 1 {
				errs[i] <- r.Read(ctx, "salon", func(*engine.State, uint64) error { return nil })
				return
			}
			_, err := r.Do(ctx, "salon", book)
			errs[i] <- err
		}()
		checkFor(t, 5*time.Second, time.Millisecond, func() error {
			if q := r.MailboxLen("salon"); q != i+1 {
				return fmt.Errorf("mailbox holds %d, want %d", q, i+1)
			}
			return nil
		})
	}
	broken.Store(true)
	close(unpark)
	for i, c := range errs {
		if err := <-c; codeOf(err) != engine.CodeUnavailable {
			t.Errorf("message %d of the failed batch: %v, want %s", i, err, engine.CodeUnavailable)
		}
	}
	broken.Store(false)
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		_, err := r.Do(context.Background(), "salon", bookCut("b9", "alice", slotAt(t, "alice", 1, 9)))
		return err
	})
}

package actors_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/memstore"
)

// TestGroupCommit holds the first journal write of a burst of bookings at
// a gate: the rest queue up behind it and are committed together, and no
// caller hears "booked" before the write carrying its booking returned.
func TestGroupCommit(t *testing.T) {
	const n = 64
	st := newGatedStore()
	r := mustRegistry(t, actors.Config{Store: st})
	mustConfigure(t, r, "salon")
	before := len(st.appendSizes())

	open := st.close()
	defer open()
	ss := starts(t, "alice", n)
	var (
		acks     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex // guards problems
		problems []string
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("b%02d", i)
			rep, err := r.Do(context.Background(), "salon", bookCut(id, "alice", ss[i]))
			acks.Add(1)
			var problem string
			switch {
			case err != nil:
				problem = fmt.Sprintf("Do(Book %s) = %v, want success", id, err)
			case rep.Seq > st.durable.Load():
				problem = fmt.Sprintf("Do(Book %s) acked at seq %d, but the store's durable head is %d", id, rep.Seq, st.durable.Load())
			default:
				if ok, err := hasBooking(st.Store, "salon", id); !ok {
					problem = fmt.Sprintf("Do(Book %s) acked, but the booking is not in the store (%v)", id, err)
				}
			}
			if problem != "" {
				mu.Lock()
				problems = append(problems, problem)
				mu.Unlock()
			}
		}()
	}
	// The first batch is at the gate and everything else is queued behind it.
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		sizes := st.appendSizes()[before:]
		queued := r.MailboxLen("salon")
		if st.waiting.Load() != 1 || len(sizes) != 1 || sizes[0]+queued != n {
			return fmt.Errorf("waiting appends %d, batch sizes %v, queued %d; want 1 append waiting and %d commands in all",
				st.waiting.Load(), sizes, queued, n)
		}
		return nil
	})
	if got := acks.Load(); got != 0 {
		t.Errorf("%d acks arrived while the journal append was blocked, want 0", got)
	}
	open()
	wg.Wait()
	for _, p := range problems {
		t.Error(p)
	}

	sizes := st.appendSizes()[before:]
	total := 0
	for _, s := range sizes {
		total += s
	}
	if total != n || len(sizes) >= n {
		t.Errorf("appends carried %v events (%d in %d appends), want %d bookings in fewer than %d appends", sizes, total, len(sizes), n, n)
	}
	t.Logf("%d bookings committed in %d appends: %v", n, len(sizes), sizes)

	// A fresh registry on the same store (a restart) sees every booking.
	r2 := mustRegistry(t, actors.Config{Store: st.Store})
	if got := len(confirmed(t, r2, "salon")); got != n {
		t.Errorf("after reload: %d confirmed bookings, want %d", got, n)
	}
}

// TestOverloaded fills a small mailbox behind a blocked append: the next
// command is refused at once with overloaded, the queued ones still succeed.
func TestOverloaded(t *testing.T) {
	st := newGatedStore()
	r := mustRegistry(t, actors.Config{Store: st, MailboxSize: 2})
	mustConfigure(t, r, "salon")
	ss := starts(t, "alice", 4)

	open := st.close()
	defer open()
	errs := make(chan error, 3)
	do := func(i int) {
		_, err := r.Do(context.Background(), "salon", bookCut(fmt.Sprintf("b%d", i), "alice", ss[i]))
		errs <- err
	}
	go do(0)
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if w := st.waiting.Load(); w != 1 {
			return fmt.Errorf("%d appends waiting, want 1", w)
		}
		return nil
	})
	go do(1)
	go do(2)
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if q := r.MailboxLen("salon"); q != 2 {
			return fmt.Errorf("mailbox holds %d, want 2", q)
		}
		return nil
	})

	for _, cmd := range []engine.Command{bookCut("b3", "alice", ss[3]), engine.Cancel{BookingID: "b0"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := r.Do(ctx, "salon", cmd)
		cancel()
		if codeOf(err) != engine.CodeOverloaded || !actors.ErrOverloaded(err) {
			t.Errorf("Do(%s) with a full mailbox = %v, want %s", engine.CommandName(cmd), err, engine.CodeOverloaded)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := r.Read(ctx, "salon", func(*engine.State, uint64) error { return nil })
	cancel()
	if codeOf(err) != engine.CodeOverloaded {
		t.Errorf("Read with a full mailbox = %v, want %s", err, engine.CodeOverloaded)
	}
	// A subscribe waits for room instead (up to SubscribeWait): it is
	// answered once the append is let through and the mailbox drains.
	subbed := make(chan error, 1)
	q := engine.AvailabilityQuery{ServiceID: "cut", From: "2030-01-08", To: "2030-02-08", TimeZone: "UTC"}
	go func() {
		sub, err := r.SubscribeAvailability(context.Background(), "salon", q, 0)
		if err == nil {
			sub.Close()
		}
		subbed <- err
	}()
	select {
	case err := <-subbed:
		t.Fatalf("SubscribeAvailability with a full mailbox returned %v before there was room", err)
	case <-time.After(50 * time.Millisecond):
	}

	open()
	if err := <-subbed; err != nil {
		t.Errorf("SubscribeAvailability once the mailbox drained = %v, want success", err)
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("queued Do(Book) = %v, want success", err)
		}
	}
	mustDo(t, r, "salon", bookCut("b3", "alice", ss[3]))
	if got := len(confirmed(t, r, "salon")); got != 4 {
		t.Errorf("%d confirmed bookings, want 4", got)
	}
}

// TestSubscribeWaitBounded: a subscribe waits no longer than SubscribeWait
// for room in a full mailbox, then it is refused overloaded.
func TestSubscribeWaitBounded(t *testing.T) {
	st := newGatedStore()
	r := mustRegistry(t, actors.Config{Store: st, MailboxSize: 1, SubscribeWait: 30 * time.Millisecond})
	mustConfigure(t, r, "salon")
	ss := starts(t, "alice", 2)
	open := st.close()
	defer open()
	errs := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := r.Do(context.Background(), "salon", bookCut(fmt.Sprintf("b%d", i), "alice", ss[i]))
			errs <- err
		}()
		checkFor(t, 5*time.Second, time.Millisecond, func() error {
			if w, q := st.waiting.Load(), r.MailboxLen("salon"); int(w)+q != i+1 {
				return fmt.Errorf("%d appends waiting and %d queued, want %d in all", w, q, i+1)
			}
			return nil
		})
	}
	begin := time.Now()
	_, err := r.SubscribeAvailability(context.Background(), "salon", engine.AvailabilityQuery{ServiceID: "cut", From: "2030-01-08", To: "2030-01-09", TimeZone: "UTC"}, 0)
	if !actors.ErrOverloaded(err) {
		t.Errorf("SubscribeAvailability with a mailbox full for longer than SubscribeWait = %v, want overloaded", err)
	}
	if waited := time.Since(begin); waited < 30*time.Millisecond {
		t.Errorf("refused after %v, before SubscribeWait (30ms) had passed", waited)
	}
	open()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("queued Do(Book) = %v", err)
		}
	}
}

// TestAppendFailure makes one journal write fail with a storage error: the
// command is answered unavailable, the state is as if it never happened,
// and the next command goes through.
func TestAppendFailure(t *testing.T) {
	start := slotAt(t, "alice", 1, 10)
	tests := []struct {
		name  string
		setup []engine.Command
		cmd   engine.Command
		check func(t *testing.T, st *engine.State)
	}{
		{
			name: "book",
			cmd:  bookCut("b1", "alice", start),
			check: func(t *testing.T, st *engine.State) {
				if b, ok := st.Booking("b1"); ok {
					t.Errorf("Booking(b1) = %+v after a failed append, want none", b)
				}
			},
		},
		{
			name: "hold",
			cmd:  engine.PlaceHold{HoldID: "h1", ServiceID: "cut", ResourceID: "alice", Start: start},
			check: func(t *testing.T, st *engine.State) {
				if h, ok := st.Hold("h1"); ok {
					t.Errorf("Hold(h1) = %+v after a failed append, want none", h)
				}
			},
		},
		{
			name:  "cancel",
			setup: []engine.Command{bookCut("b1", "alice", start)},
			cmd:   engine.Cancel{BookingID: "b1", Reason: "changed my mind"},
			check: func(t *testing.T, st *engine.State) {
				if b, _ := st.Booking("b1"); b.Status != engine.StatusConfirmed {
					t.Errorf("Booking(b1).Status = %q after a failed cancel, want %q", b.Status, engine.StatusConfirmed)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := memstore.New()
			var fail atomic.Bool
			st.FailAppend = func(string) error {
				if fail.CompareAndSwap(true, false) {
					return errors.New("disk on fire")
				}
				return nil
			}
			r := mustRegistry(t, actors.Config{Store: st})
			mustConfigure(t, r, "salon")
			for _, c := range tt.setup {
				mustDo(t, r, "salon", c)
			}
			headBefore := len(journal(t, st, "salon"))

			fail.Store(true)
			_, err := r.Do(context.Background(), "salon", tt.cmd)
			if codeOf(err) != engine.CodeUnavailable {
				t.Fatalf("Do(%s) with a failing store = %v, want %s", engine.CommandName(tt.cmd), err, engine.CodeUnavailable)
			}
			if err := r.Read(context.Background(), "salon", func(s *engine.State, seq uint64) error {
				if seq != uint64(headBefore) {
					t.Errorf("seq after failed append = %d, want %d", seq, headBefore)
				}
				tt.check(t, s)
				return nil
			}); err != nil {
				t.Fatalf("Read = %v", err)
			}
			if got := len(journal(t, st, "salon")); got != headBefore {
				t.Errorf("journal has %d events after a failed append, want %d", got, headBefore)
			}
			// The same command works once the store does.
			mustDo(t, r, "salon", tt.cmd)
			if got := len(journal(t, st, "salon")); got != headBefore+1 {
				t.Errorf("journal has %d events after the retry, want %d", got, headBefore+1)
			}
		})
	}
}

// TestConflictFencesInstances runs two registries on one store, as two
// slotd instances would: the conditional append lets exactly one of them
// book a slot; the other reloads and answers slot_taken.
func TestConflictFencesInstances(t *testing.T) {
	start := slotAt(t, "alice", 1, 11)
	t.Run("sequential", func(t *testing.T) {
		st := memstore.New()
		r1 := mustRegistry(t, actors.Config{Store: st})
		r2 := mustRegistry(t, actors.Config{Store: st})
		mustConfigure(t, r1, "salon")
		if got := confirmed(t, r2, "salon"); len(got) != 0 { // r2 has the tenant loaded, without bookings
			t.Fatalf("r2 sees %d bookings, want 0", len(got))
		}
		mustDo(t, r1, "salon", bookCut("one", "alice", start))
		_, err := r2.Do(context.Background(), "salon", bookCut("two", "alice", start))
		if codeOf(err) != engine.CodeSlotTaken {
			t.Errorf("second instance Do(Book) of a taken slot = %v, want %s", err, engine.CodeSlotTaken)
		}
		// r2 reloaded: it now knows r1's booking and books elsewhere.
		if got := confirmed(t, r2, "salon"); len(got) != 1 || got[0].ID != "one" {
			t.Errorf("r2 sees bookings %v, want [one]", got)
		}
		mustDo(t, r2, "salon", bookCut("three", "alice", start.Add(time.Hour)))
		if got := eventTypes(journal(t, st, "salon"))[engine.EvBookingConfirmed]; got != 2 {
			t.Errorf("journal holds %d confirmed bookings, want 2", got)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		st := memstore.New()
		regs := []*actors.Registry{mustRegistry(t, actors.Config{Store: st}), mustRegistry(t, actors.Config{Store: st})}
		mustConfigure(t, regs[0], "salon")
		confirmed(t, regs[1], "salon")
		const n = 32
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := regs[i%2].Do(context.Background(), "salon", bookCut(fmt.Sprintf("b%d", i), "alice", start))
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		codes := map[engine.Code]int{}
		for err := range errs {
			codes[codeOf(err)]++
		}
		if codes[""] != 1 || codes[engine.CodeSlotTaken] != n-1 {
			t.Errorf("results by code %v, want 1 success and %d %s", codes, n-1, engine.CodeSlotTaken)
		}
		if got := eventTypes(journal(t, st, "salon"))[engine.EvBookingConfirmed]; got != 1 {
			t.Errorf("journal holds %d confirmed bookings, want 1", got)
		}
	})
}

// TestSnapshots checks that the actor snapshots after SnapshotEvery events
// (or half the state's size, whichever is more) and that a tenant reloaded
// from snapshot + journal equals the live one.
func TestSnapshots(t *testing.T) {
	st := memstore.New()
	r := mustRegistry(t, actors.Config{Store: st, SnapshotEvery: 5})
	mustConfigure(t, r, "salon")
	// Seq 1 configures; bookings are seqs 2–13. A snapshot is due at seq
	// 5 (5 events) and again 5 events after it (≥ half of 9 bookings).
	// Snapshots are stored beside the actor: one in flight delays the next
	// until it is stored, so the second lands at seq 10 or a little after.
	for i, s := range starts(t, "bob", 12) {
		mustDo(t, r, "salon", bookCut(fmt.Sprintf("b%02d", i), "bob", s))
	}
	live, seq := snapshotOf(t, r, "salon")
	if seq != 13 {
		t.Fatalf("seq after configure and 12 bookings = %d, want 13", seq)
	}
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		snap, tail, err := st.Load(context.Background(), "salon")
		if err != nil {
			return fmt.Errorf("Load = %v", err)
		}
		if snap.Seq < 10 || uint64(len(tail)) != 13-snap.Seq {
			return fmt.Errorf("stored snapshot at seq %d with %d journal entries after it, want seq 10 to 13 and the rest after it", snap.Seq, len(tail))
		}
		return nil
	})
	r2 := mustRegistry(t, actors.Config{Store: st, SnapshotEvery: 5})
	reloaded, seq2 := snapshotOf(t, r2, "salon")
	if seq2 != seq || !bytes.Equal(reloaded, live) {
		t.Errorf("reloaded state at seq %d differs from live state at seq %d:\n got %s\nwant %s", seq2, seq, reloaded, live)
	}
	// Stopping the registry snapshots the rest.
	r.Close()
	r2.Close()
	if snap, _, _ := st.Load(context.Background(), "salon"); snap.Seq != 13 {
		t.Errorf("after Close the stored snapshot is at seq %d, want 13", snap.Seq)
	}
}

// The fakes must satisfy both the actors' Store and the full persistence
// contract, so that they stay drop-in replacements for a real backend.
var (
	_ actors.Store      = (*gatedStore)(nil)
	_ actors.Store      = (*panicStore)(nil)
	_ persistence.Store = (*gatedStore)(nil)
)

// behindCodec is the JSON codec refusing, as behind the journal, every
// event of a booking whose customer is named "unstorable" (as the privacy
// codec refuses a customer whose key was forgotten); after once is set,
// only the next such event.
type behindCodec struct {
	actors.JSONCodec
	once, refusedOnce atomic.Bool
}

func (c *behindCodec) EncodeEvents(ctx context.Context, tenant string, events []engine.Event) ([][]byte, error) {
	for i, e := range events {
		if e.Booking != nil && e.Booking.Customer.Name == "unstorable" {
			if c.once.Load() && c.refusedOnce.Swap(true) {
				continue
			}
			return nil, &actors.EventError{Index: i, Err: fmt.Errorf("%w: customer key forgotten", actors.ErrBehindJournal)}
		}
	}
	return c.JSONCodec.EncodeEvents(ctx, tenant, events)
}

// TestUnstorableCommandsRefusedAlone: commands whose events the codec
// refuses as behind the journal, again after the journal was read, are
// refused one by one with a conflict, however many share a batch; the
// other commands of the batch are stored. A command refused once only
// (the journal had the answer) is stored.
func TestUnstorableCommandsRefusedAlone(t *testing.T) {
	st := newGatedStore()
	codec := &behindCodec{}
	r := mustRegistry(t, actors.Config{Store: st, Codec: codec})
	mustConfigure(t, r, "salon")
	ss := starts(t, "alice", 6)
	unstorable := func(i int) engine.Book {
		b := bookCut(fmt.Sprintf("bad%d", i), "alice", ss[i])
		b.Customer.Name = "unstorable"
		return b
	}

	open := st.close()
	defer open()
	type result struct {
		id  string
		err error
	}
	results := make(chan result, 5)
	do := func(cmd engine.Book) {
		_, err := r.Do(context.Background(), "salon", cmd)
		results <- result{cmd.BookingID, err}
	}
	go do(bookCut("first", "alice", ss[0])) // holds the actor at the gate
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if w := st.waiting.Load(); w != 1 {
			return fmt.Errorf("%d appends waiting, want 1", w)
		}
		return nil
	})
	for i := 1; i <= 3; i++ {
		go do(unstorable(i))
	}
	go do(bookCut("good", "alice", ss[4]))
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if q := r.MailboxLen("salon"); q != 4 {
			return fmt.Errorf("mailbox holds %d, want 4", q)
		}
		return nil
	})
	open()
	for range 5 {
		res := <-results
		switch {
		case res.id == "first" || res.id == "good":
			if res.err != nil {
				t.Errorf("%s = %v, want it stored", res.id, res.err)
			}
		case codeOf(res.err) != engine.CodeConflict:
			t.Errorf("%s = %v, want a conflict", res.id, res.err)
		}
	}
	if ok, _ := hasBooking(st.Store, "salon", "good"); !ok {
		t.Error("the good booking batched with three unstorable ones is not in the journal")
	}

	codec.once.Store(true)
	if _, err := r.Do(context.Background(), "salon", unstorable(5)); err != nil {
		t.Errorf("a booking refused once, then encodable = %v, want it stored", err)
	}
}

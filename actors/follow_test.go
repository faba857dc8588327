package actors_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/internal/clock"
	"github.com/slotd/slotd/persistence/memstore"
)

// Two registries on one store play two slotd instances on one database:
// what one commits, the other's subscribers must see, through Notify (the
// store's notification), Poll (when a notification is lost or there are
// none) or a conflict (when both write).

// twoInstances returns registries a and b on one memstore, the tenant
// configured through a and loaded (before any booking) by b.
func twoInstances(t *testing.T, cfgB actors.Config) (st *memstore.Store, a, b *actors.Registry) {
	t.Helper()
	st = memstore.New()
	a = mustRegistry(t, actors.Config{Store: st})
	cfgB.Store = st
	b = mustRegistry(t, cfgB)
	mustConfigure(t, a, "salon")
	confirmed(t, b, "salon")
	return st, a, b
}

func mustFeed(tb testing.TB, r *actors.Registry, tenant string, queue int) *actors.Subscription {
	tb.Helper()
	sub, err := r.SubscribeFeed(context.Background(), tenant, queue)
	if err != nil {
		tb.Fatalf("SubscribeFeed(%s) = %v", tenant, err)
	}
	tb.Cleanup(sub.Close)
	return sub
}

// assertNoUpdate fails if an update is queued for sub. It proves nothing
// about the future, only that nothing arrived so far: callers make sure
// nothing could be on its way (no Notify, no timer).
func assertNoUpdate(tb testing.TB, sub *actors.Subscription, why string) {
	tb.Helper()
	select {
	case u := <-sub.C:
		tb.Fatalf("subscription %d: unexpected update %+v %s", sub.ID, u, why)
	default:
	}
}

// TestNotifyPublishesOtherWriters: a booking made through registry A
// reaches the availability and feed subscribers of registry B once B is
// notified, for the tenant or for everyone (""), with A's journal version.
func TestNotifyPublishesOtherWriters(t *testing.T) {
	for _, tenant := range []string{"salon", ""} {
		t.Run(fmt.Sprintf("Notify(%q)", tenant), func(t *testing.T) {
			_, a, b := twoInstances(t, actors.Config{})
			avail := mustSubscribe(t, b, "salon", dayQuery(), 0)
			feed := mustFeed(t, b, "salon", 0)
			if u := nextUpdate(t, avail); u.Kind != actors.UpdateSnapshot {
				t.Fatalf("first update %+v, want a snapshot", u)
			}
			start := slotAt(t, "alice", 1, 10)
			rep := mustDo(t, a, "salon", bookCut("b1", "alice", start))
			// B only learns of the booking when told: no timer runs (the
			// clock is manual) and nothing was sent to B.
			confirmed(t, b, "salon")
			assertNoUpdate(t, avail, "before Notify")
			assertNoUpdate(t, feed, "before Notify")

			b.Notify(tenant)
			u := nextUpdate(t, avail)
			if u.Kind != actors.UpdateDelta || !hasTime(u.Removed, start) || u.Version != rep.Seq {
				t.Errorf("availability update %+v, want a delta removing %v at version %d", u, start, rep.Seq)
			}
			f := nextUpdate(t, feed)
			if f.Kind != actors.UpdateFeed || len(f.Events) != 1 || f.Events[0].Type != engine.EvBookingConfirmed ||
				f.Events[0].Booking == nil || f.Events[0].Booking.ID != "b1" || f.Version != rep.Seq {
				t.Errorf("feed update %+v, want b1 confirmed at version %d", f, rep.Seq)
			}
			// B's state has the booking: booking the slot through B is
			// refused without a conflict, a third slot goes through.
			if got := confirmed(t, b, "salon"); len(got) != 1 || got[0].ID != "b1" {
				t.Errorf("B sees bookings %v, want [b1]", got)
			}
			if _, err := b.Do(context.Background(), "salon", bookCut("b2", "alice", start)); codeOf(err) != engine.CodeSlotTaken {
				t.Errorf("B: Do(Book) of A's slot = %v, want %s", err, engine.CodeSlotTaken)
			}
		})
	}
}

// TestNotifyUnknownTenant: notifying a tenant without a live actor
// activates nothing; notifying a live one twice changes nothing more.
func TestNotifyUnknownTenant(t *testing.T) {
	_, a, b := twoInstances(t, actors.Config{})
	live := b.Live()
	b.Notify("nobody")
	b.Notify("salon")
	b.Notify("salon")
	if got := b.Live(); got != live {
		t.Errorf("Live() = %d after notifications, want %d: Notify must not activate tenants", got, live)
	}
	mustDo(t, a, "other", engine.Configure{Config: mustConfig(t)})
	b.Notify("other")
	if got := b.Live(); got != live {
		t.Errorf("Live() = %d after Notify(other), want %d", got, live)
	}
}

// TestPollPicksUpLostNotification: A books and B is never notified (the
// notification was lost, or the store sends none); B's poll, on its
// clock, delivers the update.
func TestPollPicksUpLostNotification(t *testing.T) {
	clk := clock.NewManual(t0)
	_, a, b := twoInstances(t, actors.Config{Clock: clk})
	avail := mustSubscribe(t, b, "salon", dayQuery(), 0)
	nextUpdate(t, avail) // the snapshot
	start := slotAt(t, "alice", 1, 10)
	rep := mustDo(t, a, "salon", bookCut("b1", "alice", start))
	confirmed(t, b, "salon")
	assertNoUpdate(t, avail, "without a notification or a poll")

	timers := clk.Pending() // B's refresh timer
	ctx, cancel := context.WithCancel(context.Background())
	polled := make(chan error, 1)
	go func() { polled <- b.Poll(ctx, 2*time.Second) }()
	defer func() {
		cancel()
		if err := <-polled; err != nil {
			t.Errorf("Poll = %v after cancel, want nil", err)
		}
	}()
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if got := clk.Pending(); got != timers+1 {
			return fmt.Errorf("%d timers pending, want %d (the poll's)", got, timers+1)
		}
		return nil
	})
	clk.Advance(2 * time.Second)
	u := nextUpdate(t, avail)
	if u.Kind != actors.UpdateDelta || !hasTime(u.Removed, start) || u.Version != rep.Seq {
		t.Errorf("update after a poll %+v, want a delta removing %v at version %d", u, start, rep.Seq)
	}
}

// TestPollDisabled: Poll with a zero interval only waits for its context.
func TestPollDisabled(t *testing.T) {
	clk := clock.NewManual(t0)
	r := mustRegistry(t, actors.Config{Clock: clk})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Poll(ctx, 0) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Poll(0) = %v, want nil", err)
	}
	if n := clk.Pending(); n != 0 {
		t.Errorf("Poll(0) armed %d timers, want none", n)
	}
}

// TestCatchUpLongTail: A appends more entries than one catch-up read
// returns; after one Notify, B's state is A's (byte for byte, same
// sequence), its feed got every booking in order and its availability
// subscriber, applying snapshot and deltas, ends where a fresh query does.
func TestCatchUpLongTail(t *testing.T) {
	_, a, b := twoInstances(t, actors.Config{})
	q := engine.AvailabilityQuery{ServiceID: "cut", From: "2030-01-08", To: "2030-02-08", TimeZone: "UTC"}
	avail := mustSubscribe(t, b, "salon", q, 0)
	feed := mustFeed(t, b, "salon", 0)
	view := map[int64]engine.Slot{}
	for _, s := range nextUpdate(t, avail).Slots {
		view[s.Start.UnixNano()] = s
	}

	const perResource = 200 // 600 bookings: more than one page of ReadFrom
	var want []string
	var wg sync.WaitGroup
	errs := make(chan error, 3*perResource)
	for _, res := range []string{"alice", "bob", "carol"} {
		ss := starts(t, res, perResource)
		for i, s := range ss {
			id := fmt.Sprintf("%s-%03d", res, i)
			want = append(want, id)
			wg.Go(func() {
				if _, err := a.Do(context.Background(), "salon", bookCut(id, res, s)); err != nil {
					errs <- fmt.Errorf("A: Do(Book %s) = %v", id, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	b.Notify("salon")
	liveA, seqA := snapshotOf(t, a, "salon")
	checkFor(t, 10*time.Second, time.Millisecond, func() error {
		liveB, seqB := snapshotOf(t, b, "salon")
		if seqB != seqA || !bytes.Equal(liveA, liveB) {
			return fmt.Errorf("B at seq %d, A at %d; states equal: %v", seqB, seqA, bytes.Equal(liveA, liveB))
		}
		return nil
	})

	var got []string
	var lastVersion uint64
	for len(got) < len(want) {
		u := nextUpdate(t, feed)
		if u.Version <= lastVersion {
			t.Fatalf("feed versions go %d then %d", lastVersion, u.Version)
		}
		lastVersion = u.Version
		for _, e := range u.Events {
			if e.Type == engine.EvBookingConfirmed {
				got = append(got, e.Booking.ID)
			}
		}
	}
	if lastVersion != seqA {
		t.Errorf("last feed version %d, want A's head %d", lastVersion, seqA)
	}
	// The feed lists bookings in journal order; A committed them in some
	// interleaving, so compare as sets with no duplicates.
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Errorf("feed delivered %s twice", id)
		}
		seen[id] = true
	}
	for _, id := range want {
		if !seen[id] {
			t.Errorf("feed never delivered %s", id)
		}
	}

	for {
		u := nextUpdate(t, avail)
		if u.Kind != actors.UpdateDelta {
			t.Fatalf("update %+v, want deltas only", u)
		}
		for _, s := range u.Upserted {
			view[s.Start.UnixNano()] = s
		}
		for _, r := range u.Removed {
			delete(view, r.UnixNano())
		}
		if u.Version == seqA {
			break
		}
	}
	var fresh []engine.Slot
	if err := a.Read(context.Background(), "salon", func(st *engine.State, _ uint64) error {
		var err error
		fresh, err = st.Availability(q, t0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(fresh) != len(view) {
		t.Errorf("B's subscriber sees %d slots, a fresh query %d", len(view), len(fresh))
	}
	for _, s := range fresh {
		if v, ok := view[s.Start.UnixNano()]; !ok || !v.Equal(s) {
			t.Errorf("slot %v: subscriber has %+v (present %v), fresh query %+v", s.Start, v, ok, s)
		}
	}
}

// TestNotifyNeverBlocks: while B's actor is busy (a read holds it) and
// its mailbox is full, notifications return at once and are not refused;
// once the actor is free it catches up.
func TestNotifyNeverBlocks(t *testing.T) {
	_, a, b := twoInstances(t, actors.Config{MailboxSize: 1})
	avail := mustSubscribe(t, b, "salon", dayQuery(), 0)
	nextUpdate(t, avail)

	release := make(chan struct{})
	held := make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		readDone <- b.Read(context.Background(), "salon", func(*engine.State, uint64) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	queued := make(chan error, 1)
	go func() {
		_, err := b.Do(context.Background(), "salon", bookCut("queued", "bob", slotAt(t, "bob", 1, 10)))
		queued <- err
	}()
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if n := b.MailboxLen("salon"); n != 1 {
			return fmt.Errorf("B's mailbox holds %d, want 1 (full)", n)
		}
		return nil
	})
	start := slotAt(t, "alice", 1, 10)
	mustDo(t, a, "salon", bookCut("b1", "alice", start))
	for range 10000 {
		b.Notify("salon")
		b.Notify("")
	}
	if n := b.MailboxLen("salon"); n != 1 {
		t.Errorf("B's mailbox holds %d after notifications, want 1: notifications do not use it", n)
	}
	close(release)
	if err := <-readDone; err != nil {
		t.Fatalf("Read = %v", err)
	}
	if err := <-queued; err != nil {
		t.Fatalf("queued Do(Book) = %v", err)
	}
	// The queued booking conflicted with A's and was decided again, or the
	// wake-up caught up first: either way B's subscriber sees A's booking.
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if got := confirmed(t, b, "salon"); len(got) != 2 {
			return fmt.Errorf("B sees %d bookings, want 2", len(got))
		}
		return nil
	})
	u := nextUpdate(t, avail)
	if u.Kind != actors.UpdateDelta || !hasTime(u.Removed, start) {
		t.Errorf("update %+v, want a delta removing A's booking at %v", u, start)
	}
}

// TestConflictPublishesWinner: B has not heard of A's booking and books
// through its stale state. The conditional append refuses B's write; B
// catches up, publishes A's booking to its subscribers, then decides again:
// the same slot is slot_taken, another slot is booked after A's entry.
func TestConflictPublishesWinner(t *testing.T) {
	t.Run("same slot", func(t *testing.T) {
		st, a, b := twoInstances(t, actors.Config{})
		avail := mustSubscribe(t, b, "salon", dayQuery(), 0)
		feed := mustFeed(t, b, "salon", 0)
		nextUpdate(t, avail)
		start := slotAt(t, "alice", 1, 10)
		rep := mustDo(t, a, "salon", bookCut("winner", "alice", start))
		if _, err := b.Do(context.Background(), "salon", bookCut("loser", "alice", start)); codeOf(err) != engine.CodeSlotTaken {
			t.Fatalf("B: Do(Book) of a slot A took = %v, want %s", err, engine.CodeSlotTaken)
		}
		u := nextUpdate(t, avail)
		if u.Kind != actors.UpdateDelta || !hasTime(u.Removed, start) || u.Version != rep.Seq {
			t.Errorf("B's availability update %+v, want the winner's delta removing %v at version %d", u, start, rep.Seq)
		}
		f := nextUpdate(t, feed)
		if len(f.Events) != 1 || f.Events[0].Booking == nil || f.Events[0].Booking.ID != "winner" {
			t.Errorf("B's feed update %+v, want the winner's booking", f)
		}
		assertNoUpdate(t, feed, "after the loser's refusal")
		if got := eventTypes(journal(t, st, "salon"))[engine.EvBookingConfirmed]; got != 1 {
			t.Errorf("journal holds %d confirmed bookings, want 1", got)
		}
	})
	t.Run("other slot", func(t *testing.T) {
		_, a, b := twoInstances(t, actors.Config{})
		avail := mustSubscribe(t, b, "salon", dayQuery(), 0)
		nextUpdate(t, avail)
		first, second := slotAt(t, "alice", 1, 10), slotAt(t, "alice", 1, 11)
		repA := mustDo(t, a, "salon", bookCut("a1", "alice", first))
		repB := mustDo(t, b, "salon", bookCut("b1", "alice", second))
		if repB.Seq != repA.Seq+1 {
			t.Errorf("B's booking at seq %d, want %d (after A's)", repB.Seq, repA.Seq+1)
		}
		for _, want := range []struct {
			start   time.Time
			version uint64
		}{{first, repA.Seq}, {second, repB.Seq}} {
			u := nextUpdate(t, avail)
			if u.Kind != actors.UpdateDelta || !hasTime(u.Removed, want.start) || u.Version != want.version {
				t.Errorf("B's update %+v, want a delta removing %v at version %d", u, want.start, want.version)
			}
		}
	})
}

// TestFollowConverges runs random bookings and cancellations through two
// registries at once, with notifications flying at random: the store
// keeps one history, and once both are notified they hold the same state,
// with no slot booked twice.
func TestFollowConverges(t *testing.T) {
	st, a, b := twoInstances(t, actors.Config{})
	regs := []*actors.Registry{a, b}
	slots := starts(t, "alice", 24)
	const workers, ops = 8, 40
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range ops {
				r := regs[rng.IntN(2)]
				var cmd engine.Command
				if rng.IntN(3) == 0 {
					cmd = engine.Cancel{BookingID: fmt.Sprintf("w%d-%d", w, rng.IntN(i+1))}
				} else {
					cmd = bookCut(fmt.Sprintf("w%d-%d", w, i), "alice", slots[rng.IntN(len(slots))])
				}
				if _, err := r.Do(context.Background(), "salon", cmd); err != nil {
					switch codeOf(err) {
					case engine.CodeSlotTaken, engine.CodeNotFound, engine.CodeAlreadyDone:
					default:
						t.Errorf("Do(%s) = %v", engine.CommandName(cmd), err)
					}
				}
				if rng.IntN(4) == 0 {
					regs[rng.IntN(2)].Notify("salon")
				}
			}
		})
	}
	wg.Wait()
	a.Notify("")
	b.Notify("")
	head := uint64(len(journal(t, st, "salon")))
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		sa, seqA := snapshotOf(t, a, "salon")
		sb, seqB := snapshotOf(t, b, "salon")
		if seqA != head || seqB != head || !bytes.Equal(sa, sb) {
			return fmt.Errorf("A at %d, B at %d, journal head %d; equal states: %v", seqA, seqB, head, bytes.Equal(sa, sb))
		}
		return nil
	})
	taken := map[int64]string{}
	for _, bk := range confirmed(t, a, "salon") {
		if other, ok := taken[bk.Start.UnixNano()]; ok {
			t.Errorf("slot %v booked twice: %s and %s", bk.Start, other, bk.ID)
		}
		taken[bk.Start.UnixNano()] = bk.ID
	}
	t.Logf("journal head %d, %d bookings confirmed", head, len(taken))
}

// TestReadLatestFollowsOtherWriters: a plain Read on instance B answers
// from what B has followed; ReadLatest follows the journal first, so it
// sees a booking just made through A without any notification. A failed
// decode while following (with a key-reading codec, a store hiccup) makes
// that read unavailable and leaves the actor, its subscriptions and the
// next latest read intact.
func TestReadLatestFollowsOtherWriters(t *testing.T) {
	st := memstore.New()
	a := mustRegistry(t, actors.Config{Store: st, Codec: &wrapCodec{}})
	codecB := &wrapCodec{}
	b := mustRegistry(t, actors.Config{Store: st, Codec: codecB})
	mustConfigure(t, a, "salon")
	confirmed(t, b, "salon")
	feed := mustFeed(t, b, "salon", 0)
	latest := func() ([]engine.Booking, uint64, error) {
		var list []engine.Booking
		var seq uint64
		err := b.ReadLatest(context.Background(), "salon", func(st *engine.State, s uint64) error {
			list, seq = st.Bookings(time.Time{}, time.Time{}), s
			return nil
		})
		return list, seq, err
	}

	mustDo(t, a, "salon", bookCut("b1", "alice", slotAt(t, "alice", 1, 10)))
	if got := confirmed(t, b, "salon"); len(got) != 0 {
		t.Fatalf("a plain Read on B saw %d bookings before B followed the journal; the test needs it behind", len(got))
	}
	codecB.failDecode.Store(true)
	if _, _, err := latest(); codeOf(err) != engine.CodeUnavailable {
		t.Fatalf("ReadLatest with the journal undecodable = %v, want unavailable", err)
	}
	assertOpen(t, feed)
	codecB.failDecode.Store(false)
	list, seq, err := latest()
	if err != nil || len(list) != 1 || list[0].ID != "b1" || seq != 2 {
		t.Fatalf("ReadLatest = %d bookings at seq %d, %v; want b1 at seq 2", len(list), seq, err)
	}
	if u := nextUpdate(t, feed); u == nil || u.Version != 2 {
		t.Fatalf("B's feed got %+v, want the followed booking at version 2", u)
	}
	assertOpen(t, feed)
}

// TestUndecodableJournalFailsTheActorInTheEnd: following retries a journal
// it fails to decode (a key-store hiccup), but not for ever: an entry that
// never decodes would leave the instance serving a stale state. After
// followDecodeTries failures in a row the actor fails, its subscriptions
// end, and the tenant is reloaded once the journal decodes again.
func TestUndecodableJournalFailsTheActorInTheEnd(t *testing.T) {
	st := memstore.New()
	a := mustRegistry(t, actors.Config{Store: st, Codec: &wrapCodec{}})
	codecB := &wrapCodec{}
	b := mustRegistry(t, actors.Config{Store: st, Codec: codecB, Logger: quietLogger()})
	mustConfigure(t, a, "salon")
	confirmed(t, b, "salon")
	feed := mustFeed(t, b, "salon", 0)
	mustDo(t, a, "salon", bookCut("b1", "alice", slotAt(t, "alice", 1, 10)))
	codecB.failDecode.Store(true)
	latest := func() error {
		return b.ReadLatest(context.Background(), "salon", func(*engine.State, uint64) error { return nil })
	}
	for i := 1; i < actors.FollowDecodeTries; i++ {
		if err := latest(); codeOf(err) != engine.CodeUnavailable {
			t.Fatalf("latest read %d with the journal undecodable = %v, want unavailable", i, err)
		}
		assertOpen(t, feed)
	}
	if err := latest(); codeOf(err) != engine.CodeUnavailable {
		t.Fatalf("latest read %d = %v, want unavailable", actors.FollowDecodeTries, err)
	}
	drainUntilClosed(t, feed)
	codecB.failDecode.Store(false)
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got := confirmed(t, b, "salon"); len(got) != 1 {
			return fmt.Errorf("B holds %d bookings, want b1 once reloaded", len(got))
		}
		return nil
	})
}

package actors_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/internal/clock"
	"github.com/slotd/slotd/persistence/memstore"
)

func mustSubscribe(tb testing.TB, r *actors.Registry, tenant string, q engine.AvailabilityQuery, queue int) *actors.Subscription {
	tb.Helper()
	sub, err := r.SubscribeAvailability(context.Background(), tenant, q, queue)
	if err != nil {
		tb.Fatalf("SubscribeAvailability(%s, %+v) = %v", tenant, q, err)
	}
	tb.Cleanup(sub.Close)
	return sub
}

func hasStart(slots []engine.Slot, t time.Time) bool {
	return slices.ContainsFunc(slots, func(s engine.Slot) bool { return s.Start.Equal(t) })
}

func hasTime(ts []time.Time, t time.Time) bool {
	return slices.ContainsFunc(ts, func(x time.Time) bool { return x.Equal(t) })
}

// TestSubscriptionSnapshotThenDelta: two subscribers of one query get the
// snapshot, then the same delta removing a booked slot, with the version
// moving forward.
func TestSubscriptionSnapshotThenDelta(t *testing.T) {
	r := mustRegistry(t, actors.Config{})
	mustConfigure(t, r, "salon")
	subs := []*actors.Subscription{
		mustSubscribe(t, r, "salon", dayQuery(), 0),
		mustSubscribe(t, r, "salon", dayQuery(), 0),
	}
	start := slotAt(t, "alice", 1, 10)
	var version uint64
	for i, sub := range subs {
		u := nextUpdate(t, sub)
		if u.Kind != actors.UpdateSnapshot || len(u.Slots) != 8 || !hasStart(u.Slots, start) {
			t.Fatalf("subscriber %d: first update kind %v with %d slots, want a snapshot of 8 slots including %v", i, u.Kind, len(u.Slots), start)
		}
		version = u.Version
	}
	rep := mustDo(t, r, "salon", bookCut("b1", "alice", start))
	for i, sub := range subs {
		u := nextUpdate(t, sub)
		if u.Kind != actors.UpdateDelta || !hasTime(u.Removed, start) || len(u.Upserted) != 0 {
			t.Errorf("subscriber %d: update %+v, want a delta removing %v only", i, u, start)
		}
		if u.Version <= version || u.Version != rep.Seq {
			t.Errorf("subscriber %d: delta version %d, want above the snapshot's %d and equal to the booking's seq %d", i, u.Version, version, rep.Seq)
		}
	}
	// A cancellation gives the slot back, with a newer version again.
	rep2 := mustDo(t, r, "salon", engine.Cancel{BookingID: "b1"})
	for i, sub := range subs {
		u := nextUpdate(t, sub)
		if u.Kind != actors.UpdateDelta || !hasStart(u.Upserted, start) || u.Version != rep2.Seq || rep2.Seq <= rep.Seq {
			t.Errorf("subscriber %d: update %+v, want a delta re-adding %v at version %d", i, u, start, rep2.Seq)
		}
	}
	// A booking elsewhere changes nothing for this query: no update.
	mustDo(t, r, "salon", bookCut("b2", "bob", slotAt(t, "bob", 1, 10)))
	confirmed(t, r, "salon") // the actor has published by the time it reads
	for i, sub := range subs {
		select {
		case u := <-sub.C:
			t.Errorf("subscriber %d: unexpected update %+v after a booking for bob", i, u)
		default:
		}
	}
}

// TestSlowSubscriberDropped: a subscriber with a one-update queue that never
// reads is dropped with ErrSlowConsumer; the tenant and a reading subscriber
// carry on.
func TestSlowSubscriberDropped(t *testing.T) {
	m := actors.NewMetrics(nil)
	r := mustRegistry(t, actors.Config{Metrics: m})
	mustConfigure(t, r, "salon")
	slow := mustSubscribe(t, r, "salon", dayQuery(), 1)
	feedSlow, err := r.SubscribeFeed(context.Background(), "salon", 1)
	if err != nil {
		t.Fatalf("SubscribeFeed = %v", err)
	}
	good := mustSubscribe(t, r, "salon", dayQuery(), 0)
	if u := nextUpdate(t, good); u.Kind != actors.UpdateSnapshot {
		t.Fatalf("first update kind %v, want snapshot", u.Kind)
	}
	ss := starts(t, "alice", 3)
	for i, s := range ss {
		mustDo(t, r, "salon", bookCut(fmt.Sprintf("b%d", i), "alice", s))
		if u := nextUpdate(t, good); u.Kind != actors.UpdateDelta || !hasTime(u.Removed, s) {
			t.Errorf("reading subscriber: update %+v, want a delta removing %v", u, s)
		}
	}
	got := drainUntilClosed(t, slow)
	if len(got) != 1 || got[0].Kind != actors.UpdateSnapshot {
		t.Errorf("slow subscriber had %d updates queued, want just the snapshot", len(got))
	}
	if !errors.Is(slow.Err(), actors.ErrSlowConsumer) {
		t.Errorf("slow subscriber Err() = %v, want %v", slow.Err(), actors.ErrSlowConsumer)
	}
	if got := drainUntilClosed(t, feedSlow); len(got) != 1 || !errors.Is(feedSlow.Err(), actors.ErrSlowConsumer) {
		t.Errorf("slow feed: %d updates then Err() = %v, want 1 and %v", len(got), feedSlow.Err(), actors.ErrSlowConsumer)
	}
	if d := metricValue(t, m.Dropped); d != 2 {
		t.Errorf("dropped subscribers metric = %v, want 2", d)
	}
	if n := metricValue(t, m.Subscribers); n != 1 {
		t.Errorf("subscribers gauge = %v, want 1", n)
	}
	assertOpen(t, good)
}

// TestSubscriptionClose: after Close nothing more is delivered; C is closed
// with a nil Err.
func TestSubscriptionClose(t *testing.T) {
	r := mustRegistry(t, actors.Config{})
	mustConfigure(t, r, "salon")
	sub := mustSubscribe(t, r, "salon", dayQuery(), 0)
	other := mustSubscribe(t, r, "salon", dayQuery(), 0)
	nextUpdate(t, sub)
	nextUpdate(t, other)
	sub.Close()
	mustDo(t, r, "salon", bookCut("b1", "alice", slotAt(t, "alice", 1, 11)))
	if got := drainUntilClosed(t, sub); len(got) != 0 {
		t.Errorf("closed subscription received %d updates, want 0", len(got))
	}
	if err := sub.Err(); err != nil {
		t.Errorf("Err() after Close = %v, want nil", err)
	}
	if u := nextUpdate(t, other); u.Kind != actors.UpdateDelta {
		t.Errorf("other subscriber: update kind %v, want delta", u.Kind)
	}
	sub.Close() // twice is fine
}

// TestFeed: a feed subscriber gets committed booking events in order.
func TestFeed(t *testing.T) {
	r := mustRegistry(t, actors.Config{})
	mustConfigure(t, r, "salon")
	feed, err := r.SubscribeFeed(context.Background(), "salon", 0)
	if err != nil {
		t.Fatalf("SubscribeFeed = %v", err)
	}
	defer feed.Close()
	start := slotAt(t, "carol", 1, 9)
	book := mustDo(t, r, "salon", bookCut("b1", "carol", start))
	cancel := mustDo(t, r, "salon", engine.Cancel{BookingID: "b1", Reason: "ill"})
	// Configuration changes are not in the feed.
	mustConfigure(t, r, "salon")
	// A refused command publishes nothing.
	if _, err := r.Do(context.Background(), "salon", engine.Cancel{BookingID: "b1"}); codeOf(err) != engine.CodeAlreadyDone {
		t.Fatalf("second Cancel = %v, want %s", err, engine.CodeAlreadyDone)
	}
	hold := mustDo(t, r, "salon", engine.PlaceHold{HoldID: "h1", ServiceID: "cut", ResourceID: "carol", Start: start})
	// An erasure is in the feed: staff views must forget the customer.
	grace := bookCut("b2", "alice", slotAt(t, "alice", 1, 10))
	grace.Customer = engine.Customer{Name: "Grace", Email: "grace@example.com", Subject: "s-grace"}
	second := mustDo(t, r, "salon", grace)
	erase := mustDo(t, r, "salon", engine.EraseSubject{Subject: "s-grace"})

	want := []struct {
		typ     string
		version uint64
	}{
		{engine.EvBookingConfirmed, book.Seq},
		{engine.EvBookingCancelled, cancel.Seq},
		{engine.EvHoldPlaced, hold.Seq},
		{engine.EvBookingConfirmed, second.Seq},
		{engine.EvSubjectErased, erase.Seq},
	}
	for _, w := range want {
		u := nextUpdate(t, feed)
		if u.Kind != actors.UpdateFeed || len(u.Events) != 1 || u.Events[0].Type != w.typ || u.Version != w.version {
			t.Fatalf("feed update %+v, want one %s event at version %d", u, w.typ, w.version)
		}
		if e := u.Events[0]; w.typ == engine.EvSubjectErased && (e.Subject != "s-grace" || len(e.BookingIDs) != 1 || e.BookingIDs[0] != "b2") {
			t.Errorf("erasure in the feed = %+v, want subject s-grace and booking b2", e)
		}
	}
	if e := len(feed.C); e != 0 {
		t.Errorf("%d more feed updates queued, want none", e)
	}
}

// TestSubscribeRefused: a query the engine rejects fails the subscription.
func TestSubscribeRefused(t *testing.T) {
	r := mustRegistry(t, actors.Config{})
	mustConfigure(t, r, "salon")
	q := dayQuery()
	q.ServiceID = "massage"
	if _, err := r.SubscribeAvailability(context.Background(), "salon", q, 0); codeOf(err) != engine.CodeNotFound {
		t.Errorf("SubscribeAvailability(unknown service) = %v, want %s", err, engine.CodeNotFound)
	}
	if _, err := r.SubscribeAvailability(context.Background(), "Not A Tenant", dayQuery(), 0); codeOf(err) != engine.CodeInvalid {
		t.Errorf("SubscribeAvailability(bad tenant id) = %v, want %s", err, engine.CodeInvalid)
	}
}

// TestHoldExpiry: a hold takes its slot until the clock passes its TTL; the
// actor's timer then expires it durably and subscribers get the slot back.
func TestHoldExpiry(t *testing.T) {
	st := memstore.New()
	clk := clock.NewManual(t0)
	r := mustRegistry(t, actors.Config{Store: st, Clock: clk})
	mustConfigure(t, r, "salon")
	start := slotAt(t, "alice", 1, 12)
	const ttl = 30 * time.Second
	rep := mustDo(t, r, "salon", engine.PlaceHold{HoldID: "h1", ServiceID: "cut", ResourceID: "alice", Start: start, TTL: ttl})
	if rep.Hold == nil || !rep.Hold.ExpiresAt.Equal(t0.Add(ttl)) {
		t.Fatalf("PlaceHold reply hold %+v, want one expiring at %v", rep.Hold, t0.Add(ttl))
	}
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if clk.Pending() == 0 {
			return errors.New("the actor has not armed its hold timer")
		}
		return nil
	})
	sub := mustSubscribe(t, r, "salon", dayQuery(), 0)
	if u := nextUpdate(t, sub); u.Kind != actors.UpdateSnapshot || hasStart(u.Slots, start) {
		t.Fatalf("snapshot %+v, want one without the held slot %v", u, start)
	}
	// Booking the held slot by someone else is refused.
	if _, err := r.Do(context.Background(), "salon", bookCut("b1", "alice", start)); codeOf(err) != engine.CodeSlotTaken {
		t.Fatalf("Do(Book held slot) = %v, want %s", err, engine.CodeSlotTaken)
	}

	clk.Advance(ttl - time.Second)
	if hs := holds(t, r, "salon"); len(hs) != 1 {
		t.Fatalf("one second before expiry: holds %v, want h1", hs)
	}
	clk.Advance(2 * time.Second)
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if hs := holds(t, r, "salon"); len(hs) != 0 {
			return fmt.Errorf("holds %v still in state after the TTL", hs)
		}
		return nil
	})
	u := nextUpdate(t, sub)
	if u.Kind != actors.UpdateDelta || !hasStart(u.Upserted, start) {
		t.Errorf("update after expiry %+v, want a delta re-adding %v", u, start)
	}
	evs := journal(t, st, "salon")
	if last := evs[len(evs)-1]; last.Type != engine.EvHoldExpired || last.HoldID != "h1" || !last.At.Equal(t0.Add(ttl+time.Second)) {
		t.Errorf("last journal event %+v, want hold_expired of h1 at %v", last, t0.Add(ttl+time.Second))
	}
	if u.Version != uint64(len(evs)) {
		t.Errorf("delta version %d, want the journal head %d", u.Version, len(evs))
	}
	// The slot is bookable again.
	mustDo(t, r, "salon", bookCut("b1", "alice", start))
}

// TestHoldExpiryAfterReload: a hold placed before a restart still expires.
func TestHoldExpiryAfterReload(t *testing.T) {
	st := memstore.New()
	clk := clock.NewManual(t0)
	r := mustRegistry(t, actors.Config{Store: st, Clock: clk})
	mustConfigure(t, r, "salon")
	mustDo(t, r, "salon", engine.PlaceHold{HoldID: "h1", ServiceID: "cut", ResourceID: "bob", Start: slotAt(t, "bob", 1, 9), TTL: time.Minute})
	r.Close()
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if n := clk.Pending(); n != 0 {
			return fmt.Errorf("%d timers pending after Close, want 0", n)
		}
		return nil
	})

	r2 := mustRegistry(t, actors.Config{Store: st, Clock: clk})
	if hs := holds(t, r2, "salon"); len(hs) != 1 {
		t.Fatalf("after reload: holds %v, want h1", hs)
	}
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if clk.Pending() == 0 {
			return errors.New("the reloaded actor has not armed its hold timer")
		}
		return nil
	})
	clk.Advance(2 * time.Minute)
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if hs := holds(t, r2, "salon"); len(hs) != 0 {
			return fmt.Errorf("holds %v still in state after the TTL", hs)
		}
		return nil
	})
	if n := eventTypes(journal(t, st, "salon"))[engine.EvHoldExpired]; n != 1 {
		t.Errorf("journal has %d hold_expired events, want 1", n)
	}
}

// holds returns the ids of the holds in the tenant's state.
func holds(tb testing.TB, r *actors.Registry, tenant string) []string {
	tb.Helper()
	var ids []string
	if err := r.Read(context.Background(), tenant, func(st *engine.State, _ uint64) error {
		for _, h := range st.Holds() {
			ids = append(ids, h.ID)
		}
		return nil
	}); err != nil {
		tb.Fatalf("Read(%s) = %v", tenant, err)
	}
	return ids
}

// TestHoldExpiryStoreFailing: while the store refuses the hold_expired
// event, the actor retries once per second of clock time instead of in a
// hot loop, and stores the expiry once the store is back.
func TestHoldExpiryStoreFailing(t *testing.T) {
	st := memstore.New()
	var broken atomic.Bool
	var attempts atomic.Int64
	st.FailAppend = func(string) error {
		if broken.Load() {
			attempts.Add(1)
			return errors.New("disk gone")
		}
		return nil
	}
	clk := clock.NewManual(t0)
	r := mustRegistry(t, actors.Config{Store: st, Clock: clk})
	mustConfigure(t, r, "salon")
	start := slotAt(t, "alice", 1, 9)
	mustDo(t, r, "salon", engine.PlaceHold{HoldID: "h1", ServiceID: "cut", ResourceID: "alice", Start: start, TTL: 30 * time.Second})
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if clk.Pending() == 0 {
			return errors.New("the actor has not armed its hold timer")
		}
		return nil
	})
	broken.Store(true)
	clk.Advance(time.Minute)
	for want := int64(1); want <= 3; want++ {
		checkFor(t, 5*time.Second, time.Millisecond, func() error {
			if n := attempts.Load(); n != want {
				return fmt.Errorf("%d attempts to store the expiry, want %d", n, want)
			}
			return nil
		})
		for range 3 { // the actor goes on serving, and does not retry meanwhile
			holds(t, r, "salon")
		}
		if n := attempts.Load(); n != want {
			t.Fatalf("%d attempts to store the expiry with the clock standing still, want %d", n, want)
		}
		clk.Advance(time.Second)
	}
	// Commands still get their answer while the store is down.
	if _, err := r.Do(context.Background(), "salon", bookCut("b1", "alice", start)); codeOf(err) != engine.CodeUnavailable {
		t.Errorf("Do(Book) with the store down = %v, want %s", err, engine.CodeUnavailable)
	}
	broken.Store(false)
	clk.Advance(time.Second)
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if hs := holds(t, r, "salon"); len(hs) != 0 {
			return fmt.Errorf("holds %v still in state", hs)
		}
		return nil
	})
	if n := eventTypes(journal(t, st, "salon"))[engine.EvHoldExpired]; n != 1 {
		t.Errorf("journal has %d hold_expired events, want 1", n)
	}
	mustDo(t, r, "salon", bookCut("b1", "alice", start))
}

// TestSubscriptionNotify: the function given to Notify is called after
// each update is queued and once C is closed, and may read C without
// waiting.
func TestSubscriptionNotify(t *testing.T) {
	r := mustRegistry(t, actors.Config{})
	mustConfigure(t, r, "salon")
	sub := mustSubscribe(t, r, "salon", dayQuery(), 0)
	got := make(chan *actors.Update, 8)
	closed := make(chan struct{})
	sub.Notify(func() {
		for {
			select {
			case u, ok := <-sub.C:
				if !ok {
					close(closed)
					return
				}
				got <- u
			default:
				return
			}
		}
	})
	// The snapshot was queued before Notify: it is read without waiting.
	if u := nextUpdate(t, sub); u.Kind != actors.UpdateSnapshot {
		t.Fatalf("first update kind %v, want a snapshot", u.Kind)
	}
	start := slotAt(t, "alice", 1, 10)
	mustDo(t, r, "salon", bookCut("b1", "alice", start))
	select {
	case u := <-got:
		if u.Kind != actors.UpdateDelta || !hasTime(u.Removed, start) {
			t.Errorf("notified update %+v, want a delta removing %v", u, start)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no update through Notify")
	}
	r.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("not notified of the end")
	}
	if !errors.Is(sub.Err(), actors.ErrStopped) {
		t.Errorf("Err() = %v, want %v", sub.Err(), actors.ErrStopped)
	}
}

package actors_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/internal/clock"
	"github.com/slotd/slotd/persistence/memstore"
)

// TestPassivation bounds live actors at MaxLive: idle tenants are stopped
// and come back from snapshot + journal with everything they had.
func TestPassivation(t *testing.T) {
	st := memstore.New()
	m := actors.NewMetrics(nil)
	r := mustRegistry(t, actors.Config{Store: st, Metrics: m, MaxLive: 2})
	tenants := []string{"t1", "t2", "t3", "t4", "t5"}
	for i, tn := range tenants {
		mustConfigure(t, r, tn)
		mustDo(t, r, tn, bookCut(fmt.Sprintf("%s-b", tn), "alice", slotAt(t, "alice", 1+i, 10)))
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := r.Live(); n > 2 {
			return fmt.Errorf("%d live actors, want at most 2", n)
		}
		return nil
	})
	if p := metricValue(t, m.Passivations); p < 3 {
		t.Errorf("passivations = %v, want at least 3", p)
	}
	// Passivated tenants are snapshotted on the way out.
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if snap, _, _ := st.Load(context.Background(), "t1"); snap.Seq != 2 {
			return fmt.Errorf("t1's stored snapshot is at seq %d, want 2", snap.Seq)
		}
		return nil
	})
	// t1 comes back with its booking: the slot is taken, its booking listed.
	_, err := r.Do(context.Background(), "t1", bookCut("again", "alice", slotAt(t, "alice", 1, 10)))
	if codeOf(err) != engine.CodeSlotTaken {
		t.Errorf("Do(t1, Book its booked slot) after reactivation = %v, want %s", err, engine.CodeSlotTaken)
	}
	for _, tn := range tenants {
		got := confirmed(t, r, tn)
		if len(got) != 1 || got[0].ID != tn+"-b" {
			t.Errorf("%s after reactivation: bookings %v, want [%s-b]", tn, got, tn)
		}
	}
	if n := r.Live(); n > 2 {
		t.Errorf("%d live actors after touching every tenant again, want at most 2", n)
	}
}

// TestPassivationSparesSubscribed: a tenant with a live subscription stays
// in memory and keeps publishing while others come and go.
func TestPassivationSparesSubscribed(t *testing.T) {
	r := mustRegistry(t, actors.Config{MaxLive: 2})
	mustConfigure(t, r, "watched")
	sub := mustSubscribe(t, r, "watched", dayQuery(), 0)
	nextUpdate(t, sub)
	for _, tn := range []string{"t2", "t3", "t4", "t5"} {
		mustConfigure(t, r, tn)
	}
	if n := r.Live(); n > 2 {
		t.Errorf("%d live actors, want at most 2", n)
	}
	assertOpen(t, sub)
	start := slotAt(t, "alice", 1, 13)
	mustDo(t, r, "watched", bookCut("b1", "alice", start))
	if u := nextUpdate(t, sub); u.Kind != actors.UpdateDelta || !hasTime(u.Removed, start) {
		t.Errorf("update %+v, want a delta removing %v", u, start)
	}
	// Once the subscription is gone the tenant may be passivated again.
	sub.Close()
	mustDo(t, r, "watched", bookCut("b2", "alice", start.Add(time.Hour))) // publish forgets the closed subscriber
	drainUntilClosed(t, sub)
	for _, tn := range []string{"t6", "t7"} {
		mustConfigure(t, r, tn)
	}
	if n := r.Live(); n > 2 {
		t.Errorf("%d live actors after the subscription closed, want at most 2", n)
	}
}

// TestPassivationAllSubscribed: when every live tenant has subscribers,
// passivation cannot make room, yet other tenants must still be served: the
// bound is soft rather than a denial of service.
func TestPassivationAllSubscribed(t *testing.T) {
	r := mustRegistry(t, actors.Config{MaxLive: 2})
	for _, tn := range []string{"w1", "w2"} {
		mustConfigure(t, r, tn)
		nextUpdate(t, mustSubscribe(t, r, tn, dayQuery(), 0))
	}
	for _, tn := range []string{"t3", "t4"} {
		if _, err := r.Do(context.Background(), tn, engine.Configure{Config: mustConfig(t)}); err != nil {
			t.Errorf("Do(%s, Configure) with every live tenant subscribed = %v, want success", tn, err)
		}
	}
}

// TestRegistryClose ends subscriptions with ErrStopped, snapshots, and
// refuses later calls with unavailable.
func TestRegistryClose(t *testing.T) {
	st := memstore.New()
	r := mustRegistry(t, actors.Config{Store: st})
	mustConfigure(t, r, "salon")
	mustDo(t, r, "salon", bookCut("b1", "alice", slotAt(t, "alice", 1, 9)))
	avail := mustSubscribe(t, r, "salon", dayQuery(), 0)
	feed, err := r.SubscribeFeed(context.Background(), "salon", 0)
	if err != nil {
		t.Fatalf("SubscribeFeed = %v", err)
	}
	r.Close()
	for name, sub := range map[string]*actors.Subscription{"availability": avail, "feed": feed} {
		drainUntilClosed(t, sub)
		if !errors.Is(sub.Err(), actors.ErrStopped) {
			t.Errorf("%s subscription Err() after Close = %v, want %v", name, sub.Err(), actors.ErrStopped)
		}
	}
	if n := r.Live(); n != 0 {
		t.Errorf("%d live actors after Close, want 0", n)
	}
	if snap, _, _ := st.Load(context.Background(), "salon"); snap.Seq != 2 {
		t.Errorf("stored snapshot at seq %d after Close, want 2", snap.Seq)
	}
	calls := map[string]func() error{
		"Do": func() error {
			_, err := r.Do(context.Background(), "salon", bookCut("b2", "alice", slotAt(t, "alice", 1, 10)))
			return err
		},
		"Do (new tenant)": func() error {
			_, err := r.Do(context.Background(), "fresh", engine.Configure{Config: mustConfig(t)})
			return err
		},
		"Read": func() error {
			return r.Read(context.Background(), "salon", func(*engine.State, uint64) error { return nil })
		},
		"SubscribeFeed": func() error {
			_, err := r.SubscribeFeed(context.Background(), "salon", 0)
			return err
		},
	}
	for name, call := range calls {
		if err := call(); codeOf(err) != engine.CodeUnavailable {
			t.Errorf("%s after Close = %v, want %s", name, err, engine.CodeUnavailable)
		}
	}
	if got := eventTypes(journal(t, st, "salon"))[engine.EvBookingConfirmed]; got != 1 {
		t.Errorf("journal holds %d bookings, want 1", got)
	}
	r.Close() // twice is fine
}

// TestRun stops the registry when its context ends.
func TestRun(t *testing.T) {
	r := mustRegistry(t, actors.Config{})
	mustConfigure(t, r, "salon")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancel")
	}
	if _, err := r.Do(context.Background(), "salon", engine.Configure{Config: mustConfig(t)}); codeOf(err) != engine.CodeUnavailable {
		t.Errorf("Do after Run returned = %v, want %s", err, engine.CodeUnavailable)
	}
}

// TestInvalidTenant refuses malformed tenant ids before any actor exists.
func TestInvalidTenant(t *testing.T) {
	r := mustRegistry(t, actors.Config{})
	for _, tn := range []string{"", "Upper", "-lead", "has space", "a/b"} {
		if _, err := r.Do(context.Background(), tn, engine.Configure{Config: mustConfig(t)}); codeOf(err) != engine.CodeInvalid {
			t.Errorf("Do(%q) = %v, want %s", tn, err, engine.CodeInvalid)
		}
	}
	if n := r.Live(); n != 0 {
		t.Errorf("%d live actors, want 0", n)
	}
}

// TestDoContext: a caller that gives up gets its context's error; the
// command still completes.
func TestDoContext(t *testing.T) {
	st := newGatedStore()
	r := mustRegistry(t, actors.Config{Store: st})
	mustConfigure(t, r, "salon")
	open := st.close()
	defer open()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	book := bookCut("b1", "alice", slotAt(t, "alice", 1, 9))
	go func() {
		_, err := r.Do(ctx, "salon", book)
		done <- err
	}()
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if st.waiting.Load() != 1 {
			return errors.New("append not reached yet")
		}
		return nil
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Do with cancelled context = %v, want %v", err, context.Canceled)
	}
	open()
	if got := confirmed(t, r, "salon"); len(got) != 1 {
		t.Errorf("%d bookings after the abandoned Do, want 1 (it still completes)", len(got))
	}
}

// TestClosedFeedReleasesTenant: a feed subscription closed by its reader
// must not pin an idle tenant in memory forever; the actor forgets it at
// its next refresh even if no booking event comes.
func TestClosedFeedReleasesTenant(t *testing.T) {
	m := actors.NewMetrics(nil)
	clk := clock.NewManual(t0)
	r := mustRegistry(t, actors.Config{Metrics: m, Clock: clk, MaxLive: 1})
	mustConfigure(t, r, "salon")
	feed, err := r.SubscribeFeed(context.Background(), "salon", 0)
	if err != nil {
		t.Fatalf("SubscribeFeed = %v", err)
	}
	checkFor(t, 5*time.Second, time.Millisecond, func() error {
		if clk.Pending() == 0 {
			return errors.New("no refresh timer armed")
		}
		return nil
	})
	feed.Close()
	clk.Advance(time.Minute) // RefreshEvery
	drainUntilClosed(t, feed)
	if err := feed.Err(); err != nil {
		t.Errorf("Err() after Close = %v, want nil", err)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := metricValue(t, m.Subscribers); n != 0 {
			return fmt.Errorf("subscribers gauge %v, want 0", n)
		}
		return nil
	})
	mustConfigure(t, r, "other")
	if p := metricValue(t, m.Passivations); p != 1 {
		t.Errorf("passivations = %v, want 1 (salon, no longer subscribed)", p)
	}
}

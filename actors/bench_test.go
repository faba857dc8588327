package actors_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/internal/clock"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/pebble"
)

// Run with: go test -run '^$' -bench . -benchtime=3s ./actors/
//
// Both benchmarks book through the registry into the embedded Pebble store
// in a temporary directory: every Append commits with an fsync before the
// actor acks, so a booking counted here is durable. Many client goroutines
// book at once (b.SetParallelism(64): 64 per GOMAXPROCS). Reported:
//
//	bookings/s     acknowledged durable bookings per second of wall time
//	bookings/append mean group-commit batch: events per journal Append

// BenchmarkDurableBookOneTenant books into one tenant: throughput comes
// from the actor's group commit, one fsync per batch. The actor also
// snapshots the whole tenant every SnapshotEvery events, in its own
// goroutine; as the tenant grows that cost grows with it, so the
// benchmark runs with the default cadence and with snapshots pushed out of
// reach to show the commit path alone.
func BenchmarkDurableBookOneTenant(b *testing.B) {
	b.Run("snapshots=default", func(b *testing.B) { benchBook(b, 1, 0) })
	b.Run("snapshots=none", func(b *testing.B) { benchBook(b, 1, 1<<40) })
}

// BenchmarkDurableBookManyTenants books into 10,000 live tenants: batches
// are small, and throughput comes from Pebble folding the concurrent
// appends of many actors into shared fsyncs.
func BenchmarkDurableBookManyTenants(b *testing.B) {
	benchBook(b, 10000, 0)
}

// benchBook books round-robin over tenants; snapshotEvery 0 keeps the
// registry's default.
func benchBook(b *testing.B, tenants, snapshotEvery int) {
	st, err := pebble.Open(b.TempDir(), pebble.Options{})
	if err != nil {
		b.Fatalf("pebble.Open = %v", err)
	}
	b.Cleanup(func() {
		if err := st.Close(); err != nil {
			b.Errorf("Close() = %v", err)
		}
	})
	cs := &countingStore{Store: st}
	r := actors.NewRegistry(actors.Config{Store: cs, Clock: clock.NewManual(t0), Logger: quietLogger(),
		MaxLive: tenants, SnapshotEvery: snapshotEvery})
	b.Cleanup(r.Close) // before the store closes: cleanups run last-in first-out

	names := make([]string, tenants)
	for i := range names {
		names[i] = fmt.Sprintf("tenant-%05d", i)
	}
	configureAll(b, r, names)

	var next atomic.Int64
	cs.appends.Store(0)
	cs.events.Store(0)
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			n := int(next.Add(1) - 1)
			tenant := names[n%tenants]
			cmd := benchBooking(n / tenants)
			if _, err := r.Do(ctx, tenant, cmd); err != nil {
				b.Errorf("Do(%s, Book %s) = %v", tenant, cmd.BookingID, err)
				return
			}
		}
	})
	b.StopTimer()
	if sec := b.Elapsed().Seconds(); sec > 0 {
		b.ReportMetric(float64(b.N)/sec, "bookings/s")
	}
	if a := cs.appends.Load(); a > 0 {
		b.ReportMetric(float64(cs.events.Load())/float64(a), "bookings/append")
	}
}

// configureAll configures the tenants from a pool of goroutines, so that
// their first appends share fsyncs too.
func configureAll(b *testing.B, r *actors.Registry, names []string) {
	b.Helper()
	cfg := benchConfig()
	work := make(chan string)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tn := range work {
				if _, err := r.Do(context.Background(), tn, engine.Configure{Config: cfg}); err != nil {
					b.Errorf("Do(%s, Configure) = %v", tn, err)
				}
			}
		}()
	}
	for _, tn := range names {
		work <- tn
	}
	close(work)
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}

const benchDesks = 8

// benchConfig is a tenant with eight desks open round the clock and a
// five-minute service booked up to two years ahead: room for over a
// million distinct bookings per tenant.
func benchConfig() engine.TenantConfig {
	week := map[string][]engine.Range{}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
		week[d] = []engine.Range{{Start: "00:00", End: "24:00"}}
	}
	cfg := engine.TenantConfig{Name: "Bench", TimeZone: "UTC",
		Services: []engine.Service{{ID: "slot", Name: "Slot", DurationMin: 5, StepMin: 5, HorizonDays: engine.MaxHorizonDays}}}
	for i := range benchDesks {
		id := fmt.Sprintf("desk-%d", i)
		cfg.Resources = append(cfg.Resources, engine.Resource{ID: id, Name: id, Kind: "staff", TimeZone: "UTC", Capacity: 1, Weekly: week})
		cfg.Services[0].Resources = append(cfg.Services[0].Resources, id)
	}
	return cfg
}

// benchBooking is the i-th booking of a tenant: desks in turn, each slot
// five minutes after the previous one.
func benchBooking(i int) engine.Book {
	return engine.Book{
		BookingID:  fmt.Sprintf("b%d", i),
		ServiceID:  "slot",
		ResourceID: fmt.Sprintf("desk-%d", i%benchDesks),
		Start:      t0.Truncate(time.Hour).Add(time.Hour + time.Duration(i/benchDesks)*5*time.Minute),
		Customer:   ada,
	}
}

// countingStore counts journal appends and the events they carry.
type countingStore struct {
	actors.Store
	appends, events atomic.Int64
}

func (s *countingStore) Append(ctx context.Context, tenant string, expectedSeq uint64, events [][]byte) (uint64, error) {
	head, err := s.Store.Append(ctx, tenant, expectedSeq, events)
	if err == nil {
		s.appends.Add(1)
		s.events.Add(int64(len(events)))
	}
	return head, err
}

var _ persistence.Store = (*pebble.Store)(nil)

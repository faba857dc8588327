package privacy_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/internal/clock"
	"github.com/slotd/slotd/persistence/pebble"
	"github.com/slotd/slotd/privacy"
)

// Run with: go test -run '^$' -bench . -benchtime=3s ./privacy/
//
// BenchmarkDurableBook books into one tenant through the registry on
// Pebble (journal in one directory, subject keys in another), as
// actors.BenchmarkDurableBookOneTenant does, with the default codec and
// with the privacy codec; with the privacy codec every booking is either
// a new customer (a pseudonym and a key created: two more durable record
// writes, made on the caller's goroutine) or one of 100 returning ones.
// Reported: bookings/s, acknowledged durable bookings per second.
func BenchmarkDurableBook(b *testing.B) {
	b.Run("codec=json", func(b *testing.B) { benchBook(b, false, false, 0) })
	b.Run("codec=privacy/customers=new", func(b *testing.B) { benchBook(b, true, false, 0) })
	b.Run("codec=privacy/customers=100", func(b *testing.B) { benchBook(b, true, false, 100) })
	// As slotd runs on the embedded store: the records in the journal's
	// store, a new customer's written with their booking (DeferToJournal).
	b.Run("codec=privacy-one-store/customers=new", func(b *testing.B) { benchBook(b, true, true, 0) })
	b.Run("codec=privacy-one-store/customers=100", func(b *testing.B) { benchBook(b, true, true, 100) })
}

func benchBook(b *testing.B, private, oneStore bool, customers int) {
	dir := b.TempDir()
	data, keys := mustPebble(b, filepath.Join(dir, "data")), mustPebble(b, filepath.Join(dir, "keys"))
	cfg := actors.Config{Store: data, Clock: clock.NewManual(t0), Logger: quietLogger()}
	switch {
	case private && oneStore:
		codec := newCodecForBench(b, data)
		if !codec.DeferToJournal(data) {
			b.Fatal("DeferToJournal = false")
		}
		cfg.Codec = codec
	case private:
		cfg.Codec = newCodecForBench(b, keys)
	}
	r := actors.NewRegistry(cfg)
	b.Cleanup(r.Close)
	week := map[string][]engine.Range{}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
		week[d] = []engine.Range{{Start: "00:00", End: "24:00"}}
	}
	tc := engine.TenantConfig{Name: "Bench", TimeZone: "UTC",
		Services: []engine.Service{{ID: "slot", Name: "Slot", DurationMin: 5, StepMin: 5, HorizonDays: engine.MaxHorizonDays}}}
	const desks = 8
	for i := range desks {
		id := fmt.Sprintf("desk-%d", i)
		tc.Resources = append(tc.Resources, engine.Resource{ID: id, Name: id, Kind: "staff", TimeZone: "UTC", Capacity: 1, Weekly: week})
		tc.Services[0].Resources = append(tc.Services[0].Resources, id)
	}
	mustDo(b, r, "bench", engine.Configure{Config: tc})
	var next atomic.Int64
	var mu sync.Mutex
	var took []time.Duration // each Do, for the tail: a snapshot that stalls the actor shows here
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		var mine []time.Duration
		defer func() {
			mu.Lock()
			took = append(took, mine...)
			mu.Unlock()
		}()
		for pb.Next() {
			i := int(next.Add(1) - 1)
			who := i
			if customers > 0 {
				who = i % customers
			}
			cmd := engine.Book{BookingID: fmt.Sprintf("b%d", i), ServiceID: "slot", ResourceID: fmt.Sprintf("desk-%d", i%desks),
				Start:    t0.Truncate(time.Hour).Add(time.Hour + time.Duration(i/desks)*5*time.Minute),
				Customer: engine.Customer{Name: fmt.Sprintf("Customer %d", who), Email: fmt.Sprintf("c%d@example.com", who)}}
			began := time.Now()
			if _, err := r.Do(ctx, "bench", cmd); err != nil {
				b.Errorf("Do(Book %s) = %v", cmd.BookingID, err)
				return
			}
			mine = append(mine, time.Since(began))
		}
	})
	b.StopTimer()
	if sec := b.Elapsed().Seconds(); sec > 0 {
		b.ReportMetric(float64(b.N)/sec, "bookings/s")
	}
	if len(took) > 0 {
		slices.Sort(took)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(took[len(took)*99/100]), "p99-ms")
		b.ReportMetric(ms(took[len(took)-1]), "max-ms")
	}
}

func newCodecForBench(tb testing.TB, keys *pebble.Store) *privacy.Codec {
	tb.Helper()
	return privacy.NewCodec(mustKeyring(tb), keys)
}

package actors_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/persistence/memstore"
)

// TestRaceForSlot has many clients book the same slot at once: exactly as
// many succeed as the slot has seats, the rest get slot_taken.
func TestRaceForSlot(t *testing.T) {
	var (
		aliceAt  = slotAt(t, "alice", 2, 10)
		studioAt = slotAt(t, "studio", 2, 10)
		// consult is delivered by alice and bob; 15:00 in Rome is 09:00 in
		// New York, on both their grids.
		eitherAt = slotAt(t, "alice", 2, 15)
		carolAt  = slotAt(t, "carol", 2, 10)
	)
	tests := []struct {
		name    string
		cmd     func(id string) engine.Command
		winners int
	}{
		{"staff capacity 1", func(id string) engine.Command {
			return bookCut(id, "alice", aliceAt)
		}, 1},
		{"room capacity 3", func(id string) engine.Command {
			return engine.Book{BookingID: id, ServiceID: "class", ResourceID: "studio", Start: studioAt, Customer: ada}
		}, 3},
		{"any of two staff", func(id string) engine.Command {
			return engine.Book{BookingID: id, ServiceID: "consult", Start: eitherAt, Customer: ada}
		}, 2},
		{"hold", func(id string) engine.Command {
			return engine.PlaceHold{HoldID: id, ServiceID: "cut", ResourceID: "carol", Start: carolAt}
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := memstore.New()
			r := mustRegistry(t, actors.Config{Store: st, BatchMax: 8}) // several batches
			mustConfigure(t, r, "salon")
			const n = 48
			var wg sync.WaitGroup
			results := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, results[i] = r.Do(context.Background(), "salon", tt.cmd(fmt.Sprintf("c%02d", i)))
				}()
			}
			wg.Wait()
			codes := map[engine.Code]int{}
			for _, err := range results {
				codes[codeOf(err)]++
			}
			if codes[""] != tt.winners || codes[engine.CodeSlotTaken] != n-tt.winners {
				t.Errorf("results by code %v, want %d successes and %d %s", codes, tt.winners, n-tt.winners, engine.CodeSlotTaken)
			}
			ev := eventTypes(journal(t, st, "salon"))
			if got := ev[engine.EvBookingConfirmed] + ev[engine.EvHoldPlaced]; got != tt.winners {
				t.Errorf("journal holds %d bookings and holds, want %d", got, tt.winners)
			}
		})
	}
}

// TestIdempotency retries a booking with the same idempotency key, in turn,
// concurrently, across a restart and across passivation: every attempt
// gets the first booking, all but the first are marked Duplicate, and only
// one booking exists.
func TestIdempotency(t *testing.T) {
	start := slotAt(t, "bob", 3, 12)
	attempt := func(i int) engine.Book {
		// A retry may carry a new booking id: the key decides.
		b := bookCut(fmt.Sprintf("b%d", i), "bob", start)
		b.IdempotencyKey = "client-key-1"
		return b
	}
	type env struct {
		st *memstore.Store
		r  *actors.Registry
		m  *actors.Metrics
	}
	tests := []struct {
		name    string
		maxLive int
		// run performs the attempts on the configured tenant "salon" and
		// returns their replies and the registry to check against.
		run func(t *testing.T, e env) ([]actors.Reply, *actors.Registry)
	}{
		{"sequential", 0, func(t *testing.T, e env) ([]actors.Reply, *actors.Registry) {
			return []actors.Reply{mustDo(t, e.r, "salon", attempt(0)), mustDo(t, e.r, "salon", attempt(1))}, e.r
		}},
		{"concurrent", 0, func(t *testing.T, e env) ([]actors.Reply, *actors.Registry) {
			const n = 16
			reps := make([]actors.Reply, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					reps[i], errs[i] = e.r.Do(context.Background(), "salon", attempt(i))
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("attempt %d: Do(Book) = %v", i, err)
				}
			}
			return reps, e.r
		}},
		{"across a restart", 0, func(t *testing.T, e env) ([]actors.Reply, *actors.Registry) {
			first := mustDo(t, e.r, "salon", attempt(0))
			e.r.Close()
			r2 := mustRegistry(t, actors.Config{Store: e.st})
			return []actors.Reply{first, mustDo(t, r2, "salon", attempt(1))}, r2
		}},
		{"across passivation", 1, func(t *testing.T, e env) ([]actors.Reply, *actors.Registry) {
			first := mustDo(t, e.r, "salon", attempt(0))
			mustConfigure(t, e.r, "other") // evicts salon
			if p := metricValue(t, e.m.Passivations); p != 1 {
				t.Fatalf("%v passivations, want 1 (salon)", p)
			}
			return []actors.Reply{first, mustDo(t, e.r, "salon", attempt(1))}, e.r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, m := memstore.New(), actors.NewMetrics(nil)
			r := mustRegistry(t, actors.Config{Store: st, Metrics: m, MaxLive: tt.maxLive})
			mustConfigure(t, r, "salon")
			reps, r := tt.run(t, env{st: st, r: r, m: m})
			originals := 0
			for i, rep := range reps {
				if rep.Booking == nil {
					t.Fatalf("attempt %d: reply without booking", i)
				}
				if rep.Booking.ID != reps[0].Booking.ID {
					t.Errorf("attempt %d booked %s, want %s (the first result)", i, rep.Booking.ID, reps[0].Booking.ID)
				}
				if !rep.Duplicate {
					originals++
				}
			}
			if originals != 1 {
				t.Errorf("%d replies not marked Duplicate, want exactly 1", originals)
			}
			if tt.name != "concurrent" && (reps[0].Duplicate || !reps[1].Duplicate) {
				t.Errorf("Duplicate flags %v, %v; want false, true", reps[0].Duplicate, reps[1].Duplicate)
			}
			if got := confirmed(t, r, "salon"); len(got) != 1 {
				t.Errorf("%d confirmed bookings, want 1: %v", len(got), got)
			}
			if got := eventTypes(journal(t, st, "salon"))[engine.EvBookingConfirmed]; got != 1 {
				t.Errorf("journal holds %d confirmed bookings, want 1", got)
			}
			// The same key for a different request is refused.
			other := attempt(99)
			other.Start = start.Add(time.Hour)
			if _, err := r.Do(context.Background(), "salon", other); codeOf(err) != engine.CodeIdemReused {
				t.Errorf("Do(Book) reusing the key for another slot = %v, want %s", err, engine.CodeIdemReused)
			}
		})
	}
}

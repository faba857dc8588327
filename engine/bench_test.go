package engine_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/internal/zonecache"
)

// Reproduce with
//
//	go test -run '^$' -bench . -benchtime 1s ./engine/

// benchMonday is the first day of the benchmarks' busy fortnight.
var benchMonday = utc(2026, 6, 1, 0, 0)

// clinicConfig is a clinic in zone with nres resources r00, r01, … of
// capacity 1, open 08:00–20:00 on the days of week (weekdays or everyDay),
// and a 30-minute service "visit" on a step-minute grid that all of them
// deliver.
func clinicConfig(nres int, zone string, week func(...engine.Range) map[string][]engine.Range, step int) (engine.TenantConfig, []string) {
	cfg := engine.TenantConfig{Name: "Clinic", TimeZone: zone}
	var ids []string
	for i := range nres {
		id := fmt.Sprintf("r%02d", i)
		ids = append(ids, id)
		cfg.Resources = append(cfg.Resources, engine.Resource{ID: id, Name: "Dr " + id, Kind: "staff", TimeZone: zone,
			Capacity: 1, Weekly: week(rng("08:00", "20:00"))})
	}
	cfg.Services = []engine.Service{{ID: "visit", Name: "Visit", DurationMin: 30, StepMin: step, HorizonDays: engine.MaxHorizonDays, Resources: ids}}
	return cfg, ids
}

// benchTenant is clinicConfig's clinic in Rome, open on weekdays, with a
// 15-minute grid, holding nbook bookings spread over the resources and the
// first days. It returns the state and its events.
func benchTenant(tb testing.TB, nres, nbook, days int) (*engine.State, []engine.Event) {
	tb.Helper()
	cfg, ids := clinicConfig(nres, "Europe/Rome", weekdays, 15)
	s := engine.NewState("clinic")
	events := MustApply(tb, s, engine.Configure{Config: cfg}, benchMonday).Events
	r := rand.New(rand.NewPCG(1, 2))
	rome := MustLoadLocation(tb, "Europe/Rome")
	for n := 0; n < nbook; {
		day := benchMonday.AddDate(0, 0, r.IntN(days))
		if wd := day.Weekday(); wd == time.Saturday || wd == time.Sunday {
			continue
		}
		y, m, d := day.Date()
		start := time.Date(y, m, d, 8, 15*r.IntN(47), 0, 0, rome)
		res, err := engine.Apply(s, book(fmt.Sprintf("b%d", n), "visit", ids[n%nres], start), benchMonday)
		if err != nil {
			continue // taken: try another slot
		}
		events = append(events, res.Events...)
		n++
	}
	return s, events
}

func BenchmarkAvailabilityWeek50x5000(b *testing.B) {
	s, _ := benchTenant(b, 50, 5000, 14)
	q := engine.AvailabilityQuery{ServiceID: "visit", From: "2026-06-01", To: "2026-06-08", TimeZone: "Europe/Rome"}
	var slots []engine.Slot
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if slots, err = s.Availability(q, benchMonday); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(slots)), "slots")
}

// BenchmarkViewAfterBookCancel is what a subscriber's availability costs
// per change: a booking (or its cancellation) on the clinic of
// AvailabilityWeek50x5000, then the week's View brought up to date from
// the state's Changes, which recomputes only the slots the booking can
// touch. Compare with AvailabilityWeek50x5000, the cost of recomputing
// the week, which a refresh paid for every change before Views.
func BenchmarkViewAfterBookCancel(b *testing.B) {
	s, _ := benchTenant(b, 50, 5000, 14)
	q := engine.AvailabilityQuery{ServiceID: "visit", From: "2026-06-01", To: "2026-06-08", TimeZone: "Europe/Rome"}
	v, err := engine.NewView(s, q, benchMonday)
	if err != nil {
		b.Fatal(err)
	}
	s.TakeChanges()
	free, err := s.Availability(engine.AvailabilityQuery{ServiceID: "visit", ResourceID: "r00", From: "2026-06-03", To: "2026-06-04", TimeZone: "Europe/Rome"}, benchMonday)
	if err != nil || len(free) == 0 {
		b.Fatalf("no free slot for r00 on 2026-06-03: %v", err)
	}
	start := free[len(free)/2].Start
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		id := fmt.Sprintf("bench-view-%d", n/2)
		var cmd engine.Command = book(id, "visit", "r00", start)
		if n%2 == 1 {
			cmd = engine.Cancel{BookingID: id}
		}
		if _, err := engine.Apply(s, cmd, benchMonday); err != nil {
			b.Fatal(err)
		}
		n++
		up, removed, err := v.Update(s, benchMonday, s.TakeChanges(), false)
		if err != nil || len(up)+len(removed) == 0 {
			b.Fatalf("Update = %d up, %d removed, %v; want a change", len(up), len(removed), err)
		}
	}
	b.ReportMetric(float64(v.Len()), "slots")
}

func BenchmarkApplyBook(b *testing.B) {
	const nres = 50
	fresh := func() *engine.State { s, _ := benchTenant(b, nres, 5000, 14); return s }
	s := fresh()
	rome := MustLoadLocation(b, "Europe/Rome")
	// The i-th booking goes to resource i%nres, on back-to-back half hours
	// from the third week on, weekdays only, within the horizon.
	slot := 0
	day := benchMonday.AddDate(0, 0, 14)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if slot == 24*nres {
			slot = 0
			day = day.AddDate(0, 0, 1)
			if wd := day.Weekday(); wd == time.Saturday {
				day = day.AddDate(0, 0, 2)
			}
			if day.Sub(benchMonday) > 700*24*time.Hour {
				b.StopTimer()
				s, day = fresh(), benchMonday.AddDate(0, 0, 14)
				b.StartTimer()
			}
		}
		y, m, d := day.Date()
		start := time.Date(y, m, d, 8, 30*(slot/nres), 0, 0, rome)
		if _, err := engine.Apply(s, book(fmt.Sprintf("x%d", i), "visit", fmt.Sprintf("r%02d", slot%nres), start), benchMonday); err != nil {
			b.Fatalf("Book #%d at %s: %v", i, start, err)
		}
		slot++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bookings/s")
}

func BenchmarkReplay(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			_, events := benchTenant(b, 50, n-1, 7*(1+n/2000)) // plus the configured event
			var journal [][]byte
			for _, e := range events {
				enc, err := engine.EncodeEvent(e)
				if err != nil {
					b.Fatal(err)
				}
				journal = append(journal, enc)
			}
			b.ReportAllocs()
			for b.Loop() {
				s := engine.NewState("clinic")
				for _, rec := range journal {
					e, err := engine.DecodeEvent(rec)
					if err != nil {
						b.Fatal(err)
					}
					if err := s.Evolve(e); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(len(journal))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkStateMemory reports what a tenant's state holds in memory per
// confirmed booking: heap bytes and heap objects, after a collection, for
// 20,000 bookings made through Apply with the strings a request carries
// (booking id, customer, pseudonym, idempotency key) each allocated on its
// own, as decoding a request does. Every pointer-holding object is work for
// each garbage collection's mark, so both figures matter.
func BenchmarkStateMemory(b *testing.B) {
	const nres, nbook = 10, 20000
	var bytes, objects float64
	for b.Loop() {
		bytes, objects = stateMemory(b, nres, nbook)
	}
	b.ReportMetric(bytes, "B/booking")
	b.ReportMetric(objects, "objects/booking")
}

func stateMemory(b *testing.B, nres, nbook int) (bytesPer, objectsPer float64) {
	cfg, _ := clinicConfig(nres, "UTC", everyDay, 30)
	s := engine.NewState("clinic")
	MustApply(b, s, engine.Configure{Config: cfg}, benchMonday)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range nbook {
		slot := i / nres
		start := benchMonday.Add(time.Duration(slot/24)*24*time.Hour + 8*time.Hour + time.Duration(slot%24)*30*time.Minute)
		cmd := engine.Book{BookingID: fmt.Sprintf("b-%020d", i), ServiceID: "visit", ResourceID: fmt.Sprintf("r%02d", i%nres),
			Start: start, IdempotencyKey: fmt.Sprintf("idem-%028d", i),
			Customer: engine.Customer{Name: fmt.Sprintf("Customer %d", i), Email: fmt.Sprintf("customer%d@example.com", i),
				Phone: fmt.Sprintf("+44 20 7946 %04d", i%10000), Subject: fmt.Sprintf("s-%026d", i)}}
		if _, err := engine.Apply(s, cmd, benchMonday); err != nil {
			b.Fatalf("Book #%d: %v", i, err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(nbook), float64(after.HeapObjects-before.HeapObjects) / float64(nbook)
}

// BenchmarkTenantMemory reports what a configured tenant holds in memory
// before its first booking: 2,000 tenants, each configured from JSON as
// the API receives it (a salon in Rome: two staff with weekday hours, a
// room open round the clock, two services), with zones loaded through
// slotd's process-wide cache, measured after a collection like
// BenchmarkStateMemory.
func BenchmarkTenantMemory(b *testing.B) {
	const tenants = 2000
	doc := []byte(`{"name":"Salon","time_zone":"Europe/Rome","resources":[` +
		`{"id":"r0","name":"Anna","kind":"staff","time_zone":"Europe/Rome","capacity":1,"weekly":{"mon":[{"start":"09:00","end":"13:00"},{"start":"14:00","end":"18:00"}],"tue":[{"start":"09:00","end":"13:00"},{"start":"14:00","end":"18:00"}],"wed":[{"start":"09:00","end":"13:00"},{"start":"14:00","end":"18:00"}],"thu":[{"start":"09:00","end":"13:00"},{"start":"14:00","end":"18:00"}],"fri":[{"start":"09:00","end":"13:00"},{"start":"14:00","end":"18:00"}],"sat":[{"start":"09:00","end":"12:00"}]}},` +
		`{"id":"r1","name":"Ben","kind":"staff","time_zone":"Europe/Rome","capacity":1,"weekly":{"mon":[{"start":"10:00","end":"19:00"}],"tue":[{"start":"10:00","end":"19:00"}],"wed":[{"start":"10:00","end":"19:00"}],"thu":[{"start":"10:00","end":"19:00"}],"fri":[{"start":"10:00","end":"19:00"}]}},` +
		`{"id":"room","name":"Room","kind":"room","time_zone":"Europe/Rome","capacity":4,"weekly":{"mon":[{"start":"00:00","end":"24:00"}],"tue":[{"start":"00:00","end":"24:00"}],"wed":[{"start":"00:00","end":"24:00"}],"thu":[{"start":"00:00","end":"24:00"}],"fri":[{"start":"00:00","end":"24:00"}],"sat":[{"start":"00:00","end":"24:00"}],"sun":[{"start":"00:00","end":"24:00"}]}}],` +
		`"services":[{"id":"cut","name":"Cut","duration_min":30,"step_min":15,"resources":["r0","r1"]},{"id":"class","name":"Class","duration_min":60,"resources":["room"]}]}`)
	prev := engine.ZoneSource
	engine.ZoneSource = zonecache.Load // as slotd does
	defer func() { engine.ZoneSource = prev }()
	var bytes, objects float64
	for b.Loop() {
		states := make([]*engine.State, tenants)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range states {
			var cfg engine.TenantConfig
			if err := json.Unmarshal(doc, &cfg); err != nil {
				b.Fatal(err)
			}
			states[i] = engine.NewState(fmt.Sprintf("tenant-%d", i))
			MustApply(b, states[i], engine.Configure{Config: cfg}, benchMonday)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(states)
		bytes = float64(after.HeapAlloc-before.HeapAlloc) / tenants
		objects = float64(after.HeapObjects-before.HeapObjects) / tenants
	}
	b.ReportMetric(bytes, "B/tenant")
	b.ReportMetric(objects, "objects/tenant")
}

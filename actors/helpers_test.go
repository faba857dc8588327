package actors_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/internal/clock"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/memstore"
)

// t0 is the fixed "now" of every test: Monday 2030-01-07, 07:00 in Rome,
// before any resource opens. Slots are booked from the next day on.
var t0 = time.Date(2030, time.January, 7, 6, 0, 0, 0, time.UTC)

var ada = engine.Customer{Name: "Ada Lovelace", Email: "ada@example.com"}

// zones of the resources in mustConfig.
var zones = map[string]string{
	"alice":  "Europe/Rome",
	"bob":    "America/New_York",
	"carol":  "Australia/Sydney",
	"studio": "Europe/Rome",
}

// checkFor polls f every interval until it returns nil, failing the test
// with f's last error once timeout has passed.
func checkFor(tb testing.TB, timeout, interval time.Duration, f func() error) {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			tb.Fatalf("after %v: %v", timeout, err)
		case <-tick.C:
		}
	}
}

// mustConfig returns a tenant with three members of staff in three zones
// (capacity 1 each) and a room seating 3, open 09:00–17:00 local every day,
// and services with buffers laid out hourly so that neighbouring slots do
// not overlap.
func mustConfig(tb testing.TB) engine.TenantConfig {
	tb.Helper()
	week := map[string][]engine.Range{}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
		week[d] = []engine.Range{{Start: "09:00", End: "17:00"}}
	}
	res := func(id, kind string, capacity int) engine.Resource {
		return engine.Resource{ID: id, Name: id, Kind: kind, TimeZone: zones[id], Capacity: capacity, Weekly: week}
	}
	return engine.TenantConfig{
		Name:       "Salon",
		TimeZone:   "Europe/Rome",
		HoldTTLSec: 60,
		Resources: []engine.Resource{
			res("alice", "staff", 1), res("bob", "staff", 1), res("carol", "staff", 1), res("studio", "room", 3),
		},
		Services: []engine.Service{
			{ID: "cut", Name: "Haircut", DurationMin: 45, BufferBeforeMin: 5, BufferAfterMin: 10, StepMin: 60,
				Resources: []string{"alice", "bob", "carol"}},
			{ID: "consult", Name: "Consultation", DurationMin: 30, BufferBeforeMin: 10, BufferAfterMin: 20, StepMin: 60,
				Resources: []string{"alice", "bob"}},
			{ID: "class", Name: "Class", DurationMin: 50, BufferAfterMin: 10, StepMin: 60,
				Resources: []string{"studio"}},
		},
	}
}

// slotAt is hour:00 local time on resource's calendar, day days after t0's
// date.
func slotAt(tb testing.TB, resource string, day, hour int) time.Time {
	tb.Helper()
	loc, err := engine.LoadZone(zones[resource])
	if err != nil {
		tb.Fatalf("LoadZone(%s) = %v", zones[resource], err)
	}
	d := engine.Date{Year: 2030, Month: time.January, Day: 7}.AddDays(day)
	return engine.LocalInstant(d, hour*60, loc)
}

// starts returns n distinct, non-overlapping starts of service "cut" on
// resource: eight a day from tomorrow on.
func starts(tb testing.TB, resource string, n int) []time.Time {
	tb.Helper()
	out := make([]time.Time, n)
	for i := range out {
		out[i] = slotAt(tb, resource, 1+i/8, 9+i%8)
	}
	return out
}

// dayQuery is the availability of "cut" with alice on the day after t0.
func dayQuery() engine.AvailabilityQuery {
	return engine.AvailabilityQuery{ServiceID: "cut", ResourceID: "alice", From: "2030-01-08", To: "2030-01-09", TimeZone: "Europe/Rome"}
}

func bookCut(id, resource string, start time.Time) engine.Book {
	return engine.Book{BookingID: id, ServiceID: "cut", ResourceID: resource, Start: start, Customer: ada}
}

// quietLogger discards log lines: supervision tests panic on purpose.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// mustRegistry starts a registry closed at the end of the test. Unset
// dependencies default to a fresh memstore, a Manual clock at t0 and a
// silent logger.
func mustRegistry(tb testing.TB, cfg actors.Config) *actors.Registry {
	tb.Helper()
	if cfg.Store == nil {
		cfg.Store = memstore.New()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.NewManual(t0)
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	r := actors.NewRegistry(cfg)
	tb.Cleanup(r.Close)
	return r
}

// mustConfigure gives tenant the configuration of mustConfig.
func mustConfigure(tb testing.TB, r *actors.Registry, tenant string) {
	tb.Helper()
	if _, err := r.Do(context.Background(), tenant, engine.Configure{Config: mustConfig(tb)}); err != nil {
		tb.Fatalf("Do(%s, Configure) = %v", tenant, err)
	}
}

// mustDo runs cmd and fails the test on an error.
func mustDo(tb testing.TB, r *actors.Registry, tenant string, cmd engine.Command) actors.Reply {
	tb.Helper()
	rep, err := r.Do(context.Background(), tenant, cmd)
	if err != nil {
		tb.Fatalf("Do(%s, %s %+v) = %v", tenant, engine.CommandName(cmd), cmd, err)
	}
	return rep
}

// codeOf is the engine code of err, "" for nil and "?" for other errors.
func codeOf(err error) engine.Code {
	if err == nil {
		return ""
	}
	var ee *engine.Error
	if errors.As(err, &ee) {
		return ee.Code
	}
	return "?"
}

// confirmed returns the tenant's confirmed bookings, as its actor sees them.
func confirmed(tb testing.TB, r *actors.Registry, tenant string) []engine.Booking {
	tb.Helper()
	var out []engine.Booking
	err := r.Read(context.Background(), tenant, func(st *engine.State, _ uint64) error {
		for _, b := range st.Bookings(time.Time{}, time.Time{}) {
			if b.Status == engine.StatusConfirmed {
				out = append(out, b)
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("Read(%s) = %v", tenant, err)
	}
	return out
}

// snapshotOf is the tenant's serialized state as its actor sees it.
func snapshotOf(tb testing.TB, r *actors.Registry, tenant string) (data []byte, seq uint64) {
	tb.Helper()
	err := r.Read(context.Background(), tenant, func(st *engine.State, s uint64) error {
		var err error
		data, err = st.MarshalSnapshot()
		seq = s
		return err
	})
	if err != nil {
		tb.Fatalf("Read(%s) = %v", tenant, err)
	}
	return data, seq
}

// journal decodes every event stored for tenant, snapshots notwithstanding.
func journal(tb testing.TB, st *memstore.Store, tenant string) []engine.Event {
	tb.Helper()
	entries, err := st.ReadFrom(context.Background(), tenant, 0, 0)
	if err != nil {
		tb.Fatalf("ReadFrom(%s) = %v", tenant, err)
	}
	out := make([]engine.Event, 0, len(entries))
	for _, e := range entries {
		ev, err := engine.DecodeEvent(e.Data)
		if err != nil {
			tb.Fatalf("journal of %s at %d: %v", tenant, e.Seq, err)
		}
		out = append(out, ev)
	}
	return out
}

// eventTypes counts events by type.
func eventTypes(evs []engine.Event) map[string]int {
	m := map[string]int{}
	for _, e := range evs {
		m[e.Type]++
	}
	return m
}

// hasBooking reports whether the journal holds booking id confirmed. It
// returns an error rather than failing the test, for use in goroutines.
func hasBooking(st *memstore.Store, tenant, id string) (bool, error) {
	entries, err := st.ReadFrom(context.Background(), tenant, 0, 0)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		ev, err := engine.DecodeEvent(e.Data)
		if err != nil {
			return false, err
		}
		if ev.Type == engine.EvBookingConfirmed && ev.Booking.ID == id {
			return true, nil
		}
	}
	return false, nil
}

// nextUpdate returns the subscription's next update, failing if none comes
// within five seconds or the subscription ends.
func nextUpdate(tb testing.TB, sub *actors.Subscription) *actors.Update {
	tb.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	select {
	case u, ok := <-sub.C:
		if !ok {
			tb.Fatalf("subscription %d ended: %v", sub.ID, sub.Err())
		}
		return u
	case <-deadline.C:
		tb.Fatalf("subscription %d: no update within 5s", sub.ID)
	}
	return nil
}

// drainUntilClosed reads the subscription until C is closed and returns
// what was still queued, failing if it stays open for five seconds.
func drainUntilClosed(tb testing.TB, sub *actors.Subscription) []*actors.Update {
	tb.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	var out []*actors.Update
	for {
		select {
		case u, ok := <-sub.C:
			if !ok {
				return out
			}
			out = append(out, u)
		case <-deadline.C:
			tb.Fatalf("subscription %d still open after 5s (%d updates read)", sub.ID, len(out))
		}
	}
}

// assertOpen fails if the subscription's channel has been closed; queued
// updates are discarded.
func assertOpen(tb testing.TB, sub *actors.Subscription) {
	tb.Helper()
	for {
		select {
		case _, ok := <-sub.C:
			if !ok {
				tb.Fatalf("subscription %d ended: %v", sub.ID, sub.Err())
			}
		default:
			return
		}
	}
}

// gatedStore is a memstore whose Append can be held at a gate the test
// controls. It records the number of events of every Append, counts those
// waiting at the gate, and remembers the head of the last Append that
// returned, i.e. what is durable.
type gatedStore struct {
	*memstore.Store

	gate    atomic.Pointer[chan struct{}] // non-nil: Append waits until it is closed
	waiting atomic.Int64                  // Appends that reached a closed gate
	durable atomic.Uint64                 // head after the last completed Append

	mu    sync.Mutex // guards sizes
	sizes []int
}

func newGatedStore() *gatedStore { return &gatedStore{Store: memstore.New()} }

// close makes every later Append wait until the returned function is called.
func (s *gatedStore) close() (open func()) {
	g := make(chan struct{})
	s.gate.Store(&g)
	var once sync.Once
	return func() {
		once.Do(func() {
			s.gate.Store(nil)
			close(g)
		})
	}
}

// appendSizes returns the number of events of each Append so far.
func (s *gatedStore) appendSizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sizes)
}

func (s *gatedStore) Append(ctx context.Context, tenant string, expectedSeq uint64, events [][]byte) (uint64, error) {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(events))
	s.mu.Unlock()
	if g := s.gate.Load(); g != nil {
		s.waiting.Add(1)
		select {
		case <-*g:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	head, err := s.Store.Append(ctx, tenant, expectedSeq, events)
	if err == nil {
		s.durable.Store(head)
	}
	return head, err
}

// panicStore is a memstore whose Append (and, with loadPanics, Load)
// panics when the hook says so, standing in for a bug below the actor.
type panicStore struct {
	*memstore.Store
	appendPanics func(tenant string) bool
	loadPanics   func(tenant string) bool
	panics       atomic.Int64
}

func (s *panicStore) Append(ctx context.Context, tenant string, expectedSeq uint64, events [][]byte) (uint64, error) {
	if s.appendPanics != nil && s.appendPanics(tenant) {
		s.panics.Add(1)
		panic(fmt.Sprintf("injected append panic for %s", tenant))
	}
	return s.Store.Append(ctx, tenant, expectedSeq, events)
}

func (s *panicStore) Load(ctx context.Context, tenant string) (persistence.Snapshot, []persistence.Entry, error) {
	if s.loadPanics != nil && s.loadPanics(tenant) {
		s.panics.Add(1)
		panic(fmt.Sprintf("injected load panic for %s", tenant))
	}
	return s.Store.Load(ctx, tenant)
}

// metricValue reads a counter or gauge, or a histogram's sample count.
func metricValue(tb testing.TB, m prometheus.Metric) float64 {
	tb.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		tb.Fatalf("read metric: %v", err)
	}
	switch {
	case out.Counter != nil:
		return out.Counter.GetValue()
	case out.Gauge != nil:
		return out.Gauge.GetValue()
	case out.Histogram != nil:
		return float64(out.Histogram.GetSampleCount())
	}
	tb.Fatalf("metric %v is not a counter, gauge or histogram", m.Desc())
	return 0
}

// breakableStore is a memory store whose appends and loads fail while
// broken is set.
func breakableStore() (st *memstore.Store, broken *atomic.Bool) {
	st, broken = memstore.New(), new(atomic.Bool)
	st.FailAppend = func(string) error {
		if broken.Load() {
			return errors.New("disk gone")
		}
		return nil
	}
	st.FailLoad = st.FailAppend
	return st, broken
}

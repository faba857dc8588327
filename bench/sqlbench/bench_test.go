package sqlbench_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/internal/clock"
	"github.com/slotd/slotd/internal/pgtest"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/pebble"
	"github.com/slotd/slotd/persistence/postgres"
)

// The workload is the one of actors/bench_test.go: tenants with eight
// desks open round the clock and a five-minute service; 64 client
// goroutines per GOMAXPROCS book round-robin over the tenants, each booking
// a distinct slot (no refusals), through actors.Registry.Do, which returns
// only after the booking's group commit is durable: an fsync (Pebble) or a
// COMMIT (PostgreSQL, fsync and synchronous_commit on, no standby).
//
// store=postgres is slotd's default on PostgreSQL: after each append
// commits, the store's notifier sends pg_notify (the wake-up for other
// instances) from its own connection, coalescing tenants.
// store=postgres-nonotify is slotd -database-notify=false: no
// notifications, other instances learn of appends by polling.
//
// Metrics:
//
//	bookings/s        acknowledged durable bookings per second of wall time
//	bookings/append   mean group-commit batch: bookings per journal Append
//	commit-p50-ms,
//	commit-p99-ms     latency of one journal Append (one group commit)
//	book-p99-ms       latency of one booking as the client sees it (Do)
//
// Each sub-benchmark sets up its store and tenants once and keeps them
// across the framework's rounds; bookings continue where the last round
// stopped.

// cluster is the PostgreSQL cluster of the run: production durability
// settings (pgtest's), with shared_buffers raised from pgtest's 16MB so
// that 10,000 tenants' rows stay cached.
var cluster = pgtest.Shared{Options: []pgtest.Option{pgtest.WithSetting("shared_buffers", "256MB")}}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := cluster.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// poolSize is the PostgreSQL connection pool: as many commits can be in
// flight at once (one per committing tenant actor).
const poolSize = 64

var t0 = time.Date(2030, time.January, 7, 6, 0, 0, 0, time.UTC)

func BenchmarkDurableBook(b *testing.B) {
	var fixtures []*fixture
	defer func() {
		for _, f := range fixtures {
			f.close(b)
		}
	}()
	for _, backend := range []string{"pebble", "postgres", "postgres-nonotify"} {
		for _, tenants := range []int{1, 10000} {
			var f *fixture
			b.Run(fmt.Sprintf("store=%s/tenants=%d", backend, tenants), func(b *testing.B) {
				if f == nil {
					f = newFixture(b, backend, tenants)
					fixtures = append(fixtures, f)
				}
				f.bench(b)
			})
		}
	}
}

// fixture is a store with configured tenants and a registry on it.
type fixture struct {
	store   persistence.Store
	ms      *measuredStore
	reg     *actors.Registry
	names   []string
	next    atomic.Int64 // bookings made so far, over all rounds
	tempDir string
}

func newFixture(b *testing.B, backend string, tenants int) *fixture {
	f := &fixture{}
	switch backend {
	case "pebble":
		dir, err := os.MkdirTemp("", "sqlbench-pebble-")
		if err != nil {
			b.Fatal(err)
		}
		f.tempDir = dir
		st, err := pebble.Open(dir, pebble.Options{})
		if err != nil {
			b.Fatalf("pebble.Open = %v", err)
		}
		f.store = st
	case "postgres", "postgres-nonotify":
		c := cluster.Cluster(b)
		db := c.CreateDatabase(b)
		if err := postgres.Migrate(context.Background(), db.OwnerDSN, postgres.MigrateOptions{AppRole: pgtest.AppRole}); err != nil {
			b.Fatalf("Migrate = %v", err)
		}
		st, err := postgres.Open(context.Background(), db.AppDSN, postgres.Options{MaxConns: poolSize, NoNotify: backend == "postgres-nonotify"})
		if err != nil {
			b.Fatalf("postgres.Open = %v", err)
		}
		f.store = st
	}
	f.ms = &measuredStore{Store: f.store}
	f.reg = actors.NewRegistry(actors.Config{Store: f.ms, Clock: clock.NewManual(t0),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxLive: tenants})
	f.names = make([]string, tenants)
	for i := range f.names {
		f.names[i] = fmt.Sprintf("tenant-%05d", i)
	}
	configureAll(b, f.reg, f.names)
	return f
}

func (f *fixture) close(b *testing.B) {
	f.reg.Close()
	if err := f.store.Close(); err != nil {
		b.Errorf("Close() = %v", err)
	}
	if f.tempDir != "" {
		os.RemoveAll(f.tempDir)
	}
}

// bench runs one round of b.N bookings.
func (f *fixture) bench(b *testing.B) {
	f.ms.reset()
	var mu sync.Mutex // guards book
	book := newHistogram()
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mine := newHistogram()
		ctx := context.Background()
		for pb.Next() {
			n := int(f.next.Add(1) - 1)
			tenant := f.names[n%len(f.names)]
			cmd := benchBooking(n / len(f.names))
			start := time.Now()
			if _, err := f.reg.Do(ctx, tenant, cmd); err != nil {
				b.Errorf("Do(%s, Book %s) = %v", tenant, cmd.BookingID, err)
				return
			}
			_ = mine.RecordValue(time.Since(start).Microseconds())
		}
		mu.Lock()
		book.Merge(mine)
		mu.Unlock()
	})
	b.StopTimer()
	if sec := b.Elapsed().Seconds(); sec > 0 {
		b.ReportMetric(float64(b.N)/sec, "bookings/s")
	}
	appends, events, commit := f.ms.snapshot()
	if appends > 0 {
		b.ReportMetric(float64(events)/float64(appends), "bookings/append")
		b.ReportMetric(float64(commit.ValueAtQuantile(50))/1000, "commit-p50-ms")
		b.ReportMetric(float64(commit.ValueAtQuantile(99))/1000, "commit-p99-ms")
	}
	b.ReportMetric(float64(book.ValueAtQuantile(99))/1000, "book-p99-ms")
	b.ReportMetric(0, "ns/op") // bookings/s says it, per second of wall time
}

// newHistogram records microseconds from 1 µs to 60 s, 3 significant
// digits.
func newHistogram() *hdr.Histogram { return hdr.New(1, 60_000_000, 3) }

// configureAll configures the tenants from 64 goroutines, so that their
// first appends overlap.
func configureAll(b *testing.B, r *actors.Registry, names []string) {
	b.Helper()
	cfg := benchConfig()
	work := make(chan string)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for tn := range work {
				if _, err := r.Do(context.Background(), tn, engine.Configure{Config: cfg}); err != nil {
					b.Errorf("Do(%s, Configure) = %v", tn, err)
				}
			}
		})
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

// benchConfig is actors/bench_test.go's tenant: eight desks open round the
// clock and a five-minute service booked up to two years ahead.
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
		Customer:   engine.Customer{Name: "Ada Lovelace", Email: "ada@example.com"},
	}
}

// measuredStore counts journal appends and the events they carry, and
// records each append's latency.
type measuredStore struct {
	persistence.Store

	mu      sync.Mutex // guards the fields below
	appends int64
	events  int64
	commit  *hdr.Histogram
}

func (s *measuredStore) Append(ctx context.Context, tenant string, expectedSeq uint64, events [][]byte) (uint64, error) {
	start := time.Now()
	head, err := s.Store.Append(ctx, tenant, expectedSeq, events)
	d := time.Since(start)
	if err == nil {
		s.mu.Lock()
		s.appends++
		s.events += int64(len(events))
		if s.commit != nil {
			_ = s.commit.RecordValue(d.Microseconds())
		}
		s.mu.Unlock()
	}
	return head, err
}

func (s *measuredStore) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appends, s.events, s.commit = 0, 0, newHistogram()
}

func (s *measuredStore) snapshot() (appends, events int64, commit *hdr.Histogram) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appends, s.events, s.commit
}

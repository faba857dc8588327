package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slotd/slotd/persistence/postgres"
)

// Run with: go test -run '^$' -bench . -benchtime 3s ./persistence/postgres
//
// The benchmarks run against the package's throwaway cluster (fsync and
// synchronous_commit on, on loopback), appending one 128-byte event per
// Append, each a committed transaction, as in the Pebble backend's
// benchmarks. Metrics:
//
//	appends/s       durable appends per second
//	p50-ms, p99-ms  latency of one Append (its commit included)
//	fsyncs/append   WAL syncs (pg_stat_wal.wal_sync) per append: below 1
//	                means PostgreSQL flushed several commits at once

// BenchmarkAppendSync appends to one tenant from one goroutine: every
// Append waits for its own commit, the floor of per-tenant latency.
func BenchmarkAppendSync(b *testing.B) {
	db := newDB(b)
	s := mustOpen(b, db.AppDSN, postgres.Options{})
	ev := bytes.Repeat([]byte("e"), 128)
	ctx := b.Context()
	var head uint64
	m := startMeasure(b, 1)
	for b.Loop() {
		start := time.Now()
		got, err := s.Append(ctx, "bench", head, [][]byte{ev})
		if err != nil {
			b.Fatalf("Append(bench, %d) = %v", head, err)
		}
		m.record(0, time.Since(start))
		head = got
	}
	m.report(b, s)
}

// BenchmarkAppendBooking is BenchmarkAppendSync with a real booking event:
// the cost of decoding it and maintaining the bookings projection (and its
// exclusion constraint) in the append transaction.
func BenchmarkAppendBooking(b *testing.B) {
	db := newDB(b)
	s := mustOpen(b, db.AppDSN, postgres.Options{})
	ctx := b.Context()
	head, err := s.Append(ctx, "bench", 0, [][]byte{configured(b, resource("room", 1))})
	if err != nil {
		b.Fatal(err)
	}
	// A resource with a history, and table statistics as autovacuum (off
	// in the test cluster) would have gathered: without them the planner
	// scans the resource's whole history for each seat.
	i := 0
	for ; i < 1000; i++ {
		if head, err = s.Append(ctx, "bench", head, [][]byte{confirmed(b, fmt.Sprintf("b%d", i), "room", at(float64(i)), at(float64(i)+1))}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := connect(b, db.OwnerDSN).Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	m := startMeasure(b, 1)
	for b.Loop() {
		ev := confirmed(b, fmt.Sprintf("b%d", i), "room", at(float64(i)), at(float64(i)+1))
		i++
		start := time.Now()
		got, err := s.Append(ctx, "bench", head, [][]byte{ev})
		if err != nil {
			b.Fatalf("Append(bench, %d) = %v", head, err)
		}
		m.record(0, time.Since(start))
		head = got
	}
	m.report(b, s)
}

// BenchmarkAppendParallelTenants appends from many goroutines, each to its
// own tenant, as many live tenant actors do; the pool has a connection per
// goroutine. Their commits overlap and PostgreSQL flushes them together.
// notify=false leaves pg_notify out: NOTIFY serializes the commits of
// notifying transactions on a cluster-wide lock held through the WAL flush.
func BenchmarkAppendParallelTenants(b *testing.B) {
	db := newDB(b)
	for _, notify := range []bool{true, false} {
		for _, perProc := range []int{1, 4, 16, 64} {
			goroutines := perProc * runtime.GOMAXPROCS(0)
			b.Run(fmt.Sprintf("notify=%v/goroutines=%d", notify, goroutines), func(b *testing.B) {
				s := mustOpen(b, db.AppDSN, postgres.Options{NoNotify: !notify, MaxConns: int32(min(goroutines, 150))})
				benchParallel(b, s, perProc, goroutines)
			})
		}
	}
}

// BenchmarkAppendManyTenants spreads appends over 10,000 tenants from 128
// goroutines (each cycling through its share of the tenants), so the heads
// and journal rows touched are spread over a larger index, as with many
// live tenants.
func BenchmarkAppendManyTenants(b *testing.B) {
	db := newDB(b)
	const tenants, goroutines = 10000, 128
	s := mustOpen(b, db.AppDSN, postgres.Options{MaxConns: goroutines})
	ev := bytes.Repeat([]byte("e"), 128)
	ctx := b.Context()
	run := benchRun.Add(1)
	var next atomic.Int64
	m := startMeasure(b, goroutines)
	perProc := max(1, goroutines/runtime.GOMAXPROCS(0))
	b.SetParallelism(perProc)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := int(next.Add(1)) - 1
		var mine []string
		for t := g; t < tenants; t += perProc * runtime.GOMAXPROCS(0) {
			mine = append(mine, fmt.Sprintf("run%d-tenant-%d", run, t))
		}
		heads := make([]uint64, len(mine))
		for i := 0; pb.Next(); i = (i + 1) % len(mine) {
			start := time.Now()
			got, err := s.Append(ctx, mine[i], heads[i], [][]byte{ev})
			if err != nil {
				b.Errorf("Append(%s, %d) = %v", mine[i], heads[i], err)
				return
			}
			m.record(g, time.Since(start))
			heads[i] = got
		}
	})
	b.StopTimer()
	m.report(b, s)
}

var benchRun atomic.Int64 // makes tenant names unique across benchmark runs

func benchParallel(b *testing.B, s *postgres.Store, perProc, goroutines int) {
	ev := bytes.Repeat([]byte("e"), 128)
	ctx := b.Context()
	run := benchRun.Add(1)
	var next atomic.Int64
	m := startMeasure(b, goroutines)
	b.SetParallelism(perProc)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := int(next.Add(1)) - 1
		tenant := fmt.Sprintf("run%d-tenant-%d", run, g)
		var head uint64
		for pb.Next() {
			start := time.Now()
			got, err := s.Append(ctx, tenant, head, [][]byte{ev})
			if err != nil {
				b.Errorf("Append(%s, %d) = %v", tenant, head, err)
				return
			}
			m.record(g%goroutines, time.Since(start))
			head = got
		}
	})
	b.StopTimer()
	m.report(b, s)
}

// measure collects Append latencies (one slice per goroutine, no locking
// on the hot path) and the WAL sync count.
type measure struct {
	lat      [][]time.Duration
	mu       sync.Mutex // guards extra: goroutine numbers beyond len(lat)
	extra    []time.Duration
	syncs0   int64
	superDSN string
}

func startMeasure(b *testing.B, goroutines int) *measure {
	b.Helper()
	m := &measure{lat: make([][]time.Duration, goroutines), superDSN: shared.Cluster(b).SuperuserDSN()}
	m.syncs0 = walSyncs(b, m.superDSN)
	return m
}

func (m *measure) record(g int, d time.Duration) {
	if g < len(m.lat) {
		m.lat[g] = append(m.lat[g], d)
		return
	}
	m.mu.Lock()
	m.extra = append(m.extra, d)
	m.mu.Unlock()
}

// report reports the metrics. It closes s first: a backend sends its WAL
// statistics when it exits (or after seconds of idling).
func (m *measure) report(b *testing.B, s *postgres.Store) {
	b.Helper()
	s.Close()
	all := slices.Concat(append(m.lat, m.extra)...)
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	ms := func(q float64) float64 {
		return float64(all[min(len(all)-1, int(q*float64(len(all))))]) / float64(time.Millisecond)
	}
	if sec := b.Elapsed().Seconds(); sec > 0 {
		b.ReportMetric(float64(b.N)/sec, "appends/s")
	}
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
	b.ReportMetric(float64(walSyncs(b, m.superDSN)-m.syncs0)/float64(b.N), "fsyncs/append")
}

// walSyncs reads the cluster's WAL sync count.
func walSyncs(b *testing.B, superDSN string) int64 {
	b.Helper()
	conn := connect(b, superDSN)
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(context.Background(), "SELECT wal_sync FROM pg_stat_wal").Scan(&n); err != nil {
		b.Fatalf("read pg_stat_wal: %v", err)
	}
	return n
}

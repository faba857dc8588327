package pebble_test

import (
	"bytes"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/slotd/slotd/persistence/pebble"
)

// Run with: go test -run '^$' -bench . -benchtime 2s ./persistence/pebble
//
// Both benchmarks append one 128-byte event per Append, each synced. The
// fsyncs/append metric counts file syncs (WAL and anything else) issued
// while the benchmark ran: below 1 means Pebble grouped commits into shared
// fsyncs.

// BenchmarkAppendSync appends to one tenant from one goroutine: every
// Append waits for its own fsync, the floor of per-tenant latency.
func BenchmarkAppendSync(b *testing.B) {
	s, syncs := openBench(b)
	ev := bytes.Repeat([]byte("e"), 128)
	ctx := b.Context()
	var head uint64
	syncs.Store(0)
	for b.Loop() {
		got, err := s.Append(ctx, "bench", head, [][]byte{ev})
		if err != nil {
			b.Fatalf("Append(bench, %d) = %v", head, err)
		}
		head = got
	}
	report(b, syncs)
}

// BenchmarkAppendParallelTenants appends from many goroutines, each to its
// own tenant, as many live tenant actors do: their commits overlap and share
// fsyncs, so throughput grows with concurrency while fsyncs/append falls.
func BenchmarkAppendParallelTenants(b *testing.B) {
	for _, perProc := range []int{1, 4, 16, 64} {
		goroutines := perProc * runtime.GOMAXPROCS(0)
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			s, syncs := openBench(b)
			ev := bytes.Repeat([]byte("e"), 128)
			ctx := b.Context()
			var next atomic.Int64
			b.SetParallelism(perProc)
			syncs.Store(0)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				tenant := fmt.Sprintf("tenant-%d", next.Add(1))
				var head uint64
				for pb.Next() {
					got, err := s.Append(ctx, tenant, head, [][]byte{ev})
					if err != nil {
						b.Errorf("Append(%s, %d) = %v", tenant, head, err)
						return
					}
					head = got
				}
			})
			report(b, syncs)
		})
	}
}

func openBench(b *testing.B) (*pebble.Store, *atomic.Int64) {
	b.Helper()
	syncs := new(atomic.Int64)
	s, err := pebble.Open(b.TempDir(), pebble.Options{FS: countingFS{FS: vfs.Default, syncs: syncs}})
	if err != nil {
		b.Fatalf("Open = %v", err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Errorf("Close() = %v", err)
		}
	})
	return s, syncs
}

func report(b *testing.B, syncs *atomic.Int64) {
	b.Helper()
	if sec := b.Elapsed().Seconds(); sec > 0 {
		b.ReportMetric(float64(b.N)/sec, "appends/s")
	}
	b.ReportMetric(float64(syncs.Load())/float64(b.N), "fsyncs/append")
}

// countingFS counts syncs of the files Pebble writes.
type countingFS struct {
	vfs.FS
	syncs *atomic.Int64
}

func (fs countingFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.wrap(f, err)
}

func (fs countingFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, category, opts...)
	return fs.wrap(f, err)
}

func (fs countingFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(f, err)
}

func (fs countingFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return countingFile{File: f, syncs: fs.syncs}, nil
}

type countingFile struct {
	vfs.File
	syncs *atomic.Int64
}

func (f countingFile) Sync() error {
	f.syncs.Add(1)
	return f.File.Sync()
}

func (f countingFile) SyncData() error {
	f.syncs.Add(1)
	return f.File.SyncData()
}

func (f countingFile) SyncTo(length int64) (bool, error) {
	f.syncs.Add(1)
	return f.File.SyncTo(length)
}

// BenchmarkGetRecordAbsent reads records that do not exist from a store
// holding 500,000 records over 1,000 tenants (some 40 sstables), reopened so that they are in
// sstables rather than the memtable: the read a new customer's booking
// makes (privacy's subject index and key). Bloom filters let Pebble skip
// sstables without opening their blocks.
func BenchmarkGetRecordAbsent(b *testing.B) {
	dir := b.TempDir()
	s, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	val := bytes.Repeat([]byte("v"), 128)
	for i := range 500_000 {
		if _, err := s.PutRecordNoSyncForBench(ctx, fmt.Sprintf("t%04d", i%1000), "k", fmt.Sprintf("present-%d", i), val); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	if s, err = pebble.Open(dir, pebble.Options{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	i := 0
	for b.Loop() {
		i++
		if _, err := s.GetRecord(ctx, fmt.Sprintf("t%04d", i%1000), "k", fmt.Sprintf("absent-%d", i)); err == nil {
			b.Fatal("found an absent record")
		}
	}
}

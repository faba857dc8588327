// Package pebble is slotd's embedded persistence.Store and
// persistence.RecordStore on CockroachDB's Pebble, so a single slotd binary
// runs with nothing but a data directory.
//
// Every write commits with pebble.Sync: a successful Append, SaveSnapshot,
// directory or record write is in the fsynced WAL before it returns.
// Appends for one tenant are serialized in-process (a Pebble directory is
// locked to one process, so that plus the stored head is the whole
// conditional append); appends for different tenants run in parallel, and
// Pebble's commit pipeline folds their concurrent syncs into shared fsyncs.
// That is slotd's group commit across tenants, on top of the actor's
// batching within a tenant. Record writes of one tenant are serialized the
// same way, by a lock of their own (records.go).
//
// The key layout is described in keys.go.
package pebble

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/slotd/slotd/persistence"
)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("pebble store: closed")

// Options configures Open. The zero value is usable.
type Options struct {
	// Logger receives Pebble's own log lines: informational ones at debug
	// level, errors at error level. Nil discards them.
	Logger *slog.Logger
	// CacheSize is the block cache size in bytes; 0 means DefaultCacheSize.
	CacheSize int64
	// FS replaces the operating system's file system, for tests (for
	// example vfs.NewCrashableMem to simulate power loss). Nil uses the OS.
	FS vfs.FS
}

// DefaultCacheSize is the block cache used when Options.CacheSize is 0.
// Pebble's own default, 8 MiB, is too small for the records read on every
// booking of a store with many tenants (privacy's subject index and keys).
const DefaultCacheSize = 64 << 20

// bloomBitsPerKey sizes the Bloom filter written into every sstable: 10
// bits per key, about a 1% false-positive rate. Most point reads on the
// booking path are for keys that do not exist yet (a new customer's index
// entry and key); without filters each such read searched every level.
const bloomBitsPerKey = 10

// memTableSize is the size of each memtable. Pebble's default, 4 MiB,
// flushed about once a second under booking load, and the many small
// sstables made every point read slower until compaction caught up.
const memTableSize = 64 << 20

// Store is a persistence.Store and persistence.RecordStore on a Pebble
// database. It is safe for concurrent use.
type Store struct {
	db  *pebbledb.DB
	log *slog.Logger

	// closeMu is held for reading by every operation and for writing by
	// Close, so Close waits for operations in flight.
	closeMu sync.RWMutex
	closed  bool // guarded by closeMu

	mu      sync.Mutex              // guards tenants
	tenants map[string]*tenantState // one entry per tenant touched since Open
}

// tenantState serializes one tenant's writes and caches its journal head.
// The locks are one-token channels rather than mutexes so that waiting for
// them respects the caller's context.
type tenantState struct {
	// appendLock is held by an Append or a head read; it guards head and
	// headKnown.
	appendLock chan struct{}
	head       uint64
	headKnown  bool

	// snapLock serializes SaveSnapshot, so "older than stored is ignored"
	// is a compare-and-set.
	snapLock chan struct{}

	// recordLock serializes the tenant's record writes, so that a
	// PutRecord or DeleteRecord reads the stored version and writes with
	// nothing in between, and DeleteTenantRecords is atomic with respect
	// to them.
	recordLock chan struct{}
}

var (
	_ persistence.Store       = (*Store)(nil)
	_ persistence.RecordStore = (*Store)(nil)
)

// Open opens or creates the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cacheSize := opts.CacheSize
	if cacheSize == 0 {
		cacheSize = DefaultCacheSize
	}
	po := &pebbledb.Options{
		Logger:             pebbleLogger{logger.With("component", "pebble")},
		CacheSize:          cacheSize,
		FS:                 opts.FS,
		FormatMajorVersion: pebbledb.FormatNewest,
		MemTableSize:       memTableSize,
	}
	// Later levels inherit level 0's filter policy (LevelOptions.EnsureDefaults).
	po.Levels[0].FilterPolicy = bloom.FilterPolicy(bloomBitsPerKey)
	db, err := pebbledb.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("open pebble %s: %w", dir, err)
	}
	if err := checkLayout(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open pebble %s: %w", dir, err)
	}
	return &Store{
		db:      db,
		log:     logger,
		tenants: make(map[string]*tenantState),
	}, nil
}

// checkLayout stamps a new database with the key layout version and refuses
// a database written with another layout or by another program.
func checkLayout(db *pebbledb.DB) error {
	v, closer, err := db.Get([]byte(layoutKey))
	if err == nil {
		defer closer.Close()
		if string(v) != layoutVersion {
			return fmt.Errorf("key layout %q, want %q", v, layoutVersion)
		}
		return nil
	}
	if !errors.Is(err, pebbledb.ErrNotFound) {
		return fmt.Errorf("read layout: %w", err)
	}
	iter, err := db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("read layout: %w", err)
	}
	nonEmpty := iter.First()
	if err := iter.Close(); err != nil {
		return fmt.Errorf("read layout: %w", err)
	}
	if nonEmpty {
		return errors.New("database has data but no slotd layout key")
	}
	if err := db.Set([]byte(layoutKey), []byte(layoutVersion), pebbledb.Sync); err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	return nil
}

// Close waits for operations in flight and closes the database. Later calls
// return ErrClosed; closing twice is not an error.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close pebble: %w", err)
	}
	return nil
}

// begin starts an operation: it checks ctx and holds off Close until the
// returned function is called.
func (s *Store) begin(ctx context.Context) (end func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return nil, ErrClosed
	}
	return s.closeMu.RUnlock, nil
}

// tenant returns the state for tenant, creating it on first use.
func (s *Store) tenant(tenant string) *tenantState {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.tenants[tenant]
	if ts == nil {
		ts = &tenantState{
			appendLock: make(chan struct{}, 1),
			snapLock:   make(chan struct{}, 1),
			recordLock: make(chan struct{}, 1),
		}
		s.tenants[tenant] = ts
	}
	return ts
}

// acquire takes a one-token lock, giving up when ctx is done.
func acquire(ctx context.Context, lock chan struct{}) error {
	select {
	case lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func release(lock chan struct{}) { <-lock }

// pebbleLogger routes Pebble's logging to slog. Pebble is chatty at info
// level (WAL recovery, compactions), so those lines go to debug.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, args...))
	}
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}

// Fatalf logs and panics: Pebble calls it on corruption and expects it not
// to return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg, "fatal", true)
	panic("pebble: " + msg)
}

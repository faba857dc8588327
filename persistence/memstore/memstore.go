// Package memstore is an in-memory persistence.Store and
// persistence.RecordStore for tests: actor and gateway tests run against it
// instead of a mock, so they exercise the real conditional-append and record
// compare-and-swap contracts (it passes persistence/storetest) without disk
// or a database. Nothing survives the process; do not use it in production.
//
// The Fail* fields are test hooks that inject errors, for example a failing
// disk for one tenant; a failed Append writes nothing, like a real backend.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/slotd/slotd/persistence"
)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("memstore: closed")

// Store is an in-memory persistence.Store. The zero value is not usable; call
// New. All methods are safe for concurrent use; byte slices are copied on the
// way in and out, so callers may reuse their buffers.
type Store struct {
	// FailAppend, if non-nil, is a test hook called under the store's lock at
	// the start of every Append, after argument checks. A non-nil result is
	// returned (wrapped) and nothing is written. Set it before the store is
	// shared between goroutines; to change behaviour mid-test, make the
	// function itself consult an atomic or a channel.
	FailAppend func(tenant string) error
	// FailSaveSnapshot is the same test hook for SaveSnapshot.
	FailSaveSnapshot func(tenant string) error
	// FailLoad is the same test hook for Load and ReadFrom.
	FailLoad func(tenant string) error

	mu      sync.Mutex // guards the fields below
	closed  bool
	tenants map[string]*tenantData
	dir     map[string]map[string][]byte // kind → key → value
	records map[recordID]storedRecord
}

type tenantData struct {
	events [][]byte // events[i] has Seq i+1
	snap   persistence.Snapshot
}

var _ persistence.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		tenants: make(map[string]*tenantData),
		dir:     make(map[string]map[string][]byte),
		records: make(map[recordID]storedRecord),
	}
}

// Append implements persistence.Store.
func (s *Store) Append(ctx context.Context, tenant string, expectedSeq uint64, events [][]byte) (uint64, error) {
	if err := persistence.CheckTenant(tenant); err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	if s.FailAppend != nil {
		if err := s.FailAppend(tenant); err != nil {
			return 0, fmt.Errorf("append: %w", err)
		}
	}
	td := s.tenants[tenant]
	var head uint64
	if td != nil {
		head = uint64(len(td.events))
	}
	if head != expectedSeq {
		return 0, fmt.Errorf("append %s at %d, head is %d: %w", tenant, expectedSeq, head, persistence.ErrConflict)
	}
	if len(events) == 0 {
		return head, nil
	}
	if td == nil {
		td = &tenantData{}
		s.tenants[tenant] = td
	}
	for _, ev := range events {
		td.events = append(td.events, clone(ev))
	}
	return uint64(len(td.events)), nil
}

// Load implements persistence.Store.
func (s *Store) Load(ctx context.Context, tenant string) (persistence.Snapshot, []persistence.Entry, error) {
	if err := persistence.CheckTenant(tenant); err != nil {
		return persistence.Snapshot{}, nil, fmt.Errorf("load: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return persistence.Snapshot{}, nil, fmt.Errorf("load: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return persistence.Snapshot{}, nil, ErrClosed
	}
	if s.FailLoad != nil {
		if err := s.FailLoad(tenant); err != nil {
			return persistence.Snapshot{}, nil, fmt.Errorf("load: %w", err)
		}
	}
	td := s.tenants[tenant]
	if td == nil {
		return persistence.Snapshot{}, nil, nil
	}
	snap := persistence.Snapshot{Seq: td.snap.Seq, Data: clone(td.snap.Data)}
	return snap, td.entriesLocked(snap.Seq, 0), nil
}

// ReadFrom implements persistence.Store.
func (s *Store) ReadFrom(ctx context.Context, tenant string, after uint64, limit int) ([]persistence.Entry, error) {
	if err := persistence.CheckTenant(tenant); err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.FailLoad != nil {
		if err := s.FailLoad(tenant); err != nil {
			return nil, fmt.Errorf("read journal: %w", err)
		}
	}
	td := s.tenants[tenant]
	if td == nil {
		return nil, nil
	}
	return td.entriesLocked(after, limit), nil
}

// entriesLocked returns copies of the entries with Seq > after, at most limit
// of them (limit <= 0: all). s.mu must be held.
func (td *tenantData) entriesLocked(after uint64, limit int) []persistence.Entry {
	if after >= uint64(len(td.events)) {
		return nil
	}
	rest := td.events[after:]
	if limit > 0 && limit < len(rest) {
		rest = rest[:limit]
	}
	out := make([]persistence.Entry, len(rest))
	for i, ev := range rest {
		out[i] = persistence.Entry{Seq: after + uint64(i) + 1, Data: clone(ev)}
	}
	return out
}

// SaveSnapshot implements persistence.Store.
func (s *Store) SaveSnapshot(ctx context.Context, tenant string, snap persistence.Snapshot) error {
	if err := persistence.CheckTenant(tenant); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.FailSaveSnapshot != nil {
		if err := s.FailSaveSnapshot(tenant); err != nil {
			return fmt.Errorf("save snapshot: %w", err)
		}
	}
	td := s.tenants[tenant]
	var head uint64
	if td != nil {
		head = uint64(len(td.events))
	}
	if snap.Seq > head {
		return fmt.Errorf("save snapshot %s at %d beyond head %d: %w", tenant, snap.Seq, head, persistence.ErrInvalid)
	}
	if td == nil {
		td = &tenantData{}
		s.tenants[tenant] = td
	}
	if snap.Seq < td.snap.Seq {
		return nil // older than the stored one: ignored
	}
	td.snap = persistence.Snapshot{Seq: snap.Seq, Data: clone(snap.Data)}
	return nil
}

// PutDirectory implements persistence.Store.
func (s *Store) PutDirectory(ctx context.Context, kind, key string, value []byte) error {
	if err := persistence.CheckDirectory(kind, key); err != nil {
		return fmt.Errorf("put directory: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put directory: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	m := s.dir[kind]
	if m == nil {
		m = make(map[string][]byte)
		s.dir[kind] = m
	}
	m[key] = clone(value)
	return nil
}

// GetDirectory implements persistence.Store.
func (s *Store) GetDirectory(ctx context.Context, kind, key string) ([]byte, error) {
	if err := persistence.CheckDirectory(kind, key); err != nil {
		return nil, fmt.Errorf("get directory: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get directory: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	v, ok := s.dir[kind][key]
	if !ok {
		return nil, fmt.Errorf("get directory %s/%q: %w", kind, key, persistence.ErrNotFound)
	}
	return cloneNonNil(v), nil
}

// DeleteDirectory implements persistence.Store.
func (s *Store) DeleteDirectory(ctx context.Context, kind, key string) error {
	if err := persistence.CheckDirectory(kind, key); err != nil {
		return fmt.Errorf("delete directory: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete directory: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	delete(s.dir[kind], key)
	return nil
}

// ListDirectory implements persistence.Store.
func (s *Store) ListDirectory(ctx context.Context, kind string) ([]string, error) {
	if err := persistence.CheckKind(kind); err != nil {
		return nil, fmt.Errorf("list directory: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list directory: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	m := s.dir[kind]
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// Close marks the store closed; later calls return ErrClosed. Closing twice
// is not an error.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// clone copies b; nil stays nil.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return slices.Clone(b)
}

// cloneNonNil copies b and never returns nil, so a stored empty value reads
// back as present.
func cloneNonNil(b []byte) []byte {
	return append([]byte{}, b...)
}

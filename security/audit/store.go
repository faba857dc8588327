package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrConflict is returned by Store.Append when the tenant's log no longer has the size the
// caller saw: another writer appended first. Log.Append retries.
var ErrConflict = errors.New("audit: concurrent append")

// A Store keeps the tenants' audit logs. It stands in for a table (or three) of the
// persistence layer: entries by (tenant, index), stored hashes by (tenant, hash index), and one
// signed checkpoint per tenant. Implementations must be safe for concurrent use; they do not
// parse or check anything, Log does.
type Store interface {
	// Head returns the tenant's latest signed checkpoint, or nil if it has none.
	Head(ctx context.Context, tenant string) ([]byte, error)
	// Append stores entry n of the tenant's log: its body, the hashes tlog.StoredHashes
	// returned for it (stored from hash index tlog.StoredHashIndex(0, n) on) and the new signed
	// checkpoint, in one atomic write, only if the log holds exactly n entries; otherwise it
	// stores nothing and returns ErrConflict.
	Append(ctx context.Context, tenant string, n int64, body []byte, hashes []tlog.Hash, head []byte) error
	// Len returns one past the highest entry index the tenant's log holds (pruned or not).
	Len(ctx context.Context, tenant string) (int64, error)
	// ReadBodies returns the bodies of entries [start, end): end-start slices, nil for an
	// entry whose body was deleted or is missing.
	ReadBodies(ctx context.Context, tenant string, start, end int64) ([][]byte, error)
	// ReadHashes returns the stored hashes at the given hash indexes, or an error if one is
	// missing.
	ReadHashes(ctx context.Context, tenant string, indexes []int64) ([]tlog.Hash, error)
	// DeleteBodies deletes the bodies of entries [start, end) and keeps their hashes.
	DeleteBodies(ctx context.Context, tenant string, start, end int64) error
	// Tenants lists the tenants that have a log, for `slotd audit verify`.
	Tenants(ctx context.Context) ([]string, error)
}

// MemoryStore is a Store in memory, for tests.
type MemoryStore struct {
	mu   sync.Mutex // guards logs
	logs map[string]*memLog
}

type memLog struct {
	bodies [][]byte // by entry index; nil once deleted
	hashes []tlog.Hash
	head   []byte
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{logs: make(map[string]*memLog)} }

func (m *MemoryStore) logLocked(tenant string) *memLog {
	l := m.logs[tenant]
	if l == nil {
		l = &memLog{}
		m.logs[tenant] = l
	}
	return l
}

// Head implements Store.
func (m *MemoryStore) Head(_ context.Context, tenant string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.logLocked(tenant).head), nil
}

// Append implements Store.
func (m *MemoryStore) Append(_ context.Context, tenant string, n int64, body []byte, hashes []tlog.Hash, head []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.logLocked(tenant)
	if int64(len(l.bodies)) != n || int64(len(l.hashes)) != tlog.StoredHashIndex(0, n) {
		return ErrConflict
	}
	l.bodies = append(l.bodies, bytes.Clone(body))
	l.hashes = append(l.hashes, hashes...)
	l.head = bytes.Clone(head)
	return nil
}

// Len implements Store.
func (m *MemoryStore) Len(_ context.Context, tenant string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.logLocked(tenant).bodies)), nil
}

// ReadBodies implements Store.
func (m *MemoryStore) ReadBodies(_ context.Context, tenant string, start, end int64) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if start < 0 || end < start {
		return nil, fmt.Errorf("audit: bad range [%d, %d)", start, end)
	}
	l := m.logLocked(tenant)
	out := make([][]byte, end-start)
	for i := start; i < end && i < int64(len(l.bodies)); i++ {
		out[i-start] = bytes.Clone(l.bodies[i])
	}
	return out, nil
}

// ReadHashes implements Store.
func (m *MemoryStore) ReadHashes(_ context.Context, tenant string, indexes []int64) ([]tlog.Hash, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.logLocked(tenant)
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(l.hashes)) {
			return nil, fmt.Errorf("audit: no stored hash %d", x)
		}
		out[i] = l.hashes[x]
	}
	return out, nil
}

// DeleteBodies implements Store.
func (m *MemoryStore) DeleteBodies(_ context.Context, tenant string, start, end int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.logLocked(tenant)
	for i := max(start, 0); i < end && i < int64(len(l.bodies)); i++ {
		l.bodies[i] = nil
	}
	return nil
}

// Tenants implements Store.
func (m *MemoryStore) Tenants(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ts []string
	for t, l := range m.logs {
		if len(l.bodies) > 0 || l.head != nil {
			ts = append(ts, t)
		}
	}
	slices.Sort(ts)
	return ts, nil
}

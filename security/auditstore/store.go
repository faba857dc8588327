package auditstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/security/audit"
)

// Record kinds, exported for tests and tools that inspect the store.
const (
	KindBody   = "audit_body"
	KindHash   = "audit_hash"
	KindHead   = "audit_head"
	KindIntent = "audit_intent"

	headKey   = "head"
	intentKey = "next"

	pageSize = 1024
)

// Key returns the record key of entry index i: fixed-width decimal, so that keys sort by index.
func Key(i int64) string { return fmt.Sprintf("%019d", i) }

func parseKey(k string) (int64, bool) {
	if len(k) != 19 {
		return 0, false
	}
	i, err := strconv.ParseInt(k, 10, 64)
	return i, err == nil && i >= 0
}

// after returns the ListRecords "after" key that starts a listing at index i.
func after(i int64) string {
	if i <= 0 {
		return ""
	}
	return Key(i - 1)
}

// TenantLister lists the tenants that may have an audit log (the directory's tenant list).
type TenantLister func(ctx context.Context) ([]string, error)

// Store is an audit.Store over a persistence.RecordStore. It is safe for concurrent use, by
// several Logs and several slotd instances sharing the records.
type Store struct {
	records persistence.RecordStore
	tenants TenantLister
}

var _ audit.Store = (*Store)(nil)

// New returns a Store keeping the logs in records; tenants lists candidate tenants for
// Tenants (nil: Tenants lists none).
func New(records persistence.RecordStore, tenants TenantLister) *Store {
	return &Store{records: records, tenants: tenants}
}

// head is the value of the head record.
type head struct {
	Size       int64  `json:"size"`
	Checkpoint []byte `json:"checkpoint"`
}

// intent is the value of the intent record: an append in progress, or Pending false.
type intent struct {
	Pending    bool   `json:"pending"`
	N          int64  `json:"n,omitempty"`
	Body       []byte `json:"body,omitempty"`
	Hashes     []byte `json:"hashes,omitempty"`
	Checkpoint []byte `json:"checkpoint,omitempty"`
}

func (s *Store) readHead(ctx context.Context, tenant string) (head, uint64, error) {
	r, err := s.records.GetRecord(ctx, tenant, KindHead, headKey)
	if errors.Is(err, persistence.ErrNotFound) {
		return head{}, 0, nil
	}
	if err != nil {
		return head{}, 0, fmt.Errorf("auditstore: read head: %w", err)
	}
	var h head
	if err := json.Unmarshal(r.Value, &h); err != nil || h.Size < 0 {
		// Reported by Verify as a bad checkpoint; appends stop until it is repaired.
		return head{Checkpoint: r.Value}, r.Version, nil
	}
	return h, r.Version, nil
}

func (s *Store) readIntent(ctx context.Context, tenant string) (intent, uint64, error) {
	r, err := s.records.GetRecord(ctx, tenant, KindIntent, intentKey)
	if errors.Is(err, persistence.ErrNotFound) {
		return intent{}, 0, nil
	}
	if err != nil {
		return intent{}, 0, fmt.Errorf("auditstore: read intent: %w", err)
	}
	var in intent
	if err := json.Unmarshal(r.Value, &in); err != nil {
		return intent{}, 0, fmt.Errorf("auditstore: intent record of %s is not valid", tenant)
	}
	return in, r.Version, nil
}

// Head implements audit.Store.
func (s *Store) Head(ctx context.Context, tenant string) ([]byte, error) {
	h, v, err := s.readHead(ctx, tenant)
	if err != nil || v == 0 {
		return nil, err
	}
	return h.Checkpoint, nil
}

// Append implements audit.Store: claim, roll forward, settle (see the package doc).
func (s *Store) Append(ctx context.Context, tenant string, n int64, body []byte, hashes []tlog.Hash, checkpoint []byte) error {
	in, iv, err := s.readIntent(ctx, tenant)
	if err != nil {
		return err
	}
	if in.Pending {
		// Another writer's append, in flight or abandoned: finish it first. The caller's n
		// is then stale, or about to be: let audit.Log re-read the head and retry.
		if _, err := s.rollForward(ctx, tenant, in, iv); err != nil {
			return err
		}
		return audit.ErrConflict
	}
	h, _, err := s.readHead(ctx, tenant)
	if err != nil {
		return err
	}
	if h.Size != n {
		return audit.ErrConflict
	}
	// Nothing but an intent writes at or past the head. A record there while the intent is
	// still as we read it, settled, was put by someone else: keep it as evidence rather than
	// overwrite it. (If the intent moved, another appender claimed index n meanwhile.)
	for _, kind := range []string{KindBody, KindHash} {
		_, err := s.records.GetRecord(ctx, tenant, kind, Key(n))
		if errors.Is(err, persistence.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("auditstore: %w", err)
		}
		if _, v, err := s.readIntent(ctx, tenant); err != nil || v != iv {
			return cmp.Or(err, audit.ErrConflict)
		}
		return &audit.VerifyError{Tenant: tenant, Index: n, Problem: audit.ProblemUnsigned,
			Detail: "a record past the signed checkpoint; refusing to overwrite it"}
	}
	mine := intent{Pending: true, N: n, Body: body, Hashes: concat(hashes), Checkpoint: checkpoint}
	val, err := json.Marshal(mine)
	if err != nil {
		return fmt.Errorf("auditstore: %w", err)
	}
	// iv is 0 when there is no intent record yet: create-only.
	cv, err := s.records.PutRecord(ctx, tenant, KindIntent, intentKey, val, iv)
	if errors.Is(err, persistence.ErrConflict) {
		return audit.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("auditstore: claim: %w", err)
	}
	committed, err := s.rollForward(ctx, tenant, mine, cv)
	if err != nil {
		return err
	}
	if !committed {
		return audit.ErrConflict
	}
	return nil
}

// rollForward commits the pending intent in (read at version iv) if the head is still at
// its index, settles it, and reports whether it is committed.
func (s *Store) rollForward(ctx context.Context, tenant string, in intent, iv uint64) (bool, error) {
	h, hv, err := s.readHead(ctx, tenant)
	if err != nil {
		return false, err
	}
	committed := bytes.Equal(h.Checkpoint, in.Checkpoint)
	if !committed && h.Size == in.N {
		// Nobody else can commit index N while the intent is unsettled: these writes are
		// the intent's own bytes, whoever makes them and however late.
		if _, err := s.records.PutRecord(ctx, tenant, KindBody, Key(in.N), in.Body, persistence.AnyVersion); err != nil {
			return false, fmt.Errorf("auditstore: write entry %d: %w", in.N, err)
		}
		if _, err := s.records.PutRecord(ctx, tenant, KindHash, Key(in.N), in.Hashes, persistence.AnyVersion); err != nil {
			return false, fmt.Errorf("auditstore: write hashes of entry %d: %w", in.N, err)
		}
		val, err := json.Marshal(head{Size: in.N + 1, Checkpoint: in.Checkpoint})
		if err != nil {
			return false, fmt.Errorf("auditstore: %w", err)
		}
		// hv is 0 for a log without a head: create-only.
		_, err = s.records.PutRecord(ctx, tenant, KindHead, headKey, val, hv)
		switch {
		case err == nil:
			committed = true
		case errors.Is(err, persistence.ErrConflict):
			// Another roller committed it first (or the head was tampered with).
			if h, _, err = s.readHead(ctx, tenant); err != nil {
				return false, err
			}
			committed = bytes.Equal(h.Checkpoint, in.Checkpoint)
		default:
			return false, fmt.Errorf("auditstore: commit entry %d: %w", in.N, err)
		}
	}
	if !committed && h.Size > in.N {
		// The head moved past N with another checkpoint: possibly this intent was committed
		// and then more entries. Its hashes at N say which.
		r, err := s.records.GetRecord(ctx, tenant, KindHash, Key(in.N))
		if err != nil && !errors.Is(err, persistence.ErrNotFound) {
			return false, fmt.Errorf("auditstore: read hashes of entry %d: %w", in.N, err)
		}
		committed = err == nil && bytes.Equal(r.Value, in.Hashes)
	}
	settled, err := json.Marshal(intent{})
	if err != nil {
		return false, fmt.Errorf("auditstore: %w", err)
	}
	_, err = s.records.PutRecord(ctx, tenant, KindIntent, intentKey, settled, iv)
	if err != nil && !errors.Is(err, persistence.ErrConflict) && !committed {
		// A conflict means someone else settled it. A committed intent left unsettled is
		// settled by the next appender, which finds the head already at its checkpoint.
		return false, fmt.Errorf("auditstore: settle: %w", err)
	}
	return committed, nil
}

func concat(hs []tlog.Hash) []byte {
	out := make([]byte, 0, len(hs)*tlog.HashSize)
	for _, h := range hs {
		out = append(out, h[:]...)
	}
	return out
}

// list returns the records of kind with index in [start, end), in index order; end < 0 means
// no upper bound. Records whose key is not an index are skipped: they are not part of the log.
func (s *Store) list(ctx context.Context, tenant, kind string, start, end int64, fn func(i int64, r persistence.Record) error) error {
	cursor := after(start)
	for {
		limit := pageSize
		if end >= 0 {
			// The keys of [start, end) are at most end-start records; more would be past end.
			limit = int(min(int64(pageSize), max(end-start, 1)))
		}
		rs, err := s.records.ListRecords(ctx, tenant, kind, "", cursor, limit)
		if err != nil {
			return fmt.Errorf("auditstore: list %s: %w", kind, err)
		}
		for _, r := range rs {
			i, ok := parseKey(r.Key)
			if !ok {
				continue
			}
			if end >= 0 && i >= end {
				return nil
			}
			if err := fn(i, r); err != nil {
				return err
			}
		}
		if len(rs) < limit {
			return nil
		}
		cursor = rs[len(rs)-1].Key
	}
}

// Len implements audit.Store: one past the highest entry index with a stored body, not
// counting the body of an unsettled intent at the head (an append in flight).
func (s *Store) Len(ctx context.Context, tenant string) (int64, error) {
	h, _, err := s.readHead(ctx, tenant)
	if err != nil {
		return 0, err
	}
	in, _, err := s.readIntent(ctx, tenant)
	if err != nil {
		return 0, err
	}
	length := int64(0)
	seenLast := false
	err = s.list(ctx, tenant, KindBody, max(h.Size-1, 0), -1, func(i int64, r persistence.Record) error {
		if i == h.Size-1 {
			seenLast = true
		}
		if in.Pending && i == in.N && i == h.Size && bytes.Equal(r.Value, in.Body) {
			return nil
		}
		length = max(length, i+1)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if seenLast || h.Size == 0 || length > h.Size {
		return length, nil
	}
	// The newest signed entry is gone (its body is never pruned: a prune's own entry is
	// newer): find the highest one left.
	err = s.list(ctx, tenant, KindBody, 0, h.Size, func(i int64, _ persistence.Record) error {
		length = max(length, i+1)
		return nil
	})
	return length, err
}

// ReadBodies implements audit.Store.
func (s *Store) ReadBodies(ctx context.Context, tenant string, start, end int64) ([][]byte, error) {
	if start < 0 || end < start {
		return nil, fmt.Errorf("auditstore: bad range [%d, %d)", start, end)
	}
	out := make([][]byte, end-start)
	if end == start {
		return out, nil
	}
	err := s.list(ctx, tenant, KindBody, start, end, func(i int64, r persistence.Record) error {
		out[i-start] = r.Value
		return nil
	})
	return out, err
}

// ReadHashes implements audit.Store. The hashes stored for entry i are those at hash indexes
// tlog.StoredHashIndex(0, i) … StoredHashIndex(0, i+1)-1, the one at level L at offset L: so
// hash index x (level L, position k in its level) lives in the record of entry
// (k+1)·2^L − 1.
func (s *Store) ReadHashes(ctx context.Context, tenant string, indexes []int64) ([]tlog.Hash, error) {
	type loc struct {
		entry  int64
		offset int
	}
	locs := make([]loc, len(indexes))
	var entries []int64
	for j, x := range indexes {
		if x < 0 {
			return nil, fmt.Errorf("auditstore: no stored hash %d", x)
		}
		level, k := tlog.SplitStoredHashIndex(x)
		e := (k+1)<<level - 1
		locs[j] = loc{e, level}
		entries = append(entries, e)
	}
	slices.Sort(entries)
	entries = slices.Compact(entries)
	got := make(map[int64][]byte, len(entries))
	// Runs of consecutive entries are read with one listing (Verify reads them all), single
	// ones with a get (a tree hash reads a few, far apart).
	for a := 0; a < len(entries); {
		b := a + 1
		for b < len(entries) && entries[b] == entries[b-1]+1 {
			b++
		}
		if b-a == 1 {
			r, err := s.records.GetRecord(ctx, tenant, KindHash, Key(entries[a]))
			if err != nil && !errors.Is(err, persistence.ErrNotFound) {
				return nil, fmt.Errorf("auditstore: read hashes: %w", err)
			}
			if err == nil {
				got[entries[a]] = r.Value
			}
		} else {
			err := s.list(ctx, tenant, KindHash, entries[a], entries[b-1]+1, func(i int64, r persistence.Record) error {
				got[i] = r.Value
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		a = b
	}
	out := make([]tlog.Hash, len(indexes))
	for j, l := range locs {
		v := got[l.entry]
		lo := l.offset * tlog.HashSize
		if len(v)%tlog.HashSize != 0 || lo+tlog.HashSize > len(v) {
			return nil, fmt.Errorf("auditstore: no stored hash %d", indexes[j])
		}
		copy(out[j][:], v[lo:])
	}
	return out, nil
}

// DeleteBodies implements audit.Store.
func (s *Store) DeleteBodies(ctx context.Context, tenant string, start, end int64) error {
	start = max(start, 0)
	if end <= start {
		return nil
	}
	var keys []string
	err := s.list(ctx, tenant, KindBody, start, end, func(_ int64, r persistence.Record) error {
		keys = append(keys, r.Key)
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := s.records.DeleteRecord(ctx, tenant, KindBody, k, persistence.AnyVersion); err != nil {
			return fmt.Errorf("auditstore: delete entry body: %w", err)
		}
	}
	return nil
}

// Tenants implements audit.Store: the tenants the lister names that have a head or any entry.
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	if s.tenants == nil {
		return nil, nil
	}
	all, err := s.tenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("auditstore: list tenants: %w", err)
	}
	var out []string
	for _, t := range all {
		_, v, err := s.readHead(ctx, t)
		if err != nil {
			return nil, err
		}
		if v == 0 {
			rs, err := s.records.ListRecords(ctx, t, KindBody, "", "", 1)
			if err != nil {
				return nil, fmt.Errorf("auditstore: list entries: %w", err)
			}
			if len(rs) == 0 {
				continue
			}
		}
		out = append(out, t)
	}
	slices.Sort(out)
	return out, nil
}

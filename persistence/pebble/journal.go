package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	pebbledb "github.com/cockroachdb/pebble/v2"

	"github.com/slotd/slotd/persistence"
)

// Append implements persistence.Store. The events and the new head are one
// batch committed with pebble.Sync while the tenant's append lock is held;
// other tenants' appends commit concurrently and share fsyncs.
func (s *Store) Append(ctx context.Context, tenant string, expectedSeq uint64, events [][]byte) (uint64, error) {
	if err := persistence.CheckTenant(tenant); err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	end, err := s.begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	defer end()

	ts := s.tenant(tenant)
	if err := acquire(ctx, ts.appendLock); err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	defer release(ts.appendLock)

	head, err := s.headLocked(ts, tenant)
	if err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	if head != expectedSeq {
		return 0, fmt.Errorf("append %s at %d, head is %d: %w", tenant, expectedSeq, head, persistence.ErrConflict)
	}
	if len(events) == 0 {
		return head, nil
	}
	newHead := head + uint64(len(events))
	if newHead < head {
		return 0, fmt.Errorf("append %s: sequence overflow: %w", tenant, persistence.ErrInvalid)
	}

	size := 32 + len(tenant)
	for _, ev := range events {
		size += len(ev) + len(tenant) + 32
	}
	b := s.db.NewBatch(pebbledb.WithInitialSizeBytes(size))
	defer b.Close()
	// Set copies key and value, so one key buffer serves every event.
	key := journalPrefix(tenant)
	n := len(key)
	for i, ev := range events {
		key = binary.BigEndian.AppendUint64(key[:n], head+uint64(i)+1)
		if err := b.Set(key, ev, nil); err != nil {
			return 0, fmt.Errorf("append %s: batch: %w", tenant, err)
		}
	}
	if err := b.Set(headKey(tenant), encodeSeq(newHead), nil); err != nil {
		return 0, fmt.Errorf("append %s: batch: %w", tenant, err)
	}
	if err := b.Commit(pebbledb.Sync); err != nil {
		// The batch may or may not have reached the WAL: reread the head
		// next time rather than trust the cache.
		ts.headKnown = false
		return 0, fmt.Errorf("append %s: commit: %w", tenant, err)
	}
	ts.head = newHead
	return newHead, nil
}

// headLocked returns the tenant's journal head, reading it from the
// database on first use. ts.appendLock must be held.
func (s *Store) headLocked(ts *tenantState, tenant string) (uint64, error) {
	if ts.headKnown {
		return ts.head, nil
	}
	v, closer, err := s.db.Get(headKey(tenant))
	switch {
	case errors.Is(err, pebbledb.ErrNotFound):
		ts.head = 0
	case err != nil:
		return 0, fmt.Errorf("read head %s: %w", tenant, err)
	default:
		head, derr := decodeSeq(v)
		cerr := closer.Close()
		if derr != nil {
			return 0, fmt.Errorf("read head %s: %w", tenant, derr)
		}
		if cerr != nil {
			return 0, fmt.Errorf("read head %s: %w", tenant, cerr)
		}
		ts.head = head
	}
	ts.headKnown = true
	return ts.head, nil
}

// head returns the tenant's durable journal head.
func (s *Store) head(ctx context.Context, ts *tenantState, tenant string) (uint64, error) {
	if err := acquire(ctx, ts.appendLock); err != nil {
		return 0, err
	}
	defer release(ts.appendLock)
	return s.headLocked(ts, tenant)
}

// Load implements persistence.Store. The snapshot and the tail come from one
// iterator, a consistent point-in-time view, so a concurrent Append or
// SaveSnapshot cannot tear them apart.
func (s *Store) Load(ctx context.Context, tenant string) (persistence.Snapshot, []persistence.Entry, error) {
	if err := persistence.CheckTenant(tenant); err != nil {
		return persistence.Snapshot{}, nil, fmt.Errorf("load: %w", err)
	}
	end, err := s.begin(ctx)
	if err != nil {
		return persistence.Snapshot{}, nil, fmt.Errorf("load: %w", err)
	}
	defer end()

	lower, upper := tenantBounds(tenant)
	iter, err := s.db.NewIterWithContext(ctx, &pebbledb.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return persistence.Snapshot{}, nil, fmt.Errorf("load %s: %w", tenant, err)
	}
	snap, entries, err := load(ctx, iter, tenant)
	if cerr := iter.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return persistence.Snapshot{}, nil, fmt.Errorf("load %s: %w", tenant, err)
	}
	return snap, entries, nil
}

func load(ctx context.Context, iter *pebbledb.Iterator, tenant string) (persistence.Snapshot, []persistence.Entry, error) {
	var snap persistence.Snapshot
	key := snapshotKey(tenant)
	if iter.SeekGE(key) && bytes.Equal(iter.Key(), key) {
		v, err := iter.ValueAndErr()
		if err != nil {
			return snap, nil, fmt.Errorf("read snapshot: %w", err)
		}
		if snap.Seq, err = decodeSeq(v[:min(8, len(v))]); err != nil {
			return snap, nil, fmt.Errorf("read snapshot: %w", err)
		}
		snap.Data = bytes.Clone(v[8:])
	}
	if err := iter.Error(); err != nil {
		return snap, nil, fmt.Errorf("read snapshot: %w", err)
	}
	entries, err := readJournal(ctx, iter, tenant, snap.Seq, 0)
	return snap, entries, err
}

// ReadFrom implements persistence.Store.
func (s *Store) ReadFrom(ctx context.Context, tenant string, after uint64, limit int) ([]persistence.Entry, error) {
	if err := persistence.CheckTenant(tenant); err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	end, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	defer end()
	if after == math.MaxUint64 {
		return nil, nil
	}

	prefix := journalPrefix(tenant)
	upper := append(bytes.Clone(prefix[:len(prefix)-1]), tenantJournal+1)
	iter, err := s.db.NewIterWithContext(ctx, &pebbledb.IterOptions{
		LowerBound: journalKey(tenant, after+1),
		UpperBound: upper,
	})
	if err != nil {
		return nil, fmt.Errorf("read journal %s: %w", tenant, err)
	}
	entries, err := readJournal(ctx, iter, tenant, after, limit)
	if cerr := iter.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("read journal %s: %w", tenant, err)
	}
	return entries, nil
}

// readJournal reads the tenant's events with Seq > after, at most limit of
// them (limit <= 0: all). It checks that the journal is dense, so a gap is
// reported as corruption instead of being replayed.
func readJournal(ctx context.Context, iter *pebbledb.Iterator, tenant string, after uint64, limit int) ([]persistence.Entry, error) {
	if after == math.MaxUint64 {
		return nil, nil
	}
	prefix := journalPrefix(tenant)
	var out []persistence.Entry
	for ok := iter.SeekGE(journalKey(tenant, after+1)); ok; ok = iter.Next() {
		key := iter.Key()
		if !bytes.HasPrefix(key, prefix) {
			break
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		if len(out)%1024 == 1023 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		seq, err := decodeSeq(key[len(prefix):])
		if err != nil {
			return nil, fmt.Errorf("journal key: %w", err)
		}
		if want := after + uint64(len(out)) + 1; seq != want {
			return nil, fmt.Errorf("journal gap: found seq %d, want %d", seq, want)
		}
		v, err := iter.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("read event %d: %w", seq, err)
		}
		out = append(out, persistence.Entry{Seq: seq, Data: bytes.Clone(v)})
	}
	if err := iter.Error(); err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	return out, nil
}

// SaveSnapshot implements persistence.Store.
func (s *Store) SaveSnapshot(ctx context.Context, tenant string, snap persistence.Snapshot) error {
	if err := persistence.CheckTenant(tenant); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	end, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	defer end()

	ts := s.tenant(tenant)
	if err := acquire(ctx, ts.snapLock); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	defer release(ts.snapLock)

	// The head only grows, so a snapshot within it stays within it.
	head, err := s.head(ctx, ts, tenant)
	if err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if snap.Seq > head {
		return fmt.Errorf("save snapshot %s at %d beyond head %d: %w", tenant, snap.Seq, head, persistence.ErrInvalid)
	}
	key := snapshotKey(tenant)
	v, closer, err := s.db.Get(key)
	switch {
	case errors.Is(err, pebbledb.ErrNotFound):
	case err != nil:
		return fmt.Errorf("save snapshot %s: read stored: %w", tenant, err)
	default:
		stored, derr := decodeSeq(v[:min(8, len(v))])
		cerr := closer.Close()
		if derr != nil {
			return fmt.Errorf("save snapshot %s: read stored: %w", tenant, derr)
		}
		if cerr != nil {
			return fmt.Errorf("save snapshot %s: read stored: %w", tenant, cerr)
		}
		if snap.Seq < stored {
			return nil // older than the stored snapshot: ignored
		}
	}
	value := append(encodeSeq(snap.Seq), snap.Data...)
	if err := s.db.Set(key, value, pebbledb.Sync); err != nil {
		return fmt.Errorf("save snapshot %s: %w", tenant, err)
	}
	return nil
}

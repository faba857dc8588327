package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	pebbledb "github.com/cockroachdb/pebble/v2"

	"github.com/slotd/slotd/persistence"
)

// PutDirectory implements persistence.Store.
func (s *Store) PutDirectory(ctx context.Context, kind, key string, value []byte) error {
	if err := persistence.CheckDirectory(kind, key); err != nil {
		return fmt.Errorf("put directory: %w", err)
	}
	end, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("put directory: %w", err)
	}
	defer end()
	if err := s.db.Set(directoryKey(kind, key), value, pebbledb.Sync); err != nil {
		return fmt.Errorf("put directory %s/%q: %w", kind, key, err)
	}
	return nil
}

// GetDirectory implements persistence.Store.
func (s *Store) GetDirectory(ctx context.Context, kind, key string) ([]byte, error) {
	if err := persistence.CheckDirectory(kind, key); err != nil {
		return nil, fmt.Errorf("get directory: %w", err)
	}
	end, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("get directory: %w", err)
	}
	defer end()
	v, closer, err := s.db.Get(directoryKey(kind, key))
	if errors.Is(err, pebbledb.ErrNotFound) {
		return nil, fmt.Errorf("get directory %s/%q: %w", kind, key, persistence.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get directory %s/%q: %w", kind, key, err)
	}
	out := append([]byte{}, v...)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("get directory %s/%q: %w", kind, key, err)
	}
	return out, nil
}

// DeleteDirectory implements persistence.Store.
func (s *Store) DeleteDirectory(ctx context.Context, kind, key string) error {
	if err := persistence.CheckDirectory(kind, key); err != nil {
		return fmt.Errorf("delete directory: %w", err)
	}
	end, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("delete directory: %w", err)
	}
	defer end()
	if err := s.db.Delete(directoryKey(kind, key), pebbledb.Sync); err != nil {
		return fmt.Errorf("delete directory %s/%q: %w", kind, key, err)
	}
	return nil
}

// ListDirectory implements persistence.Store. Keys come back in byte order
// straight from the scan.
func (s *Store) ListDirectory(ctx context.Context, kind string) ([]string, error) {
	if err := persistence.CheckKind(kind); err != nil {
		return nil, fmt.Errorf("list directory: %w", err)
	}
	end, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("list directory: %w", err)
	}
	defer end()
	lower, upper := directoryBounds(kind)
	iter, err := s.db.NewIterWithContext(ctx, &pebbledb.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("list directory %s: %w", kind, err)
	}
	keys := []string{}
	for ok := iter.First(); ok; ok = iter.Next() {
		k := iter.Key()
		if !bytes.HasPrefix(k, lower) {
			break
		}
		keys = append(keys, string(k[len(lower):]))
	}
	err = iter.Error()
	if cerr := iter.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("list directory %s: %w", kind, err)
	}
	return keys, nil
}

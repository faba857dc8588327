package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/slotd/slotd/persistence"
)

// getJSON reads the record into v and returns its version.
func (s *Service) getJSON(ctx context.Context, tenant, kind, key string, v any) (uint64, error) {
	rec, err := s.records.GetRecord(ctx, tenant, kind, key)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(rec.Value, v); err != nil {
		return 0, fmt.Errorf("decode %s record: %w", kind, err)
	}
	return rec.Version, nil
}

// putJSON writes v as the record, conditional on expect (see
// persistence.RecordStore.PutRecord).
func (s *Service) putJSON(ctx context.Context, tenant, kind, key string, v any, expect uint64) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s record: %w", kind, err)
	}
	return s.records.PutRecord(ctx, tenant, kind, key, b, expect)
}

// maxCASRetries bounds read-modify-write loops that lose races.
const maxCASRetries = 8

// update applies fn to the record under compare-and-swap, retrying when
// another writer got there first. fn sees a fresh copy each time; an error
// from it ends the loop and is returned.
func update[T any](ctx context.Context, s *Service, tenant, kind, key string, fn func(*T) error) (T, error) {
	for range maxCASRetries {
		var v T
		ver, err := s.getJSON(ctx, tenant, kind, key, &v)
		if err != nil {
			return v, err
		}
		if err := fn(&v); err != nil {
			return v, err
		}
		if _, err := s.putJSON(ctx, tenant, kind, key, &v, ver); err != nil {
			if errors.Is(err, persistence.ErrConflict) {
				continue
			}
			return v, err
		}
		return v, nil
	}
	var zero T
	return zero, fmt.Errorf("update %s record: %w", kind, persistence.ErrConflict)
}

func jsonUnmarshal(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode record: %w", err)
	}
	return nil
}

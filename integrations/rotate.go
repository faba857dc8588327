package integrations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/security/secrets"
)

// A Rotation counts what RotateKeys did.
type Rotation struct {
	Resealed int // credentials moved to the active key
	Current  int // already under it (including ones rewritten meanwhile by someone else)
	Retried  int // compare-and-swap conflicts with a concurrent writer, each re-read and redone
}

// RotateKeys re-seals every credential of tenant that is sealed under a key other than the
// keyring's active one, each by compare-and-swap on its record: a credential replaced or a
// connection deleted meanwhile is re-read (or skipped), never overwritten with the old
// secret. Run it with a keyring holding the new key (active) and the old ones; afterwards the
// old keys can be removed. It is idempotent.
func (s *Service) RotateKeys(ctx context.Context, tenant string) (Rotation, error) {
	var (
		rot Rotation
		ids []string
	)
	err := s.all(ctx, tenant, func(rec record, _ uint64) error {
		ids = append(ids, rec.ID)
		return nil
	})
	if err != nil {
		return rot, err
	}
	for _, id := range ids {
		if err := s.rotateOne(ctx, tenant, id, &rot); err != nil {
			return rot, err
		}
	}
	return rot, nil
}

func (s *Service) rotateOne(ctx context.Context, tenant, id string, rot *Rotation) error {
	for range maxCAS {
		r, err := s.records.GetRecord(ctx, tenant, KindConnection, id)
		if errors.Is(err, persistence.ErrNotFound) {
			return nil // disconnected meanwhile
		}
		if err != nil {
			return fmt.Errorf("integrations: rotate %s: %w", id, err)
		}
		rec, err := decode(tenant, r)
		if err != nil {
			return err
		}
		stale, err := s.keys.NeedsRotation(rec.Sealed)
		if err != nil {
			return fmt.Errorf("integrations: rotate %s: %w", id, err)
		}
		if !stale {
			rot.Current++
			return nil
		}
		sealed, err := s.keys.Reseal(rec.Sealed, tenant, id)
		if err != nil {
			return fmt.Errorf("integrations: rotate %s: %w", id, err)
		}
		if rec.KeyID, err = secrets.KeyID(sealed); err != nil {
			return fmt.Errorf("integrations: rotate %s: %w", id, err)
		}
		rec.Sealed = sealed
		val, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("integrations: %w", err)
		}
		_, err = s.records.PutRecord(ctx, tenant, KindConnection, id, val, r.Version)
		if errors.Is(err, persistence.ErrConflict) {
			rot.Retried++
			continue
		}
		if err != nil {
			return fmt.Errorf("integrations: rotate %s: %w", id, err)
		}
		rot.Resealed++
		return nil
	}
	return fmt.Errorf("integrations: rotate %s: %w", id, persistence.ErrConflict)
}

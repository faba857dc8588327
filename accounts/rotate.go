package accounts

import (
	"context"
	"errors"
	"fmt"
)

// resealer is what key rotation needs from the keyring beyond Seal and
// Open (*secrets.Keyring has it).
type resealer interface {
	NeedsRotation(blob []byte) (bool, error)
	Reseal(blob []byte, tenantID, recordID string) ([]byte, error)
}

var errUnchanged = errors.New("unchanged")

// RotateKeys re-seals every account's TOTP secret of tenant, enrolled and
// pending, under the keyring's active key, each with a compare-and-swap on
// its account record so that a concurrent sign-in or enrolment is re-read,
// never overwritten. It returns how many secrets it re-sealed. Sign-in
// challenges (sealed for at most ChallengeTTL) are not rotated: keep the old
// key for that long after rotating.
func (s *Service) RotateKeys(ctx context.Context, tenant string) (int, error) {
	rs, ok := s.cfg.Secrets.(resealer)
	if !ok {
		return 0, errors.New("accounts: the keyring cannot re-seal secrets")
	}
	recs, err := s.records.ListRecords(ctx, tenant, kindAccount, "", "", 0)
	if err != nil {
		return 0, fmt.Errorf("list accounts: %w", err)
	}
	total := 0
	for _, r := range recs {
		n := 0
		_, err := update(ctx, s, tenant, kindAccount, r.Key, func(a *accountRecord) error {
			n = 0
			for _, f := range []struct {
				blob *[]byte
				id   string
			}{{&a.TOTP, a.totpRecordID()}, {&a.TOTPPending, a.pendingRecordID()}} {
				if len(*f.blob) == 0 {
					continue
				}
				need, err := rs.NeedsRotation(*f.blob)
				if err != nil {
					return err
				}
				if !need {
					continue
				}
				nb, err := rs.Reseal(*f.blob, tenant, f.id)
				if err != nil {
					return err
				}
				*f.blob = nb
				n++
			}
			if n == 0 {
				return errUnchanged
			}
			return nil
		})
		if err != nil && !errors.Is(err, errUnchanged) {
			return total, fmt.Errorf("rotate account %s: %w", r.Key, err)
		}
		if err == nil {
			total += n
		}
	}
	return total, nil
}

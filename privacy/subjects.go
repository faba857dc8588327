package privacy

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/slotd/slotd/persistence"
)

// A customer's pseudonym (engine.Customer.Subject) is a random id, not a
// function of their email: the journal, snapshots and backups keep it, and
// after an erasure nothing may link it back to the person. The link lives
// only in the index, a record keyed by HMAC-SHA256(tenant salt, normalized
// email) and holding the pseudonym, which erasure deletes. The salt keeps
// the index keys from being a plain hash of the email (testable against a
// list of addresses); it is random per tenant and stored sealed by the
// master keyring, so a copy of the records alone cannot compute index keys.

const (
	saltKey    = "salt"
	saltRecord = "subject-salt" // record id the salt is sealed for
	saltSize   = 32
)

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newSubject returns a fresh pseudonym: "s-" and 128 random bits, a valid
// engine id.
func newSubject() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new subject: %w", err)
	}
	return "s-" + b32.EncodeToString(b[:]), nil
}

// NormalizeEmail is the form of an email address that identifies a
// customer: trimmed and lower-cased, so that "Alice@Example.com " and
// "alice@example.com" are one person.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// salt returns the tenant's index salt, creating it on first use.
func (c *Codec) salt(ctx context.Context, tenant string) ([]byte, error) {
	if s, ok := c.salts.Get(tenant); ok {
		return s, nil
	}
	for range 3 {
		rec, err := c.records.GetRecord(ctx, tenant, KindSubjectSalt, saltKey)
		if err == nil {
			s, err := c.ring.Open(rec.Value, tenant, saltRecord)
			if err != nil {
				return nil, fmt.Errorf("open subject salt: %w", err)
			}
			if len(s) != saltSize {
				return nil, fmt.Errorf("open subject salt: %d bytes, want %d", len(s), saltSize)
			}
			c.salts.Add(tenant, s)
			return s, nil
		}
		if !errors.Is(err, persistence.ErrNotFound) {
			return nil, fmt.Errorf("get subject salt: %w", err)
		}
		s := make([]byte, saltSize)
		if _, err := rand.Read(s); err != nil {
			return nil, fmt.Errorf("new subject salt: %w", err)
		}
		sealed, err := c.ring.Seal(tenant, saltRecord, s)
		if err != nil {
			return nil, fmt.Errorf("seal subject salt: %w", err)
		}
		_, err = c.records.PutRecord(ctx, tenant, KindSubjectSalt, saltKey, sealed, 0)
		if err == nil {
			c.salts.Add(tenant, s)
			return s, nil
		}
		if !errors.Is(err, persistence.ErrConflict) {
			return nil, fmt.Errorf("put subject salt: %w", err)
		}
		// Another writer created it first: read theirs.
	}
	return nil, fmt.Errorf("subject salt of %s: %w", tenant, persistence.ErrConflict)
}

// indexKey is the index record key of a normalized email.
func (c *Codec) indexKey(ctx context.Context, tenant, email string) (string, error) {
	s, err := c.salt(ctx, tenant)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, s)
	m.Write([]byte("slotd/privacy/v1/email\x00"))
	m.Write([]byte(NormalizeEmail(email)))
	return hex.EncodeToString(m.Sum(nil)), nil
}

// Subject returns the pseudonym of the customer with this email in tenant,
// if they have one (have booked, and have not been erased since).
func (c *Codec) Subject(ctx context.Context, tenant, email string) (subject string, ok bool, err error) {
	key, err := c.indexKey(ctx, tenant, email)
	if err != nil {
		return "", false, err
	}
	rec, err := c.records.GetRecord(ctx, tenant, KindSubjectIndex, key)
	if errors.Is(err, persistence.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("get subject index: %w", err)
	}
	return string(rec.Value), true, nil
}

// subjectFor returns the customer's pseudonym, giving them one if they
// have none, and whether it did. Two first bookings at once agree: the
// index record is created only if absent, and the loser reads the
// winner's. Given batch (c.batch after DeferToJournal), a new pseudonym's
// index entry and key are written together in one deferred write, and the
// new key is also handed to the seal of the booking (c.minted), from before
// it is written, so that a Forget of the subject once it is written drops
// it too. Without batch only the index entry is written (synced) and the
// key is the caller's business.
func (c *Codec) subjectFor(ctx context.Context, batch persistence.DeferredRecordPutter, tenant, email string) (subject string, created bool, err error) {
	key, err := c.indexKey(ctx, tenant, email)
	if err != nil {
		return "", false, err
	}
	for range 3 {
		rec, err := c.records.GetRecord(ctx, tenant, KindSubjectIndex, key)
		if err == nil {
			// A key this codec made for the pseudonym, left over from a
			// booking refused after preparing, is not this booking's to
			// seal with: it reads the key the store has (or its tombstone).
			c.minted.Remove([2]string{tenant, string(rec.Value)})
			return string(rec.Value), false, nil
		}
		if !errors.Is(err, persistence.ErrNotFound) {
			return "", false, fmt.Errorf("get subject index: %w", err)
		}
		subject, err := newSubject()
		if err != nil {
			return "", false, err
		}
		if batch != nil {
			fresh, werr := c.keys.NewKey(tenant, subject)
			if werr != nil {
				return "", false, fmt.Errorf("customer key: %w", werr)
			}
			// The pseudonym is 128 random bits: no key can exist
			// under it, and the store need not read to make sure.
			minted := [2]string{tenant, subject}
			c.addMinted(tenant, subject, fresh)
			_, err = batch.PutRecordsDeferred(ctx, tenant, []persistence.RecordPut{
				{Kind: KindSubjectIndex, Key: key, Value: []byte(subject)},
				{Kind: KindSubjectKey, Key: subject, Value: fresh.Wrapped, Unique: true},
			})
			if err == nil {
				return subject, true, nil
			}
			c.minted.Remove(minted)
		} else if _, err = c.records.PutRecord(ctx, tenant, KindSubjectIndex, key, []byte(subject), 0); err == nil {
			return subject, true, nil
		}
		if !errors.Is(err, persistence.ErrConflict) {
			return "", false, fmt.Errorf("put subject index: %w", err)
		}
	}
	return "", false, fmt.Errorf("subject index: %w", persistence.ErrConflict)
}

// unlink deletes the index entry of email if it still names subject, so
// that nothing stored links the email to the pseudonym any more.
func (c *Codec) unlink(ctx context.Context, tenant, email, subject string) error {
	key, err := c.indexKey(ctx, tenant, email)
	if err != nil {
		return err
	}
	rec, err := c.records.GetRecord(ctx, tenant, KindSubjectIndex, key)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get subject index: %w", err)
	}
	if string(rec.Value) != subject {
		return nil
	}
	err = c.records.DeleteRecord(ctx, tenant, KindSubjectIndex, key, rec.Version)
	if err != nil && !errors.Is(err, persistence.ErrConflict) {
		return fmt.Errorf("delete subject index: %w", err)
	}
	return nil
}

// RotateKeys re-wraps every subject key of tenant, and re-seals its index
// salt, under the keyring's active master key; it returns how many it
// changed. `slotd keys rotate` runs it for every tenant before the old
// master key is removed from the keyring.
func (c *Codec) RotateKeys(ctx context.Context, tenant string) (int, error) {
	n := 0
	after := ""
	for {
		recs, err := c.records.ListRecords(ctx, tenant, KindSubjectKey, "", after, 500)
		if err != nil {
			return n, fmt.Errorf("list subject keys: %w", err)
		}
		for _, r := range recs {
			ok, err := c.keys.Rewrap(ctx, tenant, r.Key)
			if err != nil {
				return n, err
			}
			if ok {
				n++
			}
		}
		if len(recs) < 500 {
			break
		}
		after = recs[len(recs)-1].Key
	}
	rec, err := c.records.GetRecord(ctx, tenant, KindSubjectSalt, saltKey)
	if errors.Is(err, persistence.ErrNotFound) {
		return n, nil
	}
	if err != nil {
		return n, fmt.Errorf("get subject salt: %w", err)
	}
	if rotate, err := c.ring.NeedsRotation(rec.Value); err != nil || !rotate {
		return n, err
	}
	resealed, err := c.ring.Reseal(rec.Value, tenant, saltRecord)
	if err != nil {
		return n, fmt.Errorf("reseal subject salt: %w", err)
	}
	if _, err := c.records.PutRecord(ctx, tenant, KindSubjectSalt, saltKey, resealed, rec.Version); err != nil {
		return n, fmt.Errorf("put subject salt: %w", err)
	}
	return n + 1, nil
}

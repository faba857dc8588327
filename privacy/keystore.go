package privacy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/security/secrets"
)

// Record kinds this package keeps in its persistence.RecordStore, per
// tenant. All three are what erasure deletes or depends on, so they belong
// in a store whose backups expire within the erasure deadline (see the
// package documentation); none is ever written to the event journal.
const (
	// KindSubjectKey: a data subject's key, wrapped by the master keyring
	// (secrets.SubjectKeys), keyed by the subject's pseudonym.
	KindSubjectKey = "subject_key"
	// KindSubjectIndex: the pseudonym of a customer, keyed by a keyed hash
	// of their normalized email (never the email itself).
	KindSubjectIndex = "subject_index"
	// KindSubjectSalt: the tenant's key for those hashes, sealed by the
	// master keyring.
	KindSubjectSalt = "subject_salt"
)

// KeyStore is a secrets.KeyStore over a persistence.RecordStore: wrapped
// subject keys are records of kind KindSubjectKey, and the store's version
// compare-and-swap gives Put its create-only rule and Replace its CAS.
// A forgotten key is overwritten by its tombstone (secrets.SubjectKeys.
// Forget); whether the old bytes are gone from the disk and from backups is
// the store's and the operator's business (package doc).
type KeyStore struct {
	records persistence.RecordStore
}

var _ secrets.KeyStore = (*KeyStore)(nil)

// NewKeyStore returns a KeyStore keeping keys in records.
func NewKeyStore(records persistence.RecordStore) *KeyStore { return &KeyStore{records: records} }

// Get implements secrets.KeyStore.
func (k *KeyStore) Get(ctx context.Context, tenant, subject string) ([]byte, bool, error) {
	rec, err := k.records.GetRecord(ctx, tenant, KindSubjectKey, subject)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get subject key: %w", err)
	}
	return rec.Value, true, nil
}

// Put implements secrets.KeyStore: it creates the record only if there is
// none, and returns what is stored after the call.
func (k *KeyStore) Put(ctx context.Context, tenant, subject string, wrapped []byte) ([]byte, error) {
	for range 3 {
		_, err := k.records.PutRecord(ctx, tenant, KindSubjectKey, subject, wrapped, 0)
		if err == nil {
			return bytes.Clone(wrapped), nil
		}
		if !errors.Is(err, persistence.ErrConflict) {
			return nil, fmt.Errorf("put subject key: %w", err)
		}
		rec, err := k.records.GetRecord(ctx, tenant, KindSubjectKey, subject)
		if err == nil {
			return rec.Value, nil
		}
		if !errors.Is(err, persistence.ErrNotFound) {
			return nil, fmt.Errorf("put subject key: %w", err)
		}
		// The record vanished in between (its tenant's records deleted):
		// try to create it again.
	}
	return nil, fmt.Errorf("put subject key: %w", persistence.ErrConflict)
}

// Replace implements secrets.KeyStore.
func (k *KeyStore) Replace(ctx context.Context, tenant, subject string, old, new []byte) (bool, error) {
	rec, err := k.records.GetRecord(ctx, tenant, KindSubjectKey, subject)
	if errors.Is(err, persistence.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("replace subject key: %w", err)
	}
	if !bytes.Equal(rec.Value, old) {
		return false, nil
	}
	_, err = k.records.PutRecord(ctx, tenant, KindSubjectKey, subject, new, rec.Version)
	if errors.Is(err, persistence.ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("replace subject key: %w", err)
	}
	return true, nil
}

// memoKeys remembers what a KeyStore answered for the length of one codec
// call (a group commit, a journal tail, a snapshot), so that a subject's
// wrapped key is read once per call rather than once per booking. It lives
// no longer than the call: a key forgotten meanwhile by another instance is
// seen by the next call, as if the call had run just before the Forget.
type memoKeys struct {
	base secrets.KeyStore

	mu       sync.Mutex // guards the fields below
	seen     map[[2]string][]byte
	complete map[string]bool // tenants whose every key is in seen: a miss is an absent key
}

func newMemoKeys(base secrets.KeyStore) *memoKeys {
	return &memoKeys{base: base, seen: map[[2]string][]byte{}, complete: map[string]bool{}}
}

// listPage is the page size loadAll reads keys in.
const listPage = 1000

// loadAll reads every subject key of tenant from records, a page at a
// time: cheaper than one read per subject when a call needs many (a
// snapshot, a long journal tail).
func (m *memoKeys) loadAll(ctx context.Context, records persistence.RecordStore, tenant string) error {
	all := map[string][]byte{}
	after := ""
	for {
		recs, err := records.ListRecords(ctx, tenant, KindSubjectKey, "", after, listPage)
		if err != nil {
			return fmt.Errorf("list subject keys: %w", err)
		}
		for _, r := range recs {
			all[r.Key] = r.Value
		}
		if len(recs) < listPage {
			break
		}
		after = recs[len(recs)-1].Key
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for subject, w := range all {
		m.seen[[2]string{tenant, subject}] = w
	}
	m.complete[tenant] = true
	return nil
}

// prefetch reads the keys of subjects not seen yet, a few at a time, so
// that a group commit of many customers does not wait for their reads one
// after another. Errors are left for the Get that needs the key.
func (m *memoKeys) prefetch(ctx context.Context, tenant string, subjects []string) {
	const parallel = 8
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, s := range subjects {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, _, _ = m.Get(ctx, tenant, s)
		}()
	}
	wg.Wait()
}

func (m *memoKeys) Get(ctx context.Context, tenant, subject string) ([]byte, bool, error) {
	m.mu.Lock()
	w, ok := m.seen[[2]string{tenant, subject}]
	complete := m.complete[tenant]
	m.mu.Unlock()
	if ok {
		return w, w != nil, nil
	}
	if complete {
		return nil, false, nil
	}
	w, found, err := m.base.Get(ctx, tenant, subject)
	if err != nil {
		return nil, false, err
	}
	if !found {
		w = nil
	}
	m.remember(tenant, subject, w)
	return w, found, nil
}

func (m *memoKeys) Put(ctx context.Context, tenant, subject string, wrapped []byte) ([]byte, error) {
	stored, err := m.base.Put(ctx, tenant, subject, wrapped)
	if err != nil {
		m.forget(tenant, subject)
		return nil, err
	}
	m.remember(tenant, subject, stored)
	return stored, nil
}

func (m *memoKeys) Replace(ctx context.Context, tenant, subject string, old, new []byte) (bool, error) {
	m.forget(tenant, subject)
	return m.base.Replace(ctx, tenant, subject, old, new)
}

func (m *memoKeys) remember(tenant, subject string, w []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen[[2]string{tenant, subject}] = w
}

func (m *memoKeys) forget(tenant, subject string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.seen, [2]string{tenant, subject})
	m.complete[tenant] = false
}

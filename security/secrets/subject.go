package secrets

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"sync"
)

// A KeyStore keeps data subjects' keys, each wrapped (sealed) by the master keyring, by tenant
// and subject. It stands in for a table of the persistence layer. It must be a store whose
// overwritten and deleted values are truly gone: Forget overwrites a subject's key with a
// tombstone, and that is what erases the subject's data everywhere, so wrapped keys belong in a
// table whose rows are not kept in the event journal, and whose backups expire within the
// erasure deadline (for example 30 days). A tombstone holds no key and nothing personal; it
// stays, so that no key can ever be made for the subject again.
//
// Implementations must be safe for concurrent use.
type KeyStore interface {
	// Get returns the wrapped key of (tenant, subject); ok is false when none is stored.
	Get(ctx context.Context, tenant, subject string) (wrapped []byte, ok bool, err error)
	// Put stores wrapped for (tenant, subject) only if no key is stored for them, and returns
	// the wrapped key stored after the call: the caller's, or the one stored earlier. This
	// create-only rule keeps two concurrent first seals for one subject from each using a key of
	// its own (one of which would then be lost).
	Put(ctx context.Context, tenant, subject string, wrapped []byte) (stored []byte, err error)
	// Replace stores new in place of old only if old is still the stored value, and reports
	// whether it did (compare-and-swap).
	Replace(ctx context.Context, tenant, subject string, old, new []byte) (bool, error)
	// There is no Delete: a subject's key is only ever replaced by its tombstone (Forget),
	// which nothing removes, so that no key can be made for a forgotten subject again. Its
	// records go when the tenant's do.
}

// SubjectKeys encrypts a data subject's personal data (an end customer's name, email, phone,
// notes) under a random 32-byte key of that subject's own, wrapped by the master keyring and
// kept in a KeyStore. Forget replaces the key with a tombstone: from then on every ciphertext
// for the subject, in the journal, in snapshots, in backups, cannot be opened by anyone, master
// keys or not, and nothing can be sealed for the subject again. This is GDPR Art. 17 erasure
// for data that cannot be rewritten (crypto-shredding). The tombstone is what makes it final
// with several writers: an instance whose state still holds the subject in the clear (it has
// not read the erasure yet) cannot seal that copy under a new key, so the erased data cannot
// come back readable; a customer who returns is given a new subject (package privacy does).
//
// It is safe for concurrent use. It caches no unwrapped key, so Forget takes effect at once.
type SubjectKeys struct {
	ring  *Keyring
	store KeyStore
}

// NewSubjectKeys returns SubjectKeys wrapping subject keys with ring and keeping them in store.
func NewSubjectKeys(ring *Keyring, store KeyStore) *SubjectKeys {
	return &SubjectKeys{ring: ring, store: store}
}

// Create gives a subject that has no key yet one of its own, without first reading the store:
// for a pseudonym just minted, which cannot have a key. If a key is stored already, it is kept
// (KeyStore.Put is create-only), so Create is safe to call for any subject; for a forgotten
// subject it fails with ErrShredded.
func (s *SubjectKeys) Create(ctx context.Context, tenant, subject string) error {
	if err := checkIDs(tenant, subject, "create"); err != nil {
		return err
	}
	stored, err := s.newKey(ctx, tenant, subject)
	if err == nil && isTombstone(stored) {
		err = ErrShredded
	}
	return err
}

// tombstone is what a KeyStore holds for a forgotten subject in place of a wrapped key (which
// is never this short). See SubjectKeys.
var tombstone = []byte("forgotten")

func isTombstone(stored []byte) bool { return bytes.Equal(stored, tombstone) }

// IsTombstone reports whether a value a KeyStore holds is a forgotten subject's tombstone
// rather than a wrapped key, for code that reads a KeyStore's records itself.
func IsTombstone(stored []byte) bool { return isTombstone(stored) }

// NewWrapped generates a key for (tenant, subject) and returns it wrapped, as the KeyStore
// keeps it, without storing it: for a caller that stores it together with other records
// (package privacy writes a new customer's index entry and key in one write). Stored under the
// subject in the KeyStore, it is the subject's key.
func (s *SubjectKeys) NewWrapped(tenant, subject string) ([]byte, error) {
	if err := checkIDs(tenant, subject, "new"); err != nil {
		return nil, err
	}
	fresh := make([]byte, subjectKID+KeySize)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("secrets: generate subject key: %w", err)
	}
	return s.ring.seal(infoSubjectKey, tenant, subject, fresh)
}

// newKey generates a key for (tenant, subject), wraps it and stores it create-only, returning
// the wrapped key stored after the call.
func (s *SubjectKeys) newKey(ctx context.Context, tenant, subject string) ([]byte, error) {
	w, err := s.NewWrapped(tenant, subject)
	if err != nil {
		return nil, err
	}
	stored, err := s.store.Put(ctx, tenant, subject, w)
	if err != nil {
		return nil, fmt.Errorf("secrets: put subject key: %w", err)
	}
	return stored, nil
}

// SealFor encrypts plaintext for the record recordID about subject of tenant, creating the
// subject's key if it has none yet. For a forgotten subject it fails with ErrShredded, creating
// nothing: what was erased stays erased, even when the caller's copy of it is stale.
func (s *SubjectKeys) SealFor(ctx context.Context, tenant, subject, recordID string, plaintext []byte) ([]byte, error) {
	return s.sealFor(ctx, tenant, subject, recordID, plaintext, true)
}

// SealForExisting is SealFor for a subject that must have a key already: it
// fails with ErrShredded, creating nothing, when the subject has none (never
// had one, or was forgotten). For copies of data sealed before, such as a
// snapshot of bookings already in the journal.
func (s *SubjectKeys) SealForExisting(ctx context.Context, tenant, subject, recordID string, plaintext []byte) ([]byte, error) {
	return s.sealFor(ctx, tenant, subject, recordID, plaintext, false)
}

func (s *SubjectKeys) sealFor(ctx context.Context, tenant, subject, recordID string, plaintext []byte, create bool) ([]byte, error) {
	if err := checkIDs(tenant, subject, recordID); err != nil {
		return nil, err
	}
	id, key, err := s.key(ctx, tenant, subject, create)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 1+subjectKID+saltSize+nonceSize+len(plaintext)+tagSize)
	out = append(out, versionSubject)
	out = append(out, id...)
	hdr := len(out) + saltSize
	out = out[:hdr+nonceSize]
	if _, err := rand.Read(out[1+subjectKID:]); err != nil {
		return nil, fmt.Errorf("secrets: read salt and nonce: %w", err)
	}
	aead, err := deriveAEAD(key, out[hdr-saltSize:hdr], infoSubjectData)
	if err != nil {
		return nil, err
	}
	return aead.Seal(out, out[hdr:], plaintext, aad(out[:hdr], tenant, subject, recordID)), nil
}

// OpenFor decrypts a blob made by SealFor for the same tenant, subject and record. It fails
// with ErrShredded when the subject's key has been forgotten (or the blob was sealed under a key
// since forgotten), and otherwise like Keyring.Open.
func (s *SubjectKeys) OpenFor(ctx context.Context, tenant, subject, recordID string, blob []byte) ([]byte, error) {
	if err := checkIDs(tenant, subject, recordID); err != nil {
		return nil, err
	}
	hdr := 1 + subjectKID + saltSize
	if len(blob) < hdr+nonceSize+tagSize {
		return nil, fmt.Errorf("%w: too short", ErrMalformed)
	}
	if blob[0] != versionSubject {
		return nil, fmt.Errorf("%w: not a data subject's ciphertext", ErrMalformed)
	}
	id, key, err := s.key(ctx, tenant, subject, false)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(id, blob[1:1+subjectKID]) {
		// Sealed under an earlier key of this subject, forgotten since.
		return nil, ErrShredded
	}
	aead, err := deriveAEAD(key, blob[hdr-saltSize:hdr], infoSubjectData)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, blob[hdr:hdr+nonceSize], blob[hdr+nonceSize:], aad(blob[:hdr], tenant, subject, recordID))
	if err != nil {
		return nil, ErrAuthentication
	}
	return pt, nil
}

// Forget replaces the subject's key with a tombstone, making every ciphertext sealed for them
// unreadable and any later seal for them fail. Forgetting a subject that has no key (yet)
// leaves the tombstone all the same; forgetting one twice is no error.
func (s *SubjectKeys) Forget(ctx context.Context, tenant, subject string) error {
	if err := checkIDs(tenant, subject); err != nil {
		return err
	}
	// Each round either finds the tombstone or puts it, unless the key is created or replaced
	// concurrently (a first seal, a rotation), which the next round sees.
	for range forgetRounds {
		w, ok, err := s.store.Get(ctx, tenant, subject)
		if err != nil {
			return fmt.Errorf("secrets: forget subject key: %w", err)
		}
		switch {
		case ok && isTombstone(w):
			return nil
		case !ok:
			stored, err := s.store.Put(ctx, tenant, subject, tombstone)
			if err != nil {
				return fmt.Errorf("secrets: forget subject key: %w", err)
			}
			if isTombstone(stored) {
				return nil
			}
		default:
			done, err := s.store.Replace(ctx, tenant, subject, w, tombstone)
			if err != nil {
				return fmt.Errorf("secrets: forget subject key: %w", err)
			}
			if done {
				return nil
			}
		}
	}
	return fmt.Errorf("secrets: forget subject key: the key changed %d times while it was being forgotten; try again", forgetRounds)
}

// forgetRounds bounds Forget's attempts against concurrent writes of the same key.
const forgetRounds = 8

// Rewrap re-wraps the subject's key under the active master key if it is wrapped under another
// one, and reports whether it did. `slotd keys rotate` runs it for every subject before the old
// master key is removed. A concurrent Forget wins: a forgotten key is never written back.
func (s *SubjectKeys) Rewrap(ctx context.Context, tenant, subject string) (bool, error) {
	wrapped, ok, err := s.store.Get(ctx, tenant, subject)
	if err != nil || !ok || isTombstone(wrapped) {
		return false, err
	}
	if rotate, err := s.ring.NeedsRotation(wrapped); err != nil || !rotate {
		return false, err
	}
	pt, err := s.ring.open(infoSubjectKey, wrapped, tenant, subject)
	if err != nil {
		return false, fmt.Errorf("secrets: unwrap subject key: %w", err)
	}
	rewrapped, err := s.ring.seal(infoSubjectKey, tenant, subject, pt)
	if err != nil {
		return false, err
	}
	return s.store.Replace(ctx, tenant, subject, wrapped, rewrapped)
}

// key returns the subject's key id and key, creating them if create is set and there are none.
func (s *SubjectKeys) key(ctx context.Context, tenant, subject string, create bool) (id, key []byte, err error) {
	wrapped, ok, err := s.store.Get(ctx, tenant, subject)
	if err != nil {
		return nil, nil, fmt.Errorf("secrets: get subject key: %w", err)
	}
	if !ok {
		if !create {
			return nil, nil, ErrShredded
		}
		if wrapped, err = s.newKey(ctx, tenant, subject); err != nil {
			return nil, nil, err
		}
	}
	if isTombstone(wrapped) {
		return nil, nil, ErrShredded
	}
	pt, err := s.ring.open(infoSubjectKey, wrapped, tenant, subject)
	if err != nil {
		return nil, nil, fmt.Errorf("secrets: unwrap subject key: %w", err)
	}
	if len(pt) != subjectKID+KeySize {
		return nil, nil, fmt.Errorf("secrets: unwrap subject key: %w", ErrMalformed)
	}
	return pt[:subjectKID], pt[subjectKID:], nil
}

// MemoryKeyStore is a KeyStore in memory, for tests and for wiring that has no database.
type MemoryKeyStore struct {
	mu   sync.Mutex // guards keys
	keys map[[2]string][]byte
}

// NewMemoryKeyStore returns an empty MemoryKeyStore.
func NewMemoryKeyStore() *MemoryKeyStore {
	return &MemoryKeyStore{keys: make(map[[2]string][]byte)}
}

// Get implements KeyStore.
func (m *MemoryKeyStore) Get(_ context.Context, tenant, subject string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.keys[[2]string{tenant, subject}]
	return bytes.Clone(w), ok, nil
}

// Put implements KeyStore.
func (m *MemoryKeyStore) Put(_ context.Context, tenant, subject string, wrapped []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{tenant, subject}
	if w, ok := m.keys[k]; ok {
		return bytes.Clone(w), nil
	}
	m.keys[k] = bytes.Clone(wrapped)
	return bytes.Clone(wrapped), nil
}

// Replace implements KeyStore.
func (m *MemoryKeyStore) Replace(_ context.Context, tenant, subject string, old, new []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{tenant, subject}
	if w, ok := m.keys[k]; !ok || !bytes.Equal(w, old) {
		return false, nil
	}
	m.keys[k] = bytes.Clone(new)
	return true, nil
}

// Len returns the number of keys stored, tombstones of forgotten subjects not counted.
func (m *MemoryKeyStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, w := range m.keys {
		if !isTombstone(w) {
			n++
		}
	}
	return n
}

package privacy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/security/secrets"
)

// Codec is the actors.Codec that keeps customers' personal data sealed at
// rest. Before a booking reaches the journal or a snapshot, its customer's
// name, email and phone are sealed with secrets.SubjectKeys under the key
// of the customer's pseudonym (engine.Customer.Subject), bound to the
// tenant, the pseudonym and the booking id, and only the pseudonym and the
// ciphertext (Customer.Sealed) are stored. Decoding opens them again; once
// the subject's key is forgotten (Forget, by Service.Erase) the customer
// decodes as {Subject, Erased: true}, from the live journal, from old
// snapshots and from any backup alike.
//
// As an actors.CommandPreparer it gives each Book's customer their
// pseudonym, from the email index, before the command is applied
// (overwriting whatever Subject the caller set).
//
// Journals written before the codec (plaintext customers without a
// pseudonym) still load: each such customer is given the pseudonym of
// their email on the way in, so exports and erasure find them too. Their
// old journal entries stay in plaintext on disk, though: only what is
// written through the codec is sealed (see the package documentation).
//
// Codec is safe for concurrent use.
type Codec struct {
	ring    *secrets.Keyring
	records persistence.RecordStore
	store   *KeyStore
	keys    *secrets.SubjectKeys
	salts   *lru.Cache[string, []byte]       // tenant → index salt; salts never change
	minted  *lru.Cache[[2]string, mintedKey] // (tenant, subject) → key just created by PrepareCommand

	batch persistence.DeferredRecordPutter // after DeferToJournal: a new customer's records in one write
}

var (
	_ actors.Codec           = (*Codec)(nil)
	_ actors.CommandPreparer = (*Codec)(nil)
)

// saltCacheSize bounds the tenants whose index salt is kept in memory.
const saltCacheSize = 16384

// mintedCacheSize bounds the keys PrepareCommand hands to the seal of the
// same booking, unwrapped (secrets.FreshKey), so that the seal neither
// reads nor unwraps them: a key derivation and ~2.5 KB of garbage fewer
// per new customer's booking. They live from the preparing to the seal,
// milliseconds, next to the customer's details in the tenant's state; one
// is left over only when its booking is refused after preparing (a racer
// in a rush): it is used by no other booking (subjectFor drops it when the
// customer's pseudonym is found rather than made), it is dropped by Forget,
// and once older than mintedTTL it is ignored and dropped at the next new
// customer. The seal of a key no longer there reads it from the store.
const mintedCacheSize = 4096

// mintedTTL bounds how long a key PrepareCommand made waits for its seal.
const mintedTTL = 30 * time.Second

// mintedKey is a key PrepareCommand made, and when.
type mintedKey struct {
	key *secrets.FreshKey
	at  time.Time
}

// takeMinted returns the key PrepareCommand made for subject, if it is
// there and recent, and forgets it: it seals one booking's events.
func (c *Codec) takeMinted(tenant, subject string) (*secrets.FreshKey, bool) {
	k, ok := c.minted.Peek([2]string{tenant, subject})
	if !ok {
		return nil, false
	}
	c.minted.Remove([2]string{tenant, subject})
	return k.key, time.Since(k.at) < mintedTTL
}

// addMinted hands key, just made for subject, to the seal of its booking,
// dropping keys left over for longer than mintedTTL.
func (c *Codec) addMinted(tenant, subject string, key *secrets.FreshKey) {
	for {
		_, old, ok := c.minted.GetOldest()
		if !ok || time.Since(old.at) < mintedTTL {
			break
		}
		c.minted.RemoveOldest()
	}
	c.minted.Add([2]string{tenant, subject}, mintedKey{key: key, at: time.Now()})
}

// NewCodec returns a Codec that wraps subject keys with ring and keeps
// them, the email index and the index salts in records. records should be
// a store whose backups expire within the erasure deadline: it may be the
// main store, or better one of its own (package documentation).
func NewCodec(ring *secrets.Keyring, records persistence.RecordStore) *Codec {
	salts, _ := lru.New[string, []byte](saltCacheSize) // fails only for a size <= 0
	minted, _ := lru.New[[2]string, mintedKey](mintedCacheSize)
	store := NewKeyStore(records)
	keys := secrets.NewSubjectKeys(ring, store)
	return &Codec{ring: ring, records: records, store: store, keys: keys, salts: salts, minted: minted}
}

// DeferToJournal tells the codec that journal, the store the tenants'
// events are appended to, is also its records store. If that store
// implements persistence.DeferredRecordPutter (the embedded Pebble store:
// one write-ahead log, written in order), PrepareCommand then writes a new
// customer's index entry and key without an fsync of their own: the
// booking's journal append, which comes after them and is acknowledged
// only once synced, makes them durable with it. A booking refused in
// between may leave them unsynced, and a crash may then lose them, which
// loses nothing: no event refers to them. It reports whether writes are
// deferred; with any other store nothing changes. Call it before use.
func (c *Codec) DeferToJournal(journal persistence.Store) bool {
	d, ok := c.records.(persistence.DeferredRecordPutter)
	if !ok || !sameStore(c.records, journal) {
		return false
	}
	c.batch = d
	return true
}

// sameStore reports whether a and b are the same store value.
func sameStore(a, b any) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	return ta != nil && ta == tb && ta.Comparable() && a == b
}

// Forget replaces the subject's key with a tombstone: every ciphertext
// sealed for them, in journals, snapshots and backups, can never be opened
// again, and nothing can be sealed for them any more.
func (c *Codec) Forget(ctx context.Context, tenant, subject string) error {
	c.minted.Remove([2]string{tenant, subject})
	return c.keys.Forget(ctx, tenant, subject)
}

// batchKeys returns SubjectKeys that read each subject's wrapped key at
// most once, for one codec call, and its memo.
func (c *Codec) batchKeys() (*secrets.SubjectKeys, *memoKeys) {
	m := newMemoKeys(c.store)
	return secrets.NewSubjectKeys(c.ring, m), m
}

// listAbove is how many subjects one call must need before it reads all
// of the tenant's keys in pages rather than each of theirs.
const listAbove = 32

// warm reads the keys of subjects into m before they are needed: in pages
// when there are many, otherwise a few at a time in parallel. A codec call
// runs on the tenant's actor, which waits for it: this keeps a commit of
// many new customers, or a long journal tail, from paying one store round
// trip per customer in turn.
func (c *Codec) warm(ctx context.Context, m *memoKeys, tenant string, subjects map[string]bool) error {
	switch {
	case len(subjects) > listAbove:
		return m.loadAll(ctx, c.records, tenant)
	case len(subjects) > 1:
		list := make([]string, 0, len(subjects))
		for s := range subjects {
			list = append(list, s)
		}
		m.prefetch(ctx, tenant, list)
	}
	return nil
}

// Prepares implements actors.CommandPreparer: a Book with an email is
// prepared (its customer's pseudonym and key are looked up or made).
func (c *Codec) Prepares(cmd engine.Command) bool {
	b, ok := cmd.(engine.Book)
	return ok && NormalizeEmail(b.Customer.Email) != ""
}

// PrepareCommand implements actors.CommandPreparer: a Book's customer gets
// the pseudonym of their email. A Book without an email is left for the
// engine to refuse.
func (c *Codec) PrepareCommand(ctx context.Context, tenant string, cmd engine.Command) (engine.Command, error) {
	if !c.Prepares(cmd) {
		return cmd, nil
	}
	b := cmd.(engine.Book)
	subject, created, err := c.subjectFor(ctx, c.batch, tenant, b.Customer.Email)
	if err != nil {
		return nil, fmt.Errorf("customer pseudonym: %w", err)
	}
	// A pseudonym minted just now gets its key here, on the caller's
	// goroutine: creating it is a durable write, which the actor would
	// otherwise make, one customer after another, inside its group commit
	// (after DeferToJournal subjectFor wrote it with the index entry,
	// and is handed to the actor's seal so that it need not read it back).
	// A returning customer's key is read by the actor when it seals the
	// booking, not here as well. If it is missing (a crash came between
	// the index entry and the key on a store without batches) the actor's
	// seal creates it; if it was forgotten (an erasure of the customer
	// racing this booking), the booking cannot be stored under it.
	if created && c.batch == nil {
		err := c.keys.Create(ctx, tenant, subject)
		if errors.Is(err, secrets.ErrShredded) {
			// Erased between this pseudonym's index entry and its key.
			return nil, engine.Errorf(engine.CodeConflict, "the customer's records were just erased; retry the booking")
		}
		if err != nil {
			return nil, fmt.Errorf("customer key: %w", err)
		}
	}
	b.Customer.Subject = subject
	return b, nil
}

// sealedCustomer is the plaintext sealed into Customer.Sealed.
type sealedCustomer struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	Phone string `json:"phone,omitempty"`
}

// recordID is the record a booking's customer is sealed for: a ciphertext
// moved onto another booking does not open.
func recordID(bookingID string) string { return "booking/" + bookingID }

// seal returns b's customer as stored: sealed, or already erased. Unless
// create, it seals only under a key the subject has, and fails with
// secrets.ErrShredded if there is none. Given fresh, the subject's key
// PrepareCommand just made, it seals under that without reading a key.
func (c *Codec) seal(ctx context.Context, sk *secrets.SubjectKeys, tenant string, b engine.Booking, create bool, fresh *secrets.FreshKey) (engine.Customer, error) {
	cu := b.Customer
	switch {
	case cu.Erased:
		return engine.Customer{Subject: cu.Subject, Erased: true}, nil
	case cu.Sealed != "":
		return engine.Customer{}, fmt.Errorf("booking %s: customer is sealed already", b.ID)
	case cu.Subject == "":
		// Fail closed: never write personal data that cannot be erased.
		return engine.Customer{}, fmt.Errorf("booking %s: customer has no pseudonym (commands must pass through Codec.PrepareCommand: set it as actors.Config.Codec)", b.ID)
	}
	pt, err := json.Marshal(sealedCustomer{Name: cu.Name, Email: cu.Email, Phone: cu.Phone})
	if err != nil {
		return engine.Customer{}, err
	}
	var blob []byte
	switch {
	case fresh != nil:
		blob, err = sk.SealWithFresh(fresh, tenant, cu.Subject, recordID(b.ID), pt)
	case create:
		blob, err = sk.SealFor(ctx, tenant, cu.Subject, recordID(b.ID), pt)
	default:
		blob, err = sk.SealForExisting(ctx, tenant, cu.Subject, recordID(b.ID), pt)
	}
	if err != nil {
		return engine.Customer{}, fmt.Errorf("booking %s: seal customer: %w", b.ID, err)
	}
	return engine.Customer{Subject: cu.Subject, Sealed: base64.StdEncoding.EncodeToString(blob)}, nil
}

// open returns b's customer as stored, opened: in the clear, or erased if
// the subject's key is gone. A legacy plaintext customer without a
// pseudonym is given the pseudonym of their email.
func (c *Codec) open(ctx context.Context, sk *secrets.SubjectKeys, tenant string, b engine.Booking) (engine.Customer, error) {
	cu := b.Customer
	switch {
	case cu.Erased:
		return engine.Customer{Subject: cu.Subject, Erased: true}, nil
	case cu.Sealed != "":
		blob, err := base64.StdEncoding.DecodeString(cu.Sealed)
		if err != nil {
			return engine.Customer{}, fmt.Errorf("booking %s: sealed customer is not base64", b.ID)
		}
		pt, err := sk.OpenFor(ctx, tenant, cu.Subject, recordID(b.ID), blob)
		if errors.Is(err, secrets.ErrShredded) {
			return engine.Customer{Subject: cu.Subject, Erased: true}, nil
		}
		if err != nil {
			return engine.Customer{}, fmt.Errorf("booking %s: open customer: %w", b.ID, err)
		}
		var sc sealedCustomer
		if err := json.Unmarshal(pt, &sc); err != nil {
			return engine.Customer{}, fmt.Errorf("booking %s: open customer: %w", b.ID, err)
		}
		return engine.Customer{Name: sc.Name, Email: sc.Email, Phone: sc.Phone, Subject: cu.Subject}, nil
	case cu.Subject == "" && NormalizeEmail(cu.Email) != "":
		subject, _, err := c.subjectFor(ctx, nil, tenant, cu.Email)
		if err != nil {
			return engine.Customer{}, fmt.Errorf("booking %s: customer pseudonym: %w", b.ID, err)
		}
		cu.Subject = subject
		return cu, nil
	}
	return cu, nil
}

// EncodeEvents implements actors.Codec: engine JSON with every booking's
// customer sealed. The events passed in are not changed.
func (c *Codec) EncodeEvents(ctx context.Context, tenant string, events []engine.Event) ([][]byte, error) {
	sk, m := c.batchKeys()
	subjects := map[string]bool{}
	var fresh map[string]*secrets.FreshKey
	for _, e := range events {
		if e.Booking != nil && e.Booking.Customer.Subject != "" && !e.Booking.Customer.Erased {
			s := e.Booking.Customer.Subject
			// A key PrepareCommand just made seals without being read
			// or unwrapped.
			if k, ok := c.takeMinted(tenant, s); ok {
				if fresh == nil {
					fresh = map[string]*secrets.FreshKey{}
				}
				fresh[s] = k
				continue
			}
			if fresh[s] == nil {
				subjects[s] = true
			}
		}
	}
	if err := c.warm(ctx, m, tenant, subjects); err != nil {
		return nil, err
	}
	out := make([][]byte, len(events))
	for i, e := range events {
		if e.Booking != nil {
			b := *e.Booking
			cu, err := c.seal(ctx, sk, tenant, b, true, fresh[b.Customer.Subject])
			if errors.Is(err, secrets.ErrShredded) {
				// The customer was erased by another writer this state
				// has not read yet: the actor reads it and decides again.
				return nil, &actors.EventError{Index: i, Err: fmt.Errorf("%w: %w", actors.ErrBehindJournal, err)}
			}
			if err != nil {
				return nil, err
			}
			b.Customer = cu
			e.Booking = &b
		}
		data, err := engine.EncodeEvent(e)
		if err != nil {
			return nil, fmt.Errorf("event %d (%s): %w", i, e.Type, err)
		}
		out[i] = data
	}
	return out, nil
}

// DecodeEvents implements actors.Codec.
func (c *Codec) DecodeEvents(ctx context.Context, tenant string, data [][]byte) ([]engine.Event, error) {
	sk, m := c.batchKeys()
	out := make([]engine.Event, len(data))
	subjects := map[string]bool{}
	for i, d := range data {
		e, err := engine.DecodeEvent(d)
		if err != nil {
			return nil, fmt.Errorf("entry %d of %d: %w", i+1, len(data), err)
		}
		if e.Booking != nil && e.Booking.Customer.Sealed != "" {
			subjects[e.Booking.Customer.Subject] = true
		}
		out[i] = e
	}
	if err := c.warm(ctx, m, tenant, subjects); err != nil {
		return nil, err
	}
	for i := range out {
		e := &out[i]
		if e.Booking != nil {
			cu, err := c.open(ctx, sk, tenant, *e.Booking)
			if err != nil {
				return nil, fmt.Errorf("entry %d of %d: %w", i+1, len(data), err)
			}
			e.Booking.Customer = cu
		}
	}
	return out, nil
}

// EncodeSnapshot implements actors.Codec: the engine's snapshot with every
// booking's customer sealed. Beside the actor (not inActor) it seals only
// under keys that exist: a customer whose subject has none (a customer of
// a journal older than this codec, or one erased since the copy, whose key
// was forgotten) fails it with actors.ErrSnapshotInActor, never a new key.
func (c *Codec) EncodeSnapshot(ctx context.Context, tenant string, snap *engine.Snapshot, inActor bool) ([]byte, error) {
	sk, m := c.batchKeys()
	subjects := map[string]bool{}
	for _, b := range snap.Bookings() {
		if b.Customer.Subject != "" && !b.Customer.Erased {
			subjects[b.Customer.Subject] = true
		}
	}
	if err := c.warm(ctx, m, tenant, subjects); err != nil {
		return nil, err
	}
	data, err := snap.Marshal(func(b engine.Booking) (engine.Customer, error) { return c.seal(ctx, sk, tenant, b, inActor, nil) })
	if !inActor && errors.Is(err, secrets.ErrShredded) {
		return nil, fmt.Errorf("%w: %w", actors.ErrSnapshotInActor, err)
	}
	return data, err
}

// DecodeSnapshot implements actors.Codec.
func (c *Codec) DecodeSnapshot(ctx context.Context, tenant string, data []byte) (*engine.State, error) {
	// A snapshot holds every booking: read all the tenant's keys at once.
	sk, m := c.batchKeys()
	if err := m.loadAll(ctx, c.records, tenant); err != nil {
		return nil, err
	}
	return engine.RestoreStateWith(tenant, data, func(b engine.Booking) (engine.Customer, error) { return c.open(ctx, sk, tenant, b) })
}

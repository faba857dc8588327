// Package persistence owns slotd's durable state: one append-only event
// journal per tenant with a sequence number, periodic snapshots, and a small
// directory of lookup data (tenant list, booking links). Backends live in
// subpackages and all pass the conformance suite in persistence/storetest.
//
// The journal is opaque bytes to this package: the engine encodes and decodes
// events. The one rule every backend enforces is the conditional append:
// Append(tenant, expectedSeq, ...) fails with ErrConflict when the journal's
// head is not expectedSeq. That is the fence that keeps two writers (two
// actors, two slotd instances) from both accepting conflicting commands.
package persistence

import (
	"context"
	"errors"
	"fmt"
)

// ErrConflict is returned by Append when the journal head differs from the
// expected sequence: someone else appended first. The caller must reload.
var ErrConflict = errors.New("persistence: journal sequence conflict")

// ErrNotFound is returned by directory reads for a missing key.
var ErrNotFound = errors.New("persistence: not found")

// ErrInvalid is returned when a tenant id, directory kind or key is malformed.
var ErrInvalid = errors.New("persistence: invalid argument")

// Entry is one journal record.
type Entry struct {
	Seq  uint64 // 1-based, dense, strictly increasing per tenant
	Data []byte
}

// Snapshot is a serialized tenant state covering the journal up to Seq.
type Snapshot struct {
	Seq  uint64
	Data []byte
}

// Store is the contract every backend fulfils.
//
// All methods are safe for concurrent use. A successful Append or
// SaveSnapshot is durable (fsync or database commit) before it returns.
type Store interface {
	// Append writes events as Seq expectedSeq+1 … expectedSeq+len(events),
	// atomically (all or none), if and only if the journal head is
	// expectedSeq; otherwise it returns an error wrapping ErrConflict and
	// writes nothing. It returns the new head. Appending zero events is a
	// no-op that still checks the head.
	Append(ctx context.Context, tenant string, expectedSeq uint64, events [][]byte) (uint64, error)

	// Load returns the newest snapshot (Seq 0 and nil Data if none) and every
	// journal entry after it, in order. An unknown tenant loads as empty.
	Load(ctx context.Context, tenant string) (Snapshot, []Entry, error)

	// ReadFrom returns journal entries with Seq > after, in order, at most
	// limit of them (limit <= 0: all). Used to follow another writer's tail.
	ReadFrom(ctx context.Context, tenant string, after uint64, limit int) ([]Entry, error)

	// SaveSnapshot stores a snapshot. A snapshot older than the one stored is
	// ignored; a snapshot beyond the journal head is ErrInvalid.
	SaveSnapshot(ctx context.Context, tenant string, snap Snapshot) error

	// PutDirectory, GetDirectory, DeleteDirectory and ListDirectory manage
	// small lookup records (kind "tenant", "link", …), durable on return.
	// GetDirectory of a missing key returns an error wrapping ErrNotFound;
	// DeleteDirectory of a missing key is not an error.
	PutDirectory(ctx context.Context, kind, key string, value []byte) error
	GetDirectory(ctx context.Context, kind, key string) ([]byte, error)
	DeleteDirectory(ctx context.Context, kind, key string) error
	// ListDirectory returns every key of kind, sorted.
	ListDirectory(ctx context.Context, kind string) ([]string, error)

	Close() error
}

// ValidTenant reports whether id is an acceptable tenant id: 1–63 lowercase
// letters, digits or hyphens, not starting with a hyphen (the regular
// expression ^[a-z0-9][a-z0-9-]{0,62}$, which the tests hold it to). It is
// on every request's path, so it is a loop rather than a regexp match.
func ValidTenant(id string) bool {
	if len(id) == 0 || len(id) > 63 || id[0] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validKind is ^[a-z][a-z0-9_]{0,31}$.
func validKind(kind string) bool {
	if len(kind) == 0 || len(kind) > 32 || !(kind[0] >= 'a' && kind[0] <= 'z') {
		return false
	}
	for i := 1; i < len(kind); i++ {
		if c := kind[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// CheckTenant returns an error wrapping ErrInvalid for a malformed tenant id.
func CheckTenant(id string) error {
	if !ValidTenant(id) {
		return fmt.Errorf("tenant id %q: %w", id, ErrInvalid)
	}
	return nil
}

// CheckKind returns an error wrapping ErrInvalid for a malformed directory
// kind: 1–32 lowercase letters, digits or underscores, starting with a letter.
func CheckKind(kind string) error {
	if !validKind(kind) {
		return fmt.Errorf("directory kind %q: %w", kind, ErrInvalid)
	}
	return nil
}

// CheckDirectory validates a directory kind and key. Keys are 1–256 bytes
// of any content except NUL.
func CheckDirectory(kind, key string) error {
	if err := CheckKind(kind); err != nil {
		return err
	}
	if len(key) == 0 || len(key) > 256 {
		return fmt.Errorf("directory key length %d: %w", len(key), ErrInvalid)
	}
	for i := 0; i < len(key); i++ {
		if key[i] == 0 {
			return fmt.Errorf("directory key contains NUL: %w", ErrInvalid)
		}
	}
	return nil
}

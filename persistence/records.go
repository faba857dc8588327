package persistence

import (
	"context"
	"fmt"
	"strings"
)

// Record is one small document that belongs to a tenant: an account, a
// session, an OAuth client or token, a wrapped key, an audit entry, a
// consent. Records live beside the journal, not in it: they change by
// compare-and-swap on their Version, not by events.
type Record struct {
	Tenant string
	Kind   string // as for the directory: CheckKind
	Key    string // 1–MaxRecordKey bytes, no NUL
	Value  []byte // at most MaxRecordValue bytes; never nil when read back
	// Version is 1 when the record is created and grows by one with every
	// write that replaces it. A deleted and recreated record starts again
	// at 1: callers that must tell incarnations apart (a refresh token
	// family, say) put a unique id in the key or the value.
	Version uint64
}

// AnyVersion, as the expectVersion of PutRecord or DeleteRecord, makes the
// write unconditional.
const AnyVersion = ^uint64(0)

// Limits on records. Keys may be token hashes: no backend puts a key in an
// error message or a log line.
const (
	MaxRecordKey   = 512
	MaxRecordValue = 1 << 20
)

// RecordStore keeps tenant-scoped records. Every method takes the tenant,
// and no call ever sees, changes or deletes another tenant's records (the
// conformance suite tries tenants "a", "ab" and "a-b"). The version-based
// compare-and-swap is what refresh-token rotation with reuse detection and
// single-use codes stand on: of several writers expecting the same version,
// exactly one succeeds.
//
// It is separate from Store so that code that needs only records (the
// gateway's accounts and sessions) declares only this, and so that a Store
// wrapper need not grow record methods. Backends implement both.
//
// All methods are safe for concurrent use. Writes are durable (fsync or
// database commit) before they return. Malformed arguments are ErrInvalid.
type RecordStore interface {
	// GetRecord returns the record, or an error wrapping ErrNotFound.
	GetRecord(ctx context.Context, tenant, kind, key string) (Record, error)

	// PutRecord stores value under key and returns the record's new
	// Version. expectVersion makes it conditional:
	//
	//   - AnyVersion writes unconditionally (create or replace);
	//   - 0 creates only: a record already there is ErrConflict;
	//   - any other value replaces only a record whose Version it is:
	//     a different Version, or no record, is ErrConflict.
	//
	// A conflict writes nothing.
	PutRecord(ctx context.Context, tenant, kind, key string, value []byte, expectVersion uint64) (uint64, error)

	// DeleteRecord deletes the record. With AnyVersion it is idempotent:
	// deleting a missing record is not an error. With 0 it only checks
	// that there is no record (ErrConflict if there is). With any other
	// version it deletes only a record of that Version and is ErrConflict
	// otherwise, a missing record included, so that of two deletes racing
	// with the same version exactly one succeeds (consuming a single-use
	// code).
	DeleteRecord(ctx context.Context, tenant, kind, key string, expectVersion uint64) error

	// ListRecords returns the tenant's records of kind whose key starts
	// with prefix and sorts after after (exclusive; "" for the start), in
	// bytewise key order, at most limit of them (limit <= 0: all). To page,
	// pass the last key returned as after. prefix and after are at most
	// MaxRecordKey bytes, without NUL.
	ListRecords(ctx context.Context, tenant, kind, prefix, after string, limit int) ([]Record, error)

	// DeleteTenantRecords deletes every record of the tenant of kind, or of
	// every kind when kind is "": account deletion and GDPR erasure. It is
	// atomic with respect to the tenant's other record writes.
	DeleteTenantRecords(ctx context.Context, tenant, kind string) error
}

// A DeferredRecordPutter is a RecordStore with one write-ahead log for its
// records and its journal, written in order (the embedded Pebble store):
// a record can be put without waiting for an fsync of its own, because the
// store's next durable write — the journal append of the booking it was
// made for, typically — makes it durable too.
type DeferredRecordPutter interface {
	// PutRecordsDeferred puts records of one tenant, with PutRecord's
	// expectVersion rule, as one write that may still be lost in a crash
	// until a later durable write to the same store (Append, PutRecord,
	// DeleteRecord, …) has returned; it is visible to readers at once.
	// All of them are written, with the new Versions in order, or none
	// (ErrConflict if any expectVersion does not hold; ErrInvalid for a
	// malformed record or the same record twice).
	PutRecordsDeferred(ctx context.Context, tenant string, puts []RecordPut) ([]uint64, error)
}

// RecordPut is one record of PutRecordsDeferred, with PutRecord's
// expectVersion rule.
type RecordPut struct {
	Kind, Key     string
	Value         []byte
	ExpectVersion uint64
	// Unique, with ExpectVersion 0, says that the caller made Key unique
	// (128 random bits, say: a pseudonym minted just now), so no record
	// can exist under it: the store may then skip the read that
	// create-only otherwise costs and write version 1. A store may also
	// ignore it and read.
	Unique bool
}

// CheckRecord returns an error wrapping ErrInvalid for a malformed tenant,
// kind or record key.
func CheckRecord(tenant, kind, key string) error {
	if err := CheckTenant(tenant); err != nil {
		return err
	}
	if err := CheckKind(kind); err != nil {
		return err
	}
	if len(key) == 0 {
		return fmt.Errorf("empty record key: %w", ErrInvalid)
	}
	return checkRecordKeyPart("record key", key)
}

// CheckRecordValue returns an error wrapping ErrInvalid for a value over
// MaxRecordValue bytes.
func CheckRecordValue(value []byte) error {
	if len(value) > MaxRecordValue {
		return fmt.Errorf("record value of %d bytes, at most %d: %w", len(value), MaxRecordValue, ErrInvalid)
	}
	return nil
}

// CheckRecordList validates the arguments of ListRecords.
func CheckRecordList(tenant, kind, prefix, after string) error {
	if err := CheckTenant(tenant); err != nil {
		return err
	}
	if err := CheckKind(kind); err != nil {
		return err
	}
	if err := checkRecordKeyPart("record prefix", prefix); err != nil {
		return err
	}
	return checkRecordKeyPart("record after", after)
}

// CheckTenantRecords validates the arguments of DeleteTenantRecords: kind
// may be "" (every kind).
func CheckTenantRecords(tenant, kind string) error {
	if err := CheckTenant(tenant); err != nil {
		return err
	}
	if kind == "" {
		return nil
	}
	return CheckKind(kind)
}

func checkRecordKeyPart(what, s string) error {
	if len(s) > MaxRecordKey {
		return fmt.Errorf("%s of %d bytes, at most %d: %w", what, len(s), MaxRecordKey, ErrInvalid)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s contains NUL: %w", what, ErrInvalid)
	}
	return nil
}

// RecordBounds returns the half-open key range [lower, upper) that
// ListRecords(prefix, after) covers, for backends that scan a sorted index.
// upper is "" when the range is unbounded above (an empty prefix, or one of
// 0xff bytes only). The range is empty when upper != "" && lower >= upper.
//
// Keys hold no NUL, so the first key after after is at least after+"\x00".
func RecordBounds(prefix, after string) (lower, upper string) {
	lower = prefix
	if after != "" && after+"\x00" > lower {
		lower = after + "\x00"
	}
	// The successor of prefix: drop trailing 0xff bytes, then increment
	// the last byte.
	end := []byte(prefix)
	for len(end) > 0 && end[len(end)-1] == 0xff {
		end = end[:len(end)-1]
	}
	if len(end) > 0 {
		end[len(end)-1]++
		upper = string(end)
	}
	return lower, upper
}

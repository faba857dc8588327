package pebble

import (
	"encoding/binary"
	"fmt"
)

// Key layout. Tenant ids match [a-z0-9-] and directory kinds [a-z0-9_], so
// neither contains the 0x00 separator: a tenant's prefix "t" + id + 0x00 is
// never a prefix of another tenant's keys ("a" vs "ab" vs "a-b"), and the
// same holds for directory kinds.
//
//	"m" "layout"                             → layout version ("1")
//	"t" tenant 0x00 "h"                      → journal head, big-endian uint64
//	"t" tenant 0x00 "j" big-endian seq (8)   → event
//	"t" tenant 0x00 "s"                      → big-endian snapshot seq (8) ‖ snapshot data
//	"d" kind 0x00 key                        → directory value
//	"r" tenant 0x00 kind 0x00 key            → record: big-endian version (8) ‖ value
//
// Big-endian seqs make byte order equal numeric order, so a journal scan is
// a plain range scan; directory keys sort bytewise, the same order as Go's
// string comparison, so ListDirectory needs no sorting.
//
// Records have their own top-level prefix rather than living under "t", so
// a tenant's records are one range ("r" tenant 0x00 … "r" tenant 0x01) and
// its records of one kind another; record keys hold no NUL either, so
// within a kind they sort as Go strings do and ListRecords needs no sorting.
// Records came after layout "1" without changing it: no existing key moved,
// and a binary that predates them never reads "r" keys.
const (
	prefixMeta      = 'm'
	prefixTenant    = 't'
	prefixDirectory = 'd'
	prefixRecord    = 'r'

	tenantHead     = 'h'
	tenantJournal  = 'j'
	tenantSnapshot = 's'

	separator = 0x00

	layoutKey     = string(prefixMeta) + "layout"
	layoutVersion = "1"
)

// tenantPrefix returns "t" tenant 0x00 with spare capacity for a suffix.
func tenantPrefix(tenant string, extra int) []byte {
	k := make([]byte, 0, 2+len(tenant)+extra)
	k = append(k, prefixTenant)
	k = append(k, tenant...)
	return append(k, separator)
}

// tenantBounds returns the key range [lower, upper) holding all of a
// tenant's records.
func tenantBounds(tenant string) (lower, upper []byte) {
	lower = tenantPrefix(tenant, 0)
	upper = append(tenantPrefix(tenant, 0)[:1+len(tenant)], separator+1)
	return lower, upper
}

func headKey(tenant string) []byte {
	return append(tenantPrefix(tenant, 1), tenantHead)
}

func snapshotKey(tenant string) []byte {
	return append(tenantPrefix(tenant, 1), tenantSnapshot)
}

// journalPrefix returns the prefix shared by all of a tenant's events.
func journalPrefix(tenant string) []byte {
	return append(tenantPrefix(tenant, 9), tenantJournal)
}

func journalKey(tenant string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(journalPrefix(tenant), seq)
}

// directoryPrefix returns "d" kind 0x00.
func directoryPrefix(kind string, extra int) []byte {
	k := make([]byte, 0, 2+len(kind)+extra)
	k = append(k, prefixDirectory)
	k = append(k, kind...)
	return append(k, separator)
}

func directoryKey(kind, key string) []byte {
	return append(directoryPrefix(kind, len(key)), key...)
}

// directoryBounds returns the key range [lower, upper) holding every key of
// kind.
func directoryBounds(kind string) (lower, upper []byte) {
	lower = directoryPrefix(kind, 0)
	upper = append(directoryPrefix(kind, 0)[:1+len(kind)], separator+1)
	return lower, upper
}

// recordTenantPrefix returns "r" tenant 0x00 with spare capacity for a
// suffix.
func recordTenantPrefix(tenant string, extra int) []byte {
	k := make([]byte, 0, 2+len(tenant)+extra)
	k = append(k, prefixRecord)
	k = append(k, tenant...)
	return append(k, separator)
}

// recordKindPrefix returns "r" tenant 0x00 kind 0x00 with spare capacity
// for a suffix.
func recordKindPrefix(tenant, kind string, extra int) []byte {
	k := recordTenantPrefix(tenant, len(kind)+1+extra)
	k = append(k, kind...)
	return append(k, separator)
}

func recordKey(tenant, kind, key string) []byte {
	return append(recordKindPrefix(tenant, kind, len(key)), key...)
}

// recordBounds returns the key range [lower, upper) holding the tenant's
// records of kind, or of every kind when kind is "".
func recordBounds(tenant, kind string) (lower, upper []byte) {
	if kind == "" {
		lower = recordTenantPrefix(tenant, 0)
	} else {
		lower = recordKindPrefix(tenant, kind, 0)
	}
	upper = append(lower[:len(lower)-1:len(lower)-1], separator+1)
	return lower, upper
}

func encodeSeq(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

func decodeSeq(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("sequence of %d bytes, want 8", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

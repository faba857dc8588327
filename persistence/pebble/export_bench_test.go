package pebble

import (
	"context"
	"encoding/binary"

	pebbledb "github.com/cockroachdb/pebble/v2"
)

// PutRecordNoSyncForBench writes a version-1 record without an fsync, to
// fill a benchmark's store quickly.
func (s *Store) PutRecordNoSyncForBench(_ context.Context, tenant, kind, key string, value []byte) (uint64, error) {
	v := binary.BigEndian.AppendUint64(nil, 1)
	return 1, s.db.Set(recordKey(tenant, kind, key), append(v, value...), pebbledb.NoSync)
}

package gateway

import (
	"bytes"
	"hash/maphash"
	"sync"

	"github.com/slotd/slotd/engine"
)

// snapshotCache keeps the encoding of recent availability snapshots, so
// that the viewers of a booking page who subscribe to the same query at
// the same version share one encoding of its slots instead of each
// making their own: when thousands subscribe at once, those encodings
// were most of the garbage the subscribes made. It holds a few entries;
// each is replaced by the next snapshot whose query hashes to its place.
type snapshotCache struct {
	seed maphash.Seed

	mu      sync.Mutex // guards entries
	entries [snapshotCacheSize]*snapshot
}

const (
	snapshotCacheSize = 16
	snapshotCacheMax  = 64 << 10 // larger encodings are not kept
)

// snapshot is a subscribed frame without its request and subscription
// ids: subscribedPrefix, then "version" and "slots".
type snapshot struct {
	key     string // tenant and query
	version uint64
	slots   []engine.Slot
	body    []byte
}

const subscribedPrefix = `{"v":1,"type":"subscribed",`

// get returns the snapshot of tenant's query q at version with slots, from
// the cache if it holds an equal one. It returns nil if slots cannot be
// encoded (encodeFrame's internal error frame).
func (sc *snapshotCache) get(tenant string, q engine.AvailabilityQuery, version uint64, slots []engine.Slot) *snapshot {
	key := tenant + "\x00" + q.Key()
	i := maphash.String(sc.seed, key) % snapshotCacheSize
	sc.mu.Lock()
	e := sc.entries[i]
	sc.mu.Unlock()
	if e != nil && e.key == key && e.version == version && slotsEqual(e.slots, slots) {
		return e
	}
	v := version
	e = &snapshot{key: key, version: version, slots: slots,
		body: encodeFrame(Frame{V: ProtocolVersion, Type: TypeSubscribed, Version: &v, Slots: slots})}
	if !bytes.HasPrefix(e.body, []byte(subscribedPrefix)) {
		return nil
	}
	if len(e.body) <= snapshotCacheMax {
		sc.mu.Lock()
		sc.entries[i] = e
		sc.mu.Unlock()
	}
	return e
}

// appendFrame appends the subscribed frame of subscription sub answering
// request id: the bytes encodeFrame would give.
func (e *snapshot) appendFrame(dst []byte, id, sub string) []byte {
	dst = append(dst, `{"v":1,`...)
	if id != "" {
		dst = append(dst, `"id":`...)
		dst = appendJSONString(dst, id)
		dst = append(dst, ',')
	}
	dst = append(dst, `"type":"subscribed","sub":`...)
	dst = appendJSONString(dst, sub)
	dst = append(dst, ',')
	return append(dst, e.body[len(subscribedPrefix):]...)
}

// slotsEqual reports whether a and b encode the same: Slot.Equal, and
// times in the same location.
func slotsEqual(a, b []engine.Slot) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Start != b[i].Start || a[i].End != b[i].End || !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

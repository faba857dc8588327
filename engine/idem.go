package engine

import (
	"encoding/hex"
	"sort"
)

// idemEntry is an idempotency record as a State keeps it; IdemRecord is
// its form in events and snapshots. Every booking made with a key has one
// for as long as the state lives, so it is kept small: the fingerprint as
// its 16 bytes instead of 32 hex characters, the kind as a byte. That is
// 40 bytes and no allocation of its own, against 64 bytes and a string.
// A record without that shape (the engine never writes one) is kept as it
// came in State.idemOdd, so that snapshots give back exactly what was put.
type idemEntry struct {
	id   string
	fp   [16]byte
	kind idemKind
}

type idemKind uint8

const (
	idemHold idemKind = iota + 1
	idemBooking
)

var idemKinds = [...]string{idemHold: "hold", idemBooking: "booking"}

// putIdem records rec under its key.
func (s *State) putIdem(rec IdemRecord) {
	e := idemEntry{id: rec.ID}
	switch rec.Kind {
	case "hold":
		e.kind = idemHold
	case "booking":
		e.kind = idemBooking
	}
	if e.kind != 0 && len(rec.Fingerprint) == 2*len(e.fp) {
		if _, err := hex.Decode(e.fp[:], []byte(rec.Fingerprint)); err == nil && hex.EncodeToString(e.fp[:]) == rec.Fingerprint {
			delete(s.idemOdd, rec.Key)
			s.idem[rec.Key] = e
			return
		}
	}
	delete(s.idem, rec.Key)
	if s.idemOdd == nil {
		s.idemOdd = map[string]IdemRecord{}
	}
	s.idemOdd[rec.Key] = rec
}

// record is e, the entry of key, as an IdemRecord.
func (e idemEntry) record(key string) IdemRecord {
	return IdemRecord{Key: key, Fingerprint: hex.EncodeToString(e.fp[:]), Kind: idemKinds[e.kind], ID: e.id}
}

// idemRecord returns the record of key.
func (s *State) idemRecord(key string) (IdemRecord, bool) {
	if e, ok := s.idem[key]; ok {
		return e.record(key), true
	}
	rec, ok := s.idemOdd[key]
	return rec, ok
}

// idemRecords returns every record, sorted by key.
func (s *State) idemRecords() []IdemRecord {
	recs := make([]IdemRecord, 0, len(s.idem)+len(s.idemOdd))
	for k, e := range s.idem {
		recs = append(recs, e.record(k))
	}
	for _, rec := range s.idemOdd {
		recs = append(recs, rec)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Key < recs[j].Key })
	return recs
}

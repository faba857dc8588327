package main

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// tenantRun is one tenant under simulation: its shape, the clients bound to
// it, and the ledger of what those clients were told.
type tenantRun struct {
	idx  int
	id   string
	link string

	resources []string
	capacity  map[string]int
	services  []svcShape
	viewQuery availQuery

	conns   []*wsConn // booking clients bound to this tenant
	viewers int       // viewers subscribed to this tenant

	mu     sync.Mutex  // guards the fields below
	pool   []poolEntry // confirmed bookings no operation is working on
	ledger map[string]*ledgerEntry
	// unknownBooks are idempotency keys of books (and hold books) whose
	// outcome is unknown: sent, but the connection was lost before the
	// answer. A booking with such a key is "in flight", not a violation.
	unknownBooks map[string]bool
	preexisting  map[string]bool // bookings that were there before the run
	rr           int

	versions sync.Map // journal version → *verRec, for fan-out latency
}

// svcShape is a service's slot grid as slotsim books it.
type svcShape struct {
	id        string
	resources []string // those that deliver it
	step      time.Duration
	perDay    int
	slots     int     // perDay × days
	perm      []int32 // rank → slot index, so that Zipf's hot slots are spread out
	zipfCDF   []float64
}

type poolEntry struct {
	id       string
	service  string
	resource string
	start    time.Time
}

// bookingState is what a booking should look like in the end.
type bookingState struct {
	Resource string    `json:"resource"` // "" when unknown (any-resource reschedule in flight)
	Start    time.Time `json:"start"`
	Status   string    `json:"status"`
}

// ledgerEntry is one acknowledged booking. Expect holds every final state
// the server may legitimately show: one normally, more when an operation on
// the booking was in flight when its connection was lost.
type ledgerEntry struct {
	Expect []bookingState
}

func newTenantRun(idx int, id string) *tenantRun {
	return &tenantRun{idx: idx, id: id, capacity: map[string]int{}, ledger: map[string]*ledgerEntry{},
		unknownBooks: map[string]bool{}, preexisting: map[string]bool{}}
}

// nextConn picks the tenant's clients round-robin.
func (t *tenantRun) nextConn() *wsConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.conns) == 0 {
		return nil
	}
	c := t.conns[t.rr%len(t.conns)]
	t.rr++
	return c
}

// booked records an acknowledged booking.
func (t *tenantRun) booked(b *booking) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ledger[b.ID] = &ledgerEntry{Expect: []bookingState{{Resource: b.ResourceID, Start: b.Start, Status: "confirmed"}}}
	t.pool = append(t.pool, poolEntry{id: b.ID, service: b.ServiceID, resource: b.ResourceID, start: b.Start})
}

// take removes a random booking from the pool for an operation on it, so
// that no two operations touch one booking at once.
func (t *tenantRun) take(rng *rand.Rand) (poolEntry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pool) == 0 {
		return poolEntry{}, false
	}
	i := rng.IntN(len(t.pool))
	e := t.pool[i]
	t.pool[i] = t.pool[len(t.pool)-1]
	t.pool = t.pool[:len(t.pool)-1]
	return e, true
}

// giveBack returns a booking to the pool after an operation that did not
// end it.
func (t *tenantRun) giveBack(e poolEntry) {
	t.mu.Lock()
	t.pool = append(t.pool, e)
	t.mu.Unlock()
}

// settled records the acknowledged new state of a booking (rescheduled or
// cancelled).
func (t *tenantRun) settled(b *booking) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ledger[b.ID] = &ledgerEntry{Expect: []bookingState{{Resource: b.ResourceID, Start: b.Start, Status: b.Status}}}
	if b.Status == "confirmed" {
		t.pool = append(t.pool, poolEntry{id: b.ID, service: b.ServiceID, resource: b.ResourceID, start: b.Start})
	}
}

// maybe records that an operation on booking id may or may not have taken
// effect: alt becomes an acceptable final state too. The booking stays out
// of the pool.
func (t *tenantRun) maybe(id string, alt bookingState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.ledger[id]; e != nil {
		e.Expect = append(e.Expect, alt)
	}
}

func (t *tenantRun) unknownBook(key string) {
	t.mu.Lock()
	t.unknownBooks[key] = true
	t.mu.Unlock()
}

// verRec joins the acknowledgements of one journal version with the deltas
// viewers received for it. Thousands of viewers receive a delta at the same
// instant: once the ack is known they record without a lock.
type verRec struct {
	ack, intended atomic.Int64 // unix nanoseconds; 0 until known

	mu      sync.Mutex  // guards waiting
	waiting []time.Time // delta arrivals before the ack was known
}

func (t *tenantRun) version(v uint64) *verRec {
	if r, ok := t.versions.Load(v); ok {
		return r.(*verRec)
	}
	r, _ := t.versions.LoadOrStore(v, &verRec{})
	return r.(*verRec)
}

// acked notes that an operation answered with version v at time at.
func (t *tenantRun) acked(rec *recorder, v uint64, intended, at time.Time) {
	if t.viewers == 0 {
		return
	}
	r := t.version(v)
	r.mu.Lock()
	if old := r.ack.Load(); old == 0 || at.UnixNano() < old {
		r.ack.Store(at.UnixNano())
	}
	if old := r.intended.Load(); old == 0 || intended.UnixNano() < old {
		r.intended.Store(intended.UnixNano())
	}
	waiting := r.waiting
	r.waiting = nil
	ack, first := time.Unix(0, r.ack.Load()), time.Unix(0, r.intended.Load())
	r.mu.Unlock()
	for i, w := range waiting {
		fanoutSample(rec, i, w, ack, first)
	}
}

// delta notes that a viewer received the delta of version v at time at.
func (t *tenantRun) delta(rec *recorder, viewer int, v uint64, at time.Time) {
	rec.fanDeltas.Add(1)
	r := t.version(v)
	if ack := r.ack.Load(); ack != 0 {
		fanoutSample(rec, viewer, at, time.Unix(0, ack), time.Unix(0, r.intended.Load()))
		return
	}
	r.mu.Lock()
	if ack := r.ack.Load(); ack != 0 {
		r.mu.Unlock()
		fanoutSample(rec, viewer, at, time.Unix(0, ack), time.Unix(0, r.intended.Load()))
		return
	}
	r.waiting = append(r.waiting, at)
	r.mu.Unlock()
}

func fanoutSample(rec *recorder, shard int, at, ack, intended time.Time) {
	rec.fanMatched.Add(1)
	d := at.Sub(ack)
	if d < 0 {
		rec.fanBefore.Add(1)
		d = 0
	}
	rec.fanAck.record(shard, d)
	rec.fanWindow.record(shard, d)
	rec.fanSend.record(shard, at.Sub(intended))
}

// unmatchedDeltas counts delta arrivals whose version no client was told
// about (hold expiries, other clients' changes, answers lost to a crash).
func (t *tenantRun) unmatchedDeltas() int {
	n := 0
	t.versions.Range(func(_, v any) bool {
		r := v.(*verRec)
		r.mu.Lock()
		n += len(r.waiting)
		r.mu.Unlock()
		return true
	})
	return n
}

// zipfCDF returns the cumulative weights of ranks 0..n-1 with weight
// 1/(rank+1)^s, or nil for the uniform s = 0.
func zipfCDF(n int, s float64) []float64 {
	if s == 0 || n <= 1 {
		return nil
	}
	cdf := make([]float64, n)
	sum := 0.0
	for i := range cdf {
		sum += 1 / math.Pow(float64(i+1), s)
		cdf[i] = sum
	}
	for i := range cdf {
		cdf[i] /= sum
	}
	return cdf
}

// pickRank draws a rank in [0, n) from cdf (uniform when cdf is nil).
func pickRank(rng *rand.Rand, n int, cdf []float64) int {
	if cdf == nil {
		return rng.IntN(n)
	}
	u := rng.Float64()
	lo, hi := 0, len(cdf)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if cdf[mid] < u {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

package main

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// opData is what an operation's done callback needs besides the answer.
type opData struct {
	t        *tenantRun
	noFollow bool      // the caller handles a hold's follow-up itself
	entry    poolEntry // cancel and reschedule: the booking worked on
	next     chan struct{}
}

var keySeq atomic.Uint64

// newKey returns a fresh idempotency key; every mutating request carries one
// so that a booking found in the server can be traced to its request.
func (s *sim) newKey() string {
	return s.runID + "-" + strconv.FormatUint(keySeq.Add(1), 36)
}

// pickSlot draws a service, a resource ("" for any) and a start.
func (s *sim) pickSlot(t *tenantRun, rng *rand.Rand) (*svcShape, string, time.Time) {
	return s.pickSlotOf(t, &t.services[rng.IntN(len(t.services))], rng)
}

// newOp builds the call for one arrival of kind k on tenant t.
func (s *sim) newOp(t *tenantRun, k opKind, rng *rand.Rand, intended time.Time) *call {
	cl := &call{kind: k, intended: intended, done: s.opDone, data: &opData{t: t}}
	customer := "sim " + strconv.Itoa(rng.IntN(1_000_000))
	switch k {
	case opCancel, opReschedule:
		e, ok := t.take(rng)
		if !ok { // nothing to work on yet: book instead
			return s.newOp(t, opBook, rng, intended)
		}
		cl.data.(*opData).entry = e
		cl.req = request{Type: "cancel", BookingID: e.id, Reason: "slotsim", Idem: s.newKey()}
		if k == opReschedule {
			svc := t.service(e.service)
			if svc == nil {
				svc = &t.services[0]
			}
			_, res, start := s.pickSlotOf(t, svc, rng)
			cl.req = request{Type: "reschedule", BookingID: e.id, Start: start, Resource: res, AnyResource: res == "", Idem: s.newKey()}
		}
	case opHold:
		svc, res, start := s.pickSlot(t, rng)
		cl.req = request{Type: "hold", Service: svc.id, Resource: res, Start: start, Idem: s.newKey()}
	case opBrowse:
		q := t.viewQuery
		cl.req = request{Type: "subscribe", Service: q.Service, From: q.From, To: q.To, TZ: q.TZ}
	default:
		cl.kind = opBook
		svc, res, start := s.pickSlot(t, rng)
		cl.req = request{Type: "book", Service: svc.id, Resource: res, Start: start, Customer: customer, Idem: s.newKey()}
	}
	return cl
}

func (t *tenantRun) service(id string) *svcShape {
	for i := range t.services {
		if t.services[i].id == id {
			return &t.services[i]
		}
	}
	return nil
}

// pickSlotOf draws a slot of a given service.
func (s *sim) pickSlotOf(t *tenantRun, svc *svcShape, rng *rand.Rand) (*svcShape, string, time.Time) {
	rank := pickRank(rng, svc.slots, svc.zipfCDF)
	idx := int(svc.perm[rank])
	day, k := idx/svc.perDay, idx%svc.perDay
	start := s.day0.AddDate(0, 0, day).Add(time.Duration(k) * svc.step)
	res := ""
	if rng.Float64() >= s.o.anyResource {
		res = svc.resources[rng.IntN(len(svc.resources))]
	}
	return svc, res, start
}

// opDone records an operation's outcome, updates the ledger, and starts
// follow-ups (a hold's book or release, a browse's unsubscribe).
func (s *sim) opDone(cl *call, f *frame, o outcome) {
	d := cl.data.(*opData)
	t := d.t
	now := time.Now()
	from := cl.intended
	if s.o.closed || from.IsZero() {
		from = cl.sent
	}
	if d.next != nil {
		defer close(d.next)
	}
	code := codeOf(f, o)
	if o.unknown() {
		s.rec.unknown.Add(1)
	}
	if o == answered && code == "" && f.Version != nil {
		t.acked(s.rec, *f.Version, from, now)
	}
	s.rec.answered(cl.kind, now.Sub(from), code)

	switch cl.kind {
	case opBook, opHoldBook:
		switch {
		case code == "" && f.Booking != nil:
			t.booked(f.Booking)
		case o.unknown() || code == "unavailable":
			// unavailable may mean "timed out; it may still complete"
			t.unknownBook(cl.req.Idem)
		}
	case opCancel, opReschedule:
		e := d.entry
		switch {
		case code == "" && f.Booking != nil:
			t.settled(f.Booking)
		case o.unknown() || code == "unavailable":
			alt := bookingState{Resource: e.resource, Start: e.start, Status: "cancelled"}
			if cl.kind == opReschedule {
				alt = bookingState{Resource: cl.req.Resource, Start: cl.req.Start, Status: "confirmed"}
			}
			t.maybe(e.id, alt)
		default: // refused (slot taken, …) or never sent: unchanged
			t.giveBack(e)
		}
	case opHold:
		if code == "" && f.Hold != nil && s.running.Load() && !d.noFollow {
			s.followHold(cl, t, f.Hold)
		}
	case opBrowse:
		if code == "" && f.Sub != "" && s.running.Load() {
			if c := cl.conn; c != nil {
				c.enqueue(&call{kind: opUnsubscribe, req: request{Type: "unsubscribe", Sub: f.Sub}, intended: now,
					done: s.opDone, data: &opData{t: t}})
			}
		}
	}
}

// followHold books or releases a hold after the think time, on the same
// connection.
func (s *sim) followHold(cl *call, t *tenantRun, h *hold) {
	c := cl.conn
	book := rand.Float64() < s.o.holdBook
	at := time.Now().Add(s.o.think)
	next := &call{intended: at, done: s.opDone, data: &opData{t: t}}
	if book {
		next.kind = opHoldBook
		next.req = request{Type: "book", HoldID: h.ID, Customer: "sim hold", Idem: s.newKey()}
	} else {
		next.kind = opRelease
		next.req = request{Type: "release", HoldID: h.ID}
	}
	s.followUps.Add(1)
	time.AfterFunc(s.o.think, func() {
		c.enqueue(next)
		s.followUps.Add(-1)
	})
}

// openLoop issues arrivals at the configured rate until ctx ends: arrival i
// is due at start + i/rate whatever happened to earlier ones, and its
// latency is measured from then.
func (s *sim) openLoop(ctx context.Context, start time.Time) {
	rng := rand.New(rand.NewPCG(uint64(s.o.seed), 0x5107))
	interval := time.Duration(float64(time.Second) / s.o.rate)
	var issued int64
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			due := int64(now.Sub(start)/interval) + 1 // arrival i is due at start + i·interval
			for ; issued < due; issued++ {
				intended := start.Add(time.Duration(issued) * interval)
				t := s.active[pickRank(rng, len(s.active), s.tenantCDF)]
				c := t.nextConn()
				cl := s.newOp(t, s.o.mix.pick(rng.Float64()), rng, intended)
				cl.conn = c
				c.enqueue(cl)
			}
		}
	}
}

// closedLoop runs each client as send, wait, think, repeat.
func (s *sim) closedLoop(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range s.clients {
		wg.Add(1)
		go func(c *wsConn) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(s.o.seed), uint64(c.idx)))
			for ctx.Err() == nil {
				cl := s.newOp(c.tenant, s.o.mix.pick(rng.Float64()), rng, time.Time{})
				cl.conn = c
				next := make(chan struct{})
				cl.data.(*opData).next = next
				c.enqueue(cl)
				select {
				case <-next:
				case <-ctx.Done():
					return
				}
				if s.o.think > 0 {
					select {
					case <-time.After(s.o.think):
					case <-ctx.Done():
						return
					}
				}
			}
		}(c)
	}
	wg.Wait()
}

// codeOf is "" for a successful answer, the error code of a refusal, or an
// "x_…" code when no answer came.
func codeOf(f *frame, o outcome) string {
	switch {
	case o == notSent:
		return "x_not_sent"
	case o == lost:
		return "x_conn_lost"
	case o == abandoned:
		return "x_no_answer_by_end"
	case f.Type == "error" && f.Code == "":
		return "x_error_without_code"
	case f.Type == "error":
		return f.Code
	}
	return ""
}

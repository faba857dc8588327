package main

import (
	"sync"
	"time"
)

// viewer is a booking page left open: a public WebSocket (by booking link)
// subscribed to one availability query, applying every delta it receives.
type viewer struct {
	idx int
	t   *tenantRun
	c   *wsConn
	q   availQuery

	mu         sync.Mutex // guards the fields below
	sub        string
	slots      map[int64]slot
	version    uint64
	subscribed bool
	deltas     int
}

func (s *sim) newViewer(idx int, t *tenantRun) *viewer {
	v := &viewer{idx: idx, t: t, q: t.viewQuery}
	c := s.newConn(idx, t, s.wsURL("link="+t.link), nil)
	c.onConnect = func(c *wsConn) { s.subscribe(v) }
	c.onPush = func(c *wsConn, f *frame, at time.Time) { s.push(v, f, at) }
	v.c = c
	return v
}

// subscribe (re)subscribes the viewer; the answer carries the snapshot.
func (s *sim) subscribe(v *viewer) {
	v.mu.Lock()
	v.sub, v.subscribed = "", false
	v.mu.Unlock()
	v.c.enqueue(&call{kind: opView, intended: time.Now(), conn: v.c, data: v,
		req:  request{Type: "subscribe", Service: v.q.Service, From: v.q.From, To: v.q.To, TZ: v.q.TZ},
		done: s.viewDone})
}

func (s *sim) viewDone(cl *call, f *frame, o outcome) {
	v := cl.data.(*viewer)
	now := time.Now()
	code := ""
	switch {
	case o == notSent:
		code = "x_not_sent"
	case o.unknown():
		code = "x_conn_lost"
	case f.Type == "error":
		code = f.Code
	case f.Type != "subscribed":
		code = "x_unexpected_" + f.Type
	}
	s.rec.answered(opView, now.Sub(cl.sent), code)
	if code != "" {
		if o == answered && s.viewing.Load() {
			time.AfterFunc(500*time.Millisecond, func() { s.subscribe(v) })
		}
		return
	}
	v.mu.Lock()
	v.sub, v.subscribed = f.Sub, true
	v.slots = make(map[int64]slot, len(f.Slots))
	for _, sl := range f.Slots {
		v.slots[sl.Start.UnixNano()] = sl
	}
	if f.Version != nil {
		v.version = *f.Version
	}
	v.mu.Unlock()
}

// push applies a delta or a resync, or resubscribes after the server ended
// the subscription.
func (s *sim) push(v *viewer, f *frame, at time.Time) {
	v.mu.Lock()
	if f.Sub == "" || f.Sub != v.sub {
		v.mu.Unlock()
		return
	}
	switch f.Type {
	case "availability":
		if f.Version != nil {
			v.version = *f.Version
		}
		if f.Resync {
			s.rec.resyncs.Add(1)
			v.slots = make(map[int64]slot, len(f.Slots))
			for _, sl := range f.Slots {
				v.slots[sl.Start.UnixNano()] = sl
			}
			v.mu.Unlock()
			return
		}
		for _, t := range f.Removed {
			delete(v.slots, t.UnixNano())
		}
		for _, sl := range f.Upserted {
			v.slots[sl.Start.UnixNano()] = sl
		}
		v.deltas++
		v.mu.Unlock()
		if f.Version != nil {
			v.t.delta(s.rec, v.idx, *f.Version, at)
		}
	case "subscription_ended":
		v.mu.Unlock()
		s.rec.subsEnded.Add(1)
		if s.viewing.Load() {
			s.subscribe(v)
		}
	default:
		v.mu.Unlock()
	}
}

// view returns a copy of what the viewer shows now.
func (v *viewer) view() (map[int64]slot, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[int64]slot, len(v.slots))
	for k, s := range v.slots {
		out[k] = s
	}
	return out, v.subscribed
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"
)

// request is the fields of one client frame that slotsim uses.
type request struct {
	Type        string
	Service     string
	Resource    string
	From, To    string
	TZ          string
	Sub         string
	Start       time.Time
	HoldID      string
	BookingID   string
	Customer    string // name; the e-mail is derived
	Idem        string
	AnyResource bool
	Reason      string
}

// encode writes the frame by hand: at tens of thousands of requests per
// second on a machine shared with slotd, reflection is not free.
func (r *request) encode(id string) []byte {
	b := make([]byte, 0, 256)
	b = append(b, `{"v":1,"id":`...)
	b = strconv.AppendQuote(b, id)
	b = append(b, `,"type":`...)
	b = strconv.AppendQuote(b, r.Type)
	str := func(k, v string) {
		if v != "" {
			b = append(b, ',', '"')
			b = append(b, k...)
			b = append(b, '"', ':')
			b = strconv.AppendQuote(b, v)
		}
	}
	str("service", r.Service)
	str("resource", r.Resource)
	str("from", r.From)
	str("to", r.To)
	str("tz", r.TZ)
	str("sub", r.Sub)
	if !r.Start.IsZero() {
		str("start", r.Start.UTC().Format(time.RFC3339))
	}
	str("hold_id", r.HoldID)
	str("booking_id", r.BookingID)
	str("idempotency_key", r.Idem)
	str("reason", r.Reason)
	if r.AnyResource {
		b = append(b, `,"any_resource":true`...)
	}
	if r.Customer != "" {
		b = append(b, `,"customer":{"name":`...)
		b = strconv.AppendQuote(b, r.Customer)
		b = append(b, `,"email":`...)
		b = strconv.AppendQuote(b, strings.ReplaceAll(r.Customer, " ", ".")+"@sim.example")
		b = append(b, '}')
	}
	return append(b, '}')
}

// call is one request and what to do with its answer.
type call struct {
	kind     opKind
	req      request
	intended time.Time // when it should have been sent (open loop)
	sent     time.Time
	// done runs on the connection's reader goroutine (or the writer, for a
	// request never sent): f is the answer, or nil with outcome set.
	done func(c *call, f *frame, o outcome)
	data any     // per-operation state for done
	conn *wsConn // the connection it is sent on
}

// outcome is why a call ended without an answer.
type outcome int

const (
	answered  outcome = iota
	notSent           // never reached the wire: certainly not applied
	lost              // sent, then the connection died: may have been applied
	abandoned         // sent, no answer by the end of the drain: may have been applied
)

// unknown reports whether the request may or may not have taken effect.
func (o outcome) unknown() bool { return o == lost || o == abandoned }

// wsConn is one WebSocket client. Requests are pipelined: replies echo the
// request id. slotd answers one connection's requests in order, one at a
// time, so pipelining saves round trips but not server time. The
// connection reconnects by itself until its context ends.
type wsConn struct {
	sim    *sim
	idx    int
	tenant *tenantRun
	url    string
	header http.Header
	queue  chan *call
	lim    *rate.Limiter
	nextID uint64 // writer goroutine only

	// onConnect runs on the writer goroutine after each (re)connect, before
	// queued calls are sent (viewers subscribe here).
	onConnect func(c *wsConn)
	// onPush handles frames without an id (availability deltas, ends).
	onPush func(c *wsConn, f *frame, at time.Time)

	mu      sync.Mutex // guards pending
	pending map[string]*call

	up       atomic.Bool
	ws       *websocket.Conn // the first connection, made during set-up
	inflight atomic.Int64
}

func (s *sim) newConn(idx int, t *tenantRun, url string, hdr http.Header) *wsConn {
	return &wsConn{sim: s, idx: idx, tenant: t, url: url, header: hdr, queue: make(chan *call, 4096),
		lim: rate.NewLimiter(rate.Limit(s.o.connRate), 5), pending: map[string]*call{}}
}

// dial opens one WebSocket; slotd greets it with a welcome frame.
func (c *wsConn) dial(ctx context.Context) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, c.url, &websocket.DialOptions{HTTPHeader: c.header, HTTPClient: c.sim.wsHTTP})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(8 << 20)
	return ws, nil
}

// enqueue hands a call to the writer; a full queue fails it at once.
// enqueue hands cl to the connection's writer. It counts as due
// (inflight) from here until it ends, answered or not: the drain waits for
// what is due, and a call handed straight to a waiting writer is in no
// queue while that goroutine is still to run. (Counting it only once sent
// let the drain end between the two: the run's last call, sent a moment
// later, was reported unanswered although slotd had answered it.)
func (c *wsConn) enqueue(cl *call) {
	c.inflight.Add(1)
	select {
	case c.queue <- cl:
	default:
		c.inflight.Add(-1)
		cl.done(cl, nil, notSent)
	}
}

// run keeps the connection up and serves it until ctx ends.
func (c *wsConn) run(ctx context.Context) {
	backoff := 50 * time.Millisecond
	ws := c.ws
	c.ws = nil
	for ctx.Err() == nil {
		if ws == nil {
			var err error
			if ws, err = c.dial(ctx); err != nil {
				c.sim.rec.dialErrors.Add(1)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			c.sim.rec.reconnects.Add(1)
			backoff = 50 * time.Millisecond
		}
		c.serve(ctx, ws)
		ws = nil
	}
	c.failQueued()
}

// serve runs one connection: a reader goroutine, and the writer here.
func (c *wsConn) serve(ctx context.Context, ws *websocket.Conn) {
	rctx, cancel := context.WithCancel(ctx)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		c.read(ws)
	}()
	c.up.Store(true)
	if c.onConnect != nil {
		c.onConnect(c)
	}
	c.write(rctx, ws, readerDone)
	c.up.Store(false)
	cancel()
	ws.CloseNow()
	<-readerDone
	if ctx.Err() != nil {
		c.failPending(abandoned) // slotsim gave up waiting (end of the drain)
	} else {
		c.failPending(lost)
	}
}

func (c *wsConn) write(ctx context.Context, ws *websocket.Conn, readerDone <-chan struct{}) {
	for {
		var cl *call
		select {
		case cl = <-c.queue: // counted as due since enqueue
		case <-readerDone:
			return
		case <-ctx.Done():
			return
		}
		if wait := time.Until(cl.intended); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				c.inflight.Add(-1)
				cl.done(cl, nil, notSent)
				return
			}
		}
		if err := c.lim.Wait(ctx); err != nil {
			c.inflight.Add(-1)
			cl.done(cl, nil, notSent)
			return
		}
		c.nextID++
		id := strconv.FormatUint(c.nextID, 36)
		payload := cl.req.encode(id)
		c.mu.Lock()
		c.pending[id] = cl
		c.mu.Unlock()
		cl.sent = time.Now()
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		err := ws.Write(wctx, websocket.MessageText, payload)
		wcancel()
		if err != nil {
			return // the call is pending: failPending reports it lost
		}
	}
}

// read handles the frames ws receives until it fails. It reads without a
// context: serve closes ws to end it, and a context per read costs the
// library a callback registered and removed per frame. Frames are read into
// one buffer per connection rather than allocated.
func (c *wsConn) read(ws *websocket.Conn) {
	var buf bytes.Buffer
	for {
		_, r, err := ws.Reader(context.Background())
		if err != nil {
			return
		}
		if buf.Cap() > 16<<10 {
			buf = bytes.Buffer{} // a snapshot's size, not to be kept per viewer
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return
		}
		data := buf.Bytes()
		at := time.Now()
		f := c.sim.pushes.get(data)
		if f == nil {
			f = new(frame)
			if err := json.Unmarshal(data, f); err != nil {
				c.sim.rec.stray("x_bad_frame")
				continue
			}
			c.sim.pushes.put(data, f)
		}
		if f.ID == "" {
			if f.Type == "error" {
				c.sim.rec.stray(f.Code)
				continue
			}
			if c.onPush != nil {
				c.onPush(c, f, at)
			}
			continue
		}
		c.mu.Lock()
		cl := c.pending[f.ID]
		delete(c.pending, f.ID)
		c.mu.Unlock()
		if cl == nil {
			c.sim.rec.stray("x_unexpected_reply")
			continue
		}
		c.inflight.Add(-1)
		cl.done(cl, f, answered)
	}
}

// failPending ends every call awaiting an answer with o.
func (c *wsConn) failPending(o outcome) {
	c.mu.Lock()
	calls := make([]*call, 0, len(c.pending))
	for id, cl := range c.pending {
		calls = append(calls, cl)
		delete(c.pending, id)
	}
	c.mu.Unlock()
	for _, cl := range calls {
		c.inflight.Add(-1)
		cl.done(cl, nil, o)
	}
}

// failQueued ends every call never sent.
func (c *wsConn) failQueued() {
	for {
		select {
		case cl := <-c.queue:
			c.inflight.Add(-1)
			cl.done(cl, nil, notSent)
		default:
			return
		}
	}
}

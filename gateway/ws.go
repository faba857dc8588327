package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
)

// conn is one WebSocket connection. It has one reader goroutine (started
// by the handler, which returns), and a writer goroutine while frames are
// queued; subscriptions' updates are queued by the tenant's actor itself
// (Subscription.Notify). An idle connection holds one goroutine. All are
// owned by the connection and end with it.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	nc     net.Conn        // under ws
	cork   *corker         // under ws's writer; nil if ws writes to nc itself
	br     *bufio.Reader   // ws's; read only between two messages (waitReadable)
	rc     syscall.RawConn // nc's, to wait for its next message; nil if not supported
	early  bool            // bytes sent with the handshake are not in br before the first Read
	ctx    context.Context // ends when the connection closes
	cancel context.CancelFunc
	done   chan struct{}
	lim    *rate.Limiter
	ip     string         // the client's address, for the shared rate limits
	wg     sync.WaitGroup // writer, and handlers of ended subscriptions

	qmu     sync.Mutex // guards the fields below
	queue   []outFrame // for the writer; at most Config.OutQueue, full means the client is too slow
	writing bool       // a writer goroutine runs
	stopped bool       // no more writes, nor goroutines

	mu        sync.Mutex // guards the fields below
	principal Principal
	tenant    string
	authed    bool
	claimed   string // ?tenant= of the handshake, for a later auth message
	kind      string // principal kind for the connections metric
	subs      map[string]*actors.Subscription
	nextSub   int
	closing   bool
}

// websocket upgrades GET /v1/ws. A connection is bound to one tenant at the
// handshake: public ones by ?link=, staff and operators by their token
// (Authorization header, or an "auth" message as the first frame for
// browsers); operators name the tenant with ?tenant=.
func (s *Server) websocket(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var (
		p      Principal
		tenant string
		authed bool
	)
	ctx, cancel := s.reqCtx(r)
	defer cancel()
	switch {
	case q.Get("link") != "":
		t, err := s.tenantByLink(ctx, q.Get("link"))
		if err != nil {
			s.cfg.Metrics.Handshakes.WithLabelValues("bad_link").Inc()
			s.writeError(w, err)
			return
		}
		p, tenant, authed = Principal{Kind: "public", Subject: "link", Tenant: t, Perm: PermBook}, t, true
	case bearer(r) != "":
		var err error
		if p, err = s.cfg.Auth.AuthenticateToken(ctx, bearer(r)); err != nil {
			s.cfg.Metrics.Handshakes.WithLabelValues("unauthorized").Inc()
			s.writeError(w, err)
			return
		}
		if tenant, err = s.bindTenant(ctx, p, q.Get("tenant")); err != nil {
			s.cfg.Metrics.Handshakes.WithLabelValues("forbidden").Inc()
			s.writeError(w, err)
			return
		}
		authed = true
	}
	if authed && !s.allowCaller(w, p, tenant) {
		s.cfg.Metrics.Handshakes.WithLabelValues("rate_limited").Inc()
		return
	}
	// Browsers' origins: the tenant's own allow-list applies to a
	// connection bound to it, or (unauthenticated yet) claiming it with
	// ?tenant=, which its auth message must then match (bindTenant).
	originTenant := tenant
	if !authed {
		originTenant = q.Get("tenant")
	}
	patterns, err := s.originPatterns(ctx, r, originTenant)
	if err != nil {
		s.writeError(w, err)
		return
	}
	sb := &smallBuffers{ResponseWriter: w, bufs: &s.frames}
	ws, err := websocket.Accept(sb, r, &websocket.AcceptOptions{
		Subprotocols:   []string{Subprotocol},
		OriginPatterns: patterns,
	})
	if err != nil {
		s.cfg.Metrics.Handshakes.WithLabelValues("handshake").Inc()
		return // Accept has written the response (e.g. 403 for a foreign Origin)
	}
	ws.SetReadLimit(s.cfg.MaxFrameBytes)
	cctx, ccancel := context.WithCancel(context.Background())
	c := &conn{s: s, ws: ws, nc: sb.nc, cork: sb.cork, br: sb.br, rc: rawConn(sb.nc), early: sb.early, ctx: cctx, cancel: ccancel,
		done: make(chan struct{}), lim: newLimiter(s.cfg), ip: s.ClientIP(r), principal: p, tenant: tenant, authed: authed,
		subs: map[string]*actors.Subscription{}, claimed: q.Get("tenant")}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	c.kind = "unauthenticated"
	if authed {
		c.kind = p.Kind
	}
	s.cfg.Metrics.Connections.WithLabelValues(c.kind).Inc()
	c.welcome() // here: encoding it would grow the stack of the connection's goroutine
	// The connection is served on a goroutine of its own and the handler
	// returns: net/http's connection state (its 4 KiB read and write
	// buffers, the request and its headers) then becomes garbage instead
	// of living as long as the WebSocket does.
	go func() {
		defer func() {
			c.mu.Lock()
			kind := c.kind
			c.mu.Unlock()
			s.cfg.Metrics.Connections.WithLabelValues(kind).Dec()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			close(c.done) // last: Shutdown waits for it, then Conns is accurate
		}()
		defer func() {
			// net/http recovered the handler's panics; this goroutine is
			// no longer under it.
			if v := recover(); v != nil {
				s.log.Error("panic serving a websocket", "panic", v, "stack", string(debug.Stack()))
				c.cancel()
				_ = c.ws.CloseNow()
			}
		}()
		c.serve()
	}()
}

// Buffer sizes of a WebSocket's reader and writer. net/http hands a
// hijacked connection its own 4 KiB buffers; these are enough for the
// frame headers, the small requests clients send and a delta, and larger
// frames bypass them.
const (
	wsReadBuffer  = 256
	wsWriteBuffer = 512
)

// smallBuffers makes websocket.Accept use small bufio buffers (wsReadBuffer,
// wsWriteBuffer) for the hijacked connection instead of net/http's.
type smallBuffers struct {
	http.ResponseWriter
	nc    net.Conn      // once hijacked
	cork  *corker       // under the writer given to Accept
	bufs  *sync.Pool    // the corker's buffers (Server.frames)
	br    *bufio.Reader // given to Accept
	early bool          // the client sent bytes after its handshake
}

func (w *smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil { // empty after net/http's hijack
		nc.Close()
		return nil, nil, err
	}
	// Bytes the client sent after its handshake stay buffered in the new
	// reader (Accept keeps what is buffered and reads the rest from nc).
	var br *bufio.Reader
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(b)), nc), max(n, wsReadBuffer))
		if _, err := br.Peek(n); err != nil {
			nc.Close()
			return nil, nil, err
		}
	} else {
		br = bufio.NewReaderSize(nc, wsReadBuffer)
	}
	w.nc, w.cork, w.br, w.early = nc, &corker{nc: nc, bufs: w.bufs}, br, brw.Reader.Buffered() > 0
	return &corkedConn{Conn: nc, k: w.cork}, bufio.NewReadWriter(br, bufio.NewWriterSize(w.cork, wsWriteBuffer)), nil
}

// bindTenant decides which tenant a token-authenticated connection acts on.
func (s *Server) bindTenant(ctx context.Context, p Principal, claimed string) (string, error) {
	tenant := p.Tenant
	if p.Perm == PermOperator {
		if claimed == "" {
			return "", engine.Errorf(engine.CodeInvalid, "operators must name the tenant with ?tenant=")
		}
		tenant = claimed
	} else if claimed != "" && claimed != p.Tenant {
		return "", engine.Errorf(engine.CodeForbidden, "not allowed")
	}
	if _, err := s.tenantRecord(ctx, tenant); err != nil {
		return "", err
	}
	return tenant, nil
}

// AuthTimeout is how long a connection may stay unauthenticated.
const AuthTimeout = 30 * time.Second

func (c *conn) serve() {
	c.mu.Lock()
	authed := c.authed
	c.mu.Unlock()
	if !authed {
		t := time.AfterFunc(AuthTimeout, func() {
			c.mu.Lock()
			ok := c.authed
			c.mu.Unlock()
			if !ok {
				c.close(websocket.StatusPolicyViolation, "authenticate within 30 s")
			}
		})
		defer t.Stop()
	}
	c.reader()
	c.cancel()
	c.qmu.Lock()
	c.stopped = true // no wg.Add from here on
	c.queue = nil
	c.qmu.Unlock()
	c.mu.Lock()
	for _, sub := range c.subs {
		sub.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// welcome queues the first frame.
func (c *conn) welcome() {
	welcome := Frame{V: ProtocolVersion, Type: TypeWelcome}
	now := c.s.cfg.Now().UTC()
	welcome.ServerTime = &now
	if c.authed {
		welcome.Principal = &PrincipalInfo{Kind: c.principal.Kind, Tenant: c.tenant}
	}
	c.send(welcome)
}

// close ends the connection with a status; safe to call more than once.
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	already := c.closing
	c.closing = true
	c.mu.Unlock()
	if already {
		return
	}
	go func() {
		// Close does the closing handshake and may wait up to 5 s; it must
		// not hold up the caller (a tenant's actor or Shutdown).
		_ = c.ws.Close(code, reason)
		c.cancel()
	}()
}

// outFrame is a frame queued for the writer: encoded, or a subscription's
// update, which the writer encodes (not the actor that queues it), or the
// reply to a subscribe, which shares its slots' encoding.
type outFrame struct {
	b    []byte
	u    *actors.Update
	snap *snapshot
	sub  string // the id of u's or snap's subscription
	id   string // the request snap answers
}

// maxPooledFrame is the largest buffer put back in Server.frames.
const maxPooledFrame = 64 << 10

// pooledBuffer returns an empty buffer from pool (Server.frames).
func pooledBuffer(pool *sync.Pool) *[]byte {
	if buf, ok := pool.Get().(*[]byte); ok {
		return buf
	}
	return new([]byte)
}

// send queues a frame for the writer. A full queue means the client does
// not read: the connection is closed rather than waited for.
func (c *conn) send(f Frame) { c.sendRaw(encodeFrame(f)) }

func (c *conn) sendRaw(b []byte) { c.enqueue(outFrame{b: b}) }

func (c *conn) enqueue(f outFrame) {
	c.qmu.Lock()
	ok := c.queueLocked(f)
	c.qmu.Unlock()
	if !ok {
		c.close(websocket.StatusPolicyViolation, "client too slow")
	}
}

// queueLocked queues f, starting the writer if it is not running. It
// reports false if the queue is full. Once the connection has ended,
// frames are dropped.
func (c *conn) queueLocked(f outFrame) bool {
	if c.stopped || c.ctx.Err() != nil {
		return true
	}
	if len(c.queue) >= c.s.cfg.OutQueue {
		return false
	}
	c.queue = append(c.queue, f)
	if !c.writing {
		c.writing = true
		c.wg.Add(1)
		go c.writer()
	}
	return true
}

// goLocked runs f on a goroutine the connection waits for, unless the
// connection has ended.
func (c *conn) goLocked(f func()) {
	if c.stopped || c.ctx.Err() != nil {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// writer writes the queued frames and ends when the queue is empty, so
// that an idle connection holds no writer goroutine (nor an empty queue).
// It takes what is queued at once and writes it corked: one write(2) for
// the frames that queued up together.
func (c *conn) writer() {
	defer c.wg.Done()
	var spare []outFrame // the batch written last, emptied: the next queue while busy
	for {
		c.qmu.Lock()
		if len(c.queue) == 0 || c.stopped || c.ctx.Err() != nil {
			c.writing = false
			c.queue = nil
			c.qmu.Unlock()
			return
		}
		batch := c.queue
		c.queue = spare
		c.qmu.Unlock()
		err := c.writeBatch(batch) // empties batch
		spare = batch[:0]
		if err != nil {
			c.qmu.Lock()
			c.stopped, c.writing, c.queue = true, false, nil
			c.qmu.Unlock()
			c.close(websocket.StatusPolicyViolation, "write timed out")
			return
		}
	}
}

// writeBatch writes frames, corked when there are several. The deadline
// (Config.WriteTimeout for the batch) drops the TCP connection, as the
// library does when the context of a write ends; a context would stay
// referenced by the library until the next write, ~700 bytes per idle
// connection. Not c.ctx either: it ends as soon as the reader stops,
// racing the close handshake that tells the client why.
func (c *conn) writeBatch(batch []outFrame) error {
	t := time.AfterFunc(c.s.cfg.WriteTimeout, func() { _ = c.nc.Close() })
	defer t.Stop()
	corked := len(batch) > 1 && c.cork != nil
	if corked {
		c.cork.cork()
	}
	var err error
	for i := range batch {
		if err == nil {
			err = c.writeFrame(batch[i])
		}
		batch[i] = outFrame{}
	}
	if corked {
		if uerr := c.cork.uncork(); err == nil {
			err = uerr
		}
	}
	return err
}

// writeFrame writes one frame, encoding it into a pooled buffer if it is
// assembled from a shared encoding.
func (c *conn) writeFrame(f outFrame) error {
	b, buf := f.b, (*[]byte)(nil)
	if b == nil {
		buf = pooledBuffer(&c.s.frames)
		b = c.encode(f, (*buf)[:0])
	}
	err := c.ws.Write(context.Background(), websocket.MessageText, b)
	if buf != nil && cap(b) <= maxPooledFrame {
		*buf = b[:0] // b may be buf grown, or an encoding of its own
		c.s.frames.Put(buf)
	}
	return err
}

// encode returns the frame of f, appended to buf when it is assembled from
// a shared encoding.
func (c *conn) encode(f outFrame, buf []byte) []byte {
	if f.snap != nil {
		return f.snap.appendFrame(buf, f.id, f.sub)
	}
	if f.u == nil {
		return f.b
	}
	u := f.u
	v := u.Version
	switch u.Kind {
	case actors.UpdateDelta:
		return appendWithSub(buf, u.Memo(encodeDelta), f.sub)
	case actors.UpdateSnapshot:
		return encodeFrame(Frame{V: ProtocolVersion, Type: TypeAvailability, Sub: f.sub, Version: &v,
			Resync: true, Slots: u.Slots})
	default: // UpdateFeed
		return encodeFrame(Frame{V: ProtocolVersion, Type: TypeBookingEvents, Sub: f.sub, Version: &v, Events: publicEvents(u.Events)})
	}
}

// reader reads and handles the client's messages, one at a time. An idle
// connection is this goroutine waiting for the next one, and its stack is
// most of what the connection costs: it waits in waitReadable, which needs
// little stack, and each message is read and handled on a short-lived
// goroutine, so that the stack that reading a frame, decoding it, waiting
// for the actor and encoding the reply need is not kept while idle. Where
// it cannot wait without reading (TLS), it reads itself, in Read's deeper
// stack, and only the handling is done on the other goroutine.
func (c *conn) reader() {
	strikes := 0
	done := make(chan bool, 1)
	for {
		var m wsMessage
		readHere := !c.waitReadable()
		if readHere {
			if m = c.read(); m.err != nil {
				return
			}
		}
		go func() {
			ok := false
			defer func() {
				// As net/http recovered the handler's panics.
				if v := recover(); v != nil {
					c.s.log.Error("panic serving a websocket message", "panic", v, "stack", string(debug.Stack()))
					c.close(websocket.StatusInternalError, "internal error")
				}
				done <- ok
			}()
			if !readHere {
				if m = c.read(); m.err != nil {
					return
				}
			}
			ok = c.message(m.typ, m.data, &strikes)
		}()
		if !<-done {
			return
		}
	}
}

// waitReadable returns when the client has sent something (or the
// connection failed), or at once if c.br holds bytes not read yet or the
// connection is closing. It reads nothing. It reports false, at once, if
// it cannot wait on this connection.
func (c *conn) waitReadable() bool {
	if c.rc == nil {
		return false
	}
	if c.early {
		// Accept keeps the bytes read past the handshake outside br
		// until the first Read.
		c.early = false
		return true
	}
	// c.br is read by c.ws in Read, which has returned, and in Close's
	// handshake, which starts only once closing is set under c.mu.
	c.mu.Lock()
	skip := c.closing || c.br.Buffered() > 0
	c.mu.Unlock()
	if !skip {
		_ = c.rc.Read(readable) // an error is for Read to report
	}
	return true
}

// wsMessage is a message read from the client, or why none was.
type wsMessage struct {
	typ  websocket.MessageType
	data []byte
	err  error
}

// read reads the next message. An error ends the connection.
func (c *conn) read() wsMessage {
	// Not c.ctx: it ends only after c.ws is closed, which ends Read,
	// and the library would hang a callback on it for every frame
	// (~1 KiB per idle connection).
	typ, data, err := c.ws.Read(context.Background())
	if err != nil {
		var ce websocket.CloseError
		if !errors.As(err, &ce) && !errors.Is(err, context.Canceled) {
			// Frame over the read limit, protocol error, network error.
			c.close(websocket.StatusPolicyViolation, "read failed")
		}
	}
	return wsMessage{typ, data, err}
}

// message handles one message from the client; false ends the connection.
func (c *conn) message(typ websocket.MessageType, data []byte, strikes *int) bool {
	if !c.lim.Allow() {
		*strikes++
		req, _ := DecodeRequest(data) // only for its id
		c.send(errFrame(req.ID, engine.Errorf(engine.CodeRateLimited, "more than %.0f messages per second; slow down", c.s.cfg.MsgRate)))
		if *strikes > 3*c.s.cfg.MsgBurst {
			c.close(websocket.StatusPolicyViolation, "rate limit")
			return false
		}
		return true
	}
	*strikes = 0
	if err := c.allowMessage(); err != nil {
		req, _ := DecodeRequest(data) // only for its id
		c.send(errFrame(req.ID, err))
		return true
	}
	if typ != websocket.MessageText {
		c.send(errFrame("", engine.Errorf(engine.CodeInvalid, "frames must be text (JSON)")))
		return true
	}
	req, derr := DecodeRequest(data)
	if derr != nil {
		c.count(req.Type, derr)
		c.send(errFrame(req.ID, derr))
		return true
	}
	c.handle(req)
	return true
}

func (c *conn) count(typ string, err error) {
	result := "ok"
	if err != nil {
		var ee *engine.Error
		result = string(engine.CodeInternal)
		if errors.As(err, &ee) {
			result = string(ee.Code)
		}
	}
	switch typ {
	case TypeAuth, TypePing, TypeTenantInfo, TypeSubscribe, TypeUnsubscribe, TypeHold, TypeRelease, TypeBook,
		TypeCancel, TypeReschedule, TypeSubscribeBookings:
	default:
		typ = "other" // bounded label set
	}
	c.s.cfg.Metrics.Messages.WithLabelValues(typ, result).Inc()
}

// handle serves one request. Commands wait for the actor's answer on this
// goroutine, so a connection's requests are answered in order.
func (c *conn) handle(req Request) {
	f, err := c.dispatch(req)
	c.count(req.Type, err)
	if err != nil {
		c.send(errFrame(req.ID, asError(c.s.log, err)))
		return
	}
	if f != nil {
		f.V, f.ID = ProtocolVersion, req.ID
		c.send(*f)
	}
}

// messageNeeds is what a message type needs: the permission on the
// connection's tenant, and the scope a scoped principal must carry. A type
// that is not here is refused by need; auth, ping and unsubscribe (which
// touches only the connection's own subscriptions) need nothing.
func messageNeeds(typ string) (Permission, string, bool) {
	switch typ {
	case TypeTenantInfo, TypeSubscribe:
		return PermBook, ScopeAvailabilityRead, true
	case TypeHold, TypeRelease, TypeBook:
		return PermBook, ScopeBookingsWrite, true
	case TypeCancel, TypeReschedule:
		return PermStaff, ScopeBookingsWrite, true
	case TypeSubscribeBookings:
		return PermStaff, ScopeBookingsRead, true
	}
	return 0, "", false
}

// need checks that the connection may send a message of type typ and
// returns its tenant.
func (c *conn) need(typ string) (string, error) {
	perm, scope, ok := messageNeeds(typ)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.authed {
		return "", engine.Errorf(engine.CodeUnauthorized, "authenticate first: send {\"type\":\"auth\",\"token\":…}")
	}
	if !ok || !c.principal.Can(c.tenant, perm) {
		return "", engine.Errorf(engine.CodeForbidden, "not allowed on this connection")
	}
	if err := checkScope(c.principal, scope); err != nil {
		return "", err
	}
	return c.tenant, nil
}

func (c *conn) dispatch(req Request) (*Frame, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.RequestTimeout)
	defer cancel()
	switch req.Type {
	case TypePing:
		now := c.s.cfg.Now().UTC()
		return &Frame{Type: TypePong, ServerTime: &now}, nil
	case TypeAuth:
		return c.auth(ctx, req)
	case TypeTenantInfo:
		tenant, err := c.need(TypeTenantInfo)
		if err != nil {
			return nil, err
		}
		var info *TenantInfo
		err = c.s.cfg.Tenants.Read(ctx, tenant, func(st *engine.State, _ uint64) error {
			cfg, ok := st.Config()
			if !ok {
				return engine.Errorf(engine.CodeNotFound, "tenant is not set up yet")
			}
			info = publicInfo(tenant, cfg)
			return nil
		})
		return &Frame{Type: TypeTenantInfo, Tenant: info}, err
	case TypeSubscribe:
		return c.subscribe(ctx, req)
	case TypeUnsubscribe:
		c.mu.Lock()
		sub, ok := c.subs[req.Sub]
		delete(c.subs, req.Sub)
		c.mu.Unlock()
		if !ok {
			return nil, engine.Errorf(engine.CodeNotFound, "no subscription %q on this connection", req.Sub)
		}
		sub.Close()
		return &Frame{Type: TypeUnsubscribed, Sub: req.Sub}, nil
	case TypeHold:
		tenant, err := c.need(TypeHold)
		if err != nil {
			return nil, err
		}
		if req.AnyResource {
			return nil, errAnyResource
		}
		start, perr := parseTime("start", req.Start)
		if perr != nil {
			return nil, perr
		}
		if req.TTLSec < 0 || req.TTLSec > engine.MaxHoldTTLSec {
			return nil, engine.Errorf(engine.CodeInvalid, "ttl_sec must be 0 (tenant default) to %d", engine.MaxHoldTTLSec)
		}
		rep, err := c.s.cfg.Tenants.Do(ctx, tenant, engine.PlaceHold{HoldID: NewID("hd_"), ServiceID: req.Service,
			ResourceID: req.Resource, Start: start, TTL: time.Duration(req.TTLSec) * time.Second, IdempotencyKey: req.IdempotencyKey})
		if err != nil {
			return nil, err
		}
		return &Frame{Type: TypeHeld, Hold: rep.Hold, Version: &rep.Seq, Duplicate: rep.Duplicate}, nil
	case TypeRelease:
		tenant, err := c.need(TypeRelease)
		if err != nil {
			return nil, err
		}
		rep, err := c.s.cfg.Tenants.Do(ctx, tenant, engine.ReleaseHold{HoldID: req.HoldID})
		if err != nil {
			return nil, err
		}
		return &Frame{Type: TypeReleased, Hold: rep.Hold, Version: &rep.Seq}, nil
	case TypeBook:
		return c.book(ctx, req)
	case TypeCancel:
		tenant, err := c.need(TypeCancel)
		if err != nil {
			return nil, err
		}
		rep, err := c.s.cfg.Tenants.Do(ctx, tenant, engine.Cancel{BookingID: req.BookingID, Reason: req.Reason, IdempotencyKey: req.IdempotencyKey})
		if err != nil {
			return nil, err
		}
		return &Frame{Type: TypeCancelled, Booking: rep.Booking, Version: &rep.Seq, Duplicate: rep.Duplicate}, nil
	case TypeReschedule:
		tenant, err := c.need(TypeReschedule)
		if err != nil {
			return nil, err
		}
		start, perr := parseTime("start", req.Start)
		if perr != nil {
			return nil, perr
		}
		rep, err := c.s.cfg.Tenants.Do(ctx, tenant, engine.Reschedule{BookingID: req.BookingID, Start: start,
			ResourceID: req.Resource, AnyResource: req.AnyResource, IdempotencyKey: req.IdempotencyKey})
		if err != nil {
			return nil, err
		}
		return &Frame{Type: TypeRescheduled, Booking: rep.Booking, Version: &rep.Seq, Duplicate: rep.Duplicate}, nil
	case TypeSubscribeBookings:
		return c.subscribeBookings(ctx, req)
	}
	return nil, engine.Errorf(engine.CodeUnknownType, "unknown message type %q", req.Type)
}

func (c *conn) auth(ctx context.Context, req Request) (*Frame, error) {
	c.mu.Lock()
	authed := c.authed
	c.mu.Unlock()
	if authed {
		return nil, engine.Errorf(engine.CodeInvalid, "this connection is already authenticated")
	}
	p, err := c.s.cfg.Auth.AuthenticateToken(ctx, req.Token)
	if err != nil {
		return nil, err
	}
	// The tenant comes from the principal; operators name it with the
	// handshake's ?tenant= parameter.
	tenant, err := c.s.bindTenant(ctx, p, c.claimed)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.principal, c.tenant, c.authed = p, tenant, true
	c.s.cfg.Metrics.Connections.WithLabelValues(c.kind).Dec()
	c.kind = p.Kind
	c.s.cfg.Metrics.Connections.WithLabelValues(c.kind).Inc()
	c.mu.Unlock()
	return &Frame{Type: TypeAuthed, Principal: &PrincipalInfo{Kind: p.Kind, Tenant: tenant}}, nil
}

func (c *conn) book(ctx context.Context, req Request) (*Frame, error) {
	tenant, err := c.need(TypeBook)
	if err != nil {
		return nil, err
	}
	if req.Customer == nil {
		return nil, engine.Errorf(engine.CodeInvalid, "customer (name, email) is required")
	}
	if req.AnyResource {
		return nil, errAnyResource
	}
	cmd := engine.Book{BookingID: NewID("bk_"), HoldID: req.HoldID, ServiceID: req.Service, ResourceID: req.Resource,
		Customer: *req.Customer, IdempotencyKey: req.IdempotencyKey}
	if req.Start != "" || req.HoldID == "" {
		start, perr := parseTime("start", req.Start)
		if perr != nil {
			return nil, perr
		}
		cmd.Start = start
	}
	rep, err := c.s.cfg.Tenants.Do(ctx, tenant, cmd)
	if err != nil {
		return nil, err
	}
	return &Frame{Type: TypeBooked, Booking: rep.Booking, Version: &rep.Seq, Duplicate: rep.Duplicate}, nil
}

var errAnyResource = engine.Errorf(engine.CodeInvalid, "any_resource applies to reschedule only; leave resource empty to hold or book any resource")

// endFrame says why a subscription ended, in the same codes for
// availability and feeds.
func (c *conn) endFrame(id string, err error) Frame {
	f := Frame{V: ProtocolVersion, Type: TypeSubscriptionEnded, Sub: id}
	var ee *engine.Error
	switch {
	case err == nil:
		return f
	case errors.Is(err, actors.ErrSlowConsumer):
		ee = engine.Errorf(engine.CodeOverloaded, "this connection fell behind; subscribe again")
	case errors.Is(err, actors.ErrStopped):
		ee = engine.Errorf(engine.CodeUnavailable, "the server is restarting this tenant; subscribe again")
	default:
		ee = asError(c.s.log, err)
	}
	f.Code, f.Message = string(ee.Code), ee.Message
	return f
}

func (c *conn) addSub(sub *actors.Subscription) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.subs) >= c.s.cfg.MaxSubsPerConn {
		return "", false
	}
	c.nextSub++
	id := "s" + strconv.Itoa(c.nextSub)
	c.subs[id] = sub
	return id, true
}

// availabilityQueue is the updates an availability subscription queues in
// the actor before it is dropped as slow. Its relay empties the queue at
// every update, so it only holds what comes between the actor's answer and
// the start of the relay; a subscription that overflows it is resynced.
// (Feeds have no resync: they keep the registry's default.)
const availabilityQueue = 8

func (c *conn) subscribe(ctx context.Context, req Request) (*Frame, error) {
	tenant, err := c.need(TypeSubscribe)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	full := len(c.subs) >= c.s.cfg.MaxSubsPerConn
	c.mu.Unlock()
	if full {
		return nil, engine.Errorf(engine.CodeInvalid, "at most %d subscriptions per connection", c.s.cfg.MaxSubsPerConn)
	}
	q := engine.AvailabilityQuery{ServiceID: req.Service, ResourceID: req.Resource, From: req.From, To: req.To, TimeZone: req.TZ}
	sub, err := c.s.cfg.Tenants.SubscribeAvailability(ctx, tenant, q, availabilityQueue)
	if err != nil {
		return nil, err
	}
	id, ok := c.addSub(sub)
	if !ok {
		sub.Close()
		return nil, engine.Errorf(engine.CodeInvalid, "at most %d subscriptions per connection", c.s.cfg.MaxSubsPerConn)
	}
	// The first update is the snapshot; it is already queued.
	first, open := <-sub.C
	if !open || first.Kind != actors.UpdateSnapshot {
		return nil, engine.Errorf(engine.CodeUnavailable, "subscription ended at once; retry")
	}
	// The reply is queued before the relay starts, so the client knows the
	// subscription id before its first delta arrives.
	if snap := c.s.snapshots.get(tenant, q, first.Version, first.Slots); snap != nil {
		c.enqueue(outFrame{snap: snap, sub: id, id: req.ID})
	} else {
		v := first.Version
		c.send(Frame{V: ProtocolVersion, ID: req.ID, Type: TypeSubscribed, Sub: id, Version: &v, Slots: first.Slots})
	}
	c.relay(id, sub, func(sub *actors.Subscription) { c.availabilityEnded(id, tenant, q, sub) })
	return nil, nil
}

// relay has sub's updates queued for the writer as the actor publishes
// them, with no goroutine of the connection waiting for them; ended runs
// on a goroutine of its own once sub has ended.
func (c *conn) relay(id string, sub *actors.Subscription, ended func(*actors.Subscription)) {
	r := &relay{c: c, id: id, sub: sub, ended: ended}
	sub.Notify(r.pump)
	r.pump() // what was queued on sub.C before Notify
}

// relay moves a subscription's updates into its connection's queue.
type relay struct {
	c     *conn
	id    string
	sub   *actors.Subscription
	ended func(*actors.Subscription)
	done  bool // guarded by c.qmu: sub.C was closed
}

// pump queues what sub.C holds, without waiting. It runs on the actor's
// goroutine (Subscription.Notify), or on the connection's once, when the
// relay starts. A full queue closes the connection, as for any frame; the
// actor then drops the subscription when its own queue fills.
func (r *relay) pump() {
	c := r.c
	full := false
	c.qmu.Lock()
loop:
	for !r.done && !full && !c.stopped && c.ctx.Err() == nil {
		select {
		case u, ok := <-r.sub.C:
			if !ok {
				r.done = true
				c.goLocked(func() { r.ended(r.sub) })
				break loop
			}
			full = !c.queueLocked(outFrame{u: u, sub: r.id})
		default:
			break loop
		}
	}
	c.qmu.Unlock()
	if full {
		c.close(websocket.StatusPolicyViolation, "client too slow")
	}
}

// availabilityEnded follows the end of an availability subscription. If
// the actor dropped it because this connection fell behind, it
// resubscribes and the fresh snapshot is sent marked resync; otherwise the
// client is told why it ended, unless it unsubscribed.
func (c *conn) availabilityEnded(id, tenant string, q engine.AvailabilityQuery, sub *actors.Subscription) {
	err := sub.Err()
	if c.ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	current := c.subs[id] == sub
	c.mu.Unlock()
	if !current {
		return // unsubscribed
	}
	if errors.Is(err, actors.ErrSlowConsumer) {
		ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.RequestTimeout)
		next, serr := c.s.cfg.Tenants.SubscribeAvailability(ctx, tenant, q, availabilityQueue)
		cancel()
		if serr == nil {
			c.mu.Lock()
			if c.subs[id] == sub && c.ctx.Err() == nil {
				c.subs[id] = next
				c.mu.Unlock()
				// Its first update is a snapshot, sent as resync.
				c.relay(id, next, func(sub *actors.Subscription) { c.availabilityEnded(id, tenant, q, sub) })
				return
			}
			c.mu.Unlock()
			next.Close()
			return
		}
		err = serr
	}
	c.mu.Lock()
	delete(c.subs, id)
	c.mu.Unlock()
	c.send(c.endFrame(id, err))
}

func (c *conn) subscribeBookings(ctx context.Context, req Request) (*Frame, error) {
	tenant, err := c.need(TypeSubscribeBookings)
	if err != nil {
		return nil, err
	}
	sub, err := c.s.cfg.Tenants.SubscribeFeed(ctx, tenant, 0)
	if err != nil {
		return nil, err
	}
	id, ok := c.addSub(sub)
	if !ok {
		sub.Close()
		return nil, engine.Errorf(engine.CodeInvalid, "at most %d subscriptions per connection", c.s.cfg.MaxSubsPerConn)
	}
	var (
		list []engine.Booking
		ver  uint64
	)
	now := c.s.cfg.Now()
	err = c.s.cfg.Tenants.ReadLatest(ctx, tenant, func(st *engine.State, seq uint64) error {
		list, ver = st.Bookings(now.Add(-24*time.Hour), time.Time{}), seq
		return nil
	})
	if err != nil {
		sub.Close()
		return nil, err
	}
	// Events committed between SubscribeFeed and the Read have a version
	// <= ver: the client skips feed frames with version <= ver. The reply
	// goes out before any feed frame.
	c.send(Frame{V: ProtocolVersion, ID: req.ID, Type: TypeBookingsSubscribed, Sub: id, Version: &ver, Bookings: list})
	c.relay(id, sub, func(sub *actors.Subscription) {
		if c.ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		current := c.subs[id] == sub
		delete(c.subs, id)
		c.mu.Unlock()
		if current { // not ended by unsubscribe
			c.send(c.endFrame(id, sub.Err()))
		}
	})
	return nil, nil
}

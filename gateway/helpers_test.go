package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/internal/clock"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/persistence/pebble"
)

// operatorToken is the operator token of every test server.
const operatorToken = "sk_test_operator_0123456789"

// t0 is the fixed "now" of every test server: Monday 2030-01-07 07:00 in
// Rome, before anything opens. The gateway's Now and the actors' clock are
// the same clock.Manual, so both sides agree on the time and nothing moves
// unless a test advances it.
var t0 = time.Date(2030, time.January, 7, 6, 0, 0, 0, time.UTC)

// day1 is the date after t0: the first bookable day.
const day1 = "2030-01-08"

var ada = map[string]any{"name": "Ada Lovelace", "email": "ada@example.com"}

// testConfig is a small salon: two members of staff in two zones and a
// room seating three, all open 09:00–17:00 local time every day. Services
// are laid out hourly with buffers shorter than the gap, so that booking
// one slot removes exactly that slot. "tick" is a five-minute service open
// around the clock, for tests that need large availability frames.
func testConfig() engine.TenantConfig {
	week := func(from, to string) map[string][]engine.Range {
		m := map[string][]engine.Range{}
		for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
			m[d] = []engine.Range{{Start: from, End: to}}
		}
		return m
	}
	return engine.TenantConfig{
		Name:       "Salon",
		TimeZone:   "Europe/Rome",
		HoldTTLSec: 120,
		Resources: []engine.Resource{
			{ID: "alice", Name: "Alice (Rome)", Kind: "staff", TimeZone: "Europe/Rome", Capacity: 1, Weekly: week("09:00", "17:00")},
			{ID: "bob", Name: "Bob (New York)", Kind: "staff", TimeZone: "America/New_York", Capacity: 1, Weekly: week("09:00", "17:00")},
			{ID: "studio", Name: "Studio", Kind: "room", TimeZone: "Europe/Rome", Capacity: 3, Weekly: week("09:00", "17:00")},
			{ID: "kiosk", Name: "Kiosk", Kind: "room", TimeZone: "UTC", Capacity: 1, Weekly: week("00:00", "24:00")},
		},
		Services: []engine.Service{
			{ID: "cut", Name: "Haircut", DurationMin: 30, BufferAfterMin: 10, StepMin: 60, Resources: []string{"alice", "bob"}},
			{ID: "class", Name: "Class", DurationMin: 50, StepMin: 60, Resources: []string{"studio"}},
			{ID: "tick", Name: "Tick", DurationMin: 5, StepMin: 5, HorizonDays: 90, Resources: []string{"kiosk"}},
		},
	}
}

// at is hour:00 local time in zone, days after t0's date.
func at(tb testing.TB, zone string, days, hour int) time.Time {
	tb.Helper()
	loc, err := engine.LoadZone(zone)
	if err != nil {
		tb.Fatalf("LoadZone(%s) = %v", zone, err)
	}
	return engine.LocalInstant(engine.Date{Year: 2030, Month: time.January, Day: 7}.AddDays(days), hour*60, loc)
}

// rfc3339 formats t as the protocol expects.
func rfc3339(t time.Time) string { return t.Format(time.RFC3339) }

// aliceDay1 is the availability query of "cut" with alice on day1, in Rome.
func aliceDay1() map[string]any {
	return map[string]any{"service": "cut", "resource": "alice", "from": day1, "to": "2030-01-09", "tz": "Europe/Rome"}
}

// checkFor polls f every interval until it returns nil, failing the test
// with f's last error once timeout has passed (nats-server's helper).
func checkFor(tb testing.TB, timeout, interval time.Duration, f func() error) {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			tb.Fatalf("after %v: %v", timeout, err)
		case <-tick.C:
		}
	}
}

// timeout returns a context that ends after d or with the test.
func timeout(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// --- test server ---

type serverOptions struct {
	dir      string
	memstore bool
	clock    *clock.Manual
	gateway  func(*gateway.Config)
	actors   func(*actors.Config)
}

type option func(*serverOptions)

// withDir opens the pebble store in dir instead of a fresh temp dir (for
// restarts on the same data).
func withDir(dir string) option { return func(o *serverOptions) { o.dir = dir } }

// withMemstore uses the in-memory store, where durability is not the point.
func withMemstore() option { return func(o *serverOptions) { o.memstore = true } }

// withClock shares a clock (for restarts).
func withClock(c *clock.Manual) option { return func(o *serverOptions) { o.clock = c } }

// withGateway adjusts the gateway configuration.
func withGateway(f func(*gateway.Config)) option { return func(o *serverOptions) { o.gateway = f } }

type testStore interface {
	actors.Store
	gateway.Directory
	Close() error
}

var (
	_ testStore = (*pebble.Store)(nil)
	_ testStore = (*memstore.Store)(nil)
)

// testServer is slotd's gateway, actors and store in-process, served by an
// httptest server on 127.0.0.1:0.
type testServer struct {
	tb    testing.TB
	dir   string // pebble data directory; "" with memstore
	clock *clock.Manual
	store testStore
	reg   *actors.Registry
	gw    *gateway.Server
	srv   *httptest.Server
	URL   string // http://127.0.0.1:port
	logs  *logBuffer

	closeOnce sync.Once
}

// newTestServer starts a server; it is closed when the test ends (or by
// Close), in dependency order: gateway sockets, HTTP server, actors, store.
func newTestServer(tb testing.TB, opts ...option) *testServer {
	tb.Helper()
	var o serverOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.clock == nil {
		o.clock = clock.NewManual(t0)
	}
	ts := &testServer{tb: tb, clock: o.clock, logs: &logBuffer{}}
	log := slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.memstore {
		ts.store = memstore.New()
	} else {
		ts.dir = o.dir
		if ts.dir == "" {
			ts.dir = tb.TempDir()
		}
		st, err := pebble.Open(ts.dir, pebble.Options{})
		if err != nil {
			tb.Fatalf("pebble.Open(%s) = %v", ts.dir, err)
		}
		ts.store = st
	}
	acfg := actors.Config{Store: ts.store, Clock: ts.clock, Logger: log.With("component", "actors")}
	if o.actors != nil {
		o.actors(&acfg)
	}
	ts.reg = actors.NewRegistry(acfg)
	gcfg := gateway.Config{
		Tenants:   ts.reg,
		Directory: ts.store,
		Auth:      gateway.NewOperatorToken(operatorToken),
		Logger:    log.With("component", "gateway"),
		Now:       ts.clock.Now,
	}
	if o.gateway != nil {
		o.gateway(&gcfg)
	}
	ts.gw = gateway.New(gcfg)
	ts.srv = httptest.NewServer(ts.gw)
	ts.URL = ts.srv.URL
	tb.Cleanup(ts.Close)
	return ts
}

// Close stops everything, in order; safe to call more than once. It fails
// the test if the gateway could not close its sockets in time.
func (ts *testServer) Close() {
	ts.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		ts.gw.Shutdown(ctx)
		if n := ts.gw.Conns(); n != 0 {
			ts.tb.Errorf("after Shutdown (%v): %d WebSocket connections still open", time.Since(start).Round(time.Millisecond), n)
		}
		ts.srv.Close()
		ts.reg.Close()
		if err := ts.store.Close(); err != nil {
			ts.tb.Errorf("store Close() = %v", err)
		}
		if errs := ts.logs.errors(); len(errs) > 0 {
			ts.tb.Errorf("error-level log lines (only internal errors are logged as errors):\n%s", strings.Join(errs, "\n"))
		}
		if ts.tb.Failed() {
			ts.tb.Logf("server log:\n%s", ts.logs.String())
		}
	})
}

// restart closes ts and starts a new registry and gateway on the same data
// directory and clock.
func (ts *testServer) restart(tb testing.TB, opts ...option) *testServer {
	tb.Helper()
	if ts.dir == "" {
		tb.Fatal("restart needs a pebble store")
	}
	ts.Close()
	return newTestServer(tb, append([]option{withDir(ts.dir), withClock(ts.clock)}, opts...)...)
}

// logBuffer collects the server's log lines.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) errors() []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, "level=ERROR") {
			out = append(out, line)
		}
	}
	return out
}

// state returns the tenant's snapshot bytes and journal sequence, read
// inside its actor.
func (ts *testServer) state(tb testing.TB, tenant string) ([]byte, uint64) {
	tb.Helper()
	var (
		snap []byte
		seq  uint64
	)
	err := ts.reg.Read(timeout(tb, 10*time.Second), tenant, func(st *engine.State, s uint64) error {
		var err error
		snap, err = st.MarshalSnapshot()
		seq = s
		return err
	})
	if err != nil {
		tb.Fatalf("Read(%s) = %v", tenant, err)
	}
	return snap, seq
}

// seq is the tenant's journal sequence.
func (ts *testServer) seq(tb testing.TB, tenant string) uint64 {
	tb.Helper()
	_, seq := ts.state(tb, tenant)
	return seq
}

// --- HTTP ---

// httpResult is a finished HTTP exchange.
type httpResult struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends an HTTP request; body is JSON-encoded unless it is []byte or a
// string. token "" sends no Authorization header.
func (ts *testServer) do(tb testing.TB, method, path, token string, body any, hdr ...string) httpResult {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			tb.Fatalf("marshal %T: %v", body, err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(timeout(tb, 20*time.Second), method, ts.URL+path, rd)
	if err != nil {
		tb.Fatalf("NewRequest(%s %s) = %v", method, path, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.srv.Client().Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return httpResult{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// want checks the status and decodes the JSON body into out (if not nil).
func (r httpResult) want(tb testing.TB, status int, out any) httpResult {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	if out != nil {
		if err := json.Unmarshal(r.Body, out); err != nil {
			tb.Fatalf("decode %s: %v", r.Body, err)
		}
	}
	return r
}

// wantError checks an error response: the status, and a body that is
// exactly {"error":{"code","message"}} with the given code.
func (r httpResult) wantError(tb testing.TB, status int, code engine.Code) {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	checkErrorBody(tb, r.Header, r.Body, code)
}

func checkErrorBody(tb testing.TB, h http.Header, body []byte, code engine.Code) {
	tb.Helper()
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Errorf("error Content-Type %q, want application/json", ct)
	}
	var eb struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil || eb.Error == nil {
		tb.Fatalf("error body %s is not {\"error\":{\"code\",\"message\"}}: %v", body, err)
	}
	if eb.Error.Code != string(code) || eb.Error.Message == "" {
		tb.Fatalf("error body %s: want code %q and a message", body, code)
	}
}

// createTenant creates a tenant through the HTTP API and returns its
// booking link.
func (ts *testServer) createTenant(tb testing.TB, id string, cfg engine.TenantConfig) string {
	tb.Helper()
	var view gateway.TenantView
	ts.do(tb, "POST", "/v1/tenants", operatorToken, gateway.CreateTenantRequest{ID: id, Config: cfg}).want(tb, http.StatusCreated, &view)
	if view.ID != id || len(view.Link) != 26 || view.BookingURL != "/book/"+view.Link {
		tb.Fatalf("POST /v1/tenants = %+v, want id %s and a 26-character link", view, id)
	}
	return view.Link
}

// --- WebSocket ---

// wsClient is a real WebSocket client (coder/websocket) with a reader
// goroutine that buffers every frame, so that replies are matched by id
// and pushes wait until a test asks for them.
type wsClient struct {
	tb      testing.TB
	conn    *websocket.Conn
	welcome gateway.Frame
	nextID  atomic.Int64

	mu      sync.Mutex // guards the fields below
	frames  []gateway.Frame
	changed chan struct{} // closed and replaced on every change
	err     error         // why reading stopped
	bad     []string      // protocol violations seen

	done chan struct{} // reader ended
}

// dialOptions are the client's handshake options.
type dialOptions struct {
	header  http.Header
	readBuf int // SO_RCVBUF of the client socket; 0: the system's
}

// wsURL is the WebSocket URL of /v1/ws with a query.
func (ts *testServer) wsURL(query string) string {
	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/v1/ws"
	if query != "" {
		u += "?" + query
	}
	return u
}

// rawDial performs the handshake and returns the bare connection.
func (ts *testServer) rawDial(tb testing.TB, query string, o dialOptions) (*websocket.Conn, *http.Response, error) {
	tb.Helper()
	dopts := &websocket.DialOptions{HTTPHeader: o.header, Subprotocols: []string{gateway.Subprotocol}}
	if o.readBuf > 0 {
		d := &net.Dialer{}
		dopts.HTTPClient = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := d.DialContext(ctx, network, addr)
				if err == nil {
					err = c.(*net.TCPConn).SetReadBuffer(o.readBuf)
				}
				return c, err
			},
		}}
	}
	conn, resp, err := websocket.Dial(timeout(tb, 10*time.Second), ts.wsURL(query), dopts)
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(64 << 20) // availability snapshots can be large
	tb.Cleanup(func() { _ = conn.CloseNow() })
	return conn, resp, nil
}

// dial connects, starts the reader and waits for the welcome frame.
func (ts *testServer) dial(tb testing.TB, query string, hdr http.Header) *wsClient {
	tb.Helper()
	conn, resp, err := ts.rawDial(tb, query, dialOptions{header: hdr})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		tb.Fatalf("Dial(%s) = HTTP %d, %v", query, status, err)
	}
	if got := conn.Subprotocol(); got != gateway.Subprotocol {
		tb.Errorf("negotiated subprotocol %q, want %q", got, gateway.Subprotocol)
	}
	c := &wsClient{tb: tb, conn: conn, changed: make(chan struct{}), done: make(chan struct{})}
	go c.readLoop()
	tb.Cleanup(c.close)
	c.welcome = c.next(timeout(tb, 10*time.Second), gateway.TypeWelcome)
	return c
}

// dialLink connects as the public booking page of link.
func (ts *testServer) dialLink(tb testing.TB, link string) *wsClient {
	tb.Helper()
	return ts.dial(tb, "link="+link, nil)
}

// dialOperator connects with the operator token in the Authorization
// header, bound to tenant.
func (ts *testServer) dialOperator(tb testing.TB, tenant string) *wsClient {
	tb.Helper()
	return ts.dial(tb, "tenant="+tenant, http.Header{"Authorization": {"Bearer " + operatorToken}})
}

func (c *wsClient) readLoop() {
	defer close(c.done)
	for {
		typ, data, err := c.conn.Read(context.Background())
		c.mu.Lock()
		if err != nil {
			c.err = err
			c.notifyLocked()
			c.mu.Unlock()
			return
		}
		var f gateway.Frame
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		switch derr := dec.Decode(&f); {
		case typ != websocket.MessageText:
			c.bad = append(c.bad, fmt.Sprintf("binary frame %q", data))
		case derr != nil:
			c.bad = append(c.bad, fmt.Sprintf("frame %s: %v", data, derr))
		case f.V != gateway.ProtocolVersion || f.Type == "":
			c.bad = append(c.bad, fmt.Sprintf("frame %s: want v %d and a type", data, gateway.ProtocolVersion))
		case f.Type == gateway.TypeError && (f.Code == "" || f.Message == ""):
			c.bad = append(c.bad, fmt.Sprintf("error frame %s without code or message", data))
		}
		c.frames = append(c.frames, f)
		c.notifyLocked()
		c.mu.Unlock()
	}
}

func (c *wsClient) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// close ends the connection normally and checks that every frame received
// was well formed.
func (c *wsClient) close() {
	_ = c.conn.Close(websocket.StatusNormalClosure, "")
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.bad {
		c.tb.Errorf("protocol violation: %s", b)
	}
}

// write sends one raw text frame.
func (c *wsClient) write(ctx context.Context, data []byte) error {
	return c.conn.Write(ctx, websocket.MessageText, data)
}

// await returns (and removes from the buffer) the first frame that match
// accepts, waiting for it until ctx ends or the connection closes.
func (c *wsClient) await(ctx context.Context, match func(gateway.Frame) bool) (gateway.Frame, error) {
	for {
		c.mu.Lock()
		for i, f := range c.frames {
			if match(f) {
				c.frames = slices.Delete(c.frames, i, i+1)
				c.mu.Unlock()
				return f, nil
			}
		}
		err, changed, n := c.err, c.changed, len(c.frames)
		c.mu.Unlock()
		if err != nil {
			return gateway.Frame{}, fmt.Errorf("connection ended (%v) with %d unmatched frames buffered", err, n)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return gateway.Frame{}, fmt.Errorf("%w with %d unmatched frames buffered: %s", ctx.Err(), n, c.summary())
		}
	}
}

// summary lists the buffered frames' types.
func (c *wsClient) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var types []string
	for _, f := range c.frames {
		types = append(types, f.Type+"/"+f.ID+"/"+f.Code)
	}
	return strings.Join(types, ", ")
}

// buffered returns a copy of the frames received and not yet taken.
func (c *wsClient) buffered() []gateway.Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.frames)
}

// next waits for the next frame of type typ (pushes and replies alike).
func (c *wsClient) next(ctx context.Context, typ string) gateway.Frame {
	c.tb.Helper()
	f, err := c.await(ctx, func(f gateway.Frame) bool { return f.Type == typ })
	if err != nil {
		c.tb.Fatalf("waiting for a %q frame: %v", typ, err)
	}
	return f
}

// tryCall sends a request and returns its reply (matched by id). It does
// not fail the test, so it may run on other goroutines.
func (c *wsClient) tryCall(ctx context.Context, typ string, fields map[string]any) (gateway.Frame, error) {
	id := fmt.Sprintf("r%d", c.nextID.Add(1))
	m := map[string]any{"v": gateway.ProtocolVersion, "id": id, "type": typ}
	maps.Copy(m, fields)
	b, err := json.Marshal(m)
	if err != nil {
		return gateway.Frame{}, err
	}
	if err := c.write(ctx, b); err != nil {
		return gateway.Frame{}, fmt.Errorf("write %s: %w", typ, err)
	}
	f, err := c.await(ctx, func(f gateway.Frame) bool { return f.ID == id })
	if err != nil {
		return gateway.Frame{}, fmt.Errorf("reply to %s: %w", typ, err)
	}
	return f, nil
}

// call sends a request and returns its reply.
func (c *wsClient) call(typ string, fields map[string]any) gateway.Frame {
	c.tb.Helper()
	f, err := c.tryCall(timeout(c.tb, 10*time.Second), typ, fields)
	if err != nil {
		c.tb.Fatal(err)
	}
	return f
}

// mustCall sends a request and fails unless the reply has type want.
func (c *wsClient) mustCall(typ string, fields map[string]any, want string) gateway.Frame {
	c.tb.Helper()
	f := c.call(typ, fields)
	if f.Type != want {
		c.tb.Fatalf("%s %v = %s %s (%s), want %s", typ, fields, f.Type, f.Code, f.Message, want)
	}
	return f
}

// wantErr sends a request and fails unless the reply is an error frame with
// code.
func (c *wsClient) wantErr(typ string, fields map[string]any, code engine.Code) gateway.Frame {
	c.tb.Helper()
	f := c.call(typ, fields)
	if f.Type != gateway.TypeError || f.Code != string(code) {
		c.tb.Fatalf("%s %v = %s %s (%s), want error %s", typ, fields, f.Type, f.Code, f.Message, code)
	}
	return f
}

// closed waits for the server to end the connection and returns the close
// status it sent (-1 if it sent none).
func (c *wsClient) closed(ctx context.Context) websocket.StatusCode {
	c.tb.Helper()
	select {
	case <-c.done:
	case <-ctx.Done():
		c.tb.Fatalf("connection still open: %v", ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return websocket.CloseStatus(c.err)
}

// bookFields are the fields of a direct booking of service on resource at
// start.
func bookFields(service, resource string, start time.Time, customer map[string]any) map[string]any {
	m := map[string]any{"service": service, "start": rfc3339(start), "customer": customer}
	if resource != "" {
		m["resource"] = resource
	}
	return m
}

// hasSlot reports whether slots has one starting at t.
func hasSlot(slots []engine.Slot, t time.Time) bool {
	return slices.ContainsFunc(slots, func(s engine.Slot) bool { return s.Start.Equal(t) })
}

// hasTime reports whether ts contains t.
func hasTime(ts []time.Time, t time.Time) bool {
	return slices.ContainsFunc(ts, func(x time.Time) bool { return x.Equal(t) })
}

// customer returns a distinct, valid customer.
func customer(i int) map[string]any {
	return map[string]any{"name": fmt.Sprintf("Customer %d", i), "email": fmt.Sprintf("c%d@example.com", i)}
}

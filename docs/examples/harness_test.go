package examples

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/slotd/slotd/internal/demo"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/internal/clock"
	"github.com/slotd/slotd/persistence/memstore"
)

// token is the operator token of the example server.
const token = "sk_example"

// epoch is the server's (manual) clock at the start of the examples: a
// Friday, nine days before Rome springs forward.
var epoch = time.Date(2026, 3, 20, 8, 0, 0, 0, time.UTC)

// instance is one in-process slotd: memstore, actors, gateway, wired as in
// cmd/slotd/run.go, with a manual clock.
type instance struct {
	t     *testing.T
	clk   *clock.Manual
	store *memstore.Store
	reg   *actors.Registry
	gw    *gateway.Server
	srv   *httptest.Server
	link  string

	failAppend  atomic.Bool                // Append fails while set
	blockAppend atomic.Pointer[appendGate] // Append waits at the gate while set
}

// appendGate holds journal appends, as a slow disk would.
type appendGate struct {
	entered chan struct{} // receives when an Append starts waiting
	open    chan struct{} // closed to let appends through
	once    sync.Once
}

// holdAppends makes every Append wait until release is called; entered
// reports each Append that starts waiting. release is safe to call more
// than once, and is also called at cleanup so that a failed test does not
// leave the actors stuck.
func (in *instance) holdAppends() (entered <-chan struct{}, release func()) {
	g := &appendGate{entered: make(chan struct{}, 64), open: make(chan struct{})}
	in.blockAppend.Store(g)
	release = func() {
		g.once.Do(func() {
			in.blockAppend.CompareAndSwap(g, nil)
			close(g.open)
		})
	}
	in.t.Cleanup(release)
	return g.entered, release
}

// brokenDir fails every directory read of the key "broken", to show what an
// internal error looks like.
type brokenDir struct{ gateway.Directory }

func (d brokenDir) GetDirectory(ctx context.Context, kind, key string) ([]byte, error) {
	if key == "broken" {
		return nil, errors.New("directory backend unreachable")
	}
	return d.Directory.GetDirectory(ctx, kind, key)
}

func newInstance(t *testing.T, acfg actors.Config) *instance {
	t.Helper()
	in := &instance{t: t, clk: clock.NewManual(epoch), store: memstore.New()}
	in.store.FailAppend = func(string) error {
		if g := in.blockAppend.Load(); g != nil {
			select {
			case g.entered <- struct{}{}:
			default:
			}
			<-g.open
		}
		if in.failAppend.Load() {
			return errors.New("disk unavailable")
		}
		return nil
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	preg := prometheus.NewRegistry()
	acfg.Store, acfg.Clock, acfg.Logger, acfg.Metrics = in.store, in.clk, log, actors.NewMetrics(preg)
	in.reg = actors.NewRegistry(acfg)
	in.gw = gateway.New(gateway.Config{
		Tenants: in.reg, Directory: brokenDir{in.store}, Auth: gateway.NewOperatorToken(token),
		Logger: log, Metrics: gateway.NewMetrics(preg), Now: in.clk.Now,
		MetricsHandler: promhttp.HandlerFor(preg, promhttp.HandlerOpts{}),
		Ready: func(ctx context.Context) error {
			_, err := in.store.ListDirectory(ctx, "meta")
			return err
		},
	})
	in.srv = httptest.NewServer(in.gw)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		in.gw.Shutdown(ctx)
		in.srv.Close()
		in.reg.Close()
	})
	return in
}

// createDemo creates the demo tenant directly (for the side instances).
func (in *instance) createDemo() {
	in.t.Helper()
	rec, err := in.gw.CreateTenant(context.Background(), "demo", demo.Config())
	if err != nil {
		in.t.Fatalf("create demo: %v", err)
	}
	in.link = rec.Link
}

// ---- recording ----

// book collects the rendered examples by name.
type book struct {
	t        *testing.T
	examples map[string]string
}

// ex is one example being recorded: a fenced block.
type ex struct {
	b    *book
	name string
	lang string
	buf  strings.Builder
}

func (b *book) ex(name, lang string) *ex {
	if _, dup := b.examples[name]; dup {
		b.t.Fatalf("example %s recorded twice", name)
	}
	return &ex{b: b, name: name, lang: lang}
}

func (e *ex) line(format string, args ...any) {
	fmt.Fprintf(&e.buf, format, args...)
	e.buf.WriteByte('\n')
}

func (e *ex) done() {
	e.b.examples[e.name] = "```" + e.lang + "\n" + strings.TrimRight(e.buf.String(), "\n") + "\n```"
}

// ---- WebSocket clients ----

type frame struct {
	raw  []byte
	Type string `json:"type"`
	ID   string `json:"id"`
	Sub  string `json:"sub"`
	Code string `json:"code"`
}

type client struct {
	t      *testing.T
	label  string
	c      *websocket.Conn
	resp   *http.Response
	frames chan frame
	mu     sync.Mutex
	endErr error // why the read loop ended
	n      int   // requests sent
}

func (in *instance) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(in.srv.URL, "http") + "/v1/ws" + query
}

// dial opens a WebSocket connection; the caller records the handshake.
func (in *instance) dial(label, query string, hdr http.Header, subprotocols ...string) *client {
	in.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, in.wsURL(query), &websocket.DialOptions{HTTPHeader: hdr, Subprotocols: subprotocols})
	if err != nil {
		in.t.Fatalf("dial %s: %v", label, err)
	}
	c.SetReadLimit(1 << 20)
	cl := &client{t: in.t, label: label, c: c, resp: resp, frames: make(chan frame, 1024)}
	go func() {
		defer close(cl.frames)
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				cl.mu.Lock()
				cl.endErr = err
				cl.mu.Unlock()
				return
			}
			var f frame
			if err := json.Unmarshal(data, &f); err != nil {
				in.t.Errorf("%s: frame is not JSON: %s", label, data)
			}
			f.raw = data
			cl.frames <- f
		}
	}()
	in.t.Cleanup(func() { c.CloseNow() })
	return cl
}

// next waits for the next frame.
func (c *client) next() (frame, bool) {
	select {
	case f, ok := <-c.frames:
		return f, ok
	case <-time.After(5 * time.Second):
		c.t.Fatalf("%s: no frame within 5 s", c.label)
	}
	return frame{}, false
}

// closeStatus reports how the server closed the connection.
func (c *client) closeStatus() (websocket.StatusCode, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ce websocket.CloseError
	if errors.As(c.endErr, &ce) {
		return ce.Code, ce.Reason
	}
	return -1, fmt.Sprint(c.endErr)
}

// send writes a request with v and a fresh id followed by kv; it returns the id.
func (e *ex) send(c *client, typ string, kv ...any) string {
	c.n++
	id := fmt.Sprintf("r%d", c.n)
	e.sendRaw(c, obj(append([]any{"v", 1, "id", id, "type", typ}, kv...)...))
	return id
}

// sendRaw writes a text frame as is and records it.
func (e *ex) sendRaw(c *client, data []byte) {
	e.line("// %s → server", c.label)
	e.line("%s", prettyJSON(data))
	e.write(c, websocket.MessageText, data)
}

func (e *ex) write(c *client, typ websocket.MessageType, data []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, typ, data); err != nil {
		e.b.t.Fatalf("%s: write: %v", c.label, err)
	}
}

func (e *ex) record(c *client, f frame) {
	e.line("// server → %s", c.label)
	e.line("%s", prettyJSON(f.raw))
}

// recv records frames on c until one of type typ (and, if id is set, with
// that id) arrives, and returns it.
func (e *ex) recv(c *client, typ, id string) frame {
	e.b.t.Helper()
	for {
		f, ok := c.next()
		if !ok {
			code, reason := c.closeStatus()
			e.b.t.Fatalf("%s: connection ended (%d %s) while waiting for %s", c.label, code, reason, typ)
		}
		e.record(c, f)
		if f.Type == typ && (id == "" || f.ID == id) {
			return f
		}
		if f.Type == "error" && f.ID == id && id != "" {
			e.b.t.Fatalf("%s: wanted %s, got %s", c.label, typ, f.raw)
		}
	}
}

// reply is recv for the answer to request id.
func (e *ex) reply(c *client, id, typ string) frame {
	e.b.t.Helper()
	return e.recv(c, typ, id)
}

// errReply expects an error frame with code for request id.
func (e *ex) errReply(c *client, id, code string) frame {
	e.b.t.Helper()
	f := e.recv(c, "error", id)
	if f.Code != code {
		e.b.t.Fatalf("%s: wanted error %s, got %s", c.label, code, f.raw)
	}
	return f
}

// settle records whatever else arrives on cs within a short while.
func (e *ex) settle(cs ...*client) {
	time.Sleep(150 * time.Millisecond)
	for _, c := range cs {
		for {
			select {
			case f, ok := <-c.frames:
				if !ok {
					goto next
				}
				e.record(c, f)
				continue
			default:
			}
			break
		}
	next:
	}
}

// drain discards pending frames without recording them.
func (c *client) drain() {
	time.Sleep(150 * time.Millisecond)
	c.discard()
}

// discard drops the frames already received.
func (c *client) discard() {
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// ---- HTTP ----

type hreq struct {
	method, path string
	header       []string // "Name: value" pairs, in order
	body         []byte
	showBody     string // shown instead of body when set
}

type hresp struct {
	status int
	header http.Header
	body   []byte
}

// respHeaders are the response headers worth showing.
var respHeaders = []string{"Content-Type", "WWW-Authenticate", "Sec-WebSocket-Protocol"}

func (in *instance) do(r hreq) hresp {
	in.t.Helper()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, in.srv.URL+r.path, body)
	if err != nil {
		in.t.Fatal(err)
	}
	req.Host = "localhost:8080" // slotd's default address, as in the examples' prose
	for _, h := range r.header {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := in.srv.Client().Do(req)
	if err != nil {
		in.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return hresp{status: resp.StatusCode, header: resp.Header, body: b}
}

// http performs r, records it and its response, and checks the status.
func (e *ex) http(in *instance, r hreq, want int) hresp {
	e.b.t.Helper()
	e.line("%s %s HTTP/1.1", r.method, r.path)
	for _, h := range r.header {
		e.line("%s", h)
	}
	switch {
	case r.showBody != "":
		e.line("")
		e.line("%s", r.showBody)
	case r.body != nil:
		e.line("")
		e.line("%s", prettyJSON(r.body))
	}
	resp := in.do(r)
	if resp.status != want {
		e.b.t.Fatalf("%s %s: status %d, want %d: %s", r.method, r.path, resp.status, want, resp.body)
	}
	e.line("")
	e.line("HTTP/1.1 %d %s", resp.status, http.StatusText(resp.status))
	for _, k := range respHeaders {
		if v := resp.header.Get(k); v != "" {
			e.line("%s: %s", k, v)
		}
	}
	if len(resp.body) > 0 {
		e.line("")
		ct := resp.header.Get("Content-Type")
		switch {
		case strings.HasPrefix(ct, "application/json"):
			e.line("%s", prettyJSON(resp.body))
		case strings.HasPrefix(ct, "text/plain"):
			e.line("%s", strings.TrimRight(string(resp.body), "\n"))
		default:
			first, _, _ := strings.Cut(string(resp.body), "\n")
			e.line("%s", first)
			e.line("… (%d bytes)", len(resp.body))
		}
	}
	return resp
}

func jsonBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}

// ---- rendering into protocol.md ----

var exampleRE = regexp.MustCompile(`(?s)<!-- example ([a-z0-9-]+) -->\n.*?<!-- /example -->`)

// render replaces every example region of doc with the recorded example.
func render(t *testing.T, path string, examples map[string]string) {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	var missing []string
	out := exampleRE.ReplaceAllFunc(doc, func(m []byte) []byte {
		name := string(exampleRE.FindSubmatch(m)[1])
		used[name] = true
		body, ok := examples[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		return []byte("<!-- example " + name + " -->\n" + body + "\n<!-- /example -->")
	})
	if len(missing) > 0 {
		t.Fatalf("%s refers to examples the generator does not make: %v", path, missing)
	}
	var unused []string
	for name := range examples {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Logf("examples not placed in %s: %v", path, unused)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

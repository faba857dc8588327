package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

// Helpers shared by the tests of cmd/slotd: an in-process slotd started
// through run, HTTP and WebSocket clients of its public API, and the
// invariant checks the crash and shutdown tests apply to a booking list.

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers:
// slotd writes its stdout and logs into it while the test polls it.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// checkFor calls fn every interval until it returns nil, and fails the test
// with fn's last error when timeout passes first.
func checkFor(tb testing.TB, timeout, interval time.Duration, fn func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not true after %v: %v", timeout, err)
		}
		<-tick.C
	}
}

// banner is what slotd prints on stdout once it listens.
type banner struct {
	base  string // http://localhost:port
	link  string // the demo tenant's booking link
	book  string // base + /book/ + link
	token string // operator token
}

// parseBanner reads slotd's stdout; ok is false until the "listening" and
// "operator token" lines are complete.
func parseBanner(out string) (b banner, ok bool) {
	var listening, tok bool
	lines := strings.Split(out, "\n")
	for _, line := range lines[:len(lines)-1] { // the last one is not complete yet
		switch {
		case strings.HasPrefix(line, "demo booking page: "):
			b.book = strings.TrimPrefix(line, "demo booking page: ")
			if i := strings.Index(b.book, " "); i >= 0 {
				b.book = b.book[:i]
			}
		case strings.HasPrefix(line, "slotd listening on "):
			f := strings.Fields(strings.TrimPrefix(line, "slotd listening on "))
			if len(f) > 0 {
				b.base, listening = f[0], true
			}
		case strings.HasPrefix(line, "operator token: "):
			f := strings.Fields(strings.TrimPrefix(line, "operator token: "))
			if len(f) > 0 {
				b.token, tok = f[0], true
			}
		}
	}
	if i := strings.LastIndex(b.book, "/book/"); i >= 0 {
		b.link = b.book[i+len("/book/"):]
	}
	return b, listening && tok
}

// slotd is one in-process slotd started with run.
type slotd struct {
	banner
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan error // run's result, sent once

	mu      sync.Mutex // guards the fields below
	stopped bool
	runErr  error
}

// startSlotd runs slotd in-process with args and an environment of env
// only, waits until it prints its banner and answers /healthz, and stops it
// when the test ends.
func startSlotd(tb testing.TB, args []string, env map[string]string) *slotd {
	tb.Helper()
	return startSlotdCtx(tb, context.Background(), args, env)
}

// startSlotdCtx is startSlotd with run's context derived from parent (which
// may carry a gatewayHook).
func startSlotdCtx(tb testing.TB, parent context.Context, args []string, env map[string]string) *slotd {
	tb.Helper()
	ctx, cancel := context.WithCancel(parent)
	s := &slotd{stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return testSecrets[k] // shared by every instance of a test, as in production
	}
	go func() { s.done <- run(ctx, args, getenv, s.stdout, s.stderr) }()
	tb.Cleanup(func() {
		if err := s.stop(tb); err != nil {
			tb.Errorf("run returned %v after cancel; stderr:\n%s", err, s.stderr)
		}
	})
	checkFor(tb, 30*time.Second, 5*time.Millisecond, func() error {
		select {
		case err := <-s.done:
			s.done <- err // for stop
			tb.Fatalf("run returned early: %v\nstdout:\n%s\nstderr:\n%s", err, s.stdout, s.stderr)
		default:
		}
		b, ok := parseBanner(s.stdout.String())
		if !ok {
			return fmt.Errorf("no banner yet; stdout:\n%s", s.stdout)
		}
		s.banner = b
		return nil
	})
	waitHealthy(tb, s.base)
	return s
}

// stop cancels run's context and waits for run to return, once; it returns
// run's result.
func (s *slotd) stop(tb testing.TB) error {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return s.runErr
	}
	s.stopped = true
	s.cancel()
	select {
	case s.runErr = <-s.done:
	case <-time.After(30 * time.Second):
		tb.Fatalf("run did not return within 30s of cancel; stderr:\n%s", s.stderr)
	}
	return s.runErr
}

// waitHealthy polls base/healthz until it answers 200.
func waitHealthy(tb testing.TB, base string) {
	tb.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	checkFor(tb, 30*time.Second, 10*time.Millisecond, func() error {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /healthz: %s", resp.Status)
		}
		return nil
	})
}

// getJSON fetches base+path with token and decodes a 200 answer into v.
func getJSON(ctx context.Context, base, path, token string, v any) error {
	return doJSON(ctx, http.MethodGet, base, path, token, nil, v)
}

// postJSON posts body as JSON to base+path with token and decodes a 200
// answer into v.
func postJSON(ctx context.Context, base, path, token string, body, v any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return doJSON(ctx, http.MethodPost, base, path, token, b, v)
}

// doJSON sends method base+path (with body as JSON, if any) and token, and
// decodes a 200 answer into v.
func doJSON(ctx context.Context, method, base, path, token string, body []byte, v any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, out)
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("%s %s: decode: %w", method, path, err)
	}
	return nil
}

// availability fetches the public availability of service for the next
// days (UTC dates, from today).
func availability(ctx context.Context, base, link, service string, days int) ([]engine.Slot, error) {
	from := time.Now().UTC()
	q := url.Values{"service": {service}, "from": {from.Format(time.DateOnly)},
		"to": {from.AddDate(0, 0, days).Format(time.DateOnly)}, "tz": {"UTC"}}
	var out struct {
		Slots []engine.Slot `json:"slots"`
	}
	if err := getJSON(ctx, base, "/v1/public/"+link+"/availability?"+q.Encode(), "", &out); err != nil {
		return nil, err
	}
	return out.Slots, nil
}

// listBookings fetches every booking of tenant with the operator token.
func listBookings(ctx context.Context, base, token, tenant string) ([]engine.Booking, error) {
	var out struct {
		Bookings []engine.Booking `json:"bookings"`
	}
	if err := getJSON(ctx, base, "/v1/tenants/"+tenant+"/bookings", token, &out); err != nil {
		return nil, err
	}
	return out.Bookings, nil
}

// capacities fetches each resource's capacity from the tenant's config.
func capacities(ctx context.Context, base, token, tenant string) (map[string]int, error) {
	var view struct {
		Config *engine.TenantConfig `json:"config"`
	}
	if err := getJSON(ctx, base, "/v1/tenants/"+tenant, token, &view); err != nil {
		return nil, err
	}
	if view.Config == nil {
		return nil, fmt.Errorf("tenant %s has no config", tenant)
	}
	caps := map[string]int{}
	for _, r := range view.Config.Resources {
		caps[r.ID] = r.Capacity
	}
	return caps, nil
}

// checkNoOverbooking reports every instant where the confirmed bookings of
// a resource, blocks (buffers) included, exceed its capacity, and every
// booking id listed twice.
func checkNoOverbooking(bookings []engine.Booking, caps map[string]int) []string {
	var problems []string
	seen := map[string]bool{}
	type edge struct {
		t  time.Time
		d  int
		id string
	}
	edges := map[string][]edge{}
	for _, b := range bookings {
		if seen[b.ID] {
			problems = append(problems, fmt.Sprintf("booking %s listed twice", b.ID))
		}
		seen[b.ID] = true
		if b.Status != engine.StatusConfirmed {
			continue
		}
		if !b.BlockStart.Before(b.BlockEnd) || b.BlockStart.After(b.Start) || b.BlockEnd.Before(b.End) {
			problems = append(problems, fmt.Sprintf("booking %s: block [%v, %v) does not cover [%v, %v)", b.ID, b.BlockStart, b.BlockEnd, b.Start, b.End))
		}
		edges[b.ResourceID] = append(edges[b.ResourceID], edge{b.BlockStart, +1, b.ID}, edge{b.BlockEnd, -1, b.ID})
	}
	for res, es := range edges {
		capacity, ok := caps[res]
		if !ok {
			problems = append(problems, fmt.Sprintf("bookings on unknown resource %q", res))
			continue
		}
		sort.Slice(es, func(i, j int) bool {
			if !es[i].t.Equal(es[j].t) {
				return es[i].t.Before(es[j].t)
			}
			return es[i].d < es[j].d // half-open blocks: an end frees before a start takes
		})
		cur := 0
		live := map[string]bool{}
		for _, e := range es {
			cur += e.d
			if e.d > 0 {
				live[e.id] = true
			} else {
				delete(live, e.id)
			}
			if cur > capacity {
				ids := make([]string, 0, len(live))
				for id := range live {
					ids = append(ids, id)
				}
				sort.Strings(ids)
				problems = append(problems, fmt.Sprintf("resource %s (capacity %d) has %d bookings at %v: %v", res, capacity, cur, e.t, ids))
			}
		}
	}
	return problems
}

// wsClient is a minimal client of slotd's WebSocket protocol: one request
// at a time, each answered by the frame echoing its id.
type wsClient struct {
	c   *websocket.Conn
	seq int
}

// dialLink opens a public WebSocket on a booking link and reads the welcome.
func dialLink(ctx context.Context, base, link string) (*wsClient, error) {
	u := "ws" + strings.TrimPrefix(base, "http") + "/v1/ws?link=" + url.QueryEscape(link)
	c, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u, err)
	}
	w := &wsClient{c: c}
	f, err := w.read(ctx)
	if err != nil {
		c.CloseNow()
		return nil, err
	}
	if f.Type != gateway.TypeWelcome {
		c.CloseNow()
		return nil, fmt.Errorf("first frame %q, want welcome", f.Type)
	}
	return w, nil
}

func (w *wsClient) read(ctx context.Context) (gateway.Frame, error) {
	var f gateway.Frame
	_, data, err := w.c.Read(ctx)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("decode frame %s: %w", data, err)
	}
	return f, nil
}

// send writes req with a fresh id and returns that id.
func (w *wsClient) send(ctx context.Context, req gateway.Request) (string, error) {
	w.seq++
	req.V, req.ID = gateway.ProtocolVersion, fmt.Sprintf("q%d", w.seq)
	b, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	return req.ID, w.c.Write(ctx, websocket.MessageText, b)
}

// do sends req and returns the frame answering it, skipping pushed frames.
// An error frame is returned as a frame, not an error.
func (w *wsClient) do(ctx context.Context, req gateway.Request) (gateway.Frame, error) {
	id, err := w.send(ctx, req)
	if err != nil {
		return gateway.Frame{}, err
	}
	for {
		f, err := w.read(ctx)
		if err != nil {
			return f, err
		}
		if f.ID == id {
			return f, nil
		}
		if f.Type == gateway.TypeError && f.ID == "" {
			return f, fmt.Errorf("request %s dropped: %s: %s", id, f.Code, f.Message)
		}
	}
}

func (w *wsClient) close() { w.c.Close(websocket.StatusNormalClosure, "") }

// testSecrets are the master keys and OAuth token key that slotd needs from
// the environment when it runs on a database; fixed test values.
var testSecrets = map[string]string{
	"SLOTD_MASTER_KEYS":  "test1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
	"SLOTD_OAUTH_SECRET": "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
	// A test-only audit key pair (slotd audit keygen).
	"SLOTD_AUDIT_SIGNER_KEY":   "PRIVATE+KEY+slotd-test+8c3e5958+AWThfjRBUzdHkr8RCghEsJ9l4n/GEn3QnZmt0YCbCeoB",
	"SLOTD_AUDIT_VERIFIER_KEY": "slotd-test+8c3e5958+AQAhHPq+dVYW5YiG3jhIlGapWjd2O51O2fFyYitLoq+J",
}

// Package examples produces the examples of docs/protocol.md by running
// them: an in-process slotd (memstore, actors, gateway wired as in
// cmd/slotd) with a manual clock, driven over real HTTP and a real
// WebSocket client. Every request, reply and push shown in the doc is what
// this run sent and received.
//
// As a plain test it checks that each exchange still behaves as documented
// (right reply types and error codes). With -write it also rewrites the
// example regions of docs/protocol.md:
//
//	go test ./docs/examples -run TestExamples -write
package examples

import (
	"context"
	"flag"
	"fmt"
	"github.com/slotd/slotd/internal/demo"
	"maps"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

var write = flag.Bool("write", false, "write the examples into ../protocol.md")

type scenario struct {
	t  *testing.T
	b  *book
	in *instance

	link     string
	page1    *client // public booking page (link), subscribed to haircut
	page2    *client // another customer's booking page
	operator *client // operator, bound to demo, subscribed to the booking feed
	sub1     string

	// bookings made along the way
	bkFromHold, bkDirect, bkHTTP string
}

func TestExamples(t *testing.T) {
	b := &book{t: t, examples: map[string]string{}}
	s := &scenario{t: t, b: b, in: newInstance(t, actors.Config{})}
	s.setupHTTP()
	s.connecting()
	s.messages()
	s.subscriptionEnded()
	s.wsErrors()
	s.httpAPI()
	s.httpErrors()
	s.operational()
	s.overloaded()
	s.resync()
	s.shutdown()
	if *write {
		render(t, "../protocol.md", b.examples)
	}
	if p := os.Getenv("SLOTD_EXAMPLES_DUMP"); p != "" {
		var sb strings.Builder
		for _, name := range sortedNames(b.examples) {
			fmt.Fprintf(&sb, "## %s\n\n%s\n\n", name, b.examples[name])
		}
		if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sortedNames(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

// ex starts an example: time moves on a second, and stray pushes on the
// long-lived connections are dropped so they do not leak into it.
func (s *scenario) ex(name, lang string) *ex {
	s.in.clk.Advance(time.Second)
	time.Sleep(50 * time.Millisecond)
	for _, c := range []*client{s.page1, s.page2, s.operator} {
		if c != nil {
			c.discard()
		}
	}
	return s.b.ex(name, lang)
}

var (
	auth = "Authorization: Bearer " + token
	ctJS = "Content-Type: application/json"
)

var customer = engine.Customer{Name: "Maria Rossi", Email: "maria@example.com", Phone: "+39 06 1234567"}

// fullConfig is the demo configuration after the examples added dan.
func fullConfig() engine.TenantConfig {
	cfg := demo.Config()
	cfg.Resources = append(cfg.Resources, danResource())
	for i := range cfg.Services {
		if cfg.Services[i].ID == "haircut" {
			cfg.Services[i].Resources = []string{"ana", "ben", "chloe", "dan"}
		}
	}
	return cfg
}

func danResource() engine.Resource {
	return engine.Resource{ID: "dan", Name: "Dan (Rome)", Kind: "staff", TimeZone: "Europe/Rome", Capacity: 1,
		Weekly: map[string][]engine.Range{"sat": {{Start: "10:00", End: "14:00"}}}}
}

func (s *scenario) setupHTTP() {
	in := s.in
	e := s.ex("http-create-tenant", "http")
	r := e.http(in, hreq{method: "POST", path: "/v1/tenants", header: []string{auth, ctJS},
		body: obj("id", "demo", "config", demo.Config())}, 201)
	e.done()
	s.link = decode[gateway.TenantRecord](s.t, r.body).Link
	in.link = s.link

	e = s.ex("http-list-tenants", "http")
	e.http(in, hreq{method: "GET", path: "/v1/tenants", header: []string{auth}}, 200)
	e.done()

	e = s.ex("http-put-resource", "http")
	dan := danResource()
	e.http(in, hreq{method: "PUT", path: "/v1/tenants/demo/resources/dan", header: []string{auth, ctJS},
		body: obj("name", dan.Name, "kind", dan.Kind, "time_zone", dan.TimeZone, "capacity", dan.Capacity, "weekly", dan.Weekly)}, 200)
	e.done()

	e = s.ex("http-put-service", "http")
	e.http(in, hreq{method: "PUT", path: "/v1/tenants/demo/services/haircut", header: []string{auth, ctJS},
		body: obj("name", "Haircut", "duration_min", 30, "buffer_after_min", 10, "step_min", 20, "min_notice_min", 60,
			"horizon_days", 60, "resources", []string{"ana", "ben", "chloe", "dan"})}, 200)
	e.done()

	e = s.ex("http-get-tenant", "http")
	e.http(in, hreq{method: "GET", path: "/v1/tenants/demo", header: []string{auth}}, 200)
	e.done()

	e = s.ex("http-public-info", "http")
	e.http(in, hreq{method: "GET", path: "/v1/public/" + s.link}, 200)
	e.done()

	e = s.ex("http-public-availability", "http")
	e.http(in, hreq{method: "GET", path: "/v1/public/" + s.link + "/availability?service=haircut&from=2026-03-28&to=2026-03-29&tz=America/New_York"}, 200)
	e.done()
}

// handshake records a successful WebSocket handshake.
func (s *scenario) handshake(name string, c *client, query string) {
	e := s.b.ex(name, "http")
	e.line("GET /v1/ws%s HTTP/1.1", query)
	for _, k := range []string{"Upgrade", "Connection", "Sec-WebSocket-Version", "Sec-WebSocket-Key", "Sec-WebSocket-Protocol", "Authorization"} {
		if v := c.resp.Request.Header.Get(k); v != "" {
			e.line("%s: %s", k, v)
		}
	}
	e.line("")
	e.line("HTTP/1.1 %s", c.resp.Status)
	for _, k := range []string{"Upgrade", "Connection", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol"} {
		if v := c.resp.Header.Get(k); v != "" {
			e.line("%s: %s", k, v)
		}
	}
	e.done()
}

var upgrade = []string{"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}

func (s *scenario) connecting() {
	in := s.in
	s.in.clk.Advance(time.Second)
	q := "?link=" + s.link
	s.page1 = in.dial("page1", q, nil, gateway.Subprotocol)
	s.handshake("ws-handshake-link", s.page1, q)
	e := s.b.ex("ws-welcome-link", "jsonc")
	e.recv(s.page1, "welcome", "")
	e.done()

	s.in.clk.Advance(time.Second)
	q = "?tenant=demo"
	s.operator = in.dial("operator", q, http.Header{"Authorization": {"Bearer " + token}})
	s.handshake("ws-handshake-bearer", s.operator, q)
	e = s.b.ex("ws-welcome-bearer", "jsonc")
	e.recv(s.operator, "welcome", "")
	e.done()

	s.in.clk.Advance(time.Second)
	browser := in.dial("browser", q, nil, gateway.Subprotocol)
	e = s.b.ex("ws-auth", "jsonc")
	e.line("// connected to /v1/ws?tenant=demo without credentials")
	e.recv(browser, "welcome", "")
	id := e.send(browser, "auth", "token", token)
	e.reply(browser, id, "authed")
	e.done()

	e = s.ex("ws-auth-twice", "jsonc")
	id = e.send(browser, "auth", "token", token)
	e.errReply(browser, id, "invalid")
	e.done()

	e = s.ex("ws-auth-no-tenant", "jsonc")
	anon := in.dial("browser", "", nil)
	e.line("// connected to /v1/ws with neither ?link= nor ?tenant=")
	e.recv(anon, "welcome", "")
	id = e.send(anon, "auth", "token", token)
	e.errReply(anon, id, "invalid")
	id = e.send(anon, "auth", "token", "sk_wrong")
	e.errReply(anon, id, "unauthorized")
	e.done()

	e = s.ex("ws-handshake-bad-link", "http")
	e.http(in, hreq{method: "GET", path: "/v1/ws?link=aaaaaaaaaaaaaaaaaaaaaaaaaa", header: upgrade}, 404)
	e.done()
	e = s.ex("ws-handshake-bad-token", "http")
	e.http(in, hreq{method: "GET", path: "/v1/ws?tenant=demo", header: append(append([]string{}, upgrade...), "Authorization: Bearer sk_wrong")}, 401)
	e.done()
	e = s.ex("ws-handshake-no-tenant", "http")
	e.http(in, hreq{method: "GET", path: "/v1/ws", header: append(append([]string{}, upgrade...), auth)}, 400)
	e.done()
	e = s.ex("ws-handshake-origin", "http")
	e.http(in, hreq{method: "GET", path: "/v1/ws?link=" + s.link, header: append(append([]string{}, upgrade...), "Origin: https://evil.example")}, 403)
	e.done()
}

func (s *scenario) messages() {
	in := s.in
	p1, op := s.page1, s.operator

	e := s.ex("ws-ping", "jsonc")
	id := e.send(p1, "ping")
	e.reply(p1, id, "pong")
	e.done()

	e = s.ex("ws-tenant-info", "jsonc")
	id = e.send(p1, "tenant_info")
	e.reply(p1, id, "tenant_info")
	e.done()

	e = s.ex("ws-subscribe", "jsonc")
	id = e.send(p1, "subscribe", "service", "haircut", "from", "2026-03-28", "to", "2026-03-29", "tz", "Europe/Rome")
	s.sub1 = e.reply(p1, id, "subscribed").Sub
	e.done()

	e = s.ex("ws-subscribe-bookings", "jsonc")
	id = e.send(op, "subscribe_bookings")
	e.reply(op, id, "bookings_subscribed")
	e.done()

	s.page2 = in.dial("page2", "?link="+s.link, nil, gateway.Subprotocol)
	s.page2.drain()
	p2 := s.page2

	e = s.ex("ws-hold", "jsonc")
	id = e.send(p2, "hold", "service", "haircut", "start", "2026-03-28T10:00:00+01:00", "idempotency_key", "hold-4f1c")
	held := decode[gateway.Frame](s.t, e.reply(p2, id, "held").raw)
	e.settle(p1, op)
	e.done()

	e = s.ex("ws-hold-retry", "jsonc")
	id = e.send(p2, "hold", "service", "haircut", "start", "2026-03-28T10:00:00+01:00", "idempotency_key", "hold-4f1c")
	e.reply(p2, id, "held")
	e.done()

	e = s.ex("ws-book-hold", "jsonc")
	id = e.send(p2, "book", "hold_id", held.Hold.ID, "customer", customer, "idempotency_key", "book-4f1c")
	s.bkFromHold = decode[gateway.Frame](s.t, e.reply(p2, id, "booked").raw).Booking.ID
	e.settle(p1, op)
	e.done()

	e = s.ex("ws-hold-any", "jsonc")
	id = e.send(p1, "hold", "service", "haircut", "start", "2026-03-28T10:00:00+01:00")
	held = decode[gateway.Frame](s.t, e.reply(p1, id, "held").raw)
	e.settle(p1, op)
	e.done()

	e = s.ex("ws-release", "jsonc")
	id = e.send(p1, "release", "hold_id", held.Hold.ID)
	e.reply(p1, id, "released")
	e.settle(p1, op)
	e.done()

	e = s.ex("ws-book-direct", "jsonc")
	luca := engine.Customer{Name: "Luca Bianchi", Email: "luca@example.org"}
	id = e.send(p1, "book", "service", "haircut", "start", "2026-03-28T11:00:00+01:00", "customer", luca, "idempotency_key", "book-9b2e")
	s.bkDirect = decode[gateway.Frame](s.t, e.reply(p1, id, "booked").raw).Booking.ID
	e.settle(p1, op)
	e.done()

	e = s.ex("ws-book-retry", "jsonc")
	id = e.send(p1, "book", "service", "haircut", "start", "2026-03-28T11:00:00+01:00", "customer", luca, "idempotency_key", "book-9b2e")
	e.reply(p1, id, "booked")
	e.done()

	e = s.ex("err-idempotency-key-reused", "jsonc")
	id = e.send(p1, "book", "service", "haircut", "start", "2026-03-28T11:20:00+01:00", "customer", luca, "idempotency_key", "book-9b2e")
	e.errReply(p1, id, "idempotency_key_reused")
	e.done()

	e = s.ex("ws-reschedule", "jsonc")
	id = e.send(op, "reschedule", "booking_id", s.bkDirect, "start", "2026-03-28T12:00:00+01:00", "any_resource", true, "idempotency_key", "move-77")
	e.reply(op, id, "rescheduled")
	e.settle(p1, op)
	e.done()

	e = s.ex("ws-cancel", "jsonc")
	id = e.send(op, "cancel", "booking_id", s.bkDirect, "reason", "customer called to cancel")
	e.reply(op, id, "cancelled")
	e.settle(p1, op)
	e.done()

	e = s.ex("err-already-cancelled", "jsonc")
	id = e.send(op, "cancel", "booking_id", s.bkDirect)
	e.errReply(op, id, "already_cancelled")
	e.done()

	e = s.ex("ws-hold-expiry", "jsonc")
	id = e.send(p2, "hold", "service", "haircut", "start", "2026-03-28T13:00:00+01:00", "ttl_sec", 60)
	held = decode[gateway.Frame](s.t, e.reply(p2, id, "held").raw)
	e.settle(p1, op)
	e.line("// … 61 seconds later, nobody has booked …")
	in.clk.Advance(61 * time.Second)
	e.settle(p1, op)
	id = e.send(p2, "book", "hold_id", held.Hold.ID, "customer", customer)
	e.errReply(p2, id, "hold_expired")
	e.done()
}

func (s *scenario) subscriptionEnded() {
	in, p1 := s.in, s.page1
	trial := obj("name", "Trial session", "duration_min", 15, "resources", []string{"ana"})
	in.do(hreq{method: "PUT", path: "/v1/tenants/demo/services/trial", header: []string{auth, ctJS}, body: trial})

	e := s.ex("ws-subscribe-trial", "jsonc")
	id := e.send(p1, "subscribe", "service", "trial", "from", "2026-03-28", "to", "2026-03-29", "tz", "Europe/Rome")
	e.reply(p1, id, "subscribed")
	e.done()

	e = s.ex("http-put-config", "http")
	e.http(in, hreq{method: "PUT", path: "/v1/tenants/demo/config", header: []string{auth, ctJS}, body: jsonBody(fullConfig())}, 200)
	e.done()

	e = s.b.ex("ws-subscription-ended", "jsonc")
	e.settle(p1)
	e.done()
}

func (s *scenario) wsErrors() {
	in, p1, op := s.in, s.page1, s.operator

	type errCase struct {
		name, code string
		c          *client
		typ        string
		kv         []any
	}
	cases := []errCase{
		{"err-invalid", "invalid", p1, "hold", []any{"service", "haircut"}},
		{"err-invalid-time", "invalid", p1, "hold", []any{"service", "haircut", "start", "2026-03-28T10:00:00"}},
		{"err-not-found", "not_found", p1, "hold", []any{"service", "massage", "start", "2026-03-28T10:00:00+01:00"}},
		{"err-slot-taken", "slot_taken", p1, "hold", []any{"service", "haircut", "resource", "ana", "start", "2026-03-28T10:00:00+01:00"}},
		{"err-outside-hours", "outside_hours", p1, "hold", []any{"service", "haircut", "resource", "ana", "start", "2026-03-28T08:00:00+01:00"}},
		{"err-off-grid", "off_grid", p1, "hold", []any{"service", "haircut", "resource", "ana", "start", "2026-03-28T10:10:00+01:00"}},
		{"err-too-soon", "too_soon", p1, "hold", []any{"service", "haircut", "start", "2026-03-20T09:30:00+01:00"}},
		{"err-too-far", "too_far", p1, "hold", []any{"service", "haircut", "start", "2026-06-06T10:00:00+02:00"}},
		{"err-hold-expired", "hold_expired", p1, "release", []any{"hold_id", "hd_zzzzzzzzzzzzzzzzzzzzzzzzzz"}},
		{"err-forbidden", "forbidden", p1, "cancel", []any{"booking_id", s.bkFromHold}},
		{"err-not-found-booking", "not_found", op, "cancel", []any{"booking_id", "bk_nosuchbooking"}},
		{"err-unknown-type", "unknown_type", p1, "subscribe_all", nil},
	}
	for _, c := range cases {
		e := s.ex(c.name, "jsonc")
		id := e.send(c.c, c.typ, c.kv...)
		e.errReply(c.c, id, c.code)
		e.done()
	}

	e := s.ex("err-unsupported-version", "jsonc")
	e.sendRaw(p1, obj("v", 2, "id", "r99", "type", "ping"))
	e.errReply(p1, "r99", "unsupported_version")
	e.done()

	e = s.ex("err-unauthorized", "jsonc")
	anon := in.dial("browser", "?tenant=demo", nil)
	anon.drain()
	id := e.send(anon, "tenant_info")
	e.errReply(anon, id, "unauthorized")
	e.done()

	e = s.ex("err-unavailable", "jsonc")
	in.failAppend.Store(true)
	id = e.send(p1, "hold", "service", "haircut", "start", "2026-03-28T12:40:00+01:00")
	e.errReply(p1, id, "unavailable")
	in.failAppend.Store(false)
	e.done()

	e = s.ex("err-internal", "jsonc")
	broken := in.dial("browser", "?tenant=broken", nil)
	broken.drain()
	e.line("// connected to /v1/ws?tenant=broken; the directory cannot be read")
	id = e.send(broken, "auth", "token", token)
	e.errReply(broken, id, "internal")
	e.done()

	e = s.ex("err-decode", "jsonc")
	e.sendRaw(p1, []byte(`{"v":1,"id":"r100","type":"ping","extra":true}`))
	e.errReply(p1, "r100", "invalid")
	e.sendRaw(p1, []byte(`{"v":1,"id":"r101","type":"hold","ttl_sec":"60"}`))
	e.errReply(p1, "r101", "invalid")
	e.sendRaw(p1, []byte(`{"v":1,"id":"r102"}`))
	e.errReply(p1, "r102", "invalid")
	e.line("// page1 → server: the text frame  ping")
	e.write(p1, websocket.MessageText, []byte("ping"))
	e.errReply(p1, "", "invalid")
	e.line("// page1 → server: a binary frame")
	e.write(p1, websocket.MessageBinary, []byte(`{"v":1,"id":"r103","type":"ping"}`))
	e.errReply(p1, "", "invalid")
	long := strings.Repeat("x", gateway.MaxIDLen+1)
	e.sendRaw(p1, obj("v", 1, "id", long, "type", "ping"))
	e.errReply(p1, "", "invalid")
	e.done()

	e = s.ex("err-too-many-subs", "jsonc")
	many := in.dial("page3", "?link="+s.link, nil)
	many.drain()
	for i := 0; i < 16; i++ {
		id := fmt.Sprintf("s%d", i)
		f := obj("v", 1, "id", id, "type", "subscribe", "service", "yoga", "from", "2026-03-23", "to", "2026-03-30", "tz", "Europe/Rome")
		e.write(many, websocket.MessageText, f)
		if fr, _ := many.next(); fr.Type != "subscribed" {
			s.t.Fatalf("subscribe %d: %s", i, fr.raw)
		}
	}
	e.line("// … after 16 successful subscribes on this connection …")
	id = e.send(many, "subscribe", "service", "yoga", "from", "2026-03-23", "to", "2026-03-30", "tz", "Europe/Rome")
	e.errReply(many, id, "invalid")
	e.done()

	e = s.ex("err-rate-limited", "jsonc")
	rl := in.dial("page4", "?link="+s.link, nil)
	rl.drain()
	const burst = 100
	e.line("// page4 → server: %d pings written back to back, ids r1 … r%d", burst, burst)
	for i := 1; i <= burst; i++ {
		e.write(rl, websocket.MessageText, obj("v", 1, "id", fmt.Sprintf("r%d", i), "type", "ping"))
	}
	pongs, refused := 0, 0
	var firstRefusal, lastPong frame
	for pongs+refused < burst {
		f, ok := rl.next()
		if !ok {
			s.t.Fatal("rate-limited connection closed")
		}
		switch {
		case f.Type == "pong":
			pongs++
			lastPong = f
		case f.Type == "error" && f.Code == "rate_limited":
			if refused == 0 {
				firstRefusal = f
			}
			refused++
		default:
			s.t.Fatalf("unexpected %s", f.raw)
		}
	}
	if refused == 0 {
		s.soft("rate limit: no message was refused")
		return
	}
	e.line("// server → page4: %d pongs, the last one:", pongs)
	e.line("%s", prettyJSON(lastPong.raw))
	e.line("// server → page4: %d refusals without id, each:", refused)
	e.line("%s", prettyJSON(firstRefusal.raw))
	e.done()

	e = s.ex("ws-frame-too-large", "jsonc")
	big := in.dial("page5", "?link="+s.link, nil)
	big.drain()
	e.line("// page5 → server: a %d-byte text frame", 20000)
	_ = big.c.Write(context.Background(), websocket.MessageText, []byte(`{"v":1,"id":"r1","type":"ping","token":"`+strings.Repeat("x", 20000-40)+`"}`))
	for {
		if _, ok := big.next(); !ok {
			break
		}
	}
	code, reason := big.closeStatus()
	e.line("// the connection is closed: status %d (%s), reason %q", int(code), code, reason)
	e.done()

	e = s.ex("ws-unsubscribe", "jsonc")
	id = e.send(p1, "unsubscribe", "sub", s.sub1)
	e.reply(p1, id, "unsubscribed")
	e.done()
	e = s.ex("err-not-found-sub", "jsonc")
	id = e.send(p1, "unsubscribe", "sub", s.sub1)
	e.errReply(p1, id, "not_found")
	e.done()
}

func (s *scenario) httpAPI() {
	in := s.in
	e := s.ex("http-staff-availability", "http")
	e.http(in, hreq{method: "GET", path: "/v1/tenants/demo/availability?service=consultation&resource=ben&from=2026-03-23&to=2026-03-24&tz=America/New_York", header: []string{auth}}, 200)
	e.done()

	e = s.ex("http-put-override-spring", "http")
	e.http(in, hreq{method: "PUT", path: "/v1/tenants/demo/resources/ana/overrides/2026-03-29", header: []string{auth, ctJS},
		body: obj("open", []engine.Range{{Start: "01:00", End: "05:00"}})}, 200)
	e.done()
	e = s.ex("http-put-override-gap", "http")
	e.http(in, hreq{method: "PUT", path: "/v1/tenants/demo/resources/dan/overrides/2026-03-29", header: []string{auth, ctJS},
		body: obj("open", []engine.Range{{Start: "02:30", End: "04:00"}})}, 200)
	e.done()
	e = s.ex("http-dst-spring", "http")
	e.http(in, hreq{method: "GET", path: "/v1/tenants/demo/availability?service=haircut&from=2026-03-29&to=2026-03-30&tz=Europe/Rome", header: []string{auth}}, 200)
	e.done()
	e = s.ex("http-dst-spring-utc", "http")
	e.http(in, hreq{method: "GET", path: "/v1/tenants/demo/availability?service=haircut&resource=ana&from=2026-03-29&to=2026-03-30&tz=UTC", header: []string{auth}}, 200)
	e.done()

	e = s.ex("http-put-override-fall", "http")
	e.http(in, hreq{method: "PUT", path: "/v1/tenants/demo/resources/chloe/overrides/2026-04-05", header: []string{auth, ctJS},
		body: obj("open", []engine.Range{{Start: "02:30", End: "03:30"}})}, 200)
	e.done()
	e = s.ex("http-dst-fall", "http")
	e.http(in, hreq{method: "GET", path: "/v1/tenants/demo/availability?service=haircut&resource=chloe&from=2026-04-05&to=2026-04-06&tz=Australia/Sydney", header: []string{auth}}, 200)
	e.done()

	e = s.ex("http-delete-override", "http")
	e.http(in, hreq{method: "DELETE", path: "/v1/tenants/demo/resources/dan/overrides/2026-03-29", header: []string{auth}}, 200)
	e.done()
	in.do(hreq{method: "DELETE", path: "/v1/tenants/demo/resources/ana/overrides/2026-03-29", header: []string{auth}})
	in.do(hreq{method: "DELETE", path: "/v1/tenants/demo/resources/chloe/overrides/2026-04-05", header: []string{auth}})

	e = s.ex("http-put-busy", "http")
	e.http(in, hreq{method: "PUT", path: "/v1/tenants/demo/resources/ana/busy/google", header: []string{auth, ctJS},
		body: obj("blocks", []engine.Interval{
			{Start: time.Date(2026, 3, 23, 13, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 23, 14, 30, 0, 0, time.UTC)},
			{Start: time.Date(2026, 3, 24, 8, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 24, 9, 0, 0, 0, time.UTC)},
		})}, 200)
	e.done()

	book := obj("service", "haircut", "resource", "dan", "start", "2026-03-28T12:20:00+01:00",
		"customer", engine.Customer{Name: "Giulia Verdi", Email: "giulia@example.net"})
	e = s.ex("http-create-booking", "http")
	r := e.http(in, hreq{method: "POST", path: "/v1/tenants/demo/bookings", header: []string{auth, ctJS, "Idempotency-Key: 0b7d6c2e-desk-1"}, body: book}, 201)
	e.done()
	s.bkHTTP = decode[struct{ Booking engine.Booking }](s.t, r.body).Booking.ID

	e = s.ex("http-create-booking-retry", "http")
	e.http(in, hreq{method: "POST", path: "/v1/tenants/demo/bookings", header: []string{auth, ctJS, "Idempotency-Key: 0b7d6c2e-desk-1"}, body: book}, 200)
	e.done()

	e = s.ex("http-list-bookings", "http")
	e.http(in, hreq{method: "GET", path: "/v1/tenants/demo/bookings?from=2026-03-28&to=2026-03-29", header: []string{auth}}, 200)
	e.done()

	e = s.ex("http-get-booking", "http")
	e.http(in, hreq{method: "GET", path: "/v1/tenants/demo/bookings/" + s.bkHTTP, header: []string{auth}}, 200)
	e.done()

	e = s.ex("http-reschedule", "http")
	e.http(in, hreq{method: "POST", path: "/v1/tenants/demo/bookings/" + s.bkHTTP + "/reschedule", header: []string{auth, ctJS, "Idempotency-Key: 0b7d6c2e-desk-2"},
		body: obj("start", "2026-03-28T13:20:00+01:00")}, 200)
	e.done()

	e = s.ex("err-in-use", "http")
	e.http(in, hreq{method: "PUT", path: "/v1/tenants/demo/config", header: []string{auth, ctJS}, body: jsonBody(demo.Config()),
		showBody: "(the demo configuration of POST /v1/tenants above, which has no resource dan)"}, 409)
	e.done()

	e = s.ex("http-cancel", "http")
	e.http(in, hreq{method: "POST", path: "/v1/tenants/demo/bookings/" + s.bkHTTP + "/cancel", header: []string{auth, ctJS},
		body: obj("reason", "staff illness")}, 200)
	e.done()
}

func (s *scenario) httpErrors() {
	in := s.in
	e := s.ex("http-err-unauthorized", "http")
	e.http(in, hreq{method: "GET", path: "/v1/tenants"}, 401)
	e.done()

	e = s.ex("http-err-not-found", "http")
	e.http(in, hreq{method: "GET", path: "/v1/tenants/nope", header: []string{auth}}, 404)
	e.done()

	e = s.ex("err-conflict", "http")
	e.http(in, hreq{method: "POST", path: "/v1/tenants", header: []string{auth, ctJS},
		body: obj("id", "demo", "config", obj("name", "Another demo", "time_zone", "UTC", "resources", []int{}, "services", []int{}))}, 409)
	e.done()

	e = s.ex("http-err-invalid", "http")
	e.http(in, hreq{method: "PUT", path: "/v1/tenants/demo/resources/dan", header: []string{auth, ctJS},
		body: obj("name", "Dan", "colour", "blue")}, 400)
	e.done()

	e = s.ex("err-too-large", "http")
	huge := []byte(`{"name":"` + strings.Repeat("x", 1<<20) + `"}`)
	e.http(in, hreq{method: "PUT", path: "/v1/tenants/demo/config", header: []string{auth, ctJS}, body: huge,
		showBody: fmt.Sprintf(`{"name": "xxxx…"}   (%d bytes)`, len(huge))}, 413)
	e.done()

	e = s.ex("http-err-internal", "http")
	e.http(in, hreq{method: "GET", path: "/v1/tenants/broken", header: []string{auth}}, 500)
	e.done()
}

func (s *scenario) operational() {
	in := s.in
	for _, c := range []struct{ name, path string }{
		{"http-healthz", "/healthz"}, {"http-readyz", "/readyz"}, {"http-index", "/"},
		{"http-book-page", "/book/" + s.link}, {"http-static", "/static/app.js"},
	} {
		e := s.ex(c.name, "http")
		e.http(in, hreq{method: "GET", path: c.path}, 200)
		e.done()
	}
	e := s.ex("http-metrics", "http")
	r := in.do(hreq{method: "GET", path: "/metrics"})
	if r.status != 200 {
		s.t.Fatalf("metrics: %d", r.status)
	}
	e.line("GET /metrics HTTP/1.1")
	e.line("")
	e.line("HTTP/1.1 200 OK")
	e.line("Content-Type: %s", r.header.Get("Content-Type"))
	e.line("")
	e.line("… (excerpt: the gateway's own series)")
	for _, l := range strings.Split(string(r.body), "\n") {
		if strings.Contains(l, "slotd_websocket_") && (!strings.HasPrefix(l, "slotd_websocket_messages_total") || strings.Contains(l, `type="hold"`)) {
			e.line("%s", l)
		}
	}
	e.line("…")
	e.done()
}

// overloaded fills a one-message mailbox while the actor waits on a slow
// disk, on a separate instance with MailboxSize 1.
func (s *scenario) overloaded() {
	in := newInstance(s.t, actors.Config{MailboxSize: 1})
	in.createDemo()
	a := in.dial("page1", "?link="+in.link, nil)
	b := in.dial("page2", "?link="+in.link, nil)
	c := in.dial("page3", "?link="+in.link, nil)
	for _, x := range []*client{a, b, c} {
		x.drain()
	}
	entered, release := in.holdAppends()
	defer release()
	hold := func(start string) []byte {
		return obj("v", 1, "id", "r1", "type", "hold", "service", "yoga", "start", start)
	}
	e := s.b.ex("err-overloaded", "jsonc")
	e.write(a, websocket.MessageText, hold("2026-03-28T09:00:00+01:00"))
	select {
	case <-entered: // the actor is inside the journal append
	case <-time.After(5 * time.Second):
		s.t.Fatal("the first hold never reached the journal")
	}
	e.write(b, websocket.MessageText, hold("2026-03-28T11:00:00+01:00")) // fills the mailbox
	time.Sleep(200 * time.Millisecond)
	e.line("// (the tenant's mailbox is full: its actor waits on a slow disk)")
	id := e.send(c, "hold", "service", "yoga", "start", "2026-03-28T09:00:00+01:00")
	select {
	case f := <-c.frames:
		if f.Type != "error" || f.Code != "overloaded" || f.ID != id {
			s.soft("overloaded: got %s", f.raw)
			return
		}
		e.record(c, f)
	case <-time.After(2 * time.Second):
		s.soft("overloaded: no refusal (the second hold was not queued in time)")
		return
	}
	e.done()
}

// soft reports an example whose timing did not work out: fatal when
// writing the doc, only logged when the examples run as a test.
func (s *scenario) soft(format string, args ...any) {
	s.t.Helper()
	if *write {
		s.t.Fatalf(format+"; run again", args...)
	}
	s.t.Logf(format+" (timing; the example is not checked this run)", args...)
}

// resync makes a subscriber fall behind: a one-update subscriber queue and
// several commits published back to back on one CPU.
func (s *scenario) resync() {
	in := newInstance(s.t, actors.Config{SubscriberQueue: 1})
	in.createDemo()
	p := in.dial("page1", "?link="+in.link, nil)
	p.drain()
	var qs []*client
	for i := 0; i < 7; i++ {
		q := in.dial("q", "?link="+in.link, nil)
		q.drain()
		qs = append(qs, q)
	}
	e := s.b.ex("ws-resync", "jsonc")
	id := e.send(p, "subscribe", "service", "yoga", "from", "2026-03-28", "to", "2026-03-29", "tz", "Europe/Rome")
	e.reply(p, id, "subscribed")
	e.line("// … other customers hold seats in quick succession …")

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	_, release := in.holdAppends()
	defer release()
	starts := []string{"2026-03-28T09:00:00+01:00", "", "2026-03-28T11:00:00+01:00", "", "2026-03-28T09:00:00+01:00", "", "2026-03-28T11:00:00+01:00"}
	for i, q := range qs {
		f := obj("v", 1, "id", "r1", "type", "tenant_info")
		if starts[i] != "" {
			f = obj("v", 1, "id", "r1", "type", "hold", "service", "yoga", "start", starts[i])
		}
		if err := q.c.Write(context.Background(), websocket.MessageText, f); err != nil {
			s.t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	release()
	time.Sleep(300 * time.Millisecond)
	resynced := false
	for {
		select {
		case f, ok := <-p.frames:
			if !ok {
				s.t.Fatal("connection closed")
			}
			e.record(p, f)
			resynced = resynced || strings.Contains(string(f.raw), `"resync":true`)
			continue
		default:
		}
		break
	}
	if !resynced {
		s.soft("resync: the subscriber did not fall behind")
		return
	}
	e.done()
}

// shutdown stops a separate instance under a connected client.
func (s *scenario) shutdown() {
	in := newInstance(s.t, actors.Config{})
	in.createDemo()
	p := in.dial("page1", "?link="+in.link, nil)
	p.drain()
	e := s.b.ex("ws-shutdown", "jsonc")
	id := e.send(p, "subscribe", "service", "yoga", "from", "2026-03-28", "to", "2026-03-29", "tz", "Europe/Rome")
	e.reply(p, id, "subscribed")
	e.line("// … the operator stops slotd (SIGTERM) …")
	in.reg.Close()
	e.recv(p, "subscription_ended", "")
	id = e.send(p, "hold", "service", "yoga", "start", "2026-03-28T09:00:00+01:00")
	e.errReply(p, id, "unavailable")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	in.gw.Shutdown(ctx)
	for {
		if _, ok := p.next(); !ok {
			break
		}
	}
	code, reason := p.closeStatus()
	e.line("// the connection is closed: status %d (%s), reason %q", int(code), code, reason)
	e.done()
}

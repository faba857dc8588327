package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/slotd/slotd/actors"
	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

func TestWelcome(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	link := ts.createTenant(t, "salon", testConfig())
	tests := []struct {
		name  string
		query string
		hdr   http.Header
		want  *gateway.PrincipalInfo
	}{
		{"public link", "link=" + link, nil, &gateway.PrincipalInfo{Kind: "public", Tenant: "salon"}},
		{"operator header", "tenant=salon", http.Header{"Authorization": {"Bearer " + operatorToken}}, &gateway.PrincipalInfo{Kind: "operator", Tenant: "salon"}},
		{"unauthenticated", "", nil, nil},
		{"unauthenticated naming a tenant", "tenant=salon", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.dial(t, tt.query, tt.hdr)
			w := c.welcome
			if w.ServerTime == nil || !w.ServerTime.Equal(t0) {
				t.Errorf("welcome server_time %v, want %v", w.ServerTime, t0)
			}
			switch {
			case tt.want == nil && w.Principal != nil:
				t.Errorf("welcome principal %+v, want none", w.Principal)
			case tt.want != nil && (w.Principal == nil || *w.Principal != *tt.want):
				t.Errorf("welcome principal %+v, want %+v", w.Principal, tt.want)
			}
			if f := c.mustCall("ping", nil, gateway.TypePong); f.ServerTime == nil || !f.ServerTime.Equal(t0) {
				t.Errorf("pong server_time %v, want %v", f.ServerTime, t0)
			}
		})
	}
}

func TestTenantInfo(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	link := ts.createTenant(t, "salon", testConfig())
	for _, c := range []*wsClient{ts.dialLink(t, link), ts.dialOperator(t, "salon")} {
		f := c.mustCall("tenant_info", nil, gateway.TypeTenantInfo)
		ti := f.Tenant
		if ti == nil || ti.ID != "salon" || ti.Name != "Salon" || ti.TimeZone != "Europe/Rome" {
			t.Fatalf("tenant_info = %+v", ti)
		}
		if len(ti.Services) != 3 || len(ti.Resources) != 4 {
			t.Errorf("tenant_info has %d services and %d resources, want 3 and 4", len(ti.Services), len(ti.Resources))
		}
		if ti.Services[0].ID != "class" || ti.Services[0].DurationMin != 50 || ti.Resources[0].ID != "alice" {
			t.Errorf("tenant_info services %+v resources %+v: want canonical order", ti.Services, ti.Resources)
		}
	}
}

func TestSubscribeUnsubscribe(t *testing.T) {
	ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) { c.MaxSubsPerConn = 2 }))
	link := ts.createTenant(t, "salon", testConfig())
	a, b := ts.dialLink(t, link), ts.dialLink(t, link)

	fa := a.mustCall("subscribe", aliceDay1(), gateway.TypeSubscribed)
	if len(fa.Slots) != 8 || fa.Sub == "" || fa.Version == nil {
		t.Fatalf("subscribed = %d slots, sub %q, version %v; want 8 hourly slots 09–16", len(fa.Slots), fa.Sub, fa.Version)
	}
	for i, s := range fa.Slots {
		if want := at(t, "Europe/Rome", 1, 9+i); !s.Start.Equal(want) || s.Seats != 1 || len(s.Resources) != 1 || s.Resources[0] != "alice" {
			t.Errorf("slot %d = %+v, want alice at %v", i, s, want)
		}
		if _, off := s.Start.Zone(); off != 3600 {
			t.Errorf("slot %d starts at %v: want it in the viewer's zone (Europe/Rome)", i, s.Start)
		}
	}
	fb := b.mustCall("subscribe", aliceDay1(), gateway.TypeSubscribed)

	// A second subscription on the same connection, then the per-connection limit.
	a.mustCall("subscribe", map[string]any{"service": "class", "from": day1, "to": "2030-01-10", "tz": "UTC"}, gateway.TypeSubscribed)
	a.wantErr("subscribe", aliceDay1(), engine.CodeInvalid)

	a.mustCall("unsubscribe", map[string]any{"sub": fa.Sub}, gateway.TypeUnsubscribed)
	a.wantErr("unsubscribe", map[string]any{"sub": fa.Sub}, engine.CodeNotFound)
	a.wantErr("unsubscribe", map[string]any{"sub": "nope"}, engine.CodeNotFound)

	slot := at(t, "Europe/Rome", 1, 11)
	b.mustCall("book", bookFields("cut", "alice", slot, ada), gateway.TypeBooked)
	d := b.next(timeout(t, 10*time.Second), gateway.TypeAvailability)
	if d.Sub != fb.Sub || !hasTime(d.Removed, slot) || len(d.Removed) != 1 || len(d.Upserted) != 0 {
		t.Errorf("delta = sub %s removed %v upserted %v, want sub %s removing only %v", d.Sub, d.Removed, d.Upserted, fb.Sub, slot)
	}
	// The actor has published; a's unsubscribed query got nothing. The
	// pong comes after anything the server queued before it.
	a.mustCall("ping", nil, gateway.TypePong)
	for _, f := range a.buffered() {
		if f.Sub == fa.Sub {
			t.Errorf("frame %s for sub %s after unsubscribe", f.Type, fa.Sub)
		}
	}

	// Query errors come back as error frames.
	b.wantErr("subscribe", map[string]any{"service": "nope", "from": day1, "to": "2030-01-09", "tz": "UTC"}, engine.CodeNotFound)
	for _, q := range []map[string]any{
		{"service": "cut", "resource": "studio", "from": day1, "to": "2030-01-09", "tz": "UTC"}, // studio does not cut
		{"service": "cut", "from": "2030-01-09", "to": day1, "tz": "UTC"},
		{"service": "cut", "from": day1, "to": "2030-06-01", "tz": "UTC"},
		{"service": "cut", "from": "2026-02-30", "to": "2026-03-02", "tz": "UTC"},
		{"service": "cut", "from": day1, "to": "2030-01-09", "tz": "Mars/Olympus_Mons"},
		{"service": "cut", "from": day1, "to": "2030-01-09", "tz": "Local"},
		{"service": "cut", "from": day1, "to": "2030-01-09"},
	} {
		b.wantErr("subscribe", q, engine.CodeInvalid)
	}
}

func TestHoldReleaseBook(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	link := ts.createTenant(t, "salon", testConfig())
	sub, c := ts.dialLink(t, link), ts.dialLink(t, link)
	sub.mustCall("subscribe", aliceDay1(), gateway.TypeSubscribed)
	slot := at(t, "Europe/Rome", 1, 10)
	ctx := timeout(t, 20*time.Second)
	removed := func(f gateway.Frame) bool { return f.Type == gateway.TypeAvailability && hasTime(f.Removed, slot) }
	upserted := func(f gateway.Frame) bool { return f.Type == gateway.TypeAvailability && hasSlot(f.Upserted, slot) }
	await := func(what string, match func(gateway.Frame) bool) {
		t.Helper()
		if _, err := sub.await(ctx, match); err != nil {
			t.Fatalf("subscriber: no delta that %s: %v", what, err)
		}
	}

	// hold → the slot goes; release → it comes back.
	h := c.mustCall("hold", map[string]any{"service": "cut", "resource": "alice", "start": rfc3339(slot)}, gateway.TypeHeld)
	if h.Hold == nil || !strings.HasPrefix(h.Hold.ID, "hd_") || !h.Hold.Start.Equal(slot) || !h.Hold.ExpiresAt.Equal(t0.Add(120*time.Second)) {
		t.Fatalf("held %+v, want a hold at %v expiring after the tenant's 120 s", h.Hold, slot)
	}
	await("removes the held slot", removed)
	c.wantErr("hold", map[string]any{"service": "cut", "resource": "alice", "start": rfc3339(slot)}, engine.CodeSlotTaken)
	c.wantErr("book", bookFields("cut", "alice", slot, ada), engine.CodeSlotTaken)
	r := c.mustCall("release", map[string]any{"hold_id": h.Hold.ID}, gateway.TypeReleased)
	if r.Hold == nil || r.Hold.ID != h.Hold.ID {
		t.Errorf("released %+v, want hold %s", r.Hold, h.Hold.ID)
	}
	await("brings the released slot back", upserted)
	c.wantErr("release", map[string]any{"hold_id": h.Hold.ID}, engine.CodeHoldExpired)

	// hold → book from the hold.
	h = c.mustCall("hold", map[string]any{"service": "cut", "resource": "alice", "start": rfc3339(slot), "ttl_sec": 30}, gateway.TypeHeld)
	if !h.Hold.ExpiresAt.Equal(t0.Add(30 * time.Second)) {
		t.Errorf("hold with ttl_sec 30 expires at %v, want %v", h.Hold.ExpiresAt, t0.Add(30*time.Second))
	}
	await("removes the held slot", removed)
	c.wantErr("book", map[string]any{"hold_id": h.Hold.ID}, engine.CodeInvalid) // no customer
	b := c.mustCall("book", map[string]any{"hold_id": h.Hold.ID, "customer": ada}, gateway.TypeBooked)
	if b.Booking == nil || b.Booking.FromHold != h.Hold.ID || !b.Booking.Start.Equal(slot) || b.Booking.ResourceID != "alice" ||
		b.Booking.Customer.Email != "ada@example.com" || !strings.HasPrefix(b.Booking.ID, "bk_") {
		t.Fatalf("booked %+v, want alice at %v from hold %s", b.Booking, slot, h.Hold.ID)
	}
	c.wantErr("book", map[string]any{"hold_id": h.Hold.ID, "customer": ada}, engine.CodeHoldExpired)

	// A hold that runs out gives its slot back when the clock passes its expiry.
	slot2 := at(t, "Europe/Rome", 1, 12)
	h = c.mustCall("hold", map[string]any{"service": "cut", "resource": "alice", "start": rfc3339(slot2), "ttl_sec": 30}, gateway.TypeHeld)
	await("removes the second held slot", func(f gateway.Frame) bool { return f.Type == gateway.TypeAvailability && hasTime(f.Removed, slot2) })
	ts.clock.Advance(31 * time.Second)
	await("brings the expired hold's slot back", func(f gateway.Frame) bool {
		return f.Type == gateway.TypeAvailability && hasSlot(f.Upserted, slot2)
	})
	c.wantErr("book", map[string]any{"hold_id": h.Hold.ID, "customer": ada}, engine.CodeHoldExpired)

	// Direct booking on "any resource": the only one open at 12:00 Rome is alice.
	b = c.mustCall("book", bookFields("cut", "", slot2, customer(2)), gateway.TypeBooked)
	if b.Booking.ResourceID != "alice" || b.Duplicate {
		t.Errorf("booked %+v, want alice (bob opens at 15:00 Rome time)", b.Booking)
	}
	// Bob's first slot, 09:00 in New York.
	bob := at(t, "America/New_York", 1, 9)
	if b = c.mustCall("book", bookFields("cut", "", bob, customer(3)), gateway.TypeBooked); b.Booking.ResourceID != "bob" {
		t.Errorf("booked %+v at %v, want bob", b.Booking, bob)
	}
}

func TestBookIdempotency(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	link := ts.createTenant(t, "salon", testConfig())
	c := ts.dialLink(t, link)
	slot := at(t, "Europe/Rome", 1, 14)
	req := bookFields("cut", "alice", slot, ada)
	req["idempotency_key"] = "order-7"

	first := c.mustCall("book", req, gateway.TypeBooked)
	if first.Duplicate {
		t.Fatalf("first booking marked duplicate")
	}
	seq := ts.seq(t, "salon")
	// The retry (say, after a lost reply) on a new connection.
	again := ts.dialLink(t, link).mustCall("book", req, gateway.TypeBooked)
	if !again.Duplicate || again.Booking == nil || again.Booking.ID != first.Booking.ID || !again.Booking.Start.Equal(slot) {
		t.Fatalf("retry = duplicate %v booking %+v, want duplicate of %s", again.Duplicate, again.Booking, first.Booking.ID)
	}
	if got := ts.seq(t, "salon"); got != seq {
		t.Errorf("journal sequence %d after a duplicate, want %d", got, seq)
	}
	// The same key for another request is refused.
	other := bookFields("cut", "alice", at(t, "Europe/Rome", 1, 15), ada)
	other["idempotency_key"] = "order-7"
	c.wantErr("book", other, engine.CodeIdemReused)

	// Holds are idempotent too.
	hreq := map[string]any{"service": "class", "start": rfc3339(at(t, "Europe/Rome", 2, 9)), "idempotency_key": "hold-1"}
	h1 := c.mustCall("hold", hreq, gateway.TypeHeld)
	h2 := c.mustCall("hold", hreq, gateway.TypeHeld)
	if h1.Duplicate || !h2.Duplicate || h1.Hold.ID != h2.Hold.ID {
		t.Errorf("holds %+v (dup %v) and %+v (dup %v), want the second a duplicate of the first", h1.Hold, h1.Duplicate, h2.Hold, h2.Duplicate)
	}
	long := bookFields("cut", "alice", at(t, "Europe/Rome", 1, 16), ada)
	long["idempotency_key"] = strings.Repeat("k", 129)
	c.wantErr("book", long, engine.CodeInvalid)
}

// bookOne books a slot of "cut" with alice on a public connection.
func bookOne(t *testing.T, ts *testServer, link string, slot time.Time, i int) engine.Booking {
	t.Helper()
	f := ts.dialLink(t, link).mustCall("book", bookFields("cut", "alice", slot, customer(i)), gateway.TypeBooked)
	return *f.Booking
}

func TestOperatorCancelReschedule(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	link := ts.createTenant(t, "salon", testConfig())
	b1 := bookOne(t, ts, link, at(t, "Europe/Rome", 1, 9), 1)
	b2 := bookOne(t, ts, link, at(t, "Europe/Rome", 1, 10), 2)
	op := ts.dialOperator(t, "salon")

	f := op.mustCall("cancel", map[string]any{"booking_id": b1.ID, "reason": "customer called", "idempotency_key": "cx-1"}, gateway.TypeCancelled)
	if f.Booking == nil || f.Booking.Status != engine.StatusCancelled || f.Booking.CancelReason != "customer called" {
		t.Errorf("cancelled %+v", f.Booking)
	}
	if f = op.mustCall("cancel", map[string]any{"booking_id": b1.ID, "reason": "customer called", "idempotency_key": "cx-1"}, gateway.TypeCancelled); !f.Duplicate {
		t.Errorf("repeated cancel with the same key: duplicate %v, want true", f.Duplicate)
	}
	op.wantErr("cancel", map[string]any{"booking_id": b1.ID}, engine.CodeAlreadyDone)
	op.wantErr("cancel", map[string]any{"booking_id": "bk_nope"}, engine.CodeNotFound)

	// b2 moves into the slot b1 freed; the slot b2 left is free again.
	to := at(t, "Europe/Rome", 1, 9)
	f = op.mustCall("reschedule", map[string]any{"booking_id": b2.ID, "start": rfc3339(to)}, gateway.TypeRescheduled)
	if f.Booking == nil || f.Booking.ID != b2.ID || !f.Booking.Start.Equal(to) || f.Booking.Rescheduled != 1 || f.Booking.ResourceID != "alice" {
		t.Fatalf("rescheduled %+v, want %s at %v", f.Booking, b2.ID, to)
	}
	b3 := bookOne(t, ts, link, at(t, "Europe/Rome", 1, 10), 3)
	op.wantErr("reschedule", map[string]any{"booking_id": b2.ID, "start": rfc3339(b3.Start)}, engine.CodeSlotTaken)
	op.wantErr("reschedule", map[string]any{"booking_id": b1.ID, "start": rfc3339(at(t, "Europe/Rome", 1, 12))}, engine.CodeAlreadyDone)
	op.wantErr("reschedule", map[string]any{"booking_id": b2.ID, "start": rfc3339(at(t, "Europe/Rome", 1, 20))}, engine.CodeOutsideHours)
	op.wantErr("reschedule", map[string]any{"booking_id": b2.ID, "start": rfc3339(at(t, "Europe/Rome", 0, 6))}, engine.CodeTooSoon)
	op.wantErr("reschedule", map[string]any{"booking_id": b2.ID}, engine.CodeInvalid)
	// To bob, in New York.
	bob := at(t, "America/New_York", 1, 9)
	if f = op.mustCall("reschedule", map[string]any{"booking_id": b2.ID, "start": rfc3339(bob), "resource": "bob"}, gateway.TypeRescheduled); f.Booking.ResourceID != "bob" {
		t.Errorf("rescheduled to bob = %+v", f.Booking)
	}
}

func TestAuthMessageAndBookingFeed(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	link := ts.createTenant(t, "salon", testConfig())
	before := bookOne(t, ts, link, at(t, "Europe/Rome", 1, 9), 1)

	// A browser cannot set headers: it names the tenant in the URL and
	// sends the token as the first message.
	op := ts.dial(t, "tenant=salon", nil)
	op.wantErr("tenant_info", nil, engine.CodeUnauthorized)
	op.wantErr("auth", map[string]any{"token": "wrong"}, engine.CodeUnauthorized)
	op.wantErr("auth", nil, engine.CodeUnauthorized)
	f := op.mustCall("auth", map[string]any{"token": operatorToken}, gateway.TypeAuthed)
	if f.Principal == nil || f.Principal.Kind != "operator" || f.Principal.Tenant != "salon" {
		t.Fatalf("authed principal %+v, want operator on salon", f.Principal)
	}
	op.wantErr("auth", map[string]any{"token": operatorToken}, engine.CodeInvalid)

	// An operator must say which tenant.
	ts.dial(t, "", nil).wantErr("auth", map[string]any{"token": operatorToken}, engine.CodeInvalid)
	ts.dial(t, "tenant=nope", nil).wantErr("auth", map[string]any{"token": operatorToken}, engine.CodeNotFound)

	sb := op.mustCall("subscribe_bookings", nil, gateway.TypeBookingsSubscribed)
	if len(sb.Bookings) != 1 || sb.Bookings[0].ID != before.ID || sb.Version == nil || sb.Sub == "" {
		t.Fatalf("bookings_subscribed = %d bookings, version %v, sub %q; want %s", len(sb.Bookings), sb.Version, sb.Sub, before.ID)
	}

	ctx := timeout(t, 10*time.Second)
	b := bookOne(t, ts, link, at(t, "Europe/Rome", 1, 10), 2)
	ev := op.next(ctx, gateway.TypeBookingEvents)
	if ev.Sub != sb.Sub || ev.Version == nil || *ev.Version <= *sb.Version || len(ev.Events) != 1 ||
		ev.Events[0].Type != engine.EvBookingConfirmed || ev.Events[0].Booking == nil || ev.Events[0].Booking.ID != b.ID {
		t.Fatalf("booking_events = %+v, want booking_confirmed of %s after version %d", ev, b.ID, *sb.Version)
	}
	op.mustCall("cancel", map[string]any{"booking_id": b.ID}, gateway.TypeCancelled)
	if ev = op.next(ctx, gateway.TypeBookingEvents); len(ev.Events) != 1 || ev.Events[0].Type != engine.EvBookingCancelled || ev.Events[0].BookingID != b.ID {
		t.Fatalf("booking_events = %+v, want booking_cancelled of %s", ev.Events, b.ID)
	}
	op.mustCall("unsubscribe", map[string]any{"sub": sb.Sub}, gateway.TypeUnsubscribed)
}

func TestPublicConnectionLimits(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	link := ts.createTenant(t, "salon", testConfig())
	b := bookOne(t, ts, link, at(t, "Europe/Rome", 1, 9), 1)
	seq := ts.seq(t, "salon")
	c := ts.dialLink(t, link)
	c.wantErr("cancel", map[string]any{"booking_id": b.ID}, engine.CodeForbidden)
	c.wantErr("reschedule", map[string]any{"booking_id": b.ID, "start": rfc3339(at(t, "Europe/Rome", 1, 10))}, engine.CodeForbidden)
	c.wantErr("subscribe_bookings", nil, engine.CodeForbidden)
	// A public connection cannot trade up to operator, even with the token.
	c.wantErr("auth", map[string]any{"token": operatorToken}, engine.CodeInvalid)
	c.wantErr("cancel", map[string]any{"booking_id": b.ID}, engine.CodeForbidden)
	if got := ts.seq(t, "salon"); got != seq {
		t.Errorf("journal sequence %d, want %d", got, seq)
	}
}

func TestUnauthenticatedConnection(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	ts.createTenant(t, "salon", testConfig())
	c := ts.dial(t, "", nil)
	slot := rfc3339(at(t, "Europe/Rome", 1, 9))
	for _, tt := range []struct {
		typ    string
		fields map[string]any
	}{
		{"tenant_info", nil},
		{"subscribe", aliceDay1()},
		{"hold", map[string]any{"service": "cut", "start": slot}},
		{"release", map[string]any{"hold_id": "hd_x"}},
		{"book", bookFields("cut", "alice", at(t, "Europe/Rome", 1, 9), ada)},
		{"cancel", map[string]any{"booking_id": "bk_x"}},
		{"reschedule", map[string]any{"booking_id": "bk_x", "start": slot}},
		{"subscribe_bookings", nil},
	} {
		c.wantErr(tt.typ, tt.fields, engine.CodeUnauthorized)
	}
	c.mustCall("ping", nil, gateway.TypePong)
	if got := ts.seq(t, "salon"); got != 1 {
		t.Errorf("journal sequence %d, want 1 (the configuration only)", got)
	}
}

func TestHandshake(t *testing.T) {
	ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) {
		c.OriginPatterns = []string{"*.allowed.example"}
	}))
	link := ts.createTenant(t, "salon", testConfig())
	op := "Bearer " + operatorToken
	tests := []struct {
		name   string
		query  string
		auth   string
		origin string
		status int         // 0: the handshake succeeds
		code   engine.Code // of the JSON error body, if any
	}{
		{name: "unknown link", query: "link=" + strings.Repeat("a", 26), status: 404, code: engine.CodeNotFound},
		{name: "malformed link", query: "link=../../etc", status: 404, code: engine.CodeNotFound},
		{name: "link with upper case", query: "link=" + strings.ToUpper(link), status: 404, code: engine.CodeNotFound},
		{name: "bad token", query: "tenant=salon", auth: "Bearer nope", status: 401, code: engine.CodeUnauthorized},
		{name: "operator without tenant", auth: op, status: 400, code: engine.CodeInvalid},
		{name: "operator, unknown tenant", query: "tenant=nope", auth: op, status: 404, code: engine.CodeNotFound},
		{name: "operator, malformed tenant", query: "tenant=..%2Fsalon", auth: op, status: 404, code: engine.CodeNotFound},
		{name: "foreign origin", query: "link=" + link, origin: "http://evil.example", status: 403},
		{name: "foreign origin, operator", query: "tenant=salon", auth: op, origin: "http://evil.example", status: 403},
		{name: "lookalike origin", query: "link=" + link, origin: "http://allowed.example.evil.example", status: 403},
		{name: "null origin", query: "link=" + link, origin: "null", status: 403},
		{name: "own origin", query: "link=" + link, origin: ts.URL},
		{name: "allowed origin pattern", query: "link=" + link, origin: "https://app.allowed.example"},
		{name: "no origin (not a browser)", query: "link=" + link},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.auth != "" {
				hdr.Set("Authorization", tt.auth)
			}
			if tt.origin != "" {
				hdr.Set("Origin", tt.origin)
			}
			conn, resp, err := ts.rawDial(t, tt.query, dialOptions{header: hdr})
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("Dial = %v, want success", err)
				}
				conn.Close(websocket.StatusNormalClosure, "")
				return
			}
			if err == nil {
				t.Fatalf("Dial succeeded, want HTTP %d", tt.status)
			}
			if resp == nil || resp.StatusCode != tt.status {
				t.Fatalf("Dial = %v (response %v), want HTTP %d", err, resp, tt.status)
			}
			if tt.code != "" {
				var body bytes.Buffer
				_, _ = body.ReadFrom(resp.Body)
				checkErrorBody(t, resp.Header, body.Bytes(), tt.code)
			}
		})
	}
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := ts.gw.Conns(); n != 0 {
			return fmt.Errorf("%d connections open after the handshake tests", n)
		}
		return nil
	})
}

func TestReadLimit(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	link := ts.createTenant(t, "salon", testConfig())
	const limit = 16 << 10 // the default MaxFrameBytes

	// Exactly at the limit is fine (JSON allows the padding).
	c := ts.dialLink(t, link)
	head := `{"v":1,"id":"big","type":"ping"`
	frame := head + strings.Repeat(" ", limit-len(head)-1) + "}"
	if err := c.write(timeout(t, 5*time.Second), []byte(frame)); err != nil {
		t.Fatal(err)
	}
	if f := c.next(timeout(t, 10*time.Second), gateway.TypePong); f.ID != "big" {
		t.Errorf("pong id %q, want big", f.ID)
	}

	// One byte more closes the connection.
	frame = head + strings.Repeat(" ", limit-len(head)) + "}"
	if err := c.write(timeout(t, 5*time.Second), []byte(frame)); err != nil {
		t.Fatal(err)
	}
	code := c.closed(timeout(t, 10*time.Second))
	if code != websocket.StatusMessageTooBig && code != websocket.StatusPolicyViolation {
		t.Errorf("closed with %v, want StatusMessageTooBig or StatusPolicyViolation", code)
	}
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := ts.gw.Conns(); n != 0 {
			return fmt.Errorf("%d connections open", n)
		}
		return nil
	})
}

func TestRateLimit(t *testing.T) {
	const burst = 3
	ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) {
		c.MsgRate, c.MsgBurst = 0.5, burst
	}))
	link := ts.createTenant(t, "salon", testConfig())
	abuser, bystander := ts.dialLink(t, link), ts.dialLink(t, link)

	ctx := timeout(t, 10*time.Second)
	// One ping at a time, each answered (rate_limited errors too, with the
	// request's id), until the server has had enough.
	var pongs, limited int
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatalf("still open after %d messages (%d pongs, %d rate_limited)", i, pongs, limited)
		}
		if err := abuser.write(ctx, []byte(fmt.Sprintf(`{"v":1,"id":"p%d","type":"ping"}`, i))); err != nil {
			break // closed by the server
		}
		f, err := abuser.await(ctx, func(gateway.Frame) bool { return true })
		if err != nil {
			break
		}
		if want := fmt.Sprintf("p%d", i); f.ID != want {
			t.Errorf("message %d: reply %s has id %q, want %q", i, f.Type, f.ID, want)
		}
		switch {
		case f.Type == gateway.TypePong && limited == 0:
			pongs++
		case f.Type == gateway.TypeError && f.Code == string(engine.CodeRateLimited):
			limited++
		default:
			t.Errorf("message %d: unexpected frame %+v", i, f)
		}
	}
	if code := abuser.closed(ctx); code != websocket.StatusPolicyViolation {
		t.Errorf("abuser closed with %v, want StatusPolicyViolation", code)
	}
	// The burst passes; then 3 × burst strikes are answered rate_limited,
	// and the next one closes the connection (its frame may not make it).
	if pongs < burst || limited < 3*burst {
		t.Errorf("%d pongs and %d rate_limited frames, want %d pongs, then at least %d rate_limited", pongs, limited, burst, 3*burst)
	}
	// Other connections are not affected.
	bystander.mustCall("ping", nil, gateway.TypePong)
}

// TestBadFrames sends malformed and impossible requests: each gets a clear
// error frame, the connection stays usable, and nothing reaches the journal.
func TestBadFrames(t *testing.T) {
	ts := newTestServer(t, withGateway(func(c *gateway.Config) { c.MsgRate, c.MsgBurst = 1000, 1000 }))
	ts.createTenant(t, "salon", testConfig())
	op := ts.dialOperator(t, "salon")
	b := op.mustCall("book", bookFields("cut", "alice", at(t, "Europe/Rome", 1, 9), ada), gateway.TypeBooked).Booking
	seq := ts.seq(t, "salon")

	book := func(start string) string {
		return `{"v":1,"id":"x","type":"book","service":"cut","resource":"alice","customer":{"name":"A","email":"a@example.com"},"start":"` + start + `"}`
	}
	hold := func(start string) string {
		return `{"v":1,"id":"x","type":"hold","service":"cut","resource":"alice","start":"` + start + `"}`
	}
	resched := func(start string) string {
		return `{"v":1,"id":"x","type":"reschedule","booking_id":"` + b.ID + `","start":"` + start + `"}`
	}
	tests := []struct {
		name  string
		frame string
		code  engine.Code
		says  string // the message mentions this
	}{
		{"not JSON", `hello`, engine.CodeInvalid, "JSON"},
		{"truncated", `{"v":1,"id":"x","type":"ping"`, engine.CodeInvalid, "JSON"},
		{"array", `[1,2,3]`, engine.CodeInvalid, ""},
		{"string", `"ping"`, engine.CodeInvalid, ""},
		{"empty", ``, engine.CodeInvalid, ""},
		{"two objects", `{"v":1,"id":"x","type":"ping"}{"v":1,"id":"y","type":"ping"}`, engine.CodeInvalid, "after"},
		{"unknown field", `{"v":1,"id":"x","type":"ping","bogus":true}`, engine.CodeInvalid, "bogus"},
		{"unknown nested field", `{"v":1,"id":"x","type":"book","service":"cut","start":"2030-01-08T10:00:00+01:00","customer":{"name":"A","email":"a@example.com","ssn":"1"}}`, engine.CodeInvalid, "ssn"},
		{"wrong field type", `{"v":1,"id":"x","type":"hold","service":"cut","start":1893488400}`, engine.CodeInvalid, "start"},
		{"v as string", `{"v":"1","id":"x","type":"ping"}`, engine.CodeInvalid, "v"},
		{"wrong v", `{"v":2,"id":"x","type":"ping"}`, engine.CodeBadVersion, "version"},
		{"missing v", `{"id":"x","type":"ping"}`, engine.CodeBadVersion, "version"},
		{"null", `null`, engine.CodeBadVersion, "version"},
		{"missing type", `{"v":1,"id":"x"}`, engine.CodeInvalid, "type"},
		{"unknown type", `{"v":1,"id":"x","type":"teleport"}`, engine.CodeUnknownType, "teleport"},
		{"server frame type", `{"v":1,"id":"x","type":"booked"}`, engine.CodeUnknownType, "booked"},
		{"id too long", `{"v":1,"id":"` + strings.Repeat("i", gateway.MaxIDLen+1) + `","type":"ping"}`, engine.CodeInvalid, "id"},
		{"book: 30 February", book("2026-02-30T10:00:00Z"), engine.CodeInvalid, "RFC 3339"},
		{"book: no offset", book("2030-01-08T10:00:00"), engine.CodeInvalid, "offset"},
		{"book: year 99999", book("99999-01-08T10:00:00Z"), engine.CodeInvalid, "RFC 3339"},
		{"book: hour 24", book("2030-01-08T24:00:00Z"), engine.CodeInvalid, "RFC 3339"},
		{"book: date only", book("2030-01-08"), engine.CodeInvalid, "RFC 3339"},
		{"book: year 1", book("0001-01-01T00:00:00Z"), engine.CodeInvalid, "start"},
		{"book: year 1899", book("1899-12-31T10:00:00Z"), engine.CodeInvalid, "plausible"},
		{"book: empty start", book(""), engine.CodeInvalid, "start"},
		{"book: half a second", book("2030-01-08T10:00:00.5+01:00"), engine.CodeOffGrid, "minute"},
		{"book: no customer", `{"v":1,"id":"x","type":"book","service":"cut","start":"2030-01-08T10:00:00+01:00"}`, engine.CodeInvalid, "customer"},
		{"book: bad email", `{"v":1,"id":"x","type":"book","service":"cut","start":"2030-01-08T10:00:00+01:00","customer":{"name":"A","email":"nope"}}`, engine.CodeInvalid, "email"},
		{"book: control characters", `{"v":1,"id":"x","type":"book","service":"cut","start":"2030-01-08T10:00:00+01:00","customer":{"name":"A\u0000B","email":"a@example.com"}}`, engine.CodeInvalid, "control"},
		{"book: unknown service", `{"v":1,"id":"x","type":"book","service":"nope","start":"2030-01-08T10:00:00+01:00","customer":{"name":"A","email":"a@example.com"}}`, engine.CodeNotFound, "nope"},
		{"book: unknown hold", `{"v":1,"id":"x","type":"book","hold_id":"hd_nope","customer":{"name":"A","email":"a@example.com"}}`, engine.CodeHoldExpired, "hd_nope"},
		{"hold: 30 February", hold("2026-02-30T10:00:00Z"), engine.CodeInvalid, "RFC 3339"},
		{"hold: no offset", hold("2030-01-08T10:00:00"), engine.CodeInvalid, "offset"},
		{"hold: year 99999", hold("99999-01-08T10:00:00Z"), engine.CodeInvalid, "RFC 3339"},
		{"hold: negative ttl", `{"v":1,"id":"x","type":"hold","service":"cut","start":"2030-01-08T10:00:00+01:00","ttl_sec":-1}`, engine.CodeInvalid, "ttl_sec"},
		{"hold: huge ttl", `{"v":1,"id":"x","type":"hold","service":"cut","start":"2030-01-08T10:00:00+01:00","ttl_sec":99999999}`, engine.CodeInvalid, "ttl_sec"},
		{"hold: ttl overflow", `{"v":1,"id":"x","type":"hold","service":"cut","start":"2030-01-08T10:00:00+01:00","ttl_sec":1e30}`, engine.CodeInvalid, "ttl_sec"},
		{"reschedule: 30 February", resched("2026-02-30T10:00:00Z"), engine.CodeInvalid, "RFC 3339"},
		{"reschedule: no offset", resched("2030-01-08T10:00:00"), engine.CodeInvalid, "offset"},
		{"reschedule: year 99999", resched("99999-01-08T10:00:00Z"), engine.CodeInvalid, "RFC 3339"},
		{"reschedule: year 10000 offset", resched("9999-12-31T23:00:00-02:00"), engine.CodeInvalid, "plausible"},
		{"cancel: long reason", `{"v":1,"id":"x","type":"cancel","booking_id":"` + b.ID + `","reason":"` + strings.Repeat("r", 501) + `"}`, engine.CodeInvalid, "reason"},
	}
	ctx := timeout(t, 30*time.Second)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := op.write(ctx, []byte(tt.frame)); err != nil {
				t.Fatal(err)
			}
			// Requests are answered in order, and nothing else is pushed here.
			f, err := op.await(ctx, func(gateway.Frame) bool { return true })
			if err != nil {
				t.Fatal(err)
			}
			if f.Type != gateway.TypeError || f.Code != string(tt.code) {
				t.Fatalf("%s → %s %s (%s), want error %s", tt.frame, f.Type, f.Code, f.Message, tt.code)
			}
			if !strings.Contains(f.Message, tt.says) {
				t.Errorf("%s → message %q, want it to mention %q", tt.frame, f.Message, tt.says)
			}
		})
	}
	t.Run("echoed ids", func(t *testing.T) {
		long := strings.Repeat("i", gateway.MaxIDLen+1)
		for frame, want := range map[string]string{
			`{"v":1,"id":"e1","type":"ping","bogus":1}`:           "e1",
			`{"v":2,"id":"e2","type":"ping"}`:                     "e2",
			`{"v":1,"id":"` + long + `","type":"ping","bogus":1}`: "",
			`{"v":1,"id":"` + long + `","type":"ping","v":"1"}`:   "",
			`{"v":1,"id":"` + long + `","type":"ping"}`:           "",
		} {
			if err := op.write(ctx, []byte(frame)); err != nil {
				t.Fatal(err)
			}
			f, err := op.await(ctx, func(gateway.Frame) bool { return true })
			if err != nil {
				t.Fatal(err)
			}
			if f.Type != gateway.TypeError || f.ID != want {
				t.Errorf("%s → %s with id %q, want an error with id %q", frame, f.Type, f.ID, want)
			}
		}
	})
	t.Run("binary frame", func(t *testing.T) {
		if err := op.conn.Write(ctx, websocket.MessageBinary, []byte(`{"v":1,"id":"x","type":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		f, err := op.await(ctx, func(gateway.Frame) bool { return true })
		if err != nil || f.Code != string(engine.CodeInvalid) {
			t.Fatalf("binary frame → %+v, %v; want error invalid", f, err)
		}
	})
	op.mustCall("ping", nil, gateway.TypePong)
	if got := ts.seq(t, "salon"); got != seq {
		t.Errorf("journal sequence %d after bad frames, want %d", got, seq)
	}
	var list struct {
		Bookings []engine.Booking `json:"bookings"`
	}
	ts.do(t, "GET", "/v1/tenants/salon/bookings", operatorToken, nil).want(t, http.StatusOK, &list)
	if len(list.Bookings) != 1 || list.Bookings[0].Start != b.Start || list.Bookings[0].Status != engine.StatusConfirmed {
		t.Errorf("bookings after bad frames = %+v, want only %s unchanged", list.Bookings, b.ID)
	}
}

// TestSlowConsumer: a client that subscribes to large availability and
// never reads is cut off; meanwhile the tenant keeps booking and keeps
// publishing to everyone else.
func TestSlowConsumer(t *testing.T) {
	ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) {
		c.OutQueue = 4
		c.WriteTimeout = 2 * time.Second
	}))
	link := ts.createTenant(t, "salon", testConfig())
	tick := func(to string) map[string]any {
		return map[string]any{"service": "tick", "from": day1, "to": to, "tz": "UTC"}
	}

	good := ts.dialLink(t, link)
	gs := good.mustCall("subscribe", tick("2030-01-09"), gateway.TypeSubscribed)
	if len(gs.Slots) != 288 {
		t.Fatalf("subscribed to %d tick slots, want 288", len(gs.Slots))
	}

	// The slow client: a small socket buffer, and it never reads. Each
	// subscription's snapshot is ~2 MB (62 days of five-minute slots).
	slow, _, err := ts.rawDial(t, "link="+link, dialOptions{readBuf: 4096})
	if err != nil {
		t.Fatal(err)
	}
	ctx := timeout(t, 30*time.Second)
	for i := 0; i < 6; i++ {
		req := fmt.Sprintf(`{"v":1,"id":"s%d","type":"subscribe","service":"tick","from":"%s","to":"2030-03-11","tz":"UTC"}`, i, day1)
		if err := slow.Write(ctx, websocket.MessageText, []byte(req)); err != nil {
			t.Fatalf("slow client write: %v", err)
		}
	}

	// Bookings go on while the slow client is stuck, and every delta
	// reaches the good subscriber.
	booker := ts.dialLink(t, link)
	const n = 20
	for i := 0; i < n; i++ {
		start := time.Date(2030, time.January, 8, 0, 5*i, 0, 0, time.UTC)
		booker.mustCall("book", bookFields("tick", "kiosk", start, customer(i)), gateway.TypeBooked)
		f, err := good.await(ctx, func(f gateway.Frame) bool { return f.Type == gateway.TypeAvailability && hasTime(f.Removed, start) })
		if err != nil {
			t.Fatalf("booking %d: good subscriber got no delta: %v", i, err)
		}
		if f.Resync {
			t.Errorf("good subscriber resynced")
		}
	}
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if n := ts.gw.Conns(); n != 2 {
			return fmt.Errorf("%d connections open, want 2 (the slow one closed)", n)
		}
		return nil
	})
	booker.mustCall("book", bookFields("tick", "kiosk", time.Date(2030, time.January, 9, 12, 0, 0, 0, time.UTC), ada), gateway.TypeBooked)
	good.mustCall("ping", nil, gateway.TypePong)
}

func TestShutdownClosesSockets(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	link := ts.createTenant(t, "salon", testConfig())
	pub := ts.dialLink(t, link)
	pub.mustCall("subscribe", aliceDay1(), gateway.TypeSubscribed)
	op := ts.dialOperator(t, "salon")
	op.mustCall("subscribe_bookings", nil, gateway.TypeBookingsSubscribed)
	idle := ts.dial(t, "", nil)
	if n := ts.gw.Conns(); n != 3 {
		t.Fatalf("Conns() = %d, want 3", n)
	}

	ctx := timeout(t, 10*time.Second)
	ts.gw.Shutdown(ctx)
	if ctx.Err() != nil {
		t.Fatalf("Shutdown ran into its deadline")
	}
	if n := ts.gw.Conns(); n != 0 {
		t.Errorf("after Shutdown Conns() = %d, want 0", n)
	}
	for i, c := range []*wsClient{pub, op, idle} {
		if code := c.closed(ctx); code != websocket.StatusGoingAway {
			t.Errorf("client %d closed with %v, want StatusGoingAway", i, code)
		}
	}
}

// TestDisconnectFreesConnection: a client that goes away while subscribed
// to an idle tenant is forgotten at once, not at the tenant's next change.
func TestDisconnectFreesConnection(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	link := ts.createTenant(t, "salon", testConfig())
	pub := ts.dialLink(t, link)
	pub.mustCall("subscribe", aliceDay1(), gateway.TypeSubscribed)
	op := ts.dialOperator(t, "salon")
	op.mustCall("subscribe_bookings", nil, gateway.TypeBookingsSubscribed)
	pub.close()
	op.close()
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := ts.gw.Conns(); n != 0 {
			return fmt.Errorf("%d connections still open", n)
		}
		return nil
	})
}

// TestFramesAreJSON checks the wire form of a few frames: field names,
// RFC 3339 times, and no null slices where clients iterate.
func TestFramesAreJSON(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	link := ts.createTenant(t, "salon", testConfig())
	conn, _, err := ts.rawDial(t, "link="+link, dialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := timeout(t, 10*time.Second)
	read := func() map[string]any {
		t.Helper()
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("frame %s: %v", data, err)
		}
		return m
	}
	w := read()
	if w["type"] != "welcome" || w["v"] != float64(1) || w["server_time"] != "2030-01-07T06:00:00Z" {
		t.Errorf("welcome = %v", w)
	}
	// A day with no opening (an override closes it).
	ts.do(t, "PUT", "/v1/tenants/salon/resources/alice/overrides/"+day1, operatorToken, map[string]any{"open": []any{}}).want(t, http.StatusOK, nil)
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"v":1,"id":"1","type":"subscribe","service":"cut","resource":"alice","from":"2030-01-08","to":"2030-01-09","tz":"Europe/Rome"}`)); err != nil {
		t.Fatal(err)
	}
	s := read()
	if s["type"] != "subscribed" || s["id"] != "1" || s["sub"] == "" {
		t.Errorf("subscribed = %v", s)
	}
	// subscribed states the whole list, so an empty one is [], not absent.
	if slots, ok := s["slots"].([]any); !ok || len(slots) != 0 {
		t.Errorf("subscribed slots = %#v, want []", s["slots"])
	}
	conn.Close(websocket.StatusNormalClosure, "")
}

// TestFramesWithHandshake sends requests in the same packet as the
// handshake: the server must keep the bytes it read past the handshake.
func TestFramesWithHandshake(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	link := ts.createTenant(t, "salon", testConfig())
	u, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	var req bytes.Buffer
	fmt.Fprintf(&req, "GET /v1/ws?link=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", link, u.Host)
	const n = 20 // more bytes than the server's read buffer
	for i := range n {
		p := []byte(fmt.Sprintf(`{"v":1,"type":"ping","id":"p%02d"}`, i))
		req.Write([]byte{0x81, 0x80 | byte(len(p)), 0, 0, 0, 0}) // FIN text, masked with a zero key
		req.Write(p)
	}
	if _, err := nc.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake status %d, want 101", resp.StatusCode)
	}
	var got []string
	for len(got) < n+1 {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		size := int(h[1] & 0x7f)
		if size == 126 {
			var ext [2]byte
			if _, err := io.ReadFull(br, ext[:]); err != nil {
				t.Fatal(err)
			}
			size = int(ext[0])<<8 | int(ext[1])
		}
		payload := make([]byte, size)
		if _, err := io.ReadFull(br, payload); err != nil {
			t.Fatal(err)
		}
		var f gateway.Frame
		if err := json.Unmarshal(payload, &f); err != nil {
			t.Fatalf("frame %q: %v", payload, err)
		}
		got = append(got, f.Type+" "+f.ID)
	}
	want := []string{gateway.TypeWelcome + " "}
	for i := range n {
		want = append(want, fmt.Sprintf("%s p%02d", gateway.TypePong, i))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("frames %v, want %v", got, want)
	}
}

// panickyFeeds panics when asked for a bookings feed.
type panickyFeeds struct{ gateway.Tenants }

func (panickyFeeds) SubscribeFeed(context.Context, string, int) (*actors.Subscription, error) {
	panic("feeds are broken")
}

// TestPanicInMessage: a panic while handling a message closes that
// connection with an internal error and is logged; the server goes on.
func TestPanicInMessage(t *testing.T) {
	ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) { c.Tenants = panickyFeeds{c.Tenants} }))
	ts.createTenant(t, "salon", testConfig())
	op := ts.dialOperator(t, "salon")
	if err := op.write(timeout(t, 5*time.Second), []byte(`{"v":1,"id":"f","type":"subscribe_bookings"}`)); err != nil {
		t.Fatal(err)
	}
	if code := op.closed(timeout(t, 10*time.Second)); code != websocket.StatusInternalError {
		t.Errorf("closed with %v, want StatusInternalError", code)
	}
	ts.dialOperator(t, "salon").mustCall("ping", nil, gateway.TypePong)
	errs := ts.logs.errors()
	if len(errs) != 1 || !strings.Contains(errs[0], "feeds are broken") {
		t.Errorf("error log lines %q, want the panic", errs)
	}
	ts.logs.mu.Lock()
	ts.logs.buf.Reset() // logged as it should be
	ts.logs.mu.Unlock()
}

package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

func TestCreateTenant(t *testing.T) {
	ts := newTestServer(t)
	var view gateway.TenantView
	ts.do(t, "POST", "/v1/tenants", operatorToken, gateway.CreateTenantRequest{ID: "salon", Config: testConfig()}).
		want(t, http.StatusCreated, &view)
	if view.ID != "salon" || len(view.Link) != 26 || view.BookingURL != "/book/"+view.Link || !view.CreatedAt.Equal(t0) {
		t.Errorf("created %+v", view)
	}
	ts.do(t, "POST", "/v1/tenants", operatorToken, gateway.CreateTenantRequest{ID: "salon", Config: testConfig()}).
		wantError(t, http.StatusConflict, engine.CodeConflict)

	// Two tenants never share a link.
	if other := ts.createTenant(t, "other", testConfig()); other == view.Link {
		t.Errorf("two tenants got the same link %s", other)
	}
}

// TestCreateTenantConcurrently: of several creates of one id at once,
// exactly one succeeds, and its link is the tenant's only link.
func TestCreateTenantConcurrently(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	const n = 10
	results := make([]httpResult, n)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := testConfig()
			cfg.Name = fmt.Sprintf("Salon %d", i)
			results[i] = ts.do(t, "POST", "/v1/tenants", operatorToken, gateway.CreateTenantRequest{ID: "salon", Config: cfg})
		}()
	}
	wg.Wait()
	var created []gateway.TenantView
	for _, r := range results {
		switch r.Status {
		case http.StatusCreated:
			var v gateway.TenantView
			r.want(t, http.StatusCreated, &v)
			created = append(created, v)
		default:
			r.wantError(t, http.StatusConflict, engine.CodeConflict)
		}
	}
	if len(created) != 1 {
		t.Fatalf("%d of %d concurrent creates succeeded, want 1", len(created), n)
	}
	var view gateway.TenantView
	ts.do(t, "GET", "/v1/tenants/salon", operatorToken, nil).want(t, http.StatusOK, &view)
	if view.Link != created[0].Link || view.Version != 1 {
		t.Errorf("tenant has link %s at version %d, want the creator's %s at version 1", view.Link, view.Version, created[0].Link)
	}
}

func TestCreateTenantRefusesBadRequests(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	bad := func(f func(*engine.TenantConfig)) engine.TenantConfig {
		c := testConfig()
		f(&c)
		return c
	}
	tests := []struct {
		name   string
		body   any
		status int
		code   engine.Code
	}{
		{"upper-case id", gateway.CreateTenantRequest{ID: "Salon", Config: testConfig()}, 400, engine.CodeInvalid},
		{"empty id", gateway.CreateTenantRequest{ID: "", Config: testConfig()}, 400, engine.CodeInvalid},
		{"id with slash", gateway.CreateTenantRequest{ID: "a/b", Config: testConfig()}, 400, engine.CodeInvalid},
		{"id too long", gateway.CreateTenantRequest{ID: strings.Repeat("a", 64), Config: testConfig()}, 400, engine.CodeInvalid},
		{"unknown zone", gateway.CreateTenantRequest{ID: "t1", Config: bad(func(c *engine.TenantConfig) { c.TimeZone = "Mars/Olympus_Mons" })}, 400, engine.CodeInvalid},
		{"zero capacity", gateway.CreateTenantRequest{ID: "t1", Config: bad(func(c *engine.TenantConfig) { c.Resources[0].Capacity = 0 })}, 400, engine.CodeInvalid},
		{"bad weekday", gateway.CreateTenantRequest{ID: "t1", Config: bad(func(c *engine.TenantConfig) {
			c.Resources[0].Weekly = map[string][]engine.Range{"monday": {{Start: "09:00", End: "17:00"}}}
		})}, 400, engine.CodeInvalid},
		{"range ends before it starts", gateway.CreateTenantRequest{ID: "t1", Config: bad(func(c *engine.TenantConfig) {
			c.Resources[0].Weekly = map[string][]engine.Range{"mon": {{Start: "17:00", End: "09:00"}}}
		})}, 400, engine.CodeInvalid},
		{"hour 25", gateway.CreateTenantRequest{ID: "t1", Config: bad(func(c *engine.TenantConfig) {
			c.Resources[0].Weekly = map[string][]engine.Range{"mon": {{Start: "09:00", End: "25:00"}}}
		})}, 400, engine.CodeInvalid},
		{"hold ttl too short", gateway.CreateTenantRequest{ID: "t1", Config: bad(func(c *engine.TenantConfig) { c.HoldTTLSec = 5 })}, 400, engine.CodeInvalid},
		{"duplicate resource", gateway.CreateTenantRequest{ID: "t1", Config: bad(func(c *engine.TenantConfig) { c.Resources[1].ID = "alice" })}, 400, engine.CodeInvalid},
		{"zero duration", gateway.CreateTenantRequest{ID: "t1", Config: bad(func(c *engine.TenantConfig) { c.Services[0].DurationMin = 0 })}, 400, engine.CodeInvalid},
		{"unknown field", `{"id":"t1","config":{"name":"x","time_zone":"UTC","resources":[],"services":[]},"owner":"me"}`, 400, engine.CodeInvalid},
		{"unknown nested field", `{"id":"t1","config":{"name":"x","time_zone":"UTC","resources":[],"services":[],"colour":"red"}}`, 400, engine.CodeInvalid},
		{"not JSON", `id=t1`, 400, engine.CodeInvalid},
		{"trailing data", `{"id":"t1","config":{"name":"x","resources":[],"services":[]}} {}`, 400, engine.CodeInvalid},
		{"wrong type", `{"id":7}`, 400, engine.CodeInvalid},
		{"empty body", ``, 400, engine.CodeInvalid},
		{"over 1 MiB", `{"id":"t1","config":{"name":"` + strings.Repeat("x", 1<<20) + `"}}`, 413, engine.CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts.do(t, "POST", "/v1/tenants", operatorToken, tt.body).wantError(t, tt.status, tt.code)
		})
	}
	var list struct {
		Tenants []string `json:"tenants"`
	}
	ts.do(t, "GET", "/v1/tenants", operatorToken, nil).want(t, http.StatusOK, &list)
	if len(list.Tenants) != 0 {
		t.Errorf("after refused requests, tenants = %v, want none", list.Tenants)
	}

	// Exactly 1 MiB is accepted (the padding is JSON whitespace).
	b, err := json.Marshal(gateway.CreateTenantRequest{ID: "padded", Config: testConfig()})
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, bytes.Repeat([]byte(" "), 1<<20-len(b))...)
	ts.do(t, "POST", "/v1/tenants", operatorToken, b).want(t, http.StatusCreated, nil)
}

func TestTokens(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	tests := []struct {
		name   string
		header string
		status int
	}{
		{"missing", "", 401},
		{"wrong", "Bearer nope", 401},
		{"empty bearer", "Bearer ", 401},
		{"basic scheme", "Basic " + operatorToken, 401},
		{"token without scheme", operatorToken, 401},
		{"token with suffix", "Bearer " + operatorToken + "x", 401},
		{"token prefix", "Bearer " + operatorToken[:len(operatorToken)-1], 401},
		{"right", "Bearer " + operatorToken, 200},
		{"scheme is case-insensitive", "bearer " + operatorToken, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.header != "" {
				hdr = []string{"Authorization", tt.header}
			}
			r := ts.do(t, "GET", "/v1/tenants", "", nil, hdr...)
			if tt.status == 200 {
				r.want(t, 200, nil)
				return
			}
			r.wantError(t, tt.status, engine.CodeUnauthorized)
			if got := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate %q, want a Bearer challenge", got)
			}
		})
	}
}

func TestListAndGetTenant(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	link := ts.createTenant(t, "salon", testConfig())
	ts.createTenant(t, "barber", testConfig())

	var list struct {
		Tenants []string `json:"tenants"`
	}
	ts.do(t, "GET", "/v1/tenants", operatorToken, nil).want(t, http.StatusOK, &list)
	if strings.Join(list.Tenants, ",") != "barber,salon" {
		t.Errorf("tenants = %v, want [barber salon]", list.Tenants)
	}

	var view gateway.TenantView
	r := ts.do(t, "GET", "/v1/tenants/salon", operatorToken, nil).want(t, http.StatusOK, &view)
	if view.ID != "salon" || view.Link != link || view.BookingURL != "/book/"+link || view.Version != 1 ||
		view.Config == nil || view.Config.Name != "Salon" || len(view.Config.Resources) != 4 {
		t.Errorf("GET /v1/tenants/salon = %s", r.Body)
	}
	for _, path := range []string{"/v1/tenants/nope", "/v1/tenants/NOPE", "/v1/tenants/..%2Fsalon"} {
		ts.do(t, "GET", path, operatorToken, nil).wantError(t, http.StatusNotFound, engine.CodeNotFound)
	}
}

func TestConfigureOverHTTP(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	link := ts.createTenant(t, "salon", testConfig())
	avail := func(resource string) []engine.Slot {
		t.Helper()
		var out struct {
			Version uint64        `json:"version"`
			Slots   []engine.Slot `json:"slots"`
		}
		ts.do(t, "GET", "/v1/tenants/salon/availability?service=cut&resource="+resource+"&from="+day1+"&to=2030-01-09&tz=Europe/Rome",
			operatorToken, nil).want(t, http.StatusOK, &out)
		if out.Slots == nil {
			t.Fatalf("availability slots is null, want a list")
		}
		return out.Slots
	}
	if n := len(avail("alice")); n != 8 {
		t.Fatalf("alice has %d slots on day 1, want 8", n)
	}

	// A new resource, then a service it delivers.
	carol := engine.Resource{Name: "Carol (Sydney)", Kind: "staff", TimeZone: "Australia/Sydney", Capacity: 1,
		Weekly: map[string][]engine.Range{"tue": {{Start: "09:00", End: "12:00"}}}}
	var res struct {
		Version uint64 `json:"version"`
	}
	ts.do(t, "PUT", "/v1/tenants/salon/resources/carol", operatorToken, carol).want(t, http.StatusOK, &res)
	if res.Version != 2 {
		t.Errorf("PUT resource version %d, want 2", res.Version)
	}
	carol.ID = "someone-else"
	ts.do(t, "PUT", "/v1/tenants/salon/resources/carol", operatorToken, carol).wantError(t, 400, engine.CodeInvalid)
	carol.ID, carol.Capacity = "carol", 0
	ts.do(t, "PUT", "/v1/tenants/salon/resources/carol", operatorToken, carol).wantError(t, 400, engine.CodeInvalid)
	ts.do(t, "PUT", "/v1/tenants/salon/resources/carol", operatorToken, `{"name":"x","flavour":"y"}`).wantError(t, 400, engine.CodeInvalid)

	cut := testConfig().Services[0]
	cut.ID, cut.Resources = "", []string{"alice", "bob", "carol"}
	ts.do(t, "PUT", "/v1/tenants/salon/services/cut", operatorToken, cut).want(t, http.StatusOK, nil)
	// Tuesday 09:00–12:00 in Sydney; 09:00 there is still Monday in Rome.
	if s := avail("carol"); len(s) != 2 || !hasSlot(s, at(t, "Australia/Sydney", 1, 10)) {
		t.Errorf("carol has slots %v on day 1 in Rome, want 10:00 and 11:00 Sydney time", s)
	}
	cut.Resources = []string{"nobody"}
	r := ts.do(t, "PUT", "/v1/tenants/salon/services/cut", operatorToken, cut)
	if r.Status != 400 && r.Status != 404 {
		t.Errorf("service with an unknown resource: status %d, want 400 or 404", r.Status)
	}

	var view gateway.TenantView
	ts.do(t, "GET", "/v1/tenants/salon", operatorToken, nil).want(t, http.StatusOK, &view)
	if len(view.Config.Resources) != 5 || view.Config.Services[1].ID != "cut" || len(view.Config.Services[1].Resources) != 3 {
		t.Errorf("config after PUTs: %+v", view.Config)
	}

	// An override closes alice on day 1; deleting it reopens her.
	ts.do(t, "PUT", "/v1/tenants/salon/resources/alice/overrides/"+day1, operatorToken, gateway.OverrideRequest{}).want(t, http.StatusOK, nil)
	if s := avail("alice"); len(s) != 0 {
		t.Errorf("alice has %d slots on a closed day", len(s))
	}
	ts.do(t, "PUT", "/v1/tenants/salon/resources/alice/overrides/"+day1, operatorToken,
		gateway.OverrideRequest{Open: []engine.Range{{Start: "10:00", End: "12:00"}}}).want(t, http.StatusOK, nil)
	if s := avail("alice"); len(s) != 2 {
		t.Errorf("alice has %d slots with 10:00–12:00 hours, want 2", len(s))
	}
	ts.do(t, "DELETE", "/v1/tenants/salon/resources/alice/overrides/"+day1, operatorToken, nil).want(t, http.StatusOK, nil)
	if s := avail("alice"); len(s) != 8 {
		t.Errorf("alice has %d slots after the override was removed, want 8", len(s))
	}
	ts.do(t, "PUT", "/v1/tenants/salon/resources/alice/overrides/2026-02-30", operatorToken, gateway.OverrideRequest{}).wantError(t, 400, engine.CodeInvalid)
	ts.do(t, "PUT", "/v1/tenants/salon/resources/nobody/overrides/"+day1, operatorToken, gateway.OverrideRequest{}).wantError(t, 404, engine.CodeNotFound)

	// Busy blocks from an outside calendar hide the slots they overlap.
	busy := gateway.BusyRequest{Blocks: []engine.Interval{{Start: at(t, "Europe/Rome", 1, 10), End: at(t, "Europe/Rome", 1, 12)}}}
	ts.do(t, "PUT", "/v1/tenants/salon/resources/alice/busy/google", operatorToken, busy).want(t, http.StatusOK, nil)
	s := avail("alice")
	if len(s) != 6 || hasSlot(s, at(t, "Europe/Rome", 1, 10)) || hasSlot(s, at(t, "Europe/Rome", 1, 11)) {
		t.Errorf("alice with busy 10–12 has %d slots %v, want 6 without 10:00 and 11:00", len(s), s)
	}
	ts.do(t, "PUT", "/v1/tenants/salon/resources/alice/busy/google", operatorToken, gateway.BusyRequest{}).want(t, http.StatusOK, nil)
	if s := avail("alice"); len(s) != 8 {
		t.Errorf("alice has %d slots after the busy blocks were cleared, want 8", len(s))
	}
	backwards := gateway.BusyRequest{Blocks: []engine.Interval{{Start: at(t, "Europe/Rome", 1, 12), End: at(t, "Europe/Rome", 1, 10)}}}
	ts.do(t, "PUT", "/v1/tenants/salon/resources/alice/busy/google", operatorToken, backwards).wantError(t, 400, engine.CodeInvalid)
	ts.do(t, "PUT", "/v1/tenants/salon/resources/alice/busy/bad%20source", operatorToken, busy).wantError(t, 400, engine.CodeInvalid)

	// A whole new configuration may not strand a booking.
	ts.dialLink(t, link).mustCall("book", bookFields("cut", "alice", at(t, "Europe/Rome", 1, 9), ada), gateway.TypeBooked)
	cfg := testConfig()
	cfg.Resources = cfg.Resources[1:]
	cfg.Services = cfg.Services[1:2] // "class" only: it does not need alice
	ts.do(t, "PUT", "/v1/tenants/salon/config", operatorToken, cfg).wantError(t, http.StatusConflict, engine.CodeInUse)
	cfg = testConfig()
	cfg.Name = "Salon Deluxe"
	ts.do(t, "PUT", "/v1/tenants/salon/config", operatorToken, cfg).want(t, http.StatusOK, nil)

	// Nothing configures a tenant that does not exist.
	ts.do(t, "PUT", "/v1/tenants/nope/config", operatorToken, cfg).wantError(t, 404, engine.CodeNotFound)
	ts.do(t, "PUT", "/v1/tenants/nope/resources/carol", operatorToken, carol).wantError(t, 404, engine.CodeNotFound)
}

func TestAvailabilityOverHTTP(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	link := ts.createTenant(t, "salon", testConfig())
	q := "?service=class&from=" + day1 + "&to=2030-01-10&tz=America/New_York"
	var staff, public struct {
		Version uint64        `json:"version"`
		Slots   []engine.Slot `json:"slots"`
	}
	ts.do(t, "GET", "/v1/tenants/salon/availability"+q, operatorToken, nil).want(t, http.StatusOK, &staff)
	r := ts.do(t, "GET", "/v1/public/"+link+"/availability"+q, "", nil).want(t, http.StatusOK, &public)
	if staff.Version != 1 || len(staff.Slots) == 0 || len(staff.Slots) != len(public.Slots) {
		t.Errorf("staff availability %d slots (version %d), public %d", len(staff.Slots), staff.Version, len(public.Slots))
	}
	for _, s := range public.Slots {
		if _, off := s.Start.Zone(); off != -5*3600 || s.Seats != 3 {
			t.Errorf("slot %+v: want it in New York time with 3 seats", s)
		}
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("availability Cache-Control %q, want no-store", cc)
	}

	var info gateway.TenantInfo
	ts.do(t, "GET", "/v1/public/"+link, "", nil).want(t, http.StatusOK, &info)
	if info.ID != "salon" || info.Name != "Salon" || len(info.Services) != 3 {
		t.Errorf("public info = %+v", info)
	}

	for _, bad := range []string{
		"?service=class&from=2030-01-10&to=" + day1 + "&tz=UTC",
		"?service=class&from=2026-02-30&to=2026-03-02&tz=UTC",
		"?service=class&from=" + day1 + "&to=2030-01-10",
		"?service=class&from=" + day1 + "&to=2031-01-10&tz=UTC",
	} {
		ts.do(t, "GET", "/v1/public/"+link+"/availability"+bad, "", nil).wantError(t, 400, engine.CodeInvalid)
	}
	ts.do(t, "GET", "/v1/public/"+link+"/availability?service=nope&from="+day1+"&to=2030-01-10&tz=UTC", "", nil).wantError(t, 404, engine.CodeNotFound)
	ts.do(t, "GET", "/v1/public/"+strings.Repeat("a", 26)+"/availability"+q, "", nil).wantError(t, 404, engine.CodeNotFound)
	ts.do(t, "GET", "/v1/public/"+strings.Repeat("a", 26), "", nil).wantError(t, 404, engine.CodeNotFound)
	ts.do(t, "GET", "/v1/public/short", "", nil).wantError(t, 404, engine.CodeNotFound)
	ts.do(t, "GET", "/v1/tenants/nope/availability"+q, operatorToken, nil).wantError(t, 404, engine.CodeNotFound)
}

func TestBookingsOverHTTP(t *testing.T) {
	ts := newTestServer(t)
	ts.createTenant(t, "salon", testConfig())
	type reply struct {
		Version   uint64         `json:"version"`
		Booking   engine.Booking `json:"booking"`
		Duplicate bool           `json:"duplicate"`
	}
	slot := at(t, "Europe/Rome", 1, 9)
	body := gateway.BookRequest{Service: "cut", Resource: "alice", Start: rfc3339(slot),
		Customer: engine.Customer{Name: "Ada Lovelace", Email: "ada@example.com", Phone: "+39 06 0000"}}

	var first, again reply
	ts.do(t, "POST", "/v1/tenants/salon/bookings", operatorToken, body, "Idempotency-Key", "k-1").want(t, http.StatusCreated, &first)
	if first.Duplicate || !first.Booking.Start.Equal(slot) || first.Booking.Status != engine.StatusConfirmed || first.Booking.IdempotencyKey != "k-1" {
		t.Fatalf("created %+v", first)
	}
	ts.do(t, "POST", "/v1/tenants/salon/bookings", operatorToken, body, "Idempotency-Key", "k-1").want(t, http.StatusOK, &again)
	if !again.Duplicate || again.Booking.ID != first.Booking.ID || again.Version != first.Version {
		t.Fatalf("retry = %+v, want a duplicate of %s at version %d", again, first.Booking.ID, first.Version)
	}
	ts.do(t, "POST", "/v1/tenants/salon/bookings", operatorToken, body).wantError(t, http.StatusConflict, engine.CodeSlotTaken)
	body2 := body
	body2.Start = rfc3339(at(t, "Europe/Rome", 1, 10))
	ts.do(t, "POST", "/v1/tenants/salon/bookings", operatorToken, body2, "Idempotency-Key", "k-1").wantError(t, http.StatusConflict, engine.CodeIdemReused)

	seq := ts.seq(t, "salon")
	for _, start := range []string{"2026-02-30T10:00:00Z", "2030-01-08T10:00:00", "99999-01-08T10:00:00Z", ""} {
		b := body2
		b.Start = start
		ts.do(t, "POST", "/v1/tenants/salon/bookings", operatorToken, b).wantError(t, 400, engine.CodeInvalid)
	}
	ts.do(t, "POST", "/v1/tenants/salon/bookings", operatorToken, `{"service":"cut","start":"2030-01-08T10:00:00+01:00","customer":{"name":"A","email":"a@example.com"},"notes":"x"}`).
		wantError(t, 400, engine.CodeInvalid)
	ts.do(t, "POST", "/v1/tenants/salon/bookings", operatorToken, `{"customer":{"name":"`+strings.Repeat("x", 1<<20)+`"}}`).
		wantError(t, 413, engine.CodeTooLarge)
	if got := ts.seq(t, "salon"); got != seq {
		t.Errorf("journal sequence %d after refused bookings, want %d", got, seq)
	}

	var second reply
	ts.do(t, "POST", "/v1/tenants/salon/bookings", operatorToken, body2).want(t, http.StatusCreated, &second)

	// list, with bounds
	var list struct {
		Version  uint64           `json:"version"`
		Bookings []engine.Booking `json:"bookings"`
	}
	ts.do(t, "GET", "/v1/tenants/salon/bookings", operatorToken, nil).want(t, http.StatusOK, &list)
	if len(list.Bookings) != 2 || list.Bookings[0].ID != first.Booking.ID || list.Bookings[1].ID != second.Booking.ID {
		t.Errorf("bookings = %+v, want both in start order", list.Bookings)
	}
	ts.do(t, "GET", "/v1/tenants/salon/bookings?from="+rfc3339(at(t, "Europe/Rome", 1, 10))+"&to=2030-01-09", operatorToken, nil).want(t, http.StatusOK, &list)
	if len(list.Bookings) != 1 || list.Bookings[0].ID != second.Booking.ID {
		t.Errorf("bookings from 10:00 = %+v, want only %s", list.Bookings, second.Booking.ID)
	}
	ts.do(t, "GET", "/v1/tenants/salon/bookings?from=2030-01-09", operatorToken, nil).want(t, http.StatusOK, &list)
	if list.Bookings == nil || len(list.Bookings) != 0 {
		t.Errorf("bookings from the day after = %v, want []", list.Bookings)
	}
	for _, q := range []string{"?from=yesterday", "?to=2026-02-30", "?from=2030-01-08T10:00:00"} {
		ts.do(t, "GET", "/v1/tenants/salon/bookings"+q, operatorToken, nil).wantError(t, 400, engine.CodeInvalid)
	}

	// get
	var got struct {
		Booking engine.Booking `json:"booking"`
	}
	ts.do(t, "GET", "/v1/tenants/salon/bookings/"+first.Booking.ID, operatorToken, nil).want(t, http.StatusOK, &got)
	if got.Booking.ID != first.Booking.ID || got.Booking.Customer.Phone != "+39 06 0000" {
		t.Errorf("GET booking = %+v", got.Booking)
	}
	ts.do(t, "GET", "/v1/tenants/salon/bookings/bk_nope", operatorToken, nil).wantError(t, 404, engine.CodeNotFound)

	// reschedule
	var moved reply
	to := at(t, "Europe/Rome", 1, 14)
	ts.do(t, "POST", "/v1/tenants/salon/bookings/"+first.Booking.ID+"/reschedule", operatorToken,
		gateway.RescheduleRequest{Start: rfc3339(to)}, "Idempotency-Key", "mv-1").want(t, http.StatusOK, &moved)
	if !moved.Booking.Start.Equal(to) || moved.Booking.Rescheduled != 1 {
		t.Errorf("rescheduled %+v, want start %v", moved.Booking, to)
	}
	ts.do(t, "POST", "/v1/tenants/salon/bookings/"+first.Booking.ID+"/reschedule", operatorToken,
		gateway.RescheduleRequest{Start: rfc3339(to)}, "Idempotency-Key", "mv-1").want(t, http.StatusOK, &moved)
	if !moved.Duplicate || moved.Booking.Rescheduled != 1 {
		t.Errorf("repeated reschedule = %+v, want a duplicate", moved)
	}
	ts.do(t, "POST", "/v1/tenants/salon/bookings/"+first.Booking.ID+"/reschedule", operatorToken,
		gateway.RescheduleRequest{Start: rfc3339(second.Booking.Start)}).wantError(t, http.StatusConflict, engine.CodeSlotTaken)
	ts.do(t, "POST", "/v1/tenants/salon/bookings/"+first.Booking.ID+"/reschedule", operatorToken,
		gateway.RescheduleRequest{Start: "2030-01-08T14:00:00"}).wantError(t, 400, engine.CodeInvalid)
	ts.do(t, "POST", "/v1/tenants/salon/bookings/bk_nope/reschedule", operatorToken,
		gateway.RescheduleRequest{Start: rfc3339(to)}).wantError(t, 404, engine.CodeNotFound)

	// cancel
	var cancelled reply
	ts.do(t, "POST", "/v1/tenants/salon/bookings/"+first.Booking.ID+"/cancel", operatorToken,
		gateway.CancelRequest{Reason: "ill"}, "Idempotency-Key", "cx-1").want(t, http.StatusOK, &cancelled)
	if cancelled.Booking.Status != engine.StatusCancelled || cancelled.Booking.CancelReason != "ill" || cancelled.Duplicate {
		t.Errorf("cancelled %+v", cancelled)
	}
	ts.do(t, "POST", "/v1/tenants/salon/bookings/"+first.Booking.ID+"/cancel", operatorToken,
		gateway.CancelRequest{Reason: "ill"}, "Idempotency-Key", "cx-1").want(t, http.StatusOK, &cancelled)
	if !cancelled.Duplicate {
		t.Errorf("repeated cancel with its key: duplicate false")
	}
	ts.do(t, "POST", "/v1/tenants/salon/bookings/"+first.Booking.ID+"/cancel", operatorToken, gateway.CancelRequest{}).
		wantError(t, http.StatusConflict, engine.CodeAlreadyDone)
	ts.do(t, "POST", "/v1/tenants/salon/bookings/bk_nope/cancel", operatorToken, gateway.CancelRequest{}).wantError(t, 404, engine.CodeNotFound)
	ts.do(t, "POST", "/v1/tenants/salon/bookings/"+second.Booking.ID+"/cancel", operatorToken, `{"reason":"x","refund":true}`).
		wantError(t, 400, engine.CodeInvalid)
	ts.do(t, "POST", "/v1/tenants/nope/bookings", operatorToken, body).wantError(t, 404, engine.CodeNotFound)
	ts.do(t, "GET", "/v1/tenants/nope/bookings", operatorToken, nil).wantError(t, 404, engine.CodeNotFound)
}

// TestTenantIsolation: what one tenant's booking link or bookings API
// touches stays within that tenant.
func TestTenantIsolation(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	linkA := ts.createTenant(t, "salon", testConfig())
	cfgB := testConfig()
	cfgB.Name = "Barber"
	linkB := ts.createTenant(t, "barber", cfgB)

	a := ts.dialLink(t, linkA)
	if a.welcome.Principal.Tenant != "salon" {
		t.Fatalf("link A bound to %q", a.welcome.Principal.Tenant)
	}
	booked := a.mustCall("book", bookFields("cut", "alice", at(t, "Europe/Rome", 1, 9), ada), gateway.TypeBooked).Booking

	// The same slot is still free at the other tenant.
	b := ts.dialLink(t, linkB)
	if f := b.mustCall("tenant_info", nil, gateway.TypeTenantInfo); f.Tenant.ID != "barber" || f.Tenant.Name != "Barber" {
		t.Errorf("link B tenant_info = %+v", f.Tenant)
	}
	b.mustCall("book", bookFields("cut", "alice", at(t, "Europe/Rome", 1, 9), ada), gateway.TypeBooked)

	var list struct {
		Bookings []engine.Booking `json:"bookings"`
	}
	ts.do(t, "GET", "/v1/tenants/barber/bookings", operatorToken, nil).want(t, http.StatusOK, &list)
	if len(list.Bookings) != 1 || list.Bookings[0].ID == booked.ID {
		t.Errorf("barber's bookings = %+v, want only its own", list.Bookings)
	}
	ts.do(t, "GET", "/v1/tenants/barber/bookings/"+booked.ID, operatorToken, nil).wantError(t, 404, engine.CodeNotFound)
	ts.do(t, "POST", "/v1/tenants/barber/bookings/"+booked.ID+"/cancel", operatorToken, gateway.CancelRequest{}).wantError(t, 404, engine.CodeNotFound)

	// An operator connection bound to barber cannot reach salon's booking.
	op := ts.dialOperator(t, "barber")
	op.wantErr("cancel", map[string]any{"booking_id": booked.ID}, engine.CodeNotFound)
	// Request fields cannot re-bind a connection.
	op.wantErr("tenant_info", map[string]any{"tenant": "salon"}, engine.CodeInvalid)
}

func TestSecurityHeaders(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	link := ts.createTenant(t, "salon", testConfig())
	for _, tt := range []struct{ method, path, token string }{
		{"GET", "/healthz", ""},
		{"GET", "/readyz", ""},
		{"GET", "/", ""},
		{"GET", "/book/" + link, ""},
		{"GET", "/static/app.js", ""},
		{"GET", "/static/nope.js", ""},
		{"GET", "/nope", ""},
		{"GET", "/v1/public/" + link, ""},
		{"GET", "/v1/tenants", ""},
		{"GET", "/v1/tenants", operatorToken},
		{"GET", "/v1/tenants/nope", operatorToken},
		{"POST", "/v1/tenants", operatorToken},
		{"GET", "/v1/ws", ""}, // not an upgrade
		{"DELETE", "/v1/tenants", operatorToken},
	} {
		r := ts.do(t, tt.method, tt.path, tt.token, nil)
		for h, want := range map[string]string{
			"X-Content-Type-Options": "nosniff",
			"Referrer-Policy":        "no-referrer",
			"X-Frame-Options":        "DENY",
		} {
			if got := r.Header.Get(h); got != want {
				t.Errorf("%s %s (%d): %s %q, want %q", tt.method, tt.path, r.Status, h, got, want)
			}
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s %s: Content-Security-Policy %q", tt.method, tt.path, csp)
		}
		// API answers are JSON (the WebSocket library answers a failed
		// upgrade itself, and the router a wrong method).
		if strings.HasPrefix(tt.path, "/v1/") && tt.path != "/v1/ws" && r.Status != http.StatusMethodNotAllowed &&
			!strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s (%d): Content-Type %q, want JSON", tt.method, tt.path, r.Status, r.Header.Get("Content-Type"))
		}
	}
}

func TestHealthAndPages(t *testing.T) {
	var notReady error
	ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) {
		c.Ready = func(context.Context) error { return notReady }
	}))
	link := ts.createTenant(t, "salon", testConfig())

	if r := ts.do(t, "GET", "/healthz", "", nil).want(t, 200, nil); string(r.Body) != "ok\n" {
		t.Errorf("/healthz = %q", r.Body)
	}
	if r := ts.do(t, "GET", "/readyz", "", nil).want(t, 200, nil); string(r.Body) != "ready\n" {
		t.Errorf("/readyz = %q", r.Body)
	}
	notReady = errors.New("store unreachable")
	ts.do(t, "GET", "/readyz", "", nil).want(t, http.StatusServiceUnavailable, nil)
	notReady = nil
	ts.do(t, "GET", "/metrics", "", nil).want(t, http.StatusNotFound, nil)

	for _, tt := range []struct {
		path   string
		status int
		ctype  string
	}{
		{"/", 200, "text/html"},
		{"/book/" + link, 200, "text/html"},
		{"/book/" + strings.Repeat("a", 26), 200, "text/html"}, // the page itself reports an unknown link
		{"/book/not-a-link", 404, ""},
		{"/static/app.js", 200, "text/javascript"},
		{"/static/style.css", 200, "text/css"},
		{"/static/book.html", 404, ""},
		{"/static/..%2Fserver.go", 404, ""},
		{"/static/..%2F..%2Fgo.mod", 404, ""},
		{"/static/", 404, ""},
	} {
		r := ts.do(t, "GET", tt.path, "", nil)
		if r.Status != tt.status {
			t.Errorf("GET %s = %d, want %d", tt.path, r.Status, tt.status)
			continue
		}
		if ct := r.Header.Get("Content-Type"); tt.ctype != "" && !strings.HasPrefix(ct, tt.ctype) {
			t.Errorf("GET %s: Content-Type %q, want %s", tt.path, ct, tt.ctype)
		}
	}
}

// publicRoutes are the only routes that need no token. A new route is
// protected unless it is added here on purpose.
var publicRoutes = map[string]bool{
	"GET /healthz":                       true,
	"GET /readyz":                        true,
	"GET /metrics":                       true,
	"GET /{$}":                           true,
	"GET /book/{link}":                   true,
	"GET /static/{file...}":              true,
	"GET /v1/ws":                         true, // authenticates per connection
	"GET /v1/public/{link}":              true, // scoped by the booking link
	"GET /v1/public/{link}/availability": true,
}

// TestEveryRouteIsGuarded enumerates the router: every route needs a
// permission unless it is a known public one, and every route that needs a
// permission answers 401 without a token or with a wrong one, before it
// looks at the tenant, the body or anything else.
func TestEveryRouteIsGuarded(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	ts.createTenant(t, "salon", testConfig())
	seq := ts.seq(t, "salon")
	fill := strings.NewReplacer("{tenant}", "salon", "{resource}", "alice", "{service}", "cut", "{date}", day1,
		"{source}", "ical", "{booking}", "bk_x", "{link}", strings.Repeat("a", 26), "{file...}", "app.js", "{$}", "")
	routes := ts.gw.Routes()
	if len(routes) < len(publicRoutes) {
		t.Fatalf("Routes() lists %d routes", len(routes))
	}
	guarded := 0
	for _, r := range routes {
		if r.Perm == 0 {
			if !publicRoutes[r.Pattern] {
				t.Errorf("route %q needs no permission; add a permission or list it in publicRoutes", r.Pattern)
			}
			continue
		}
		if publicRoutes[r.Pattern] {
			t.Errorf("route %q is listed as public but needs permission %d", r.Pattern, r.Perm)
		}
		guarded++
		method, path, ok := strings.Cut(r.Pattern, " ")
		if !ok {
			t.Errorf("route %q has no method", r.Pattern)
			continue
		}
		path = fill.Replace(path)
		if strings.Contains(path, "{") {
			t.Errorf("route %q: no test value for a wildcard in %s", r.Pattern, path)
			continue
		}
		body := `{"reason":"x"}`
		for _, token := range []string{"", "wrong-token"} {
			for _, tenant := range []string{"salon", "nope"} {
				p := strings.Replace(path, "/salon", "/"+tenant, 1)
				res := ts.do(t, method, p, token, body)
				if res.Status != http.StatusUnauthorized {
					t.Errorf("%s %s with token %q = %d %s, want 401", method, p, token, res.Status, res.Body)
					continue
				}
				res.wantError(t, http.StatusUnauthorized, engine.CodeUnauthorized)
			}
		}
	}
	if guarded < 10 {
		t.Errorf("only %d guarded routes", guarded)
	}
	if got := ts.seq(t, "salon"); got != seq {
		t.Errorf("journal sequence %d after unauthenticated requests, want %d", got, seq)
	}
}

// TestAPITimesAreRFC3339 checks the wire form of times in API responses.
func TestAPITimesAreRFC3339(t *testing.T) {
	ts := newTestServer(t, withMemstore())
	ts.createTenant(t, "salon", testConfig())
	r := ts.do(t, "POST", "/v1/tenants/salon/bookings", operatorToken, gateway.BookRequest{Service: "cut", Resource: "alice",
		Start: "2030-01-08T09:00:00+01:00", Customer: engine.Customer{Name: "A", Email: "a@example.com"}}).want(t, http.StatusCreated, nil)
	var m struct {
		Booking map[string]any `json:"booking"`
	}
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]string{"start": "2030-01-08T08:00:00Z", "end": "2030-01-08T08:30:00Z",
		"block_end": "2030-01-08T08:40:00Z", "created_at": t0.Format(time.RFC3339)} {
		if got := m.Booking[field]; got != want {
			t.Errorf("booking %s = %v, want %s", field, got, want)
		}
	}
}

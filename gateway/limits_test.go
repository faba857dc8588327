package gateway_test

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

// slow is a rate that does not refill within a test: burst calls, then
// refusals.
func slow(burst int) gateway.Rate { return gateway.Rate{PerSec: 0.001, Burst: burst} }

// wantRateLimited checks a 429 rate_limited answer with a Retry-After of
// at least a second.
func wantRateLimited(tb testing.TB, what string, r httpResult) {
	tb.Helper()
	if r.Status != http.StatusTooManyRequests {
		tb.Fatalf("%s: status %d, want 429; body %s", what, r.Status, r.Body)
	}
	checkErrorBody(tb, r.Header, r.Body, engine.CodeRateLimited)
	if n, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || n < 1 {
		tb.Errorf("%s: Retry-After %q, want a number of seconds ≥ 1", what, r.Header.Get("Retry-After"))
	}
}

// wantOK checks a 2xx answer.
func wantOK(tb testing.TB, what string, r httpResult) {
	tb.Helper()
	if r.Status < 200 || r.Status > 299 {
		tb.Fatalf("%s: status %d, want 2xx; body %s", what, r.Status, r.Body)
	}
}

// wantHandshakeRefused dials and expects the handshake to be answered
// with an HTTP error status.
func wantHandshakeRefused(tb testing.TB, ts *testServer, query string, hdr http.Header, status int) {
	tb.Helper()
	conn, resp, err := ts.rawDial(tb, query, dialOptions{header: hdr})
	if err == nil {
		conn.CloseNow()
		tb.Fatalf("Dial(%s, %v) succeeded, want HTTP %d", query, hdr, status)
	}
	if resp == nil || resp.StatusCode != status {
		tb.Fatalf("Dial(%s, %v) = %v (response %v), want HTTP %d", query, hdr, err, resp, status)
	}
	if status == http.StatusTooManyRequests {
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		checkErrorBody(tb, resp.Header, body.Bytes(), engine.CodeRateLimited)
		if resp.Header.Get("Retry-After") == "" {
			tb.Errorf("refused handshake without Retry-After")
		}
	}
}

// TestRateLimitPerIP: one address over its budget is refused with 429
// while another is served; IPv6 addresses share their /64; health checks
// are never limited; the forwarded address counts only behind a trusted
// proxy, and then only the element the proxy appended.
func TestRateLimitPerIP(t *testing.T) {
	ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) {
		c.TrustProxy = true
		c.RateLimits = gateway.RateLimits{IP: slow(3)}
	}))
	link := ts.createTenant(t, "salon", testConfig())
	get := func(xff string) httpResult {
		return ts.do(t, "GET", "/v1/public/"+link, "", nil, "X-Forwarded-For", xff)
	}
	for i := range 3 {
		wantOK(t, "call "+strconv.Itoa(i+1)+" of 203.0.113.1", get("203.0.113.1"))
	}
	wantRateLimited(t, "4th call of 203.0.113.1", get("203.0.113.1"))
	wantRateLimited(t, "a client-chosen first element", get("198.51.100.7, 203.0.113.1"))
	wantOK(t, "203.0.113.2", get("203.0.113.2"))
	wantOK(t, "health check of 203.0.113.1", ts.do(t, "GET", "/healthz", "", nil, "X-Forwarded-For", "203.0.113.1"))
	wantOK(t, "readiness of 203.0.113.1", ts.do(t, "GET", "/readyz", "", nil, "X-Forwarded-For", "203.0.113.1"))
	wantHandshakeRefused(t, ts, "link="+link, http.Header{"X-Forwarded-For": {"203.0.113.1"}}, http.StatusTooManyRequests)
	ts.dial(t, "link="+link, http.Header{"X-Forwarded-For": {"203.0.113.3"}}).mustCall("ping", nil, gateway.TypePong)

	for i := range 3 {
		wantOK(t, "call "+strconv.Itoa(i+1)+" of 2001:db8::1", get("2001:db8::1"))
	}
	wantRateLimited(t, "2001:db8::2, same /64", get("2001:db8::2"))
	wantOK(t, "2001:db8:0:1::1, another /64", get("2001:db8:0:1::1"))

	// Without TrustProxy the header is the client's to choose: ignored.
	direct := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) {
		c.RateLimits = gateway.RateLimits{IP: slow(3)}
	}))
	link = direct.createTenant(t, "salon", testConfig()) // call 1
	for i := range 2 {
		wantOK(t, "direct call", direct.do(t, "GET", "/v1/public/"+link, "", nil, "X-Forwarded-For", "203.0.113."+strconv.Itoa(10+i)))
	}
	wantRateLimited(t, "a fresh X-Forwarded-For, not trusted", direct.do(t, "GET", "/v1/public/"+link, "", nil, "X-Forwarded-For", "203.0.113.99"))
}

// TestRateLimitPerToken: one credential over its budget is refused, over
// HTTP and at the WebSocket handshake, while another credential of the
// same tenant is served.
func TestRateLimitPerToken(t *testing.T) {
	auth := scopedAuth{
		"staff-a": {Kind: "staff", Subject: "acc-a", Tenant: "salon", Perm: gateway.PermStaff, Grant: "session-a"},
		"staff-b": {Kind: "staff", Subject: "acc-b", Tenant: "salon", Perm: gateway.PermStaff, Grant: "session-b"},
	}
	ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) {
		c.Auth = gateway.ChainAuth(c.Auth, auth)
		c.RateLimits = gateway.RateLimits{Token: slow(3)}
	}))
	link := ts.createTenant(t, "salon", testConfig())
	for i := range 3 {
		wantOK(t, "staff-a call "+strconv.Itoa(i+1), ts.do(t, "GET", "/v1/tenants/salon/bookings", "staff-a", nil))
	}
	wantRateLimited(t, "staff-a 4th call", ts.do(t, "GET", "/v1/tenants/salon/bookings", "staff-a", nil))
	wantRateLimited(t, "staff-a, another route", ts.do(t, "GET", "/v1/tenants/salon", "staff-a", nil))
	wantHandshakeRefused(t, ts, "tenant=salon", http.Header{"Authorization": {"Bearer staff-a"}}, http.StatusTooManyRequests)
	wantOK(t, "staff-b", ts.do(t, "GET", "/v1/tenants/salon/bookings", "staff-b", nil))
	wantOK(t, "a booking link (no credential)", ts.do(t, "GET", "/v1/public/"+link, "", nil))
	ts.dial(t, "tenant=salon", http.Header{"Authorization": {"Bearer staff-b"}}).mustCall("ping", nil, gateway.TypePong)
}

// TestRateLimitPerTenant: a tenant over its budget is refused whoever
// calls (its booking link, its staff), while another tenant is served.
func TestRateLimitPerTenant(t *testing.T) {
	ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) {
		c.Auth = gateway.ChainAuth(c.Auth, scopedAuth{
			"salon-staff": {Kind: "staff", Subject: "acc-a", Tenant: "salon", Perm: gateway.PermStaff, Grant: "session-a"},
		})
		c.RateLimits = gateway.RateLimits{Tenant: slow(4)}
	}))
	linkA := ts.createTenant(t, "salon", testConfig())
	linkB := ts.createTenant(t, "barber", testConfig())
	for i := range 4 {
		wantOK(t, "salon call "+strconv.Itoa(i+1), ts.do(t, "GET", "/v1/public/"+linkA+"/availability?service=cut&tz=Europe/Rome&from="+day1+"&to=2030-01-09", "", nil))
	}
	wantRateLimited(t, "salon's link", ts.do(t, "GET", "/v1/public/"+linkA, "", nil))
	wantRateLimited(t, "salon's bookings, as its staff", ts.do(t, "GET", "/v1/tenants/salon/bookings", "salon-staff", nil))
	wantHandshakeRefused(t, ts, "link="+linkA, nil, http.StatusTooManyRequests)
	wantOK(t, "barber's link", ts.do(t, "GET", "/v1/public/"+linkB, "", nil))
	wantOK(t, "barber's bookings", ts.do(t, "GET", "/v1/tenants/barber/bookings", operatorToken, nil))
	wantOK(t, "the operator's tenant list (no tenant)", ts.do(t, "GET", "/v1/tenants", operatorToken, nil))
	ts.dialLink(t, linkB).mustCall("ping", nil, gateway.TypePong)
}

// TestRateLimitWebSocketMessages: messages count against the address,
// credential and tenant budgets like HTTP calls (the handshake is the
// first call). Over the budget, each message is answered rate_limited
// with its id and not processed; the connection stays open; a bystander
// of another address, credential or tenant is unaffected.
func TestRateLimitWebSocketMessages(t *testing.T) {
	const burst = 4
	auth := scopedAuth{
		"staff-a": {Kind: "staff", Subject: "acc-a", Tenant: "salon", Perm: gateway.PermStaff, Grant: "session-a"},
		"staff-b": {Kind: "staff", Subject: "acc-b", Tenant: "salon", Perm: gateway.PermStaff, Grant: "session-b"},
	}
	tests := []struct {
		name                string
		limits              gateway.RateLimits
		abuser, bystander   string      // handshake query; "A"/"B" stand for the links
		abuserH, bystanderH http.Header // handshake headers
	}{
		{name: "per address", limits: gateway.RateLimits{IP: slow(burst)}, abuser: "A", bystander: "A",
			abuserH: http.Header{"X-Forwarded-For": {"203.0.113.1"}}, bystanderH: http.Header{"X-Forwarded-For": {"203.0.113.2"}}},
		{name: "per token", limits: gateway.RateLimits{Token: slow(burst)}, abuser: "tenant=salon", bystander: "tenant=salon",
			abuserH: http.Header{"Authorization": {"Bearer staff-a"}}, bystanderH: http.Header{"Authorization": {"Bearer staff-b"}}},
		{name: "per tenant", limits: gateway.RateLimits{Tenant: slow(burst)}, abuser: "A", bystander: "B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) {
				c.Auth = gateway.ChainAuth(c.Auth, auth)
				c.TrustProxy = true
				c.RateLimits = tt.limits
			}))
			links := map[string]string{
				"A": "link=" + ts.createTenant(t, "salon", testConfig()),
				"B": "link=" + ts.createTenant(t, "barber", testConfig()),
			}
			query := func(q string) string {
				if l, ok := links[q]; ok {
					return l
				}
				return q
			}
			abuser := ts.dial(t, query(tt.abuser), tt.abuserH)
			bystander := ts.dial(t, query(tt.bystander), tt.bystanderH)
			before := ts.seq(t, "salon")
			for range burst - 1 { // the handshake was the first call
				abuser.mustCall("ping", nil, gateway.TypePong)
			}
			for range 3 {
				f := abuser.wantErr("ping", nil, engine.CodeRateLimited)
				if f.ID == "" {
					t.Errorf("rate_limited frame without the request's id: %+v", f)
				}
			}
			abuser.wantErr("book", bookFields("cut", "alice", at(t, "Europe/Rome", 1, 9), ada), engine.CodeRateLimited)
			bystander.mustCall("ping", nil, gateway.TypePong)
			if after := ts.seq(t, "salon"); after != before {
				t.Errorf("a rate-limited book was processed: seq %d → %d", before, after)
			}
		})
	}
}

// TestRateLimitExemptions: the operator spends no credential or tenant
// budget; with ExemptLoopback, loopback addresses spend no address budget
// while forwarded ones (behind a trusted proxy) do.
func TestRateLimitExemptions(t *testing.T) {
	ts := newTestServer(t, withMemstore(), withGateway(func(c *gateway.Config) {
		c.TrustProxy = true
		c.RateLimits = gateway.RateLimits{IP: slow(2), Token: slow(2), Tenant: slow(2), ExemptLoopback: true}
	}))
	link := ts.createTenant(t, "salon", testConfig())
	for i := range 10 {
		wantOK(t, "operator call "+strconv.Itoa(i+1), ts.do(t, "GET", "/v1/tenants/salon/bookings", operatorToken, nil))
	}
	op := ts.dialOperator(t, "salon")
	for range 5 {
		op.mustCall("ping", nil, gateway.TypePong)
	}
	// The link's calls from loopback spend the tenant's budget only.
	wantOK(t, "link from loopback", ts.do(t, "GET", "/v1/public/"+link, "", nil))
	wantOK(t, "link from loopback", ts.do(t, "GET", "/v1/public/"+link, "", nil))
	wantRateLimited(t, "the tenant's third public call", ts.do(t, "GET", "/v1/public/"+link, "", nil))
	for range 5 {
		wantOK(t, "loopback page", ts.do(t, "GET", "/", "", nil))
	}
	for range 2 {
		wantOK(t, "forwarded page", ts.do(t, "GET", "/", "", nil, "X-Forwarded-For", "203.0.113.1"))
	}
	wantRateLimited(t, "forwarded page", ts.do(t, "GET", "/", "", nil, "X-Forwarded-For", "203.0.113.1"))
}
